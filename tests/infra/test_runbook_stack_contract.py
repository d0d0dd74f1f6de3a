"""What the runbooks assume about the stack, checked against the stack itself (both AWS stacks under mocks):
every `pulumi stack output X` they read exists, and the restore runbook's way of resuming the auto-confirm
job restores exactly the stack's concurrency setting (issue 23 item 7)."""

from __future__ import annotations

import re

from infra.harness import StackRun
from tests.docs import doc_checks

FUNCTION = "aws:lambda/function:Function"
RESTORE = "docs/runbooks/restore.md"


def _outputs_read() -> dict[str, set[str]]:
    """Output name → the pages (file:line) that read it, from every page's commands and substitutions."""
    read: dict[str, set[str]] = {}
    for page in doc_checks.pages():
        for command in page.commands:
            if command.words[:3] == ["pulumi", "stack", "output"] and len(command.words) > 3:
                name = command.words[3]
                if re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", name):
                    read.setdefault(name, set()).add(command.where)
    return read


def test_every_output_a_page_reads_exists(any_stack: StackRun) -> None:
    read = _outputs_read()
    assert {"dbInstanceIdentifier", "backupRoleArn", "autoConfirmFunction"} <= set(read)
    missing = {name: sorted(where) for name, where in read.items() if name not in any_stack.outputs}
    assert missing == {}, f"pages read outputs that stack {any_stack.stack} does not export"


def test_resuming_the_auto_confirm_job_restores_the_stacks_setting(any_stack: StackRun) -> None:
    """The page pauses the job with a reservation of 0 and resumes it with delete-function-concurrency, which
    leaves the function unreserved: right only while the stack reserves nothing for it."""
    (page,) = [p for p in doc_checks.pages() if p.source == RESTORE]
    verbs = [c.words[2] for c in page.aws_commands() if c.words[1] == "lambda" and "concurrency" in c.words[2]]
    assert "put-function-concurrency" in verbs and verbs[-1] == "delete-function-concurrency"
    function = any_stack.one(FUNCTION, "auto-confirm-function-function")
    assert function.inputs.get("reservedConcurrentExecutions") in (None, -1), (
        "restore.md resumes the job with delete-function-concurrency (unreserved) but the stack reserves "
        f"{function.inputs.get('reservedConcurrentExecutions')}: resume with put-function-concurrency instead"
    )

"""Every `aws` command in the repo's Markdown (and in the runbooks the alarm catalogue generates) parses and
validates in AWS CLI v2, reaches the API of a moto server on 127.0.0.1, and queries only what the operation
returns; the procedures follow the rules of issue 23 (asynchronous renames, scaling, CLI v2 payloads...)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.docs import doc_checks
from tests.docs.awscli_v2 import CliUnavailable, cli_path
from tests.docs.shell_commands import Page, parse_page


@pytest.fixture(scope="module")
def all_pages() -> list[Page]:
    return doc_checks.pages()


@pytest.fixture(scope="module")
def aws_cli() -> Path:
    try:
        return cli_path()
    except CliUnavailable as exc:
        pytest.fail(f"AWS CLI v2 missing: {exc}")


def test_the_docs_hold_aws_commands_where_expected(all_pages: list[Page]) -> None:
    """The extraction itself: it finds the commands of the pages this test exists for."""
    counted = {page.source.split(" ")[0]: len(page.aws_commands()) for page in all_pages}
    assert counted["docs/runbooks/restore.md"] >= 30
    assert counted["docs/deploy.md"] >= 3
    assert counted["README.md"] >= 2
    assert counted["docs/runbooks/auto-confirm-failed.md"] >= 1


def test_every_aws_command_parses_and_reaches_the_stand_in(
    all_pages: list[Page], aws_cli: Path, moto_endpoint: str, tmp_path: Path
) -> None:
    env = doc_checks.cli_environment(moto_endpoint, tmp_path)
    filled = [doc_checks.fill(page, command) for page in all_pages for command in page.aws_commands()]
    problems = [f"{f.command.where}: {p}" for f in filled for p in f.problems]

    # Commands that fill to the same arguments (the same step in two sections) run once, reported for each.
    where: dict[tuple[str, ...], list[str]] = {}
    unique: dict[tuple[str, ...], doc_checks.Filled] = {}
    for item in filled:
        key = (*item.argv, *(f"{name}={content}" for name, content in sorted(item.files.items())))
        where.setdefault(key, []).append(item.command.where)
        unique.setdefault(key, item)

    def one(key: tuple[str, ...]) -> str | None:
        item = unique[key]
        outcome = doc_checks.run(aws_cli, item, env, tmp_path)
        return None if outcome is None else f"{', '.join(where[key])}: {' '.join(item.argv)}\n    {outcome}"

    # The CLI starts in about half a second of CPU; four at a time keep both cores busy.
    with ThreadPoolExecutor(max_workers=4) as pool:
        problems += [outcome for outcome in pool.map(one, unique) if outcome is not None]
    assert problems == [], "\n".join(problems)


def test_every_query_fits_the_operations_output(all_pages: list[Page]) -> None:
    problems = [
        f"{command.where}: {problem}"
        for page in all_pages
        for command in page.aws_commands()
        for problem in doc_checks.query_problems(command)
    ]
    assert problems == [], "\n".join(problems)


def test_inline_binary_parameters_work_on_cli_v2(all_pages: list[Page]) -> None:
    problems = [
        f"{command.where}: {problem}"
        for page in all_pages
        for command in page.aws_commands()
        for problem in doc_checks.binary_problems(command)
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    "rule",
    [
        doc_checks.region_problems,
        doc_checks.modify_problems,
        doc_checks.scaling_problems,
        doc_checks.role_problems,
        doc_checks.kms_alias_problems,
    ],
    ids=lambda rule: rule.__name__,
)
def test_procedures_follow_the_rule(all_pages: list[Page], rule: object) -> None:
    assert callable(rule)
    problems = [problem for page in all_pages for problem in rule(page)]
    assert problems == [], "\n".join(problems)


# ------------------------------------------------------------------------------------------ the checks can fail
BAD_PAGE = """
```sh
export AWS_REGION=$(pulumi stack output region)
ROLE=$(aws backup list-restore-jobs --by-resource-type RDS --max-results 1 --query 'RestoreJobs[0].IamRoleArn' \\
  --output text)
aws backup start-restore-job --recovery-point-arn "$RP" --iam-role-arn "$ROLE" --resource-type RDS \\
  --metadata file://m.json
aws ecs update-service --cluster c --service s --desired-count 0
aws rds modify-db-instance --db-instance-identifier "$DB" --new-db-instance-identifier "$OLD" --apply-immediately
aws rds wait db-instance-available --db-instance-identifier "$OLD"
aws rds modify-db-instance --db-instance-identifier x --manage-master-user-password --apply-immediately
SECRET=$(aws rds describe-db-instances --db-instance-identifier x --query 'DBInstances[0].MasterUserSecret.SecretArn')
aws kms create-key --description "pulumi secrets"
pulumi stack init prod --secrets-provider="awskms://alias/pulumi-secrets?region=us-east-1"
```

To run now: `aws lambda invoke --function-name <fn> --payload '{}' /dev/stdout`.
"""


def _bad() -> Page:
    return parse_page("bad.md", BAD_PAGE)


def test_rules_flag_a_page_that_breaks_them() -> None:
    page = _bad()
    assert doc_checks.region_problems(page) == ["bad.md:3: exports AWS_REGION without AWS_DEFAULT_REGION"]
    assert [p.split(":")[1] for p in doc_checks.role_problems(page)] == ["6"]
    assert len(doc_checks.scaling_problems(page)) == 2
    modify = doc_checks.modify_problems(page)
    assert any("bad.md:10: waiter on the renamed instance" in p for p in modify), modify
    assert any(p.startswith("bad.md:12: reads x right after") for p in modify), modify
    assert doc_checks.kms_alias_problems(page) == [
        "bad.md:14: uses awskms://alias/pulumi-secrets but the page never creates alias/pulumi-secrets"
    ]
    (invoke,) = [c for c in page.aws_commands() if c.words[1] == "lambda"]
    assert doc_checks.binary_problems(invoke)
    filled = doc_checks.fill(page, next(c for c in page.aws_commands() if c.words[2] == "start-restore-job"))
    assert filled.problems == ["$RP is used before the page defines it"]


def test_a_wrong_query_and_a_missing_argument_are_caught(aws_cli: Path, moto_endpoint: str, tmp_path: Path) -> None:
    page = parse_page(
        "q.md",
        "```sh\naws rds describe-db-instances --query 'DBInstances[0].EarliestRestorableTime'\n"
        "aws secretsmanager put-secret-value --secret-id <alert channels secret>\n"
        "aws ecs run-task --cluster c\n```\n",
    )
    query, put, run_task = page.aws_commands()
    assert "EarliestRestorableTime" in doc_checks.query_problems(query)[0]
    env = doc_checks.cli_environment(moto_endpoint, tmp_path)
    assert "SecretString or SecretBinary" in (doc_checks.run(aws_cli, doc_checks.fill(page, put), env, tmp_path) or "")
    outcome = doc_checks.run(aws_cli, doc_checks.fill(page, run_task), env, tmp_path) or ""
    assert outcome.startswith("exit 252") and "--task-definition" in outcome

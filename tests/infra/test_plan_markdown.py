"""`--format markdown` (pull-request comments) and `--mermaid` (component diagram) of the offline plan."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from pathlib import Path

import pytest

from infra import plan
from infra.harness import StackRun

LIMIT = plan.GITHUB_COMMENT_LIMIT


def _balanced(markdown: str) -> bool:
    return markdown.count("<details>") == markdown.count("</details>") and markdown.count("```") % 2 == 0


def _json(stack: str, capsys: pytest.CaptureFixture[str]) -> dict:
    assert plan.main(["--stack", stack, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_markdown_plan_puts_the_summary_first_and_details_collapsed(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "prod", "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    head = markdown.partition("<details>")[0]
    assert head.startswith("### Offline plan · `prod` (shipyard)")
    assert re.search(r"\*\*\d+ resources\*\*", head)
    assert "policy ✅ **0 mandatory**" in head
    assert re.search(r"cost \*\*\d+\.\d\d USD/month\*\*, budget ≤ 200 \(tier default for prod\): met", head)
    assert "<summary>Policy (CrossGuard pack policy/)</summary>" in markdown
    assert "| USD/month | resource | item | note |" in markdown
    assert "```mermaid\nflowchart LR" in markdown
    assert _balanced(markdown) and len(markdown) < LIMIT


def test_markdown_is_cut_to_the_limit_with_a_note(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "prod", "--format", "markdown", "--max-chars", "2500"]) == 0
    markdown = capsys.readouterr().out
    assert len(markdown) <= 2500
    # The note names the limit that cut it (issue 18: it always said GitHub's 65,536).
    assert "to fit the 2,500-character limit (--max-chars)" in markdown
    assert "65,536" not in markdown
    assert _balanced(markdown)


@pytest.mark.parametrize("value", ["0", "-5", "100", "999", "65537", "abc", "1e4"])
def test_max_chars_outside_its_range_exits_2_naming_the_flag(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        plan.main(["--stack", "staging", "--format", "markdown", f"--max-chars={value}"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --max-chars:" in err and "Traceback" not in err
    assert "between 1,000 and 65,536" in err or "whole number" in err


def test_a_long_head_is_cut_too() -> None:
    head = ["### head", *(f"> - warning {i} " + "x" * 200 for i in range(100))]
    markdown = plan.fit_markdown(head, [("s", ["body"])], max_chars=3_000)
    assert len(markdown) <= 3_000 and "more summary line(s) cut to fit the 3,000-character limit" in markdown


def test_fit_markdown_never_exceeds_githubs_limit() -> None:
    huge = [f"| {i} | {'x' * 200} |" for i in range(2000)]
    markdown = plan.fit_markdown(["### head"], [("big", huge), ("after", ["tail"])], max_chars=10**9)
    assert len(markdown) <= LIMIT
    assert "more line(s) truncated" in markdown
    assert "<summary>after</summary>" in markdown  # a short section after a cut one still gets in
    assert _balanced(markdown)
    crowded = plan.fit_markdown(["### head"], [("big", huge), *[(f"s{i}", ["x" * 500]) for i in range(200)]], 10**9)
    assert (
        len(crowded) <= LIMIT
        and "Left out to fit GitHub's 65,536-character comment limit: " in crowded
        and _balanced(crowded)
    )


def test_markdown_diff_shows_changes_cost_delta_and_new_findings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    current = _json("staging", capsys)
    base = copy.deepcopy(current)
    added = base["resources"].pop()  # the PR adds this resource
    base["cost"]["monthly_usd_total"] -= 12.5
    base["cost"]["items"][0]["monthly_usd"] -= 12.5
    new_finding = base["policy"]["violations"].pop(0)  # ...and introduces this finding
    base_file = tmp_path / "base.json"
    base_file.write_text(json.dumps(base))
    assert plan.main(["--stack", "staging", "--diff", str(base_file), "--format", "markdown"]) == 0
    markdown = capsys.readouterr().out
    head = markdown.partition("<details>")[0]
    assert head.startswith("### Offline plan diff · `staging` (shipyard)")
    assert "**+1 to add · −0 to remove · ~0 to change**" in head
    assert re.search(
        r"cost \*\*\d+\.\d\d → \d+\.\d\d USD/month \(\+12\.50\)\*\*, budget ≤ 45 \(tier default for staging\)", head
    )
    assert "policy ✅ **1 new finding(s)** (0 mandatory), 0 resolved" in head
    assert f"new `{new_finding['rule']}` ({new_finding['fsbp']})" in head
    assert f"- ➕ `{added['urn']}`" in markdown
    assert _balanced(markdown) and len(markdown) < LIMIT


def test_mermaid_diagram_of_components_and_connections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "components.mmd"
    assert plan.main(["--stack", "prod", "--mermaid", str(target)]) == 0
    capsys.readouterr()
    diagram = target.read_text()
    assert diagram.startswith("flowchart LR\n")
    assert re.search(r'^  network\["Network: network<br/>\d+ resources"\]$', diagram, re.M)
    assert re.search(r'^  database\["Database: database<br/>\d+ resources"\]$', diagram, re.M)
    assert "  database --> network" in diagram.splitlines()  # the database sits in the network's subnets
    nodes = set(re.findall(r"^  (\w+)\[", diagram, re.M))
    for source, target_node in re.findall(r"^  (\w+) --> (\w+)$", diagram, re.M):
        assert {source, target_node} <= nodes


def test_json_and_markdown_are_exclusive(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "staging", "--json", "--format", "markdown"]) == 2
    assert "exclusive" in capsys.readouterr().err


WARNING = "lambdas/shared/rds-ca-bundle.pem is missing | run `make rds-ca`"


def test_program_warnings_reach_json_text_and_both_markdown_heads(staging: StackRun) -> None:
    warned = dataclasses.replace(staging, warnings=[WARNING])
    document = plan.plan_document(warned)
    assert document["warnings"] == [WARNING]
    text = plan.render_text(warned, document)
    assert f"  ! {WARNING}" in text.partition("Resources (")[0]  # above the tree, not lost at the bottom
    for markdown in (
        plan.render_markdown(warned, document),
        plan.render_diff_markdown(warned, plan.diff_documents(document, document), document, document),
    ):
        head = markdown.partition("<details>")[0]
        assert "> [!WARNING]" in head
        assert "> - lambdas/shared/rds-ca-bundle.pem is missing \\| run `make rds-ca`" in head  # pipe escaped


def test_no_warning_block_when_the_program_did_not_warn(staging: StackRun) -> None:
    quiet = dataclasses.replace(staging, warnings=[])
    document = plan.plan_document(quiet)
    assert document["warnings"] == []
    assert "Warnings from the program" not in plan.render_text(quiet, document)
    assert "[!WARNING]" not in plan.render_markdown(quiet, document)

"""Issue 18, items 2 and 3: JSON-in-a-string properties diffed by path, and a `--diff` base that is checked.

A dashboard body, an IAM policy, container definitions, scheduler inputs: each is JSON text in one string
property. A change to one number inside must read as one line naming its path, in text, `--json` and
markdown; and `--diff` must refuse a base that is not a plan of this project and stack (exit 2).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra import plan
from infra.harness import StackRun
from tests.infra.conftest import evaluate

DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
EMPTY_RUN = StackRun("shipyard", "staging", "Pulumi.staging.yaml", [], {}, frozenset())
"""Stands in for the evaluated stack where a test diffs hand-made documents (only the diagram reads it)."""


def _body(threshold: float) -> str:
    widgets: list[dict[str, Any]] = [{"type": "text", "properties": {"markdown": f"w{i}"}} for i in range(3)]
    widgets.append(
        {
            "type": "metric",
            "properties": {
                "metrics": [["AWS/ECS", "CPUUtilization"]],
                "annotations": {"horizontal": [{"label": "cpu", "value": threshold}]},
            },
        }
    )
    return json.dumps({"widgets": widgets, "padding": "x" * 57_000})  # as long as the real one


def _document(stack: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"stack": stack, "project": "shipyard", "resources": resources, "outputs": {}, "warnings": []}


def _resource(urn: str, inputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "urn": urn,
        "type": DASHBOARD,
        "name": urn,
        "parent": None,
        "custom": True,
        "inputs": inputs,
        "protect": False,
    }


def test_json_text_property_diffs_by_path_in_json_text_and_markdown() -> None:
    base = _document("staging", [_resource("d", {"dashboardBody": _body(80.0)})])
    current = _document("staging", [_resource("d", {"dashboardBody": _body(70.0)})])
    diff = plan.diff_documents(base, current)
    (change,) = diff["changed"]
    path = "inputs.dashboardBody#widgets[3].properties.annotations.horizontal[0].value"
    assert change["properties"] == [{"path": path, "before": 80, "after": 70}]  # integers, not 80.0
    text = plan.render_diff(diff, base, current)
    assert f"      {path}: 80 => 70\n" in text and len(text) < 500  # not the 57 KB body twice
    markdown = plan.render_diff_markdown(EMPTY_RUN, diff, base, current)
    assert f"  - `{path}`: `80` → `70`" in markdown and len(markdown) < 3_000


def test_list_items_inserted_or_removed_are_one_change_each() -> None:
    statements = [{"Sid": s, "Effect": "Allow", "Action": [f"{s}:Get"]} for s in ("a", "b", "c")]
    inserted = [statements[0], {"Sid": "new", "Effect": "Allow", "Action": ["s3:Put"]}, *statements[1:]]
    changes = plan.diff_values(
        {"policy": json.dumps({"Statement": statements})}, {"policy": json.dumps({"Statement": inserted})}
    )
    assert changes == [("policy#Statement[1]", plan.ABSENT, inserted[1])]  # not three shifted items
    removed = plan.diff_values({"Statement": statements}, {"Statement": statements[1:]})
    assert removed == [("Statement[0]", statements[0], plan.ABSENT)]
    current = _document("s", [_resource("p", {"policy": json.dumps({"Statement": inserted})})])
    base = _document("s", [_resource("p", {"policy": json.dumps({"Statement": statements})})])
    diff = plan.diff_documents(base, current)
    assert diff["changed"][0]["properties"][0]["change"] == "added"
    assert "inputs.policy#Statement[1]: (absent) => {" in plan.render_diff(diff, base, current)


def test_keys_that_are_not_plain_names_are_quoted_in_the_path() -> None:
    before = {"Condition": {"StringEquals": {"aws:SourceArn": "a", "s3.x amz": "1"}}}
    after = {"Condition": {"StringEquals": {"aws:SourceArn": "b", "s3.x amz": "2"}}}
    assert [path for path, _, _ in plan.diff_values(before, after)] == [
        "Condition.StringEquals.aws:SourceArn",
        'Condition.StringEquals["s3.x amz"]',
    ]


def test_markdown_shows_where_a_long_value_differs_not_the_same_prefix_twice() -> None:
    before, after = "A" * 5_000 + "threshold 80" + "Z" * 5_000, "A" * 5_000 + "threshold 70" + "Z" * 5_000
    old, new = plan.clip_around_difference(before, after, 160)
    assert old != new and "threshold 80" in old and "threshold 70" in new and len(old) < 200
    base = _document("s", [_resource("r", {"userData": before})])
    current = _document("s", [_resource("r", {"userData": after})])
    markdown = plan.render_diff_markdown(EMPTY_RUN, plan.diff_documents(base, current), base, current)
    assert "threshold 80" in markdown and "threshold 70" in markdown


# ---------------------------------------------------------------------------------------------------------
# The held-in example: one alarm threshold and one IAM statement, between two real plan documents
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def threshold_change() -> tuple[StackRun, dict[str, Any], dict[str, Any]]:
    """(run, base, current): current plans staging with the service-cpu-high alarm at 70 (default 80); the
    base is staging's plan with one statement of a Lambda's role policy granting one more action."""
    plan._load_reports()
    base = plan.plan_document(evaluate("staging"))
    overrides = {"shipyard:monitoring": {"alarms": {"service-cpu-high": {"threshold": 70}}}}
    run = evaluate("staging", config_overrides=overrides)
    current = plan.plan_document(run)
    policy = next(r for r in base["resources"] if r["type"] == ROLE_POLICY and r["name"] == "alerts-forwarder-policy")
    document = json.loads(policy["inputs"]["policy"])
    document["Statement"][0]["Action"].append("logs:DeleteLogGroup")
    policy["inputs"]["policy"] = json.dumps(document)
    return run, base, current


def test_held_in_example_threshold_and_iam_statement_fit_in_ten_lines(
    threshold_change: tuple[StackRun, dict[str, Any], dict[str, Any]],
) -> None:
    run, base, current = threshold_change
    diff = plan.diff_documents(base, current)
    markdown = plan.render_diff_markdown(run, diff, base, current)
    changes = markdown.partition("<summary>Resource changes")[2].partition("</details>")[0]
    by_resource: dict[str, list[str]] = {}
    for line in changes.splitlines():
        if line.startswith("- "):
            by_resource[line] = [line]
        elif line.startswith("  - "):
            by_resource[list(by_resource)[-1]].append(line)
    alarm = next(v for k, v in by_resource.items() if "metricAlarm:MetricAlarm::monitoring-service-cpu-high" in k)
    iam = next(v for k, v in by_resource.items() if "rolePolicy:RolePolicy::alerts-forwarder-policy" in k)
    assert "  - `inputs.threshold`: `80` → `70`" in alarm
    assert '  - `inputs.policy#Statement[0].Action[2]`: `"logs:DeleteLogGroup"` → `(absent)`' in iam
    shown = alarm + iam
    assert len(shown) <= 10 and len("\n".join(shown).encode()) <= 2_048, shown
    # The dashboard's annotation for the same alarm is one line by path too, not the whole body.
    dashboard = next(v for k, v in by_resource.items() if DASHBOARD in k)
    assert any(".annotations.horizontal[0].value`: `80` → `70`" in line for line in dashboard)
    assert len("\n".join(dashboard).encode()) < 1_000
    text = plan.render_diff(diff, base, current)
    assert "      inputs.threshold: 80 => 70" in text
    assert '      inputs.policy#Statement[0].Action[2]: "logs:DeleteLogGroup" => (absent)' in text


# ---------------------------------------------------------------------------------------------------------
# --diff checks its base
# ---------------------------------------------------------------------------------------------------------


def _write(tmp_path: Path, content: Any, name: str = "base.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


BAD_BASES: dict[str, tuple[Any, str]] = {
    "a JSON list": ([1, 2], "is a JSON array, not a plan document"),
    "an unrelated object": ({"a": 1}, "resources: missing"),
    "a resource without its keys": (
        {"stack": "staging", "project": "shipyard", "outputs": {}, "resources": [{"x": 1}]},
        "resources[0].urn: missing",
    ),
    "resources as an object": (
        {"stack": "staging", "project": "shipyard", "outputs": {}, "resources": {}},
        "resources: must be a JSON array",
    ),
    "another project": (
        {"stack": "staging", "project": "other", "outputs": {}, "resources": []},
        "project: 'other' is not this project ('shipyard')",
    ),
    "a diff output": ({"added": [], "removed": [], "changed": [], "outputs": []}, "is the output of --diff"),
    "a failed plan's error report": ({"errors": ["x: bad"], "kind": "config"}, "error report of a plan that failed"),
    "a section of the wrong shape": (
        {"stack": "staging", "project": "shipyard", "outputs": {}, "resources": [], "policy": []},
        "policy: must be a JSON object",
    ),
    "not JSON": ("{not json", "the base plan is not JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_BASES))
@pytest.mark.parametrize("output_format", ["text", "json", "markdown"])
def test_a_base_that_is_not_a_plan_of_this_project_exits_2(
    case: str, output_format: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, expected = BAD_BASES[case]
    path = _write(tmp_path, content)
    plan._load_reports()
    assert plan.main(["--stack", "staging", "--diff", str(path), "--format", output_format]) == 2
    captured = capsys.readouterr()
    assert f"{path}: " in captured.err and expected in captured.err
    if output_format == "json":
        document = json.loads(captured.out)
        assert document["kind"] == "base" and any(expected in e for e in document["errors"])
    elif output_format == "markdown":
        assert "The --diff base plan cannot be used" in captured.out and expected in captured.out
    else:
        assert captured.out == ""


def test_an_unreadable_base_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.json"
    assert plan.main(["--stack", "staging", "--diff", str(missing)]) == 2
    assert f"{missing}: cannot read the base plan: No such file or directory" in capsys.readouterr().err
    assert plan.main(["--stack", "staging", "--diff", str(tmp_path)]) == 2  # a directory
    assert f"{tmp_path}: cannot read the base plan" in capsys.readouterr().err
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    assert plan.main(["--stack", "staging", "--diff", str(binary)]) == 2
    assert "the base plan is not JSON" in capsys.readouterr().err


def test_a_base_of_another_stack_is_refused_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan._load_reports()
    prod = plan.plan_document(evaluate("prod"))
    path = _write(tmp_path, copy.deepcopy(prod))
    assert plan.main(["--stack", "staging", "--diff", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert "the base is a plan of stack 'prod', this is 'staging'" in captured.err
    assert "--allow-other-stack" in captured.err and json.loads(captured.out)["kind"] == "base"
    assert plan.main(["--stack", "staging", "--diff", str(path), "--json", "--allow-other-stack"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["added"] and diff["removed"]


def test_markdown_code_spans_survive_backticks_and_pipes() -> None:
    assert plan.md_code("a|b") == "`a|b`"  # a list item, not a table: no backslash shows
    assert plan.md_code("run `make rds-ca`") == "`` run `make rds-ca` ``"
    base = _document("s", [_resource("r", {"description": "use `make plan` | then 1"})])
    current = _document("s", [_resource("r", {"description": "use `make plan` | then 2"})])
    markdown = plan.render_diff_markdown(EMPTY_RUN, plan.diff_documents(base, current), base, current)
    assert '- `inputs.description`: `` "use `make plan` | then 1" `` → `` "use `make plan` | then 2" ``' in markdown

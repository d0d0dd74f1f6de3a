"""The offline plan CLI: text tree, the --json contract, --diff, exit codes."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infra import plan, rds_ca
from infra.harness import PROJECT_ROOT, StackRun
from tests.infra.conftest import evaluate


def _plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.plan", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_json_contract_is_stable_and_marks_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "staging", "--json"]) == 0
    first = capsys.readouterr().out
    assert plan.main(["--stack", "staging", "--json"]) == 0
    assert capsys.readouterr().out == first
    document = json.loads(first)
    assert {"stack", "project", "resources", "outputs"} <= set(document)
    assert document["stack"] == "staging" and document["project"] == "shipyard"
    urns = [r["urn"] for r in document["resources"]]
    assert urns == sorted(urns)
    for resource in document["resources"]:
        assert set(resource) == {"urn", "type", "name", "parent", "custom", "inputs", "protect"}
    # The staging stack routes alerts to Slack, whose webhook is a secret nobody has offline.
    assert document["placeholders"] == ["shipyard:slackWebhookUrl"]
    # The program warns when `make rds-ca` has not been run (a clean clone, CI); with the bundle it is quiet.
    ca_warnings = [w for w in document["warnings"] if "make rds-ca" in w]
    assert bool(ca_warnings) == (not rds_ca.BUNDLE_PATH.is_file()), document["warnings"]


def test_text_plan_groups_by_component_and_names_placeholders(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "prod"]) == 0
    text = capsys.readouterr().out
    assert "■ shipyard:aws:Network  network" in text
    assert "+ aws:ec2/vpc:Vpc  network-vpc  cidrBlock=10.30.0.0/16" in text
    assert "Counts by type:" in text and "Outputs:" in text
    assert "pulumi config set --secret shipyard:telegramBotToken <value> -s prod" in text


def test_diff_lists_added_removed_and_changed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "staging", "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    vpc = next(r for r in base["resources"] if r["type"] == "aws:ec2/vpc:Vpc")
    vpc["inputs"]["cidrBlock"] = "10.99.0.0/16"
    gone = base["resources"].pop()
    base["resources"].append({**gone, "urn": gone["urn"] + "-old"})
    base_file = tmp_path / "base.json"
    base_file.write_text(json.dumps(base))
    assert plan.main(["--stack", "staging", "--diff", str(base_file), "--json"]) == 0
    diff = json.loads(capsys.readouterr().out)
    assert diff["added"] == [gone["urn"]]
    assert diff["removed"] == [gone["urn"] + "-old"]
    (change,) = diff["changed"]
    assert change["urn"] == vpc["urn"]
    assert change["properties"] == [{"path": "inputs.cidrBlock", "before": "10.99.0.0/16", "after": "10.20.0.0/16"}]


def test_invalid_config_exits_2_with_the_problem_list_and_no_plan(tmp_path: Path) -> None:
    bad = tmp_path / "Pulumi.staging.yaml"
    bad.write_text((PROJECT_ROOT / "Pulumi.staging.yaml").read_text().replace("azCount: 2", "azCount: 7"))
    result = _plan("--stack", "staging", "--config-file", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{bad}: shipyard:network.azCount: must be 2 or 3, got 7" in result.stderr  # the file as given


def test_make_plan_entry_point_runs_from_a_cold_interpreter() -> None:
    result = _plan("--stack", "staging")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Offline plan of stack 'staging'")


# ---------------------------------------------------------------------------------------------------------
# Issue 18: a document even when the stack file is broken; integers; a reader that stops early
# ---------------------------------------------------------------------------------------------------------


def _broken_stack_file(tmp_path: Path) -> Path:
    bad = tmp_path / "Pulumi.staging.yaml"
    text = (PROJECT_ROOT / "Pulumi.staging.yaml").read_text()
    bad.write_text(text.replace("azCount: 2", "azCount: 7").replace("cooldownMinutes: 15", "cooldownMinutes: soon"))
    return bad


PROBLEMS = (  # each named with the file as given (issue 17); here a path ending in Pulumi.staging.yaml
    "Pulumi.staging.yaml: shipyard:network.azCount: must be 2 or 3, got 7",
    "Pulumi.staging.yaml: shipyard:alerts.cooldownMinutes: must be a whole number, got 'soon'",
)


def test_broken_stack_file_with_json_writes_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _broken_stack_file(tmp_path)
    assert plan.main(["--stack", "staging", "--config-file", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert document["kind"] == "config" and document["stack"] == "staging"
    assert document["configFile"] == str(bad)
    assert len(document["errors"]) == 2
    for problem in PROBLEMS:
        assert any(error == f"{bad.parent}/{problem}" for error in document["errors"]), document["errors"]
        assert problem in captured.err  # the job log says it too


def test_broken_stack_file_with_markdown_writes_a_comment_listing_every_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = _broken_stack_file(tmp_path)
    assert plan.main(["--stack", "staging", "--config-file", str(bad), "--format", "markdown"]) == 2
    markdown = capsys.readouterr().out
    assert markdown.startswith("### Offline plan · `staging` · ❌ no plan")
    assert "**The stack configuration is invalid**" in markdown
    block = markdown.partition("```text\n")[2].partition("```")[0]
    for problem in PROBLEMS:
        assert problem in block
    assert markdown.count("```") == 2


def test_a_missing_stack_file_is_a_document_too(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "nosuchstack", "--json"]) == 2
    document = json.loads(capsys.readouterr().out)
    assert document["errors"] == ["Pulumi.nosuchstack.yaml: no such stack file"]
    assert document["configFile"] == "Pulumi.nosuchstack.yaml"


def test_integers_print_as_integers_in_the_text_tree(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "prod"]) == 0
    text = capsys.readouterr().out
    tree = text.partition("Counts by type:")[0]
    assert "retentionInDays=30" in tree and "memorySize=256" in tree
    assert not re.findall(r"\S+=\d+\.0(?=\s|$)", tree, re.M)


def test_json_output_piped_into_head_ends_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.plan", "--stack", "staging", "--json"],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    first = process.stdout.read(100)  # like `head -c 100`: read a little, then hang up
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0
    assert first.startswith(b"{")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_policy_messages_print_integers() -> None:
    """The engine hands the pack every number as a double; a message says port 80, not 80.0."""
    from infra import policy_report

    # Staging's ALB variant (service.frontDoor: alb) has the plain-HTTP listener this message is about.
    staging = evaluate("staging", config_overrides={"shipyard:service": {"maxCount": 2, "frontDoor": "alb"}})
    listener = next(r for r in staging.of_type("aws:lb/listener:Listener") if r.inputs.get("protocol") == "HTTP")
    assert isinstance(listener.inputs["port"], float)  # as the engine sends it
    forwarding = dataclasses.replace(
        listener, inputs={**listener.inputs, "defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}]}
    )
    run = dataclasses.replace(staging, resources=[forwarding if r is listener else r for r in staging.resources])
    messages = [v.message for v in policy_report.evaluate(run).violations if v.urn == listener.urn]
    assert "HTTP listener on port 80 answers with 'forward', not a redirect to HTTPS" in messages, messages
    section = plan.plan_document(run)["policy"]
    assert any("port 80 answers" in line for line in policy_report.render_section(section))


def test_readme_documents_the_sections_the_plan_prints(prod: StackRun) -> None:
    plan._load_reports()
    readme = (PROJECT_ROOT / "README.md").read_text()
    section = readme.partition("## What `make plan` shows")[2].partition("\n## ")[0]
    text = plan.render_text(prod, plan.plan_document(prod))
    for report in plan.REPORTS:
        assert f"{report.title}:" in text and f"`{report.title}`" in section
    goal = next(line.strip() for line in text.splitlines() if line.strip().startswith("budget: "))
    assert re.fullmatch(
        r"budget: <= 200 USD/month \(tier default for prod\) — (met|NOT met \(over by \d+\.\d\d\))", goal
    )
    assert "`budget: <= 200 USD/month (tier default for prod) — met`" in section
    assert "`NOT met (over by " in section and "`--fail-over-budget`" in section
    assert "--allow-other-stack" in section

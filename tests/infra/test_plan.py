"""The offline plan CLI: text tree, the --json contract, --diff, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra import plan, rds_ca
from infra.harness import PROJECT_ROOT


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

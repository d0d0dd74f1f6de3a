"""Issue 17, the loader's own behaviour: every problem in one run (model errors and cross-field checks together),
problems as data for `--json` consumers, AWS's cron grammar, and a cost estimate that never under-reports."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from infra.config import (
    ConfigError,
    Problem,
    aws_regions,
    parse_stack_config,
    validate_schedule,
    validate_tag_value,
)
from infra.cost import build_section
from infra.harness import PROJECT_ROOT, StackRun, run_stack
from infra.plan import plan_document, render_text

BASE = {"shipyard:tier": "staging", "shipyard:owner": "platform-team", "aws:region": "us-east-1"}


def problems(**raw: Any) -> list[Problem]:
    config = {**BASE, **{key.replace("__", ":"): value for key, value in raw.items()}}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({k: v for k, v in config.items() if v is not None}, source="edit.yaml")
    return caught.value.problems


def test_invalid_values_and_cross_field_problems_come_in_one_run() -> None:
    # Before: the backups check ran only once the database value was fixed (a second round trip).
    found = problems(
        shipyard__database='{"backupRetentionDays": "a week"}',
        shipyard__backups='{"retentionDays": 60}',
        shipyard__alerts='{"routing": {"critical": ["telegram"]}}',
    )
    keys = {p.key for p in found}
    assert {"shipyard:database.backupRetentionDays", "shipyard:backups.retentionDays"} <= keys
    assert "shipyard:telegramBotToken" in keys  # the missing-secret check ran too
    # ...and nothing about the value left out for the second pass (no "differs from 7" about the default)
    assert not any("differs from database.backupRetentionDays" in p.message for p in found)


def test_a_check_citing_a_value_left_out_is_not_made_against_its_default() -> None:
    found = problems(shipyard__database='{"backupRetentionDays": "a week"}', shipyard__backups='{"retentionDays": 14}')
    assert [p.key for p in found] == ["shipyard:database.backupRetentionDays"]  # not "14 differs from ... (7)"


def test_a_value_left_out_is_not_reported_again_as_missing() -> None:
    found = problems(aws__region="us-east-9")
    assert [p.key for p in found] == ["aws:region"]


def test_problems_are_data_with_file_key_and_message() -> None:
    (problem,) = problems(shipyard__database='{"instanceClass": "db.t9.huge"}')
    assert (problem.file, problem.key) == ("edit.yaml", "shipyard:database.instanceClass")
    assert problem.message.startswith("'db.t9.huge' is not an RDS instance class")
    assert problem == f"edit.yaml: shipyard:database.instanceClass: {problem.message}"  # still the printed line
    error = ConfigError([problem, "other.yaml: shipyard:x: bad"])
    assert error.as_dicts()[1] == {"file": "other.yaml", "key": "shipyard:x", "message": "bad"}
    assert problem.relabel("mine.yaml").startswith("mine.yaml: shipyard:database.instanceClass: ")


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 2 * * ? *)",
        "cron(0 9 ? * TUE#1 *)",
        "cron(0/15 8-17 ? * MON-FRI *)",
        "cron(0 10 L * ? *)",
        "cron(0 10 LW * ? *)",
        "cron(0 10 15W * ? *)",
        "cron(0 18 ? * 6L 2026-2030)",
        "cron(5,35 14 ? JAN,JUL 2 *)",
        "rate(5 minutes)",
    ],
)
def test_aws_cron_grammar_accepts_what_aws_accepts(expression: str) -> None:
    assert validate_schedule(expression) == expression


@pytest.mark.parametrize(
    ("expression", "said"),
    [
        ("cron(0 2 32 * ? *)", "day-of-month value 32"),
        ("cron(0 2 1 13 ? *)", "month value 13"),
        ("cron(0 2 ? * 8 *)", "day-of-week value 8"),
        ("cron(0 2 * * ? 1969)", "year value 1969"),
        ("cron(0 2 ? * 3#6 *)", "week of the month, 1-5"),
        ("cron(0 2 ? * 3#1,6#3 *)", "one expression only"),
        ("cron(0 2 ? * 3W *)", "day-of-week value 3W"),
        ("cron(0 L * * ? *)", "hour does not take 'L'"),
        ("cron(0 2 ?,1 * ? *)", "stands alone"),
        ("cron(0/0 2 * * ? *)", "increment"),
        ("cron(0 2 * * * *)", "must be '?'"),
    ],
)
def test_aws_cron_grammar_refuses_the_rest(expression: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("?", r"\?")):
        validate_schedule(expression)


def test_regions_come_from_botocore_and_know_partitions() -> None:
    regions = aws_regions()
    assert regions["us-east-1"] == "aws" and regions["cn-north-1"] == "aws-cn"
    assert "us-east-9" not in regions and "aws-global" not in regions


@pytest.mark.parametrize(
    ("value", "said"), [("a" * 257, "at most 256"), ("team\u202e", "U+202E"), ("ops 🚀", "'🚀'"), ("AWS:x", "reserved")]
)
def test_tag_values_follow_the_aws_tag_rules(value: str, said: str) -> None:
    with pytest.raises(ValueError, match=re.escape(said)):
        validate_tag_value(value)
    assert (
        validate_tag_value("Équipe plateforme: ops/sre @br +1=x_y.z-w") == "Équipe plateforme: ops/sre @br +1=x_y.z-w"
    )


def test_the_cost_section_refuses_to_total_an_unpriced_item(staging: StackRun) -> None:
    database = next(r for r in staging.resources if r.type == "aws:rds/instance:Instance")
    unpriced = replace(database, inputs={**database.inputs, "instanceClass": "db.x9.huge"})
    run = replace(staging, resources=[unpriced if r is database else r for r in staging.resources])
    with pytest.raises(ConfigError) as caught:
        build_section(run)
    assert "no list price, the estimate would under-report" in caught.value.problems[0]
    assert "rds.instance.db.x9.huge" in caught.value.problems[0]


def test_the_plan_header_names_the_config_file_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "edits").mkdir()
    (tmp_path / "edits" / "my-edit.yaml").write_text((PROJECT_ROOT / "Pulumi.staging.yaml").read_text())
    run = run_stack("staging", config_file=Path("edits/my-edit.yaml"), placeholders_for_missing_secrets=True)
    assert run.config_file == "edits/my-edit.yaml"  # before: the basename only
    assert render_text(run, plan_document(run)).startswith(
        "Offline plan of stack 'staging' (project shipyard, config edits/my-edit.yaml)"
    )

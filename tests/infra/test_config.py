"""Stack config validation: every invalid config stops the program before any resource, naming file, key, reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.config import AwsStack, ConfigError, json_schema, parse_stack_config, validate_schedule
from infra.harness import PROJECT_ROOT, run_stack
from tests.infra.conftest import ALERT_SECRETS, evaluate

# (stack, overrides of whole top-level keys, expected key path, expected words in the reason)
INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    ("staging", {"shipyard:tier": "dev"}, "shipyard:tier", "'staging' or 'prod'"),
    ("staging", {"shipyard:owner": None}, "shipyard:owner", "required key is missing"),
    ("staging", {"aws:region": None}, "aws:region", "required key is missing"),
    ("staging", {"aws:region": "Brazil"}, "aws:region", "should match pattern"),
    ("staging", {"shipyard:databse": {"multiAz": True}}, "shipyard:databse", "unknown key; allowed here:"),
    (
        "staging",
        {"shipyard:network": {"cidr": "10.20.0.0/16", "natGateways": 1}},
        "shipyard:network.natGateways",
        "unknown key; allowed here: azCount, cidr",
    ),
    ("staging", {"shipyard:network": {"cidr": "10.20.0.1/16"}}, "shipyard:network.cidr", "host bits"),
    ("staging", {"shipyard:network": {"cidr": "8.8.0.0/16"}}, "shipyard:network.cidr", "private range"),
    ("staging", {"shipyard:network": {"cidr": "10.20.0.0/26"}}, "shipyard:network.cidr", "/16 to /22"),
    ("staging", {"shipyard:network": {"azCount": 4}}, "shipyard:network.azCount", "2 or 3"),
    (
        "staging",
        {"shipyard:network": {"nat": "maybe"}},
        "shipyard:network.nat",
        "'none', 'single' or 'per_az'",
    ),
    (
        "staging",
        {"shipyard:database": {"backupRetentionDays": "a week"}},
        "shipyard:database.backupRetentionDays",
        "valid integer",
    ),
    (
        "staging",
        {"shipyard:database": {"backupRetentionDays": 40}},
        "shipyard:database.backupRetentionDays",
        "less than or equal to 35",
    ),
    (
        "staging",
        {"shipyard:database": {"allocatedStorageGb": 100, "maxAllocatedStorageGb": 50}},
        "shipyard:database",
        "maxAllocatedStorageGb must be >= allocatedStorageGb",
    ),
    (
        "staging",
        {"shipyard:database": {"backupWindow": "3am"}},
        "shipyard:database.backupWindow",
        "03:00-04:00",
    ),
    (
        "staging",
        {"shipyard:database": {"logRetentionDays": 10}},
        "shipyard:database.logRetentionDays",
        "CloudWatch Logs accepts only",
    ),
    (
        "prod",
        {"shipyard:waf": {"enabled": True, "logRetentionDays": 45}},
        "shipyard:waf.logRetentionDays",
        "CloudWatch Logs accepts only",
    ),
    (
        "staging",
        {"shipyard:uploads": {"accessLogRetentionDays": 0}},
        "shipyard:uploads.accessLogRetentionDays",
        "greater than or equal to 1",
    ),
    ("staging", {"shipyard:service": {"cpu": 300, "memory": 512}}, "shipyard:service", "not a Fargate size"),
    (
        "staging",
        {"shipyard:service": {"cpu": 256, "memory": 4096}},
        "shipyard:service",
        "does not fit cpu 256",
    ),
    (
        "staging",
        {"shipyard:service": {"minCount": 3, "desiredCount": 1, "maxCount": 4}},
        "shipyard:service",
        "minCount <= desiredCount <= maxCount",
    ),
    (
        "staging",
        {"shipyard:service": {"environment": {"JWT_SECRET": "abc"}}},
        "shipyard:service.environment",
        "look like secrets",
    ),
    (
        "staging",
        {"shipyard:jobs": {"timezone": "America/Sao_Paolo"}},
        "shipyard:jobs.timezone",
        "unknown IANA time zone",
    ),
    (
        "staging",
        {"shipyard:jobs": {"autoConfirm": {"schedule": "0 * * * *"}}},
        "shipyard:jobs.autoConfirm.schedule",
        "must be 'rate(",
    ),
    (
        "staging",
        {"shipyard:jobs": {"autoConfirm": {"schedule": "cron(0 * * * * *)"}}},
        "shipyard:jobs.autoConfirm.schedule",
        "exactly one of day-of-month",
    ),
    (
        "staging",
        {"shipyard:jobs": {"autoConfirm": {"schedule": "cron(0 25 * * ? *)"}}},
        "shipyard:jobs.autoConfirm.schedule",
        "hour value 25 is out of range",
    ),
    (
        "staging",
        {"shipyard:jobs": {"scheduledTasks": [{"name": "x1", "schedule": "rate(5 minutes)", "command": []}]}},
        "shipyard:jobs.scheduledTasks[0].command",
        "at least 1 item",
    ),
    (
        "staging",
        {"shipyard:alerts": {"routing": {"critical": ["pager"]}}},
        "shipyard:alerts.routing.critical[0]",
        "'slack', 'telegram', 'email', 'sms' or 'webhook'",
    ),
    (
        "staging",
        {"shipyard:alerts": {"routing": {"urgent": ["slack"]}}},
        "shipyard:alerts.routing.urgent",
        "'critical', 'warning' or 'info'",
    ),
    (
        "staging",
        {"shipyard:backups": {"offsite": {"region": "us-east-1"}}},
        "shipyard:backups.offsite.region",
        "must differ from aws:region",
    ),
    ("staging", {"shipyard:backups": {"timezone": "Sao Paulo"}}, "shipyard:backups.timezone", "unknown IANA"),
    (
        "prod",
        {"shipyard:backups": {"vaultLock": {"minRetentionDays": 60, "maxRetentionDays": 30}}},
        "shipyard:backups.vaultLock",
        "minRetentionDays (60) > maxRetentionDays (30)",
    ),
    (
        "prod",
        {"shipyard:backups": {"retentionDays": 30, "vaultLock": {"minRetentionDays": 35, "maxRetentionDays": 400}}},
        "shipyard:backups.retentionDays",
        "30 is outside the vault lock range 35..400",
    ),
    (
        "prod",
        {
            "shipyard:backups": {
                "offsite": {"region": "us-west-2", "retentionDays": 730},
                "vaultLock": {"minRetentionDays": 7, "maxRetentionDays": 400},
            }
        },
        "shipyard:backups.offsite.retentionDays",
        "730 is outside the vault lock range 7..400",
    ),
    (
        "staging",
        {"shipyard:backups": {"retentionDays": 60}, "shipyard:database": {"backupRetentionDays": 35}},
        "shipyard:backups.retentionDays",
        "at most 35 days",
    ),
    (
        "staging",
        {"shipyard:backups": {"retentionDays": 14}},
        "shipyard:backups.retentionDays",
        "differs from database.backupRetentionDays (7)",
    ),
    (
        "staging",
        {"shipyard:backups": {"restoreValidationWindowHours": 200}},
        "shipyard:backups.restoreValidationWindowHours",
        "less than or equal to 168",
    ),
    (
        "staging",
        {"shipyard:cache": {"enabled": True, "maxmemoryPolicy": "lru"}},
        "shipyard:cache.maxmemoryPolicy",
        "'noeviction'",
    ),
    (
        "staging",
        {"shipyard:waivers": {"database.encryption": "because we said so"}},
        "shipyard:waivers.database.encryption",
        "not a prod minimum",
    ),
    (
        "prod",
        {"shipyard:database": {"multiAz": False, "deletionProtection": True}},
        "shipyard:database.multiAz",
        "must be true in prod",
    ),
    (
        "prod",
        {"shipyard:service": {"desiredCount": 1, "minCount": 1, "maxCount": 4}},
        "shipyard:service.minCount",
        "must be >= 2 in prod",
    ),
    (
        "prod",
        {"shipyard:network": {"cidr": "10.30.0.0/16", "nat": "none", "flowLogs": True}},
        "shipyard:network.nat",
        "needs 'single' or 'per_az' NAT",
    ),
    (
        "prod",
        {"shipyard:alerts": {"routing": {"critical": []}, "oncallEmail": "a@b.co"}},
        "shipyard:alerts.routing.critical",
        "at least one channel",
    ),
    (
        "prod",
        {"shipyard:waivers": {"database.multiAz": "cheap"}},
        "shipyard:waivers.database.multiAz",
        "at least 10 characters",
    ),
]


def _error(stack: str, overrides: dict[str, Any], secrets: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        evaluate(stack, config_overrides=overrides, secret_overrides=secrets or ALERT_SECRETS)
    return caught.value


@pytest.mark.parametrize(("stack", "overrides", "key", "reason"), INVALID, ids=[f"{c[2]}|{c[3][:25]}" for c in INVALID])
def test_invalid_config_is_reported_with_file_key_and_reason_and_registers_nothing(
    stack: str, overrides: dict[str, Any], key: str, reason: str
) -> None:
    error = _error(stack, overrides)
    expected_prefix = f"Pulumi.{stack}.yaml: {key}: "
    matching = [p for p in error.problems if p.startswith(expected_prefix)]
    assert matching, f"no problem for {key}; got {error.problems}"
    assert any(reason in p for p in matching), f"{reason!r} not in {matching}"
    assert error.registered == []


def test_every_problem_is_listed_in_one_error() -> None:
    error = _error(
        "staging",
        {
            "shipyard:tier": "qa",
            "shipyard:network": {"azCount": 5},
            "shipyard:jobs": {"timezone": "Nowhere/City"},
        },
    )
    keys = {p.split(": ")[1] for p in error.problems}
    assert {"shipyard:tier", "shipyard:network.azCount", "shipyard:jobs.timezone"} <= keys


def test_missing_required_secret_names_the_config_set_line() -> None:
    error = _error("prod", {}, secrets={k: v for k, v in ALERT_SECRETS.items() if k != "shipyard:telegramBotToken"})
    assert error.problems == [
        "Pulumi.prod.yaml: shipyard:telegramBotToken: required secret is not set (alerts.routing uses telegram); "
        "run `pulumi config set --secret shipyard:telegramBotToken <value> -s prod`"
    ]
    assert error.registered == []


def test_secret_in_plain_text_is_rejected(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.staging.yaml"
    stack_file.write_text(
        (PROJECT_ROOT / "Pulumi.staging.yaml").read_text()
        + "  shipyard:slackWebhookUrl: https://hooks.slack.invalid/services/x\n"
    )
    with pytest.raises(ConfigError) as caught:
        run_stack("staging", config_file=stack_file)
    assert any(
        p.startswith("Pulumi.staging.yaml: shipyard:slackWebhookUrl: is a secret but is stored in plain text")
        for p in caught.value.problems
    )


def test_a_waiver_with_a_reason_accepts_a_weaker_prod() -> None:
    run = evaluate(
        "prod",
        config_overrides={
            "shipyard:database": {"multiAz": False, "deletionProtection": True, "backupRetentionDays": 30},
            "shipyard:waivers": {"database.multiAz": "single-AZ until launch on 2027-01-10; ticket OPS-12"},
        },
    )
    assert run.stack == "prod"


def test_tier_defaults_apply_under_the_stack_file() -> None:
    base = {"shipyard:owner": "team", "aws:region": "us-east-1"}
    staging = parse_stack_config({**base, "shipyard:tier": "staging"}, source="Pulumi.s.yaml")
    prod = parse_stack_config(
        {
            **base,
            "shipyard:tier": "prod",
            "shipyard:alerts": json.dumps(
                {"routing": {"critical": ["email"]}, "oncallEmail": "o@example.com", "emailFrom": "a@example.com"}
            ),
            "shipyard:alertEmails": "o@example.com",
            "shipyard:database": json.dumps({"backupRetentionDays": 14}),
            # Continuous AWS Backup manages the RDS retention, so the two must agree (see _backup_problems).
            "shipyard:backups": json.dumps({"retentionDays": 14}),
        },
        source="Pulumi.p.yaml",
        secret_keys={"shipyard:alertEmails"},
    )
    assert isinstance(staging, AwsStack)
    assert isinstance(prod, AwsStack)
    assert not staging.database.multi_az
    assert staging.network.nat == "none"
    assert prod.database.multi_az and prod.database.deletion_protection
    assert prod.database.backup_retention_days == 14  # the stack file wins over the tier default
    assert prod.service.min_count >= 2
    assert prod.network.flow_logs


@pytest.mark.parametrize(
    "expression",
    [
        "rate(1 hour)",
        "rate(5 minutes)",
        "cron(0 2 * * ? *)",
        "cron(0/15 8-18 ? * MON-FRI *)",
        "cron(0 3 1 * ? *)",
    ],
)
def test_valid_schedules(expression: str) -> None:
    assert validate_schedule(expression) == expression


@pytest.mark.parametrize("expression", ["rate(1 hours)", "rate(0 minutes)", "every hour", "cron(0 2 * * *)"])
def test_invalid_schedules(expression: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        validate_schedule(expression)


def test_json_schema_in_docs_is_fresh() -> None:
    committed = json.loads((PROJECT_ROOT / "docs" / "stack-config.schema.json").read_text())
    assert committed == json_schema(), "run `make schema` and commit docs/stack-config.schema.json"


def test_shipped_stack_files_validate_against_the_schema() -> None:
    import jsonschema
    import yaml

    schema = json_schema()
    for stack in ("staging", "prod"):
        document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
        jsonschema.validate(document, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"config": {"shipyard:tier": "prod", "shipyard:owner": "x", "shipyard:tyop": 1}}, schema)

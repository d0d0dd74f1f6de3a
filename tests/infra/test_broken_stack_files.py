"""Issue 17: broken stack files, each through the real CLI entry (`python -m infra.plan --stack X --config-file F`,
run in-process for speed). Every case asserts exit 2, the file named as given, the key path and what is allowed;
and a file with every key of the model broken at once reports every one of them in one run."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from infra import plan
from infra.config import PROJECT, AwsStack, DigitalOceanStack
from infra.harness import PROJECT_ROOT

DELETE = object()
AWS, DO = "staging", "staging-do"

# (case id, stack, {"<fully qualified key>[.<nested.path>]": value or DELETE}, key path reported, what is allowed)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    # ---- regions, namespaces, keys
    ("region-unknown", AWS, {"aws:region": "us-east-9"}, "aws:region", "did you mean us-east-2"),
    ("region-missing", AWS, {"aws:region": DELETE}, "aws:region", "required key is missing"),
    ("aws-key-typo", AWS, {"aws:regoin": "us-east-1"}, "aws:regoin", "did you mean 'aws:region'"),
    ("namespace-typo", AWS, {"shipyrd:database": {"multiAz": True}}, "shipyrd:database", "'shipyard:database'"),
    ("namespace-unknown", AWS, {"gcp:project": "x"}, "gcp:project", "keys go under shipyard:"),
    ("top-key-typo", AWS, {"shipyard:databse": {}}, "shipyard:databse", "did you mean 'database'"),
    ("nested-key-typo", AWS, {"shipyard:database.multiAZ": True}, "shipyard:database.multiAZ", "'multiAz'"),
    ("cloud-unknown", AWS, {"shipyard:cloud": "gcp"}, "shipyard:cloud", "allowed: aws, digitalocean"),
    ("tier-unknown", AWS, {"shipyard:tier": "dev"}, "shipyard:tier", "'staging' or 'prod'"),
    ("section-null", AWS, {"shipyard:database": None}, "shipyard:database", "must be a mapping"),
    ("section-list", AWS, {"shipyard:network": [1, 2]}, "shipyard:network", "must be a mapping"),
    ("secret-plain", AWS, {"shipyard:slackWebhookUrl": "https://x"}, "shipyard:slackWebhookUrl", "--secret"),
    ("secrets-reserved", AWS, {"shipyard:secrets": {"a": "b"}}, "shipyard:secrets", "top-level secret keys"),
    # ---- tags and identifiers
    ("owner-emoji", AWS, {"shipyard:owner": "team 🚀"}, "shipyard:owner", "letters, digits, spaces"),
    ("owner-long", AWS, {"shipyard:owner": "x" * 300}, "shipyard:owner", "at most 256 characters"),
    ("owner-aws-prefix", AWS, {"shipyard:owner": "aws:team"}, "shipyard:owner", "reserved"),
    ("owner-missing", AWS, {"shipyard:owner": DELETE}, "shipyard:owner", "required key is missing"),
    ("domain-name", AWS, {"shipyard:domain": {"name": "Example"}}, "shipyard:domain.name", "allowed: text matching"),
    (
        "domain-host",
        AWS,
        {"shipyard:domain": {"name": "a.io", "frontendHost": "-app"}},
        "shipyard:domain.frontendHost",
        "DNS label",
    ),
    (
        "domain-same-hosts",
        AWS,
        {"shipyard:domain": {"name": "a.io", "apiHost": "app"}},
        "shipyard:domain",
        "cannot point at both",
    ),
    (
        "domain-zone",
        AWS,
        {"shipyard:domain": {"name": "a.io", "apiHost": "x", "hostedZoneId": "/hostedzone/Z1"}},
        "shipyard:domain.hostedZoneId",
        "without /hostedzone/",
    ),
    # ---- database
    (
        "db-class",
        AWS,
        {"shipyard:database.instanceClass": "db.t9.huge"},
        "shipyard:database.instanceClass",
        "db.t4g.micro, db.t4g.small",
    ),
    (
        "db-engine",
        AWS,
        {"shipyard:database.engineVersion": "seventeen"},
        "shipyard:database.engineVersion",
        "allowed: text matching",
    ),
    (
        "db-storage",
        AWS,
        {"shipyard:database.allocatedStorageGb": 10},
        "shipyard:database.allocatedStorageGb",
        "greater than or equal to 20",
    ),
    (
        "db-ceiling",
        AWS,
        {"shipyard:database.allocatedStorageGb": 60},
        "shipyard:database",
        "maxAllocatedStorageGb must be >=",
    ),
    ("db-multiaz", AWS, {"shipyard:database.multiAz": "maybe"}, "shipyard:database.multiAz", "must be true or false"),
    (
        "db-retention",
        AWS,
        {"shipyard:database.backupRetentionDays": 40},
        "shipyard:database.backupRetentionDays",
        "less than or equal to 35",
    ),
    (
        "db-backup-window",
        AWS,
        {"shipyard:database.backupWindow": "3am"},
        "shipyard:database.backupWindow",
        "'03:00-04:00'",
    ),
    (
        "db-maint-window",
        AWS,
        {"shipyard:database.maintenanceWindow": "sunday"},
        "shipyard:database.maintenanceWindow",
        "'sun:05:00-sun:06:00'",
    ),
    (
        "db-monitoring",
        AWS,
        {"shipyard:database.enhancedMonitoringInterval": 7},
        "shipyard:database.enhancedMonitoringInterval",
        "0, 1, 5, 10, 15, 30 or 60",
    ),
    (
        "db-log-retention",
        AWS,
        {"shipyard:database.logRetentionDays": 10},
        "shipyard:database.logRetentionDays",
        "CloudWatch Logs accepts only",
    ),
    (
        "db-max-conn",
        AWS,
        {"shipyard:database.maxConnections": 5},
        "shipyard:database.maxConnections",
        "greater than or equal to 10",
    ),
    (
        "db-slow-ms",
        AWS,
        {"shipyard:database.slowStatementMs": "slow"},
        "shipyard:database.slowStatementMs",
        "must be a whole number",
    ),
    (
        "db-nan",
        AWS,
        {"shipyard:database.allocatedStorageGb": float("nan")},
        "shipyard:database.allocatedStorageGb",
        "finite number",
    ),
    # ---- network
    ("net-cidr-public", AWS, {"shipyard:network.cidr": "8.8.0.0/16"}, "shipyard:network.cidr", "private range"),
    ("net-az", AWS, {"shipyard:network.azCount": 7}, "shipyard:network.azCount", "2 or 3"),
    ("net-nat", AWS, {"shipyard:network.nat": "lots"}, "shipyard:network.nat", "'none', 'single' or 'per_az'"),
    (
        "net-flow-retention",
        AWS,
        {"shipyard:network.flowLogRetentionDays": 2},
        "shipyard:network.flowLogRetentionDays",
        "accepts only",
    ),
    # ---- service
    ("svc-cpu", AWS, {"shipyard:service.cpu": 300}, "shipyard:service", "not a Fargate size"),
    ("svc-memory", AWS, {"shipyard:service.memory": 4096}, "shipyard:service", "does not fit cpu 256"),
    ("svc-port", AWS, {"shipyard:service.port": 80}, "shipyard:service.port", "greater than or equal to 1024"),
    ("svc-arch", AWS, {"shipyard:service.architecture": "arm"}, "shipyard:service.architecture", "'arm64' or 'x86_64'"),
    ("svc-counts", AWS, {"shipyard:service.minCount": 2}, "shipyard:service", "minCount <= desiredCount <= maxCount"),
    (
        "svc-env-secret",
        AWS,
        {"shipyard:service.environment": {"DB_PASSWORD": "x"}},
        "shipyard:service.environment",
        "set them as secret config",
    ),
    (
        "svc-cors",
        AWS,
        {"shipyard:service.corsOrigins": "https://a.io"},
        "shipyard:service.corsOrigins",
        "must be a list",
    ),
    (
        "svc-workers-dup",
        AWS,
        {"shipyard:service.workers": [{"name": "bot", "command": ["x"]}] * 2},
        "shipyard:service.workers",
        "must be unique",
    ),
    (
        "svc-worker-name",
        AWS,
        {"shipyard:service.workers": [{"name": "Bot!", "command": ["x"]}]},
        "shipyard:service.workers[0].name",
        "allowed: text matching",
    ),
    (
        "svc-health-path",
        AWS,
        {"shipyard:service.healthCheckPath": "health"},
        "shipyard:service.healthCheckPath",
        "allowed: text matching ^/",
    ),
    # ---- frontend, waf, uploads, cache
    (
        "fe-price",
        AWS,
        {"shipyard:frontend.priceClass": "PriceClass_1"},
        "shipyard:frontend.priceClass",
        "'PriceClass_100'",
    ),
    (
        "fe-immutable",
        AWS,
        {"shipyard:frontend.immutablePaths": ["/*"]},
        "shipyard:frontend.immutablePaths[0]",
        "name the hashed-asset folder",
    ),
    ("waf-rate", AWS, {"shipyard:waf": {"rateLimit": 10}}, "shipyard:waf.rateLimit", "greater than or equal to 100"),
    (
        "up-types",
        AWS,
        {"shipyard:uploads.allowedTypes": [".jpg", "", "exe"]},
        "shipyard:uploads.allowedTypes",
        "allowed: e.g. jpg",
    ),
    ("up-prefix", AWS, {"shipyard:uploads.prefix": "Uploads"}, "shipyard:uploads.prefix", "allowed: text matching"),
    (
        "cache-node",
        AWS,
        {"shipyard:cache": {"enabled": True, "nodeType": "cache.m9.big"}},
        "shipyard:cache",
        "known: cache.t4g.medium",
    ),
    ("cache-engine", AWS, {"shipyard:cache": {"engine": "memcached"}}, "shipyard:cache.engine", "'valkey' or 'redis'"),
    (
        "cache-policy",
        AWS,
        {"shipyard:cache": {"maxmemoryPolicy": "lru"}},
        "shipyard:cache.maxmemoryPolicy",
        "'noeviction'",
    ),
    # ---- schedules (AWS cron grammar)
    (
        "cron-dom-32",
        AWS,
        {"shipyard:backups.schedule": "cron(0 2 32 * ? *)"},
        "shipyard:backups.schedule",
        "allowed: 1-31",
    ),
    (
        "cron-month-13",
        AWS,
        {"shipyard:jobs.autoConfirm": {"schedule": "cron(0 2 1 13 ? *)"}},
        "shipyard:jobs.autoConfirm.schedule",
        "1-12 or JAN-DEC",
    ),
    (
        "cron-both-days",
        AWS,
        {"shipyard:healthChecks.schedule": "cron(0 2 * * * *)"},
        "shipyard:healthChecks.schedule",
        "must be '?'",
    ),
    (
        "cron-hash",
        AWS,
        {"shipyard:backups.restoreTestingSchedule": "cron(0 9 ? * TUE#6 *)"},
        "shipyard:backups.restoreTestingSchedule",
        "1-5",
    ),
    (
        "cron-w-in-dow",
        AWS,
        {"shipyard:backups.schedule": "cron(0 2 ? * 3W *)"},
        "shipyard:backups.schedule",
        "1-7 or SUN-SAT",
    ),
    (
        "rate-plural",
        AWS,
        {"shipyard:healthChecks.schedule": "rate(1 minutes)"},
        "shipyard:healthChecks.schedule",
        "rate(1 minute)",
    ),
    ("tz-unknown", AWS, {"shipyard:jobs.timezone": "Mars/Base"}, "shipyard:jobs.timezone", "America/Sao_Paulo"),
    # ---- backups
    (
        "bk-offsite-region",
        AWS,
        {"shipyard:backups.offsite": {"region": "eu-west-9"}},
        "shipyard:backups.offsite.region",
        "did you mean eu-west-",
    ),
    (
        "bk-offsite-partition",
        AWS,
        {"shipyard:backups.offsite": {"region": "cn-north-1"}},
        "shipyard:backups.offsite.region",
        "cross-partition",
    ),
    (
        "bk-offsite-same",
        AWS,
        {"shipyard:backups.offsite": {"region": "us-east-1"}},
        "shipyard:backups.offsite.region",
        "must differ",
    ),
    (
        "bk-continuous-cap",
        AWS,
        {"shipyard:backups.retentionDays": 60},
        "shipyard:backups.retentionDays",
        "at most 35 days",
    ),
    (
        "bk-lock-mode",
        AWS,
        {"shipyard:backups.vaultLock": {"mode": "strict"}},
        "shipyard:backups.vaultLock.mode",
        "'governance' or 'compliance'",
    ),
    (
        "bk-restore-class",
        AWS,
        {"shipyard:backups.restoreTestInstanceClass": "db.x.y"},
        "shipyard:backups.restoreTestInstanceClass",
        "known: db.",
    ),
    # ---- jobs, alerts, health checks, monitoring, policy, waivers
    (
        "task-size",
        AWS,
        {
            "shipyard:jobs.scheduledTasks": [
                {"name": "nightly", "schedule": "rate(1 day)", "command": ["x"], "memory": 8192}
            ]
        },
        "shipyard:jobs.scheduledTasks[0]",
        "allowed: 512..2048",
    ),
    (
        "task-command",
        AWS,
        {"shipyard:jobs.scheduledTasks": [{"name": "nightly", "schedule": "rate(1 day)", "command": []}]},
        "shipyard:jobs.scheduledTasks[0].command",
        "at least 1 item",
    ),
    (
        "alert-channel",
        AWS,
        {"shipyard:alerts.routing": {"critical": ["pager"]}},
        "shipyard:alerts.routing.critical[0]",
        "'slack', 'telegram'",
    ),
    (
        "alert-email",
        AWS,
        {"shipyard:alerts.oncallEmail": "nobody"},
        "shipyard:alerts.oncallEmail",
        "allowed: text matching",
    ),
    (
        "alert-escalation",
        AWS,
        {"shipyard:alerts.escalation": {"intervalMinutes": 1}},
        "shipyard:alerts.escalation.intervalMinutes",
        "greater than or equal to 5",
    ),
    (
        "alert-storm",
        AWS,
        {"shipyard:alerts.storm": {"threshold": 1}},
        "shipyard:alerts.storm.threshold",
        "greater than or equal to 2",
    ),
    (
        "hc-dup",
        AWS,
        {"shipyard:healthChecks.endpoints": [{"name": "api", "target": "api"}] * 2},
        "shipyard:healthChecks.endpoints",
        "must be unique",
    ),
    (
        "hc-target",
        AWS,
        {"shipyard:healthChecks.endpoints": [{"name": "db", "target": "db"}]},
        "shipyard:healthChecks.endpoints[0].target",
        "'frontend' or 'api'",
    ),
    (
        "hc-budget",
        AWS,
        {"shipyard:healthChecks.endpoints": [{"name": "api-a", "target": "api", "latencyBudgetMs": 9000}]},
        "shipyard:healthChecks.endpoints[0]",
        "<= timeoutSeconds",
    ),
    (
        "alarm-id",
        AWS,
        {"shipyard:monitoring": {"alarms": {"api-5xx-rat": {}}}},
        "shipyard:monitoring.alarms.api-5xx-rat",
        "known ids include",
    ),
    (
        "alarm-always",
        AWS,
        {"shipyard:monitoring": {"alarms": {"api-5xx-rate": {"threshold": -5}}}},
        "shipyard:monitoring.alarms.api-5xx-rate",
        "always fires",
    ),
    (
        "alarm-never",
        AWS,
        {"shipyard:monitoring": {"alarms": {"api-5xx-rate": {"threshold": 150}}}},
        "shipyard:monitoring.alarms.api-5xx-rate",
        "percentage (0-100)",
    ),
    (
        "alarm-nan",
        AWS,
        {"shipyard:monitoring": {"alarms": {"api-5xx-rate": {"threshold": float("nan")}}}},
        "shipyard:monitoring.alarms.api-5xx-rate.threshold",
        "finite number",
    ),
    (
        "alarm-inf",
        AWS,
        {"shipyard:monitoring": {"alarms": {"api-5xx-rate": {"threshold": float("inf")}}}},
        "shipyard:monitoring.alarms.api-5xx-rate.threshold",
        "finite number",
    ),
    (
        "slo",
        AWS,
        {"shipyard:monitoring": {"availabilitySloPercent": 100}},
        "shipyard:monitoring.availabilitySloPercent",
        "less than 100",
    ),
    (
        "policy-reason",
        AWS,
        {"shipyard:policy": {"exceptions": {"rule": "short"}}},
        "shipyard:policy.exceptions.rule",
        "at least 10 characters",
    ),
    (
        "waiver-unknown",
        AWS,
        {"shipyard:waivers": {"database.encryption": "a good reason here"}},
        "shipyard:waivers.database.encryption",
        "known: ",
    ),
    # ---- DigitalOcean
    ("do-region", DO, {"shipyard:region": "nyc9"}, "shipyard:region", "use one of ams3"),
    (
        "do-db-size",
        DO,
        {"shipyard:database.size": "db-s-9vcpu-9gb"},
        "shipyard:database.size",
        "priced: db-s-1vcpu-1gb",
    ),
    ("do-db-nodes", DO, {"shipyard:database.nodeCount": 5}, "shipyard:database.nodeCount", "less than or equal to 3"),
    ("do-db-day", DO, {"shipyard:database.maintenanceDay": "someday"}, "shipyard:database.maintenanceDay", "'monday'"),
    (
        "do-pool",
        DO,
        {"shipyard:database.poolSize": 99},
        "shipyard:database",
        "connections a db-s-1vcpu-1gb node accepts",
    ),
    (
        "do-app-size",
        DO,
        {"shipyard:service.instanceSize": "apps-s-9vcpu-9gb"},
        "shipyard:service.instanceSize",
        "priced: apps-d-",
    ),
    ("do-autoscale", DO, {"shipyard:service.maxCount": 3}, "shipyard:service", "dedicated sizes"),
    (
        "do-env-taken",
        DO,
        {"shipyard:service.environment": {"DATABASE_URL": "x"}},
        "shipyard:service.environment",
        "set by the stack",
    ),
    ("do-repo", DO, {"shipyard:frontend.repo": "not a repo"}, "shipyard:frontend.repo", "allowed: text matching"),
    ("do-frontend-missing", DO, {"shipyard:frontend": DELETE}, "shipyard:frontend.repo", "required key is missing"),
    (
        "do-registry",
        DO,
        {"shipyard:registry.subscriptionTier": "gold"},
        "shipyard:registry.subscriptionTier",
        "'starter'",
    ),
    ("do-spaces", DO, {"shipyard:uploads.spacesRegion": "nyc1"}, "shipyard:uploads.spacesRegion", "with Spaces"),
    ("do-aws-only", DO, {"shipyard:network": {"nat": "none"}}, "shipyard:network", "AWS-only key"),
    (
        "do-channel",
        DO,
        {"shipyard:alerts.routing": {"critical": ["telegram"]}},
        "shipyard:alerts.routing.critical",
        "delivers only to email and slack",
    ),
    (
        "do-slack-channel",
        DO,
        {"shipyard:alerts.slackChannel": "#Bad Channel"},
        "shipyard:alerts.slackChannel",
        "allowed: text matching",
    ),
]

# Files broken as YAML documents: (case id, file text, what is reported)
RAW_CASES: list[tuple[str, str, str]] = [
    ("yaml-list", "- config\n- shipyard:tier\n", "must be a mapping with a `config:` block"),
    ("yaml-scalar", "hello\n", "must be a mapping with a `config:` block"),
    ("yaml-int-key", "config:\n  1: staging\n  aws:region: us-east-1\n", "keys are text like shipyard:<name>"),
    ("yaml-config-list", "config:\n  - shipyard:tier\n", "config: must be a mapping"),
    (
        "yaml-duplicate",
        "config:\n  shipyard:tier: staging\n  shipyard:tier: prod\n",
        "tier: written twice (lines 2 and 3)",
    ),
    ("yaml-invalid", "config: [unclosed\n", "not valid YAML"),
]


def _set(config: dict[str, Any], dotted: str, value: Any) -> None:
    namespace_key, *path = dotted.split(".")
    if not path:
        if value is DELETE:
            config.pop(namespace_key, None)
        else:
            config[namespace_key] = value
        return
    node = config.setdefault(namespace_key, {})
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value


def write_case(directory: Path, name: str, stack: str, changes: dict[str, Any]) -> str:
    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())
    config = copy.deepcopy(document["config"])
    for key, value in changes.items():
        _set(config, key, value)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump({"config": config}, allow_unicode=True, sort_keys=False))
    return f"{name}.yaml"


def plan_exit(capsys: pytest.CaptureFixture[str], stack: str, config_file: str) -> tuple[int, str, str]:
    code = plan.main(["--stack", stack, "--config-file", config_file])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_table_is_big_enough() -> None:
    assert len(CASES) + len(RAW_CASES) >= 60
    assert len({c[0] for c in CASES} | {c[0] for c in RAW_CASES}) == len(CASES) + len(RAW_CASES)


@pytest.mark.parametrize(("name", "stack", "changes", "key", "allowed"), CASES, ids=[c[0] for c in CASES])
def test_a_broken_stack_file_exits_2_naming_file_key_and_what_is_allowed(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    stack: str,
    changes: dict[str, Any],
    key: str,
    allowed: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    given = write_case(tmp_path, name, stack, changes)
    code, out, err = plan_exit(capsys, stack, given)
    assert code == 2, err
    assert out == ""
    lines = [line.strip() for line in err.splitlines()]
    mine = [line for line in lines if line.startswith(f"{given}: {key}: ")]
    assert mine, f"no line for {given}: {key}: in\n{err}"
    assert any(allowed in line for line in mine), f"{allowed!r} not in {mine}"
    assert f"Pulumi.{stack}.yaml" not in err  # the file as given, never the default name
    assert "Traceback" not in err and "Input should be" not in err and "Input tag" not in err


@pytest.mark.parametrize(("name", "text", "said"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_a_stack_file_that_is_not_a_config_mapping_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str, text: str, said: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / f"{name}.yaml").write_text(text)
    code, out, err = plan_exit(capsys, AWS, f"{name}.yaml")
    assert code == 2, err
    assert out == "" and f"{name}.yaml: " in err and said in err
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------- every key at once


def leaf_keys(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every key a stack file may set under `model` (camelCase path) -> the field's annotation."""
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in {"secrets", "cloud"}:
            continue
        alias = field.alias or name
        path = f"{prefix}.{alias}" if prefix else alias
        nested = _model_of(field.annotation)
        if nested is not None and not _is_list_or_dict(field.annotation):
            found.update(leaf_keys(nested, path))
        else:
            found[path] = field.annotation
    return found


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _is_list_or_dict(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) in {list, dict}


def _wrong_value(annotation: Any) -> Any:
    """A value of the wrong kind for the field: a mapping where a scalar or list goes, a number for a mapping."""
    return 12345 if getattr(annotation, "__origin__", None) is dict else {"not": "this"}


@pytest.mark.parametrize(("stack", "model"), [(AWS, AwsStack), (DO, DigitalOceanStack)], ids=["aws", "digitalocean"])
def test_every_key_of_the_model_broken_at_once_is_reported_in_one_run(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    stack: str,
    model: type[BaseModel],
) -> None:
    monkeypatch.chdir(tmp_path)
    keys = leaf_keys(model)
    changes: dict[str, Any] = {}
    for path, annotation in keys.items():
        full = "aws:region" if path == "region" and model is AwsStack else f"{PROJECT}:{path}"
        changes[full] = _wrong_value(annotation)
    given = write_case(tmp_path, f"everything-{stack}", stack, changes)
    code, _, err = plan_exit(capsys, stack, given)
    assert code == 2
    reported = {line.strip().split(": ")[1] for line in err.splitlines() if line.strip().startswith(f"{given}: ")}
    expected = {"aws:region" if p == "region" and model is AwsStack else f"{PROJECT}:{p}" for p in keys}
    assert expected - reported == set(), f"not reported: {sorted(expected - reported)}"
    assert len(expected) > 60


def test_the_real_cli_names_the_file_as_given_end_to_end(tmp_path: Path) -> None:
    """One subprocess run: the module entry, exit code and header as a user sees them."""
    given = write_case(tmp_path, "my-edit", AWS, {"shipyard:database.instanceClass": "db.t9.huge"})
    done = subprocess.run(
        [sys.executable, "-m", "infra.plan", "--stack", AWS, "--config-file", given],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PYTHONPATH": str(PROJECT_ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stderr
    assert "my-edit.yaml: shipyard:database.instanceClass: 'db.t9.huge' is not an RDS instance class" in done.stderr
    assert "Traceback" not in done.stderr

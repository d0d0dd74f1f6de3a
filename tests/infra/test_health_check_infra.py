"""The health-check Lambdas as deployed: targets, placement, schedule, permissions (lambdas/health_check/README.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import rds_ca
from infra.aws.health_check import RUN_DEADLINE_S
from infra.harness import PROJECT_ROOT, Resource, StackRun
from lambdas.health_check.config import HttpTarget, PostgresTarget, parse_deadline, parse_targets
from tests.infra.component_program import run_program

FUNCTION = "aws:lambda/function:Function"
SCHEDULE = "aws:scheduler/schedule:Schedule"

_PROGRAM = """
from infra.aws.database import Database, DatabaseArgs
from infra.aws.function import LambdaDependencies
from infra.aws.health_check import HealthCheck, HealthCheckArgs, PublicUrl
from infra.aws.network import Network, NetworkArgs
network = Network("network", NetworkArgs(settings=config.network, region=config.region), naming, with_provider)
database = Database("database", DatabaseArgs(settings=config.database, tier=config.tier, vpc_id=network.vpc.id,
                    subnet_ids=network.isolated_subnet_ids), naming, with_provider)
deps = LambdaDependencies("lambda-deps", naming, with_provider)
frontend_url = pulumi.Output.from_input("https://d111111abcdef8.cloudfront.net")
api_url = pulumi.Output.from_input("http://shipyard-api-123.us-east-1.elb.amazonaws.com")
health = HealthCheck("health-check", HealthCheckArgs(
    settings=config.health_checks, layer_arn=deps.arn, timezone=config.jobs.timezone, network=network,
    frontend=PublicUrl(frontend_url, https=True), api=PublicUrl(api_url, https=False), database=database,
), naming, with_provider)
pulumi.export("functions", health.function_names)
pulumi.export("endpoints", [e.name for e in health.endpoints])
"""


@pytest.fixture(scope="module", params=["staging", "prod"])
def checker(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> StackRun:
    return run_program(tmp_path_factory.mktemp(f"hc-{request.param}"), request.param, _PROGRAM)


def _id(resource: Resource) -> str:
    """The offline cloud's id of a resource (the last segment of the ARN it computed)."""
    return str(resource.outputs["arn"]).rsplit("/", 1)[-1]


def _function(run: StackRun, variant: str) -> Resource:
    return run.one(FUNCTION, f"health-check-{variant}-function")


def _env(function: Resource) -> dict[str, str]:
    variables: dict[str, str] = function.inputs["environment"]["variables"]
    return variables


def _targets(function: Resource) -> list[dict[str, Any]]:
    raw = _env(function)["TARGETS"]
    parsed: list[dict[str, Any]] = json.loads(raw)
    assert raw == json.dumps(parsed, separators=(",", ":"), sort_keys=True)  # compact: the 4 KB env limit
    return parsed


def test_public_function_checks_the_frontend_and_api_urls(checker: StackRun) -> None:
    public = _function(checker, "public")
    targets = _targets(public)
    assert [(t["name"], t["url"]) for t in targets] == [
        ("frontend", "https://d111111abcdef8.cloudfront.net/"),
        ("api-live", "http://shipyard-api-123.us-east-1.elb.amazonaws.com/api/health"),
        ("api-ready", "http://shipyard-api-123.us-east-1.elb.amazonaws.com/api/health/ready"),
    ]
    # The checker's own parser accepts exactly what we deploy.
    parsed = parse_targets(_env(public)["TARGETS"])
    assert all(isinstance(t, HttpTarget) for t in parsed)
    assert "DATABASE_SECRET_ARN" not in _env(public)
    assert "vpcConfig" not in public.inputs  # the internet, as users reach it


def test_vpc_function_checks_only_the_database_from_private_subnets(checker: StackRun) -> None:
    vpc = _function(checker, "vpc")
    instance = checker.one("aws:rds/instance:Instance")
    (target,) = _targets(vpc)
    assert target["kind"] == "postgres" and target["name"] == "database"
    assert (target["host"], target["port"], target["dbname"]) == (instance.outputs["address"], 5432, "app")
    (parsed,) = parse_targets(_env(vpc)["TARGETS"], base_dir=str(PROJECT_ROOT))
    assert isinstance(parsed, PostgresTarget)
    if rds_ca.BUNDLE_PATH.exists():
        assert target["ca_file"] == rds_ca.ARCHIVE_PATH
    else:
        assert "ca_file" not in target  # the plan warned: `make rds-ca` was not run (health-endpoint-down runbook)
    # its own role with an IAM token (issue #14), never the master secret
    assert (_env(vpc)["DATABASE_AUTH"], _env(vpc)["DATABASE_USER"]) == ("iam", "health_check")
    assert "DATABASE_SECRET_ARN" not in _env(vpc)
    private = sorted(_id(s) for s in checker.of_type("aws:ec2/subnet:Subnet") if "private" in s.name)
    sg = checker.one("aws:ec2/securityGroup:SecurityGroup", "health-check-sg")
    assert sorted(vpc.inputs["vpcConfig"]["subnetIds"]) == private
    assert vpc.inputs["vpcConfig"]["securityGroupIds"] == [_id(sg)]
    # PostgreSQL only: the IAM token is signed locally, so no Secrets Manager endpoint or NAT is needed
    assert {(e["fromPort"], e["toPort"]) for e in sg.inputs["egress"]} == {(5432, 5432)}


def test_database_admits_the_checker(checker: StackRun) -> None:
    sg = checker.one("aws:ec2/securityGroup:SecurityGroup", "health-check-sg")
    rule = checker.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "database-from-health-check")
    db_sg = checker.one("aws:ec2/securityGroup:SecurityGroup", "database-sg")
    assert rule.inputs["referencedSecurityGroupId"] == _id(sg)
    assert rule.inputs["securityGroupId"] == _id(db_sg)
    assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (5432, 5432, "tcp")


def test_logs_in_as_health_check_only_and_reads_no_secret(checker: StackRun) -> None:
    """`rds-db:connect` on this one database user (DbiResourceId format); no Secrets Manager, no KMS."""
    instance = checker.one("aws:rds/instance:Instance").outputs
    policy = json.loads(checker.one("aws:iam/rolePolicy:RolePolicy", "health-check-vpc-policy").inputs["policy"])
    _, partition, _, region, account = instance["arn"].split(":")[:5]
    logins = [s for s in policy["Statement"] if s["Action"] == "rds-db:connect"]
    assert logins == [
        {
            "Sid": "DatabaseLogin",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": f"arn:{partition}:rds-db:{region}:{account}:dbuser:{instance['resourceId']}/health_check",
        }
    ]
    assert not any("secretsmanager" in str(s["Action"]) or "kms" in str(s["Action"]) for s in policy["Statement"])
    public = json.loads(checker.one("aws:iam/rolePolicy:RolePolicy", "health-check-public-policy").inputs["policy"])
    assert not any("secretsmanager" in str(s["Action"]) or "rds-db" in str(s["Action"]) for s in public["Statement"])


@pytest.mark.parametrize("variant", ["public", "vpc"])
def test_every_minute_without_retries_within_the_deadline(checker: StackRun, variant: str) -> None:
    function = _function(checker, variant)
    assert function.inputs["name"] == f"shipyard-{checker.stack}-health-check-{variant}"
    assert _env(function)["STACK"] == checker.stack
    assert function.inputs["timeout"] >= parse_deadline(_env(function)["RUN_DEADLINE_S"]) + 2
    assert float(_env(function)["RUN_DEADLINE_S"]) == RUN_DEADLINE_S
    schedule = checker.one(SCHEDULE, f"health-check-{variant}-every-minute-schedule")
    assert schedule.inputs["scheduleExpression"] == "rate(1 minute)"
    assert schedule.inputs["target"]["arn"] == function.outputs["arn"]
    assert schedule.inputs["target"]["retryPolicy"] == {"maximumRetryAttempts": 0, "maximumEventAgeInSeconds": 60}
    invoke = checker.one(
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig", f"health-check-{variant}-async"
    )
    assert invoke.inputs["maximumRetryAttempts"] == 0
    component = checker.component_of(function)
    assert component is not None and component.type == "shipyard:aws:PythonFunction"
    assert checker.component_of(component).type == "shipyard:aws:HealthCheck"  # type: ignore[union-attr]


def test_two_functions_never_share_names_or_endpoints(checker: StackRun) -> None:
    names = [f.inputs["name"] for f in checker.of_type(FUNCTION)]
    queues = [q.inputs["name"] for q in checker.of_type("aws:sqs/queue:Queue")]
    groups = [g.inputs["name"] for g in checker.of_type("aws:cloudwatch/logGroup:LogGroup")]
    for values in (names, queues, groups):
        assert len(values) == len(set(values))
    endpoints = checker.outputs["endpoints"]
    assert len(endpoints) == len(set(endpoints)) == 4


def test_config_endpoints_and_database_switch_drive_the_targets(tmp_path: Path) -> None:
    from infra.harness import run_stack
    from tests.infra.conftest import ALERT_SECRETS

    program = tmp_path / "program"
    program.mkdir()
    (tmp_path / "Pulumi.yaml").write_text("name: shipyard\nruntime: python\nmain: program/\n")
    from tests.infra import component_program

    (program / "__main__.py").write_text(component_program._PRELUDE + _PROGRAM)
    run = run_stack(
        "staging",
        config_file=PROJECT_ROOT / "Pulumi.staging.yaml",
        secret_overrides=ALERT_SECRETS,
        root=tmp_path,
        config_overrides={
            "shipyard:healthChecks": {
                "database": False,
                "certWarnDays": 21,
                "endpoints": [
                    {"name": "shop", "target": "frontend", "path": "/", "bodyContains": '<div id="root">'},
                    {"name": "ready", "target": "api", "path": "/api/health/ready", "latencyBudgetMs": 1500},
                ],
            }
        },
    )
    assert [f.inputs["name"] for f in run.of_type(FUNCTION)] == ["shipyard-staging-health-check-public"]
    targets = _targets(run.one(FUNCTION))
    assert targets[0]["body_contains"] == '<div id="root">' and targets[0]["cert_warn_days"] == 21
    assert targets[1]["latency_budget_ms"] == 1500
    assert run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule") == []


def test_stacks_deploy_the_checker(any_stack: StackRun) -> None:
    names = any_stack.outputs["healthCheckFunctions"]
    assert f"shipyard-{any_stack.stack}-health-check-vpc" in names

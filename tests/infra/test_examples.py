"""Each seed system's example stack file (examples/<system>/Pulumi.<stack>.yaml) evaluates cleanly offline and
gets the shape it asks for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.config import AwsStack, parse_stack_config
from infra.harness import PROJECT_ROOT, Resource, StackRun, engine_config, run_stack
from tests.infra.conftest import ALERT_SECRETS

EXAMPLES = PROJECT_ROOT / "examples"
SYSTEMS = ("telegram-offers-bot", "barber-scheduler", "order-marketplace", "shopflow", "sales-system")


def _stack_file(system: str) -> Path:
    (path,) = sorted((EXAMPLES / system).glob("Pulumi.*.yaml"))
    return path


def _stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


@pytest.fixture(scope="module")
def examples() -> dict[str, tuple[AwsStack, StackRun]]:
    evaluated = {}
    for system in SYSTEMS:
        path = _stack_file(system)
        stack = _stack_name(path)
        raw, secret_keys, _ = engine_config(path, "shipyard", placeholders_for_missing_secrets=False)
        config = parse_stack_config(
            {**raw, **ALERT_SECRETS}, source=path.name, secret_keys=[*secret_keys, *ALERT_SECRETS]
        )
        assert isinstance(config, AwsStack)
        run = run_stack(stack, config_file=path, secret_overrides=ALERT_SECRETS)
        evaluated[system] = (config, run)
    return evaluated


def _ecs_services(run: StackRun) -> dict[str, Resource]:
    return {s.inputs["name"]: s for s in run.of_type("aws:ecs/service:Service")}


def _containers(run: StackRun, family: str) -> list[dict]:
    task = next(t for t in run.of_type("aws:ecs/taskDefinition:TaskDefinition") if t.inputs["family"] == family)
    containers: list[dict] = json.loads(task.inputs["containerDefinitions"])
    return containers


def test_one_example_per_seed_system() -> None:
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == sorted(SYSTEMS)


@pytest.mark.parametrize("system", SYSTEMS)
def test_example_evaluates_with_the_core_platform(system: str, examples: dict[str, tuple[AwsStack, StackRun]]) -> None:
    config, run = examples[system]
    provider = run.one("pulumi:providers:aws", "aws")
    assert provider.inputs["region"] == config.region
    db = run.one("aws:rds/instance:Instance").inputs
    assert db["instanceClass"] == config.database.instance_class
    assert db["storageEncrypted"] is True and db["publiclyAccessible"] is False
    assert run.one("aws:rds/instance:Instance").protect is (config.tier == "prod")
    assert run.outputs["databaseEndpoint"].endswith(".rds.amazonaws.com:5432")
    assert run.outputs["uploadsBucket"].startswith(f"shipyard-{run.stack}-uploads-")
    assert "appSecretArn" in run.outputs
    # No resource anywhere carries a known secret in plain inputs.
    for resource in run.resources:
        plain = str({k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs})
        for value in ALERT_SECRETS.values():
            assert value not in plain, f"{system}: {resource.name} leaks a secret"


def test_telegram_bot_runs_a_single_poller_worker(examples: dict[str, tuple[AwsStack, StackRun]]) -> None:
    config, run = examples["telegram-offers-bot"]
    (worker,) = config.service.workers
    assert (worker.name, worker.command, worker.desired_count) == ("telegram-bot", ["python", "-m", "app.bot"], 1)
    assert config.tier == "prod" and config.network.nat == "single"  # the poller needs a way out
    assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == 1
    assert run.of_type("aws:elasticache/replicationGroup:ReplicationGroup") == []
    services = _ecs_services(run)
    bot = services["shipyard-prod-worker-telegram-bot"]
    assert bot.inputs["desiredCount"] == 1 and not bot.inputs.get("loadBalancers")  # no traffic in, one poller
    (container,) = _containers(run, "shipyard-prod-worker-telegram-bot")
    assert container["command"] == ["python", "-m", "app.bot"]
    assert services["shipyard-prod-api"].inputs["loadBalancers"]


def test_barber_scheduler_has_queue_safe_redis_worker_and_four_local_time_jobs(
    examples: dict[str, tuple[AwsStack, StackRun]],
) -> None:
    config, run = examples["barber-scheduler"]
    group = run.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs
    assert group["transitEncryptionEnabled"] is True and group["automaticFailoverEnabled"] is True
    params = run.one("aws:elasticache/parameterGroup:ParameterGroup").inputs["parameters"]
    assert params == [{"name": "maxmemory-policy", "value": "noeviction"}]
    assert run.outputs["cacheEndpoint"].endswith(":6379")
    assert [w.name for w in config.service.workers] == ["queue-worker"]
    assert config.jobs.timezone == "America/Sao_Paulo"
    assert [t.name for t in config.jobs.scheduled_tasks] == [
        "appointment-reminders",
        "mark-no-shows",
        "daily-agenda",
        "cleanup",
    ]
    db = run.one("aws:rds/instance:Instance").inputs
    assert (db["backupWindow"], db["maintenanceWindow"]) == ("06:00-07:00", "mon:07:30-mon:08:30")
    worker = _ecs_services(run)["shipyard-prod-worker-queue-worker"]
    assert worker.inputs["desiredCount"] == 2 and not worker.inputs.get("loadBalancers")
    jobs = {s.name.removeprefix("jobs-"): s.inputs for s in run.of_type("aws:scheduler/schedule:Schedule")}
    for task in config.jobs.scheduled_tasks:
        assert jobs[task.name]["scheduleExpression"] == task.schedule
        assert jobs[task.name]["scheduleExpressionTimezone"] == "America/Sao_Paulo"
        (container,) = _containers(run, f"shipyard-prod-job-{task.name}")
        assert container["command"] == task.command
    # The queue consumers reach the cache: API and task security groups admitted on 6379, nothing else.
    cache_rules = sorted(r.name for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"))
    assert [r for r in cache_rules if r.startswith("cache-")] == ["cache-from-api", "cache-from-tasks"]


def test_order_marketplace_is_the_full_prod_set_up(examples: dict[str, tuple[AwsStack, StackRun]]) -> None:
    config, run = examples["order-marketplace"]
    assert len(run.of_type("aws:ec2/natGateway:NatGateway")) == 3  # per_az over 3 AZs
    isolated = [s for s in run.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "isolated"]
    assert len(isolated) == 3
    assert {"wafRegionalAclArn", "wafCloudFrontAclArn"} <= set(run.outputs)
    (cors,) = run.one("aws:s3/bucketCorsConfiguration:BucketCorsConfiguration").inputs["corsRules"]
    assert cors["allowedOrigins"] == ["https://marketplace.example.com"]  # frontendHost "@" is the apex
    assert config.jobs.auto_confirm.enabled is True


def test_shopflow_api_listens_on_8001(examples: dict[str, tuple[AwsStack, StackRun]]) -> None:
    config, run = examples["shopflow"]
    assert config.service.port == 8001
    assert config.region == "eu-west-1"
    assert run.one("pulumi:providers:aws", "aws").inputs["region"] == "eu-west-1"
    (container,) = _containers(run, "shipyard-staging-api")
    assert [m["containerPort"] for m in container["portMappings"]] == [8001]
    # Staging's HTTP API finds the tasks through Cloud Map SRV records, which carry the port; the VPC link's
    # group reaches the tasks on it.
    registry = _ecs_services(run)["shipyard-staging-api"].inputs["serviceRegistries"]
    assert registry["containerPort"] == 8001
    link_sg = run.one("aws:ec2/securityGroup:SecurityGroup", "api-gateway-sg").id
    (egress,) = [
        r.inputs
        for r in run.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.inputs["securityGroupId"] == link_sg
    ]
    assert (egress["fromPort"], egress["toPort"]) == (8001, 8001)


def test_sales_system_is_the_smallest(examples: dict[str, tuple[AwsStack, StackRun]]) -> None:
    config, run = examples["sales-system"]
    counts = {system: len(r.resources) for system, (_, r) in examples.items()}
    assert counts["sales-system"] == min(counts.values()), counts
    assert run.of_type("aws:ec2/natGateway:NatGateway") == []
    assert run.of_type("aws:wafv2/webAcl:WebAcl") == []
    assert run.of_type("aws:elasticache/replicationGroup:ReplicationGroup") == []
    db = run.one("aws:rds/instance:Instance").inputs
    assert (db["instanceClass"], db["allocatedStorage"], db["multiAz"]) == ("db.t4g.micro", 20, False)
    assert (config.service.min_count, config.service.max_count) == (1, 1)

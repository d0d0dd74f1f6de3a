"""Monthly cost estimate: the price table as data, each resource kind priced from it, goals and the plan section."""

from __future__ import annotations

import datetime
import json
from typing import Any

import pytest

from infra import plan
from infra.cost import GOALS_USD, PRICES_FILE, build_section, estimate, load_prices
from infra.harness import Resource, StackRun

HOURS = 730


def _resource(type_: str, name: str, inputs: dict[str, Any], depends_on: tuple[str, ...] = ()) -> Resource:
    return Resource(
        urn=f"urn:pulumi:test::shipyard::{type_}::{name}",
        type=type_,
        name=name,
        parent=None,
        custom=True,
        inputs=inputs,
        secret_inputs=frozenset(),
        outputs=inputs,
        protect=False,
        provider=None,
        depends_on=depends_on,
        ignore_changes=(),
        retain_on_delete=False,
        delete_before_replace=False,
    )


def _run(*resources: Resource, tier: str = "prod", region: str = "us-east-1") -> StackRun:
    return StackRun(
        project="shipyard",
        stack=tier,
        config_file=f"Pulumi.{tier}.yaml",
        resources=list(resources),
        outputs={},
        secret_outputs=frozenset(),
        config={"shipyard:tier": tier, "aws:region": region},
    )


def _costs(*resources: Resource, **kwargs: Any) -> dict[str, float]:
    return {f"{i.name}: {i.item}": i.monthly_usd for i in estimate(_run(*resources, **kwargs))}


def test_price_table_is_dated_data_with_a_source_for_every_row() -> None:
    document = json.loads(PRICES_FILE.read_text())
    datetime.date.fromisoformat(document["as_of"])
    assert document["currency"] == "USD" and document["hours_per_month"] == HOURS
    keys = set()
    for row in document["prices"]:
        assert set(row) >= {"key", "region", "unit", "price", "source"}, row
        assert row["price"] >= 0 and row["unit"] and row["source"]
        assert (row["key"], row["region"]) not in keys, f"duplicate price row {row['key']} {row['region']}"
        keys.add((row["key"], row["region"]))


def test_rds_multi_az_bills_two_instances_and_two_copies_of_storage() -> None:
    db = {"instanceClass": "db.t4g.small", "allocatedStorage": 20, "storageType": "gp3", "multiAz": True}
    costs = _costs(_resource("aws:rds/instance:Instance", "db", db))
    assert costs["db: RDS db.t4g.small instance-hours (Multi-AZ: primary + standby)"] == round(2 * 0.032 * HOURS, 2)
    assert costs["db: RDS gp3 storage 20 GB (Multi-AZ: primary + standby)"] == round(40 * 0.115, 2)
    single = _costs(_resource("aws:rds/instance:Instance", "db", {**db, "multiAz": False}))
    assert single["db: RDS db.t4g.small instance-hours (Single-AZ)"] == round(0.032 * HOURS, 2)


def test_fargate_uses_the_task_definition_and_arm64_is_cheaper() -> None:
    def service_costs(arch: str) -> dict[str, float]:
        definition = _resource(
            "aws:ecs/taskDefinition:TaskDefinition",
            "api-task",
            {"cpu": "512", "memory": "1024", "runtimePlatform": {"cpuArchitecture": arch}},
        )
        service = _resource(
            "aws:ecs/service:Service",
            "api",
            {"desiredCount": 2, "networkConfiguration": {"assignPublicIp": True}},
            depends_on=(definition.urn,),
        )
        return _costs(definition, service)

    arm, x86 = service_costs("ARM64"), service_costs("X86_64")
    assert arm["api: Fargate vCPU-hours (2 task(s) x 0.5 vCPU/1 GB arm64)"] == round(1.0 * 0.03238 * HOURS, 2)
    assert arm["api: Fargate GB-hours (2 task(s) x 0.5 vCPU/1 GB arm64)"] == round(2.0 * 0.00356 * HOURS, 2)
    assert arm["api: public IPv4 for 2 task(s)"] == round(2 * 0.005 * HOURS, 2)
    assert sum(arm.values()) < sum(x86.values())


def test_network_edge_items() -> None:
    costs = _costs(
        _resource(
            "aws:lb/loadBalancer:LoadBalancer", "alb", {"loadBalancerType": "application", "subnets": ["a", "b"]}
        ),
        _resource("aws:ec2/natGateway:NatGateway", "nat", {}),
        _resource("aws:ec2/eip:Eip", "nat-eip", {"domain": "vpc"}),
        _resource(
            "aws:ec2/vpcEndpoint:VpcEndpoint",
            "ecr",
            {"vpcEndpointType": "Interface", "serviceName": "com.amazonaws.us-east-1.ecr.api", "subnetIds": ["a", "b"]},
        ),
        _resource("aws:ec2/vpcEndpoint:VpcEndpoint", "s3", {"vpcEndpointType": "Gateway", "serviceName": "s3"}),
        _resource("aws:wafv2/webAcl:WebAcl", "waf", {"rules": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
    )
    assert costs["alb: application load balancer hours"] == round(0.0225 * HOURS, 2)
    assert costs["alb: ALB capacity units (baseline 0.5 LCU average)"] == round(0.5 * 0.008 * HOURS, 2)
    assert costs["alb: public IPv4 (2 AZ addresses)"] == round(2 * 0.005 * HOURS, 2)
    assert costs["nat: NAT gateway hours"] == round(0.045 * HOURS, 2)
    assert costs["nat-eip: public IPv4 (Elastic IP)"] == round(0.005 * HOURS, 2)
    assert costs["ecr: interface endpoint ecr.api (2 AZ)"] == round(2 * 0.01 * HOURS, 2)
    assert not any(key.startswith("s3:") for key in costs)  # gateway endpoints are free
    assert costs["waf: WAF web ACL"] == 5.0 and costs["waf: WAF rules (3)"] == 3.0


def test_flat_monthly_items_and_alarm_metrics() -> None:
    costs = _costs(
        _resource("aws:secretsmanager/secret:Secret", "secret", {}),
        _resource("aws:kms/key:Key", "key", {}),
        _resource("aws:cloudwatch/dashboard:Dashboard", "dash", {}),
        _resource("aws:cloudwatch/metricAlarm:MetricAlarm", "cpu", {"metricName": "CPUUtilization"}),
        _resource(
            "aws:cloudwatch/metricAlarm:MetricAlarm",
            "errors",
            {"metricQueries": [{"id": "a", "metric": {}}, {"id": "b", "metric": {}}, {"id": "r", "expression": "a/b"}]},
        ),
        _resource("aws:cloudwatch/compositeAlarm:CompositeAlarm", "composite", {}),
    )
    assert costs["secret: Secrets Manager secret"] == 0.40
    assert costs["key: KMS customer managed key"] == 1.0
    assert costs["dash: CloudWatch dashboard"] == 3.0
    assert costs["cpu: CloudWatch alarm (1 metric(s))"] == 0.10
    assert costs["errors: CloudWatch alarm (2 metric(s))"] == 0.20
    assert costs["composite: CloudWatch composite alarm"] == 0.50


def test_cache_backup_and_scheduled_lambda() -> None:
    db = _resource("aws:rds/instance:Instance", "db", {"instanceClass": "db.t4g.micro", "allocatedStorage": 50})
    function = _resource("aws:lambda/function:Function", "health", {"memorySize": 256, "architectures": ["arm64"]})
    schedule = _resource(
        "aws:scheduler/schedule:Schedule", "every-minute", {"scheduleExpression": "rate(1 minute)"}, (function.urn,)
    )
    plan_ = _resource(
        "aws:backup/plan:Plan",
        "backups",
        {
            "rules": [
                {"ruleName": "daily", "copyActions": [{"destinationVaultArn": "arn:aws:backup:us-west-2:1:vault:x"}]}
            ]
        },
    )
    cache = _resource(
        "aws:elasticache/replicationGroup:ReplicationGroup",
        "cache",
        {"engine": "valkey", "nodeType": "cache.t4g.micro", "numCacheClusters": 2},
    )
    items = {f"{i.name}: {i.item}": i for i in estimate(_run(db, function, schedule, plan_, cache))}
    assert items["cache: ElastiCache valkey cache.t4g.micro x 2"].monthly_usd == round(2 * 0.0128 * HOURS, 2)
    backup = items["backups: AWS Backup recovery points (50 GB)"]
    assert backup.usage_based and backup.monthly_usd == round(50 * 0.095, 2)
    assert items["backups: offsite copy in us-west-2 (50 GB)"].note.startswith("incremental")
    compute = items["health: Lambda compute"]
    runs = 1440 * 30.4
    assert compute.usage_based and compute.monthly_usd == round(runs * 0.25 * 1.0 * 0.0000133334, 2)
    assert items["health: Lambda requests"].monthly_usd == round(runs / 1e6 * 0.20, 2)


def test_digitalocean_plans() -> None:
    app = _resource(
        "digitalocean:index/app:App",
        "app",
        {
            "spec": {
                "services": [{"name": "api", "instanceSizeSlug": "apps-s-1vcpu-1gb", "instanceCount": 2}],
                "workers": [{"name": "bot", "instanceSizeSlug": "apps-s-1vcpu-0.5gb"}],
                "jobs": [{"name": "migrate", "kind": "PRE_DEPLOY"}],
                "staticSites": [{"name": "spa"}],
            }
        },
    )
    database = _resource(
        "digitalocean:index/databaseCluster:DatabaseCluster",
        "db",
        {"engine": "pg", "size": "db-s-1vcpu-2gb", "nodeCount": 2},
    )
    spaces = [_resource("digitalocean:index/spacesBucket:SpacesBucket", f"b{i}", {}) for i in range(2)]
    costs = _costs(app, database, *spaces, region="nyc3")
    assert costs["app: App Platform service api apps-s-1vcpu-1gb x 2"] == 24.0
    assert costs["app: App Platform worker bot apps-s-1vcpu-0.5gb x 1"] == 5.0
    assert costs["app: App Platform job migrate"] == 0.0
    assert costs["app: App Platform static sites (1)"] == 3.0
    assert costs["db: Managed pg db-s-1vcpu-2gb (primary + 1 standby)"] == 60.0
    assert (
        costs["b0: Spaces subscription (covers every bucket)"] == 5.0 and len([k for k in costs if "Spaces" in k]) == 1
    )


def test_unknown_sizes_are_flagged_and_other_regions_fall_back_with_a_note() -> None:
    (item, *_) = estimate(_run(_resource("aws:rds/instance:Instance", "db", {"instanceClass": "db.x9.huge"})))
    assert item.unpriced and "no list price for 'rds.instance.db.x9.huge'" in item.note
    (eu, *_) = estimate(
        _run(_resource("aws:rds/instance:Instance", "db", {"instanceClass": "db.t4g.micro"}), region="eu-west-1")
    )
    assert not eu.unpriced and "no eu-west-1 price" in eu.note


def test_goal_verdict_follows_the_tier() -> None:
    expensive = _resource("aws:rds/instance:Instance", "db", {"instanceClass": "db.t4g.large", "multiAz": True})
    staging = build_section(_run(expensive, tier="staging"))
    assert staging["goal"] == {
        "tier": "staging",
        "monthly_usd_max": GOALS_USD["staging"],
        "met": False,
        "source": "tier default for staging",
    }
    prod = build_section(_run(expensive, tier="prod"))
    assert prod["goal"]["met"] is (prod["monthly_usd_total"] <= 200)


def test_real_stacks_are_fully_priced(any_stack: StackRun) -> None:
    section = build_section(any_stack)
    assert section["as_of"] == load_prices().as_of
    assert section["monthly_usd_total"] > 0
    assert [i for i in section["items"] if i["unpriced"]] == []
    assert section["goal"]["tier"] == any_stack.stack
    assert round(sum(i["monthly_usd"] for i in section["items"]), 2) == section["monthly_usd_total"]


def test_prod_costs_more_than_staging(staging: StackRun, prod: StackRun) -> None:
    assert build_section(prod)["monthly_usd_total"] > build_section(staging)["monthly_usd_total"]


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_plan_shows_the_goal_and_diff_shows_the_delta(
    stack: str, tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plan.main(["--stack", stack]) == 0
    text = capsys.readouterr().out
    assert f"budget: <= {GOALS_USD[stack]:g} USD/month (tier default for {stack})" in text
    assert plan.main(["--stack", stack, "--json"]) == 0
    base = json.loads(capsys.readouterr().out)
    base["cost"]["monthly_usd_total"] -= 10
    base["cost"]["items"][0]["monthly_usd"] -= 10
    base_file = tmp_path / "base.json"
    base_file.write_text(json.dumps(base))
    assert plan.main(["--stack", stack, "--diff", str(base_file)]) == 0
    diff = capsys.readouterr().out
    assert "(+10.00)" in diff
    assert f"   +10.00  {base['cost']['items'][0]['name']}: {base['cost']['items'][0]['item']}" in diff


def test_a_queue_drained_by_lambda_costs_its_idle_long_polls() -> None:
    """Lambda keeps polling the alert inbox when no alert comes; SQS bills every receive."""
    inbox = _resource(
        "aws:lambda/eventSourceMapping:EventSourceMapping",
        "alerts-inbox-source",
        {"eventSourceArn": "arn:aws:sqs:us-east-1:123456789012:shipyard-prod-alerts-inbox"},
    )
    stream = _resource(
        "aws:lambda/eventSourceMapping:EventSourceMapping",
        "stream",
        {"eventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/x"},
    )
    items = {f"{i.name}: {i.item}": i for i in estimate(_run(inbox, stream))}
    (polls,) = [i for key, i in items.items() if key.startswith("alerts-inbox-source: SQS receives while idle")]
    pollers = load_prices().assumptions["sqs_event_source_idle_pollers"]
    assert polls.usage_based and polls.monthly_usd == round(pollers * HOURS * 3600 / 20 / 1e6 * 0.40, 2) > 0
    assert not [key for key in items if key.startswith("stream:")]  # only SQS sources poll SQS


def test_the_deployed_alert_inbox_is_priced(any_stack: StackRun) -> None:
    items = [i for i in estimate(any_stack) if i.name == "alerts-inbox-source"]
    assert [i.item for i in items] == ["SQS receives while idle (5 long-polling pollers)"]
    assert items[0].monthly_usd > 0


def test_waf_logs_are_priced_as_ingestion_plus_storage_over_their_retention() -> None:
    group = _resource("aws:cloudwatch/logGroup:LogGroup", "waf-logs", {"name": "aws-waf-logs-x", "retentionInDays": 90})
    logging = _resource(
        "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration", "waf-logging", {}, (group.urn,)
    )
    items = {i.item: i for i in estimate(_run(group, logging)) if i.name == "waf-logging"}
    ingest, storage = items["WAF log ingestion (1.5 GB)"], items["WAF log storage (4.44 GB over 90 days)"]
    assert ingest.usage_based and ingest.monthly_usd == round(1.5 * 0.50, 2)
    assert storage.usage_based and storage.monthly_usd == round(1.5 * 90 / 30.4 * 0.03, 2)
    assert "1M logged requests/month at 1500 bytes" in ingest.note


def test_prod_prices_what_issue_16_added_and_stays_within_its_goal(prod: StackRun) -> None:
    section = build_section(prod)
    items = section["items"]
    assert sum(1 for i in items if i["item"].startswith("WAF log ingestion")) == 2
    assert sum(1 for i in items if i["item"].startswith("WAF log storage")) == 2
    assert [i["monthly_usd"] for i in items if i["name"] == "log-key-key"] == [1.0]
    assert any(i["name"] == "s3-access-logs-bucket" and i["usage_based"] for i in items)
    assert section["monthly_usd_total"] <= GOALS_USD["prod"]

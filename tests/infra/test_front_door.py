"""The lean levers of issue 19, each shown in the resources and in the cost estimate: the per-request HTTP API
front door (and everything that follows it: alarms, dashboard, health checks, autoscaling, outputs), Fargate
Spot, the Secrets Manager endpoint only where a VPC Lambda reads a secret, and the config rules around them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.aws.stack import vpc_secret_readers
from infra.config import AwsStack, ConfigError, parse_stack_config
from infra.cost import _tasks_by_capacity, build_section, estimate
from infra.harness import StackRun
from tests.infra.conftest import evaluate
from tests.infra.test_cost import _resource, _run

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE = "aws:cloudwatch/compositeAlarm:CompositeAlarm"
ECS_SERVICE = "aws:ecs/service:Service"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


def _total(run: StackRun) -> float:
    return float(build_section(run)["monthly_usd_total"])


def _items(run: StackRun) -> dict[str, float]:
    return {f"{i['name']}: {i['item']}": i["monthly_usd"] for i in build_section(run)["items"]}


def _metrics(run: StackRun) -> list[dict[str, Any]]:
    """Every metric an alarm reads: single-metric alarms' top-level fields and metric-math queries alike."""
    found = []
    for alarm in run.of_type(ALARM):
        inputs = alarm.inputs
        if inputs.get("metricName"):
            found.append({k: inputs.get(k) for k in ("namespace", "metricName", "dimensions")})
        found += [query["metric"] for query in inputs.get("metricQueries") or [] if query.get("metric")]
    return found


def _namespaces(run: StackRun) -> set[str]:
    return {metric["namespace"] for metric in _metrics(run)}


@pytest.fixture(scope="module")
def staging_on_alb() -> StackRun:
    """Pulumi.staging.yaml with the one key a team sets for a prod-identical front door."""
    return evaluate(
        "staging",
        config_overrides={
            "shipyard:service": {"cpu": 256, "memory": 512, "desiredCount": 1, "maxCount": 2, "frontDoor": "alb"}
        },
    )


# ------------------------------------------------------------------------------------------------ front door


def test_staging_serves_the_api_through_the_http_api_and_cloud_map(staging: StackRun) -> None:
    assert staging.of_type("aws:lb/loadBalancer:LoadBalancer") == []
    integration = staging.one("aws:apigatewayv2/integration:Integration").inputs
    discovery = staging.one("aws:servicediscovery/service:Service")
    link = staging.one("aws:apigatewayv2/vpcLink:VpcLink")
    assert (integration["integrationType"], integration["connectionType"]) == ("HTTP_PROXY", "VPC_LINK")
    assert integration["integrationUri"] == discovery.outputs["arn"]
    assert integration["connectionId"] == link.id
    # SRV: API Gateway needs the port, which ECS registers only for SRV records.
    assert discovery.inputs["dnsConfig"]["dnsRecords"] == [{"type": "SRV", "ttl": 10}]
    registry = staging.one(ECS_SERVICE, "api-api").inputs["serviceRegistries"]
    assert registry == {"registryArn": discovery.outputs["arn"], "containerName": "api", "containerPort": 8000}
    stage = staging.one("aws:apigatewayv2/stage:Stage").inputs
    assert stage["name"] == "$default" and stage["autoDeploy"] is True
    assert stage["defaultRouteSettings"] == {"throttlingBurstLimit": 200, "throttlingRateLimit": 100}
    assert json.loads(stage["accessLogSettings"]["format"])["status"] == "$context.status"
    assert staging.outputs["apiUrl"].startswith("https://") and ".execute-api.us-east-1." in staging.outputs["apiUrl"]
    assert staging.outputs["frontDoor"] == "httpApi" and "albDnsName" not in staging.outputs


def test_the_tasks_admit_the_vpc_link_only_and_the_link_reaches_the_tasks_only(staging: StackRun) -> None:
    link_sg = staging.one("aws:ec2/securityGroup:SecurityGroup", "api-gateway-sg").id
    tasks_sg = staging.one("aws:ec2/securityGroup:SecurityGroup", "api-sg").id
    ingress = staging.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule", "api-in-alb").inputs
    assert (ingress["securityGroupId"], ingress["referencedSecurityGroupId"]) == (tasks_sg, link_sg)
    (egress,) = [
        r.inputs
        for r in staging.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
        if r.inputs["securityGroupId"] == link_sg
    ]
    assert (egress["referencedSecurityGroupId"], egress["fromPort"], egress["toPort"]) == (tasks_sg, 8000, 8000)


def test_prod_keeps_the_alb_and_no_http_api(prod: StackRun) -> None:
    assert prod.one("aws:lb/loadBalancer:LoadBalancer")
    assert prod.of_type("aws:apigatewayv2/api:Api") == []
    assert prod.outputs["frontDoor"] == "alb" and "albDnsName" in prod.outputs


def test_alarms_follow_the_front_door(staging: StackRun, prod: StackRun) -> None:
    assert "AWS/ApplicationELB" not in _namespaces(staging)
    assert {"AWS/ApiGateway", "ECS/ContainerInsights"} <= _namespaces(staging)
    assert "AWS/ApiGateway" not in _namespaces(prod) and "AWS/ApplicationELB" in _namespaces(prod)
    api_id = staging.one("aws:apigatewayv2/api:Api").id
    gateway = [m for m in _metrics(staging) if m["namespace"] == "AWS/ApiGateway"]
    assert gateway and all(m["dimensions"] == {"ApiId": api_id, "Stage": "$default"} for m in gateway)
    assert {m["metricName"] for m in gateway} == {"5xx", "Count", "IntegrationLatency"}
    # The composites page on the alarms this stack has: every name in a rule exists, none is an ALB alarm.
    names = {a.inputs["name"] for a in staging.of_type(ALARM)}
    for composite in staging.of_type(COMPOSITE):
        rule = composite.inputs["alarmRule"]
        referenced = {part.split('"')[1] for part in rule.split("ALARM(")[1:]}
        assert referenced <= names, composite.name
        assert "healthy-hosts" not in rule
    service_down = staging.one(COMPOSITE, "monitoring-service-down").inputs["alarmRule"]
    assert "http-api-5xx-rate" in service_down and "no-running-tasks" in service_down


def test_dashboard_and_autoscaling_follow_the_front_door(staging: StackRun, prod: StackRun) -> None:
    staging_body = staging.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"]
    assert "AWS/ApiGateway" in staging_body and "AWS/ApplicationELB" not in staging_body
    assert "AWS/ApplicationELB" in prod.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"]
    policies = {p.name for p in staging.of_type("aws:appautoscaling/policy:Policy")}
    assert policies == {"api-scale-cpu"}  # no ALBRequestCountPerTarget without an ALB
    assert {"api-scale-cpu", "api-scale-requests"} <= {p.name for p in prod.of_type("aws:appautoscaling/policy:Policy")}


def test_health_check_calls_the_front_doors_url(staging: StackRun) -> None:
    function = staging.one("aws:lambda/function:Function", "health-check-public-function")
    targets = json.loads(function.inputs["environment"]["variables"]["TARGETS"])
    api_urls = {t["url"] for t in targets if t["name"].startswith("api")}
    assert api_urls and all(url.startswith(staging.outputs["apiUrl"]) for url in api_urls)


def test_front_door_lever_in_the_estimate(staging: StackRun, staging_on_alb: StackRun) -> None:
    lean, alb = _items(staging), _items(staging_on_alb)
    assert lean["api-gateway-api: HTTP API requests (baseline 1 million a month)"] == 1.0
    assert lean["api-gateway-namespace: Cloud Map private DNS namespace (a Route 53 private hosted zone)"] == 0.5
    assert lean["api-gateway-discovery: Cloud Map registered instances (1)"] == 0.1
    assert alb["api-lb-alb: application load balancer hours"] == round(0.0225 * 730, 2)
    assert alb["api-lb-alb: public IPv4 (2 AZ addresses)"] == round(2 * 0.005 * 730, 2)
    assert not any(key.startswith("api-lb-") for key in lean)
    # The ALB's hours, IPs and baseline LCUs (26.65) less the HTTP API's requests, namespace and instance (1.60),
    # give or take the two front doors' alarm sets (the ALB's 5xx and SLO alarms read three metrics, not two).
    assert 24 < _total(staging_on_alb) - _total(staging) < 27


# ------------------------------------------------------------------------------------------------ Fargate Spot


def test_staging_api_runs_on_fargate_spot_and_prod_on_demand(staging: StackRun, prod: StackRun) -> None:
    api = staging.one(ECS_SERVICE, "api-api").inputs
    assert api["capacityProviderStrategies"] == [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]
    assert "launchType" not in api
    providers = staging.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders").inputs
    assert providers["capacityProviders"] == ["FARGATE", "FARGATE_SPOT"]
    # The migrate task and scheduled jobs keep the on-demand default.
    assert providers["defaultCapacityProviderStrategies"] == [{"capacityProvider": "FARGATE", "weight": 1, "base": 0}]
    assert prod.one(ECS_SERVICE, "api-api").inputs["launchType"] == "FARGATE"
    # Moving an existing staging onto Spot or the HTTP API replaces its fixed-name service: delete first there.
    assert staging.one(ECS_SERVICE, "api-api").delete_before_replace is True
    assert prod.one(ECS_SERVICE, "api-api").delete_before_replace is False
    assert prod.of_type("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders") == []


def _service(strategy: list[dict[str, Any]] | None, tasks: int = 4) -> list[Any]:
    definition = _resource(
        "aws:ecs/taskDefinition:TaskDefinition",
        "task",
        {"cpu": "256", "memory": "512", "runtimePlatform": {"cpuArchitecture": "ARM64"}},
    )
    inputs: dict[str, Any] = {"desiredCount": tasks}
    if strategy is None:
        inputs["launchType"] = "FARGATE"
    else:
        inputs["capacityProviderStrategies"] = strategy
    return [definition, _resource("aws:ecs/service:Service", "svc", inputs, depends_on=(definition.urn,))]


def test_spot_lever_in_the_estimate() -> None:
    on_demand = {i.item: i.monthly_usd for i in estimate(_run(*_service(None)))}
    spot = {
        i.item: i.monthly_usd for i in estimate(_run(*_service([{"capacityProvider": "FARGATE_SPOT", "weight": 1}])))
    }
    assert on_demand["Fargate vCPU-hours (4 task(s) x 0.25 vCPU/0.5 GB arm64)"] == round(4 * 0.25 * 0.03238 * 730, 2)
    assert spot["Fargate Spot vCPU-hours (4 task(s) x 0.25 vCPU/0.5 GB arm64 on Spot)"] == round(
        4 * 0.25 * 0.01619 * 730, 2
    )
    # A base on FARGATE first, the rest by weight.
    mixed = [{"capacityProvider": "FARGATE", "base": 1, "weight": 1}, {"capacityProvider": "FARGATE_SPOT", "weight": 2}]
    assert _tasks_by_capacity({"capacityProviderStrategies": mixed}, 4) == [("FARGATE", 2.0), ("FARGATE_SPOT", 2.0)]
    assert _tasks_by_capacity({"launchType": "FARGATE"}, 3) == [("FARGATE", 3)]


# ------------------------------------------------------------------------------------------------ endpoint


def test_no_secrets_manager_endpoint_without_a_vpc_reader(staging: StackRun) -> None:
    """Since IAM database auth (issue 14) no Lambda in the VPC reads a secret at run time, so the derived
    endpoint (7.30 USD/month in staging) is not created; the derivation itself is the unit test below."""
    assert [e.name for e in staging.of_type(ENDPOINT)] == ["network-s3-endpoint"]
    assert not [key for key in _items(staging) if "interface endpoint secretsmanager" in key]


def test_vpc_secret_readers_are_the_in_vpc_functions_with_a_secret_arn() -> None:
    class Fn:
        def __init__(self, label: str, in_vpc: bool, keys: tuple[str, ...]) -> None:
            self.label, self.in_vpc, self.secret_arn_keys = label, in_vpc, keys

    functions = [
        Fn("alert-forwarder", False, ("CHANNELS_SECRET_ARN",)),  # outside the VPC: reaches the public API
        Fn("health-check", True, ("DATABASE_SECRET_ARN",)),
        Fn("auto-confirm", True, ()),  # IAM database auth: no secret at run time
        None,
    ]
    assert vpc_secret_readers(*functions) == ["health-check"]  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ config rules

BASE = {"shipyard:owner": "team", "aws:region": "us-east-1"}


def _aws(raw: dict[str, str]) -> AwsStack:
    config = parse_stack_config(raw, source="x", secret_keys=[k for k in raw if k == "shipyard:alertEmails"])
    assert isinstance(config, AwsStack)
    return config


def _problems(**config: object) -> str:
    raw = {**BASE, **{f"shipyard:{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in config.items()}}
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw, source="Pulumi.x.yaml")
    return str(error.value)


def test_waf_and_alb_only_keys_are_refused_with_the_http_api() -> None:
    message = _problems(tier="staging", waf={"enabled": True})
    assert "Pulumi.x.yaml: shipyard:waf.enabled: AWS WAF cannot protect an API Gateway HTTP API" in message
    message = _problems(tier="staging", service={"loadBalancerAccessLogs": True})
    assert "shipyard:service.loadBalancerAccessLogs: applies to the ALB only" in message
    fine = _aws(
        {
            **BASE,
            "shipyard:tier": "staging",
            "shipyard:waf": '{"enabled": true}',
            "shipyard:service": '{"frontDoor": "alb"}',
        }
    )
    assert fine.waf.enabled and fine.service.front_door == "alb"


def test_prod_requires_the_alb() -> None:
    message = _problems(
        tier="prod",
        service={"frontDoor": "httpApi", "loadBalancerDeletionProtection": False, "loadBalancerAccessLogs": False},
        waf={"enabled": False},
        alerts={"routing": {"critical": ["email"]}, "oncallEmail": "a@example.com", "emailFrom": "b@example.com"},
    )
    assert "shipyard:service.frontDoor: must be alb in prod" in message


def test_tier_defaults_pick_the_front_door_and_spot() -> None:
    staging = _aws({**BASE, "shipyard:tier": "staging"})
    assert (staging.service.front_door, staging.service.spot) == ("httpApi", True)
    prod = _aws(
        {
            **BASE,
            "shipyard:tier": "prod",
            "shipyard:alertEmails": "oncall@example.com",
            "shipyard:alerts": json.dumps(
                {"routing": {"critical": ["email"]}, "oncallEmail": "a@example.com", "emailFrom": "b@example.com"}
            ),
        },
    )
    assert (prod.service.front_door, prod.service.spot) == ("alb", False)

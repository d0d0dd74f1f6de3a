"""Network properties for both stacks, read from the resources the real program registers."""

from __future__ import annotations

import ipaddress
import json

from infra.harness import StackRun

VPC = "aws:ec2/vpc:Vpc"
SUBNET = "aws:ec2/subnet:Subnet"
ROUTE_TABLE = "aws:ec2/routeTable:RouteTable"
NAT = "aws:ec2/natGateway:NatGateway"
ENDPOINT = "aws:ec2/vpcEndpoint:VpcEndpoint"


def _subnets(run: StackRun, tier: str) -> list[dict]:
    return [r.inputs for r in run.of_type(SUBNET) if r.inputs["tags"]["tier"] == tier]


def test_vpc_spans_two_azs_with_three_non_overlapping_tiers(any_stack: StackRun) -> None:
    vpc = ipaddress.IPv4Network(any_stack.one(VPC).inputs["cidrBlock"])
    assert any_stack.one(VPC).inputs["enableDnsHostnames"] is True
    blocks = []
    for tier in ("public", "private", "isolated"):
        subnets = _subnets(any_stack, tier)
        assert len(subnets) == 2
        assert len({s["availabilityZone"] for s in subnets}) == 2
        blocks += [ipaddress.IPv4Network(s["cidrBlock"]) for s in subnets]
    assert all(b.subnet_of(vpc) for b in blocks)
    assert not any(a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1 :])
    assert all(subnet.inputs["mapPublicIpOnLaunch"] is False for subnet in any_stack.of_type(SUBNET))


def test_three_azs_when_configured() -> None:
    from tests.infra.conftest import evaluate

    run = evaluate("staging", config_overrides={"shipyard:network": {"azCount": 3}})
    assert len({s["availabilityZone"] for s in _subnets(run, "private")}) == 3


def test_isolated_tier_has_no_route_out(any_stack: StackRun) -> None:
    isolated = any_stack.one(ROUTE_TABLE, "network-isolated-rt")
    assert isolated.inputs.get("routes", []) == []


def test_staging_has_no_nat_and_no_secrets_manager_endpoint(staging: StackRun) -> None:
    assert staging.of_type(NAT) == []
    for table in staging.of_type(ROUTE_TABLE):
        if table.name.startswith("network-private-rt"):
            assert table.inputs.get("routes", []) == []
    services = sorted(e.inputs["serviceName"] for e in staging.of_type(ENDPOINT))
    # Nothing in the VPC reads a secret (IAM database auth): the interface endpoint would be 7.30 USD/month.
    assert services == ["com.amazonaws.us-east-1.s3"]
    assert staging.of_type("aws:ec2/flowLog:FlowLog") == []


def test_prod_private_subnets_leave_through_nat_and_flow_logs_are_on(prod: StackRun) -> None:
    nats = prod.of_type(NAT)
    assert len(nats) == 1  # nat: single in Pulumi.prod.yaml
    private_tables = [t for t in prod.of_type(ROUTE_TABLE) if t.name.startswith("network-private-rt")]
    assert len(private_tables) == 2
    for table in private_tables:
        (route,) = table.inputs["routes"]
        assert route["cidrBlock"] == "0.0.0.0/0"
        assert route["natGatewayId"].startswith("nat-")
    flow_log = prod.one("aws:ec2/flowLog:FlowLog")
    assert flow_log.inputs["trafficType"] == "ALL"
    group = prod.one("aws:cloudwatch/logGroup:LogGroup", "network-flow-logs")
    assert group.inputs["retentionInDays"] == 90
    policy = json.loads(prod.one("aws:iam/rolePolicy:RolePolicy", "network-flow-logs-policy").inputs["policy"])
    writes, describe = policy["Statement"]
    assert writes["Resource"] == [group.outputs["arn"], f"{group.outputs['arn']}:*"]
    assert sorted(writes["Action"]) == ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    # AWS's documented minimum for the flow-logs role (vpc/latest/userguide/flow-logs-iam-role.html) also has
    # DescribeLogGroups, which takes no log-group resource; nothing else (no CreateLogGroup: the group exists).
    assert describe == {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": "*"}


def test_per_az_nat_gives_each_az_its_own_gateway() -> None:
    from tests.infra.conftest import evaluate

    run = evaluate(
        "prod",
        config_overrides={"shipyard:network": {"cidr": "10.30.0.0/16", "nat": "per_az", "flowLogs": True}},
    )
    nats = run.of_type(NAT)
    assert len(nats) == 2
    assert len({n.inputs["subnetId"] for n in nats}) == 2
    gateways = {t.inputs["routes"][0]["natGatewayId"] for t in run.of_type(ROUTE_TABLE) if "private-rt" in t.name}
    assert len(gateways) == 2


def test_vpc_endpoints_option_creates_the_full_interface_set() -> None:
    from tests.infra.conftest import evaluate

    run = evaluate("staging", config_overrides={"shipyard:network": {"vpcEndpoints": True}})
    interface = sorted(
        e.inputs["serviceName"].rsplit(".", 1)[-1]
        if "ecr" not in e.inputs["serviceName"]
        else e.inputs["serviceName"].split("us-east-1.")[1]
        for e in run.of_type(ENDPOINT)
        if e.inputs["vpcEndpointType"] == "Interface"
    )
    assert interface == ["ecr.api", "ecr.dkr", "logs", "secretsmanager"]
    for endpoint in run.of_type(ENDPOINT):
        if endpoint.inputs["vpcEndpointType"] == "Interface":
            assert endpoint.inputs["privateDnsEnabled"] is True
            assert len(endpoint.inputs["subnetIds"]) == 2


def test_default_security_group_is_taken_over_with_no_rules(any_stack: StackRun) -> None:
    default = any_stack.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert not default.inputs.get("ingress") and not default.inputs.get("egress")


def test_default_tags_come_from_the_provider_not_per_resource(any_stack: StackRun) -> None:
    provider = any_stack.one("pulumi:providers:aws", "aws")
    # CloudFront-scoped resources use the us-east-1 provider; it must carry the same default tags.
    providers = any_stack.of_type("pulumi:providers:aws")
    assert {json.dumps(json.loads(p.inputs["defaultTags"]), sort_keys=True) for p in providers} == {
        json.dumps(json.loads(provider.inputs["defaultTags"]), sort_keys=True)
    }
    tags = json.loads(provider.inputs["defaultTags"])["tags"]
    assert tags == {
        "project": "shipyard",
        "stack": any_stack.stack,
        "tier": any_stack.stack,
        "owner": "platform-team",
        "managed-by": "pulumi",
    }
    aws_resources = [r for r in any_stack.resources if r.custom and r.type.startswith("aws:")]
    assert aws_resources
    for resource in aws_resources:
        assert resource.provider is not None, resource.urn
        assert any(resource.provider.startswith(p.urn + "::") for p in providers), resource.urn
        assert "project" not in resource.inputs.get("tags", {}), resource.urn


def test_every_network_resource_is_parented_to_the_component(any_stack: StackRun) -> None:
    component = any_stack.one("shipyard:aws:Network")
    children = any_stack.descendants(component)
    assert {r.type for r in children} >= {VPC, SUBNET, ROUTE_TABLE}
    network_types = (VPC, SUBNET, ROUTE_TABLE, NAT, ENDPOINT)
    assert all(any_stack.component_of(r) == component for r in any_stack.resources if r.type in network_types)

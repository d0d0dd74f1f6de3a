"""The public ALB: listeners, TLS, target group health checks, logs, protection, WAF and DNS.

Prod serves through it; staging defaults to the HTTP API front door (tests/infra/test_front_door.py), so the
staging cases here take Pulumi.staging.yaml with the one key that selects the ALB (`service.frontDoor: alb`)."""

from __future__ import annotations

import json

import pytest

from infra.aws.load_balancer import ELB_LOG_ACCOUNTS, SSL_POLICY
from infra.harness import Resource, StackRun
from tests.infra.conftest import STACKS, evaluate

ON_ALB = {"shipyard:service": {"maxCount": 2, "frontDoor": "alb"}}

ALB = "aws:lb/loadBalancer:LoadBalancer"
LISTENER = "aws:lb/listener:Listener"
TARGET_GROUP = "aws:lb/targetGroup:TargetGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"


@pytest.fixture(scope="module")
def staging() -> StackRun:
    return evaluate("staging", config_overrides=ON_ALB)


@pytest.fixture(params=STACKS)
def any_stack(request: pytest.FixtureRequest, staging: StackRun, prod: StackRun) -> StackRun:
    return staging if request.param == "staging" else prod


def _listeners(run: StackRun) -> dict[int, Resource]:
    return {int(listener.inputs["port"]): listener for listener in run.of_type(LISTENER)}


def test_alb_is_public_and_drops_invalid_headers(any_stack: StackRun) -> None:
    alb = any_stack.one(ALB).inputs
    assert alb["loadBalancerType"] == "application"
    assert alb["internal"] is False
    assert alb["subnets"] == any_stack.outputs["publicSubnetIds"]
    assert alb["dropInvalidHeaderFields"] is True
    component = any_stack.component_of(any_stack.one(ALB))
    assert component is not None and component.type == "shipyard:aws:LoadBalancer"


def test_prod_serves_https_with_the_regional_certificate_and_redirects_http(prod: StackRun) -> None:
    listeners = _listeners(prod)
    assert set(listeners) == {80, 443}
    https = listeners[443].inputs
    assert https["protocol"] == "HTTPS"
    assert https["sslPolicy"] == SSL_POLICY == "ELBSecurityPolicy-TLS13-1-2-2021-06"
    certificate = prod.one("aws:acm/certificate:Certificate", "api-certificate-cert")
    assert certificate.inputs["domainName"] == "api.example.com"
    assert https["certificateArn"] == certificate.outputs["arn"]
    (forward,) = https["defaultActions"]
    assert forward["type"] == "forward"
    assert forward["targetGroupArn"] == prod.one(TARGET_GROUP).outputs["arn"]
    (redirect,) = listeners[80].inputs["defaultActions"]
    assert redirect["type"] == "redirect"
    assert redirect["redirect"] == {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}


def test_staging_without_a_domain_forwards_plain_http(staging: StackRun) -> None:
    listeners = _listeners(staging)
    assert set(listeners) == {80}
    (forward,) = listeners[80].inputs["defaultActions"]
    assert forward["type"] == "forward"
    assert not staging.of_type("aws:acm/certificate:Certificate")
    ports = sorted(r.inputs["fromPort"] for r in staging.of_type(INGRESS) if r.name.startswith("api-lb-in"))
    assert ports == [80]  # nothing listens on 443, so nothing is opened there


def test_alb_security_group_is_open_to_the_web_and_egresses_only_to_the_api(any_stack: StackRun) -> None:
    alb_sg = any_stack.one(ALB).inputs["securityGroups"][0]
    ingress = [r.inputs for r in any_stack.of_type(INGRESS) if r.inputs["securityGroupId"] == alb_sg]
    assert all(r["cidrIpv4"] == "0.0.0.0/0" and r["fromPort"] in (80, 443) for r in ingress)
    (egress,) = [r.inputs for r in any_stack.of_type(EGRESS) if r.inputs["securityGroupId"] == alb_sg]
    api_sg = any_stack.one("aws:ecs/service:Service", "api-api").inputs["networkConfiguration"]["securityGroups"][0]
    assert egress["referencedSecurityGroupId"] == api_sg
    assert (egress["fromPort"], egress["toPort"]) == (8000, 8000)


def test_target_group_health_check_and_deregistration_delay(any_stack: StackRun) -> None:
    group = any_stack.one(TARGET_GROUP).inputs
    assert group["targetType"] == "ip"
    assert group["port"] == 8000
    assert group["healthCheck"]["path"] == "/api/health"
    assert group["healthCheck"]["matcher"] == "200"
    assert group["deregistrationDelay"] == 30


def test_health_check_path_and_delay_come_from_config() -> None:
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:service": {"healthCheckPath": "/healthz", "deregistrationDelaySeconds": 5, "frontDoor": "alb"}
        },
    )
    group = run.one(TARGET_GROUP).inputs
    assert group["healthCheck"]["path"] == "/healthz"
    assert group["deregistrationDelay"] == 5


def test_deletion_protection_and_access_logs_in_prod_only(staging: StackRun, prod: StackRun) -> None:
    assert staging.one(ALB).inputs["enableDeletionProtection"] is False
    assert not staging.one(ALB).inputs.get("accessLogs")
    assert not [b for b in staging.of_type("aws:s3/bucket:Bucket") if b.name.startswith("api-lb")]
    alb = prod.one(ALB).inputs
    assert alb["enableDeletionProtection"] is True
    bucket = prod.one("aws:s3/bucket:Bucket", "api-lb-logs")
    assert alb["accessLogs"] == {"bucket": bucket.outputs["bucket"], "prefix": "alb", "enabled": True}
    policy = json.loads(prod.one("aws:s3/bucketPolicy:BucketPolicy", "api-lb-logs-policy").inputs["policy"])
    writers = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    principals = [s["Principal"] for s in writers]
    assert {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"} in principals
    assert {"AWS": f"arn:aws:iam::{ELB_LOG_ACCOUNTS['us-east-1']}:root"} in principals
    for statement in writers:
        assert statement["Action"] == "s3:PutObject"
        assert statement["Resource"] == f"{bucket.outputs['arn']}/alb/AWSLogs/123456789012/*"
    deny = next(s for s in policy["Statement"] if s["Effect"] == "Deny")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    sse = prod.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "api-lb-logs-sse"
    )
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    block = prod.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "api-lb-logs-public-access").inputs
    assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls"))


def test_waf_is_associated_with_the_alb_in_prod(staging: StackRun, prod: StackRun) -> None:
    association = prod.one("aws:wafv2/webAclAssociation:WebAclAssociation").inputs
    assert association["resourceArn"] == prod.one(ALB).outputs["arn"]
    assert association["webAclArn"] == prod.outputs["wafRegionalAclArn"]
    assert not staging.of_type("aws:wafv2/webAclAssociation:WebAclAssociation")


def test_api_alias_record_when_a_hosted_zone_is_given(prod: StackRun) -> None:
    record = prod.one("aws:route53/record:Record", "api-lb-alias").inputs
    alb = prod.one(ALB).outputs
    assert record["zoneId"] == "Z0123456789EXAMPLE"
    assert record["name"] == "api.example.com"
    assert record["type"] == "A"
    assert record["aliases"] == [{"name": alb["dnsName"], "zoneId": alb["zoneId"], "evaluateTargetHealth": True}]


def test_monitoring_handles_are_the_metric_dimensions(prod: StackRun) -> None:
    alb = prod.one(ALB).outputs
    group = prod.one(TARGET_GROUP).outputs
    assert alb["arnSuffix"].startswith("app/") and alb["arn"].endswith(alb["arnSuffix"])
    assert group["arnSuffix"].startswith("targetgroup/") and group["arn"].endswith(group["arnSuffix"])

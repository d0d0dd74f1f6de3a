"""WAF web ACLs: prod has a regional and a CloudFront ACL with the managed groups and a per-IP rate rule."""

from __future__ import annotations

from infra.harness import StackRun
from tests.infra.conftest import evaluate

WEB_ACL = "aws:wafv2/webAcl:WebAcl"


def _rules_by_name(acl: dict) -> dict[str, dict]:
    return {rule["name"]: rule for rule in acl["rules"]}


def test_prod_has_a_regional_and_a_cloudfront_acl(prod: StackRun) -> None:
    scopes = sorted(acl.inputs["scope"] for acl in prod.of_type(WEB_ACL))
    assert scopes == ["CLOUDFRONT", "REGIONAL"]
    for acl in prod.of_type(WEB_ACL):
        component = prod.component_of(acl)
        assert component is not None and component.type == "shipyard:aws:WebAcl"
    assert prod.outputs["wafCloudFrontAclArn"].startswith("arn:aws:wafv2:us-east-1:")
    assert ":regional/webacl/" in prod.outputs["wafRegionalAclArn"]


def test_cloudfront_acl_is_created_through_the_us_east_1_provider() -> None:
    run = evaluate("prod", config_overrides={"aws:region": "eu-west-1"})
    edge = run.one("pulumi:providers:aws", "aws-us-east-1")
    assert edge.inputs["region"] == "us-east-1"
    cloudfront = next(a for a in run.of_type(WEB_ACL) if a.inputs["scope"] == "CLOUDFRONT")
    regional = next(a for a in run.of_type(WEB_ACL) if a.inputs["scope"] == "REGIONAL")
    assert (cloudfront.provider or "").startswith(edge.urn + "::")
    assert (regional.provider or "").startswith(run.one("pulumi:providers:aws", "aws").urn + "::")


def test_managed_groups_and_rate_rule_with_metrics_on(prod: StackRun) -> None:
    for acl in prod.of_type(WEB_ACL):
        inputs = acl.inputs
        assert inputs["defaultAction"] == {"allow": {}}
        rules = _rules_by_name(inputs)
        assert set(rules) == {
            "AWSManagedRulesCommonRuleSet",
            "AWSManagedRulesKnownBadInputsRuleSet",
            "rate-limit-per-ip",
        }
        for group in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"):
            statement = rules[group]["statement"]["managedRuleGroupStatement"]
            assert statement == {"vendorName": "AWS", "name": group}
            assert rules[group]["overrideAction"] == {"none": {}}  # enforce, not just count
        rate = rules["rate-limit-per-ip"]
        # 429, so a rate-limited client is told so (and is not a 403 like a rule block).
        assert rate["action"] == {"block": {"customResponse": {"responseCode": 429}}}
        assert rate["statement"]["rateBasedStatement"] == {
            "limit": 2000,
            "aggregateKeyType": "IP",
            "evaluationWindowSec": 300,
        }
        assert len({r["priority"] for r in rules.values()}) == 3
        for visibility in [inputs["visibilityConfig"], *(r["visibilityConfig"] for r in rules.values())]:
            assert visibility["cloudwatchMetricsEnabled"] is True
            assert visibility["sampledRequestsEnabled"] is True
            assert visibility["metricName"]


def test_rate_limit_comes_from_config() -> None:
    run = evaluate("staging", config_overrides={"shipyard:waf": {"enabled": True, "rateLimit": 300}})
    for acl in run.of_type(WEB_ACL):
        rate = _rules_by_name(acl.inputs)["rate-limit-per-ip"]
        assert rate["statement"]["rateBasedStatement"]["limit"] == 300
    assert len(run.of_type(WEB_ACL)) == 2


def test_staging_has_no_waf_by_default(staging: StackRun) -> None:
    assert staging.of_type(WEB_ACL) == []
    assert "wafRegionalAclArn" not in staging.outputs

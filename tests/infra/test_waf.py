"""WAF web ACLs: prod has a regional and a CloudFront ACL with the managed groups and a per-IP rate rule."""

from __future__ import annotations

from typing import Any

import pytest

from infra.aws.waf import API_UPLOADS_PATH_PREFIX, BODY_SIZE_LABEL, LARGE_BODY_RULE, WebAclArgs
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
        regional = inputs["scope"] == "REGIONAL"
        assert set(rules) == {
            "AWSManagedRulesCommonRuleSet",
            "AWSManagedRulesKnownBadInputsRuleSet",
            "rate-limit-per-ip",
            *([LARGE_BODY_RULE] if regional else []),
        }
        for group in ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet"):
            statement = dict(rules[group]["statement"]["managedRuleGroupStatement"])
            overrides = statement.pop("ruleActionOverrides", None)
            assert statement == {"vendorName": "AWS", "name": group}
            # Only the ALB's CRS has an exception, and only for the body-size rule (see the tests below).
            if regional and group == "AWSManagedRulesCommonRuleSet":
                assert overrides == [{"name": "SizeRestrictions_BODY", "actionToUse": {"count": {}}}]
            else:
                assert overrides is None
            assert rules[group]["overrideAction"] == {"none": {}}  # enforce, not just count
        rate = rules["rate-limit-per-ip"]
        # 429, so a rate-limited client is told so (and is not a 403 like a rule block).
        assert rate["action"] == {"block": {"customResponse": {"responseCode": 429}}}
        assert rate["statement"]["rateBasedStatement"] == {
            "limit": 2000,
            "aggregateKeyType": "IP",
            "evaluationWindowSec": 300,
        }
        assert len({r["priority"] for r in rules.values()}) == len(rules)
        for visibility in [inputs["visibilityConfig"], *(r["visibilityConfig"] for r in rules.values())]:
            assert visibility["cloudwatchMetricsEnabled"] is True
            assert visibility["sampledRequestsEnabled"] is True
            assert visibility["metricName"]


def test_rate_limit_comes_from_config() -> None:
    # WAF protects the ALB, not an HTTP API: a staging that wants it selects the ALB front door too.
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:waf": {"enabled": True, "rateLimit": 300},
            "shipyard:service": {"maxCount": 2, "frontDoor": "alb"},
        },
    )
    for acl in run.of_type(WEB_ACL):
        rate = _rules_by_name(acl.inputs)["rate-limit-per-ip"]
        assert rate["statement"]["rateBasedStatement"]["limit"] == 300
    assert len(run.of_type(WEB_ACL)) == 2


def test_staging_has_no_waf_by_default(staging: StackRun) -> None:
    assert staging.of_type(WEB_ACL) == []
    assert "wafRegionalAclArn" not in staging.outputs


# -- issue 22 item 8: bodies over 8 KB reach the ALB only on the upload routes ------------------------------
# A small evaluator of the planned rules, for the statement kinds the ACL uses, following AWS WAF's
# documented semantics: rules run in priority order; a managed rule group's rules that match add their label
# whatever their action, and block unless overridden to count; a later rule can match on that label
# (https://docs.aws.amazon.com/waf/latest/developerguide/waf-labels.html). The CRS's SizeRestrictions_BODY
# matches bodies over 8,192 bytes (aws-managed-rule-groups-baseline.html); the other managed rules and the
# rate rule do not match these clean, single requests.
CRS_BODY_LIMIT = 8192


def _matches(statement: dict[str, Any], path: str, labels: set[str]) -> bool:
    (kind, body), *_ = statement.items()
    if kind == "andStatement":
        return all(_matches(s, path, labels) for s in body["statements"])
    if kind == "orStatement":
        return any(_matches(s, path, labels) for s in body["statements"])
    if kind == "notStatement":
        return not _matches(body["statement"], path, labels)
    if kind == "labelMatchStatement":
        assert body["scope"] == "LABEL"
        return body["key"] in labels
    if kind == "byteMatchStatement":
        assert body["fieldToMatch"] == {"uriPath": {}}
        assert body["textTransformations"] == [{"priority": 0, "type": "NONE"}]
        if body["positionalConstraint"] == "EXACTLY":
            return path == body["searchString"]
        assert body["positionalConstraint"] == "STARTS_WITH"
        return path.startswith(body["searchString"])
    if kind == "rateBasedStatement":
        return False
    raise AssertionError(f"the evaluator does not know {kind}")


def _verdict(acl: dict[str, Any], path: str, body_bytes: int) -> str:
    """`allow`, or `block:<rule>` for the first rule that blocks."""
    labels: set[str] = set()
    for rule in sorted(acl["rules"], key=lambda r: r["priority"]):
        statement = rule["statement"]
        if "managedRuleGroupStatement" in statement:
            group = statement["managedRuleGroupStatement"]
            if group["name"] != "AWSManagedRulesCommonRuleSet" or body_bytes <= CRS_BODY_LIMIT:
                continue
            labels.add(BODY_SIZE_LABEL)
            counted = {o["name"] for o in group.get("ruleActionOverrides", []) if o["actionToUse"] == {"count": {}}}
            if "SizeRestrictions_BODY" not in counted and rule["overrideAction"] == {"none": {}}:
                return f"block:{rule['name']}"
        elif _matches(statement, path, labels) and "block" in rule["action"]:
            return f"block:{rule['name']}"
    return "allow"


@pytest.mark.parametrize(
    ("path", "body_bytes", "expected"),
    [
        ("/api/uploads", 9000, "allow"),
        ("/api/uploads/abc/file.pdf", 5 * 1024 * 1024, "allow"),
        ("/api/orders", 9000, f"block:{LARGE_BODY_RULE}"),
        ("/api/uploadsX", 9000, f"block:{LARGE_BODY_RULE}"),  # a prefix of a name is not the route
        ("/api/%75ploads", 9000, f"block:{LARGE_BODY_RULE}"),  # no decoding: an encoded path is never exempt
        ("/x/api/uploads", 9000, f"block:{LARGE_BODY_RULE}"),
        ("/api/orders", 8192, "allow"),
        ("/api/orders", 100, "allow"),
    ],
)
def test_alb_acl_lets_large_bodies_through_to_the_upload_routes_only(
    prod: StackRun, path: str, body_bytes: int, expected: str
) -> None:
    (regional,) = [a for a in prod.of_type(WEB_ACL) if a.inputs["scope"] == "REGIONAL"]
    assert _verdict(regional.inputs, path, body_bytes) == expected


def test_cloudfront_acl_keeps_blocking_large_bodies_everywhere(prod: StackRun) -> None:
    (edge,) = [a for a in prod.of_type(WEB_ACL) if a.inputs["scope"] == "CLOUDFRONT"]
    assert _verdict(edge.inputs, "/api/uploads", 9000) == "block:AWSManagedRulesCommonRuleSet"
    assert _verdict(edge.inputs, "/index.html", 100) == "allow"


def test_large_body_rule_runs_after_the_group_that_labels(prod: StackRun) -> None:
    (regional,) = [a for a in prod.of_type(WEB_ACL) if a.inputs["scope"] == "REGIONAL"]
    rules = _rules_by_name(regional.inputs)
    assert rules[LARGE_BODY_RULE]["priority"] > rules["AWSManagedRulesCommonRuleSet"]["priority"]
    assert rules[LARGE_BODY_RULE]["action"] == {"block": {}}
    assert rules[LARGE_BODY_RULE]["visibilityConfig"]["cloudwatchMetricsEnabled"] is True


def test_the_waf_exempts_the_prefix_the_app_treats_as_uploads() -> None:
    from app.web import UPLOADS_PATH_PREFIX

    assert API_UPLOADS_PATH_PREFIX == UPLOADS_PATH_PREFIX


@pytest.mark.parametrize("prefix", ["api/uploads", "/api/uploads/", "/api/*"])
def test_large_body_prefixes_must_be_plain_paths(prefix: str) -> None:
    with pytest.raises(ValueError, match="large_body_path_prefixes"):
        WebAclArgs(scope="REGIONAL", rate_limit=100, large_body_path_prefixes=(prefix,))

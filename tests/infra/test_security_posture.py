"""Issue 16: what an outside scanner found missing, checked on the evaluated stacks.

- log groups encrypted with one customer key per region (prod), whose policy admits CloudWatch Logs;
- WAF request logs (WAF.11) to aws-waf-logs-* groups with credentials redacted, destination first;
- S3 server access logs (S3.9) of the uploads and SPA buckets into a private, expiring log bucket;
- confused-deputy conditions on the roles AWS services assume and on the alert-topic key;
- VPC Lambdas get the ENI actions inline, never AWSLambdaVPCAccessExecutionRole.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.aws import kms, trust
from infra.aws.function import VPC_NETWORK_INTERFACE_ACTIONS
from infra.aws.waf import LOG_GROUP_PREFIX, REDACTED_HEADERS
from infra.harness import Resource, StackRun
from tests.infra.conftest import evaluate

ACCOUNT = "123456789012"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KEY = "aws:kms/key:Key"
ROLE = "aws:iam/role:Role"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_LOGGING = "aws:s3/bucketLogging:BucketLogging"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"


def _statements(document: str) -> list[dict[str, Any]]:
    return list(json.loads(document)["Statement"])


def _log_keys(run: StackRun) -> list[Resource]:
    return [k for k in run.of_type(KEY) if (run.component_of(k) or k).type == "shipyard:aws:LogKey"]


def _region_of(run: StackRun, resource: Resource) -> str:
    provider = run.by_urn((resource.provider or "").rsplit("::", 1)[0])
    return str(provider.inputs["region"])


# --------------------------------------------------------------------------------------------- log keys


def test_every_prod_log_group_uses_the_one_log_key_of_its_region(prod: StackRun) -> None:
    (key,) = _log_keys(prod)  # prod runs in us-east-1: the edge region is the same, so one key
    groups = prod.of_type(LOG_GROUP)
    assert len(groups) == 14  # the scanner's 12 (Lambda, API/task, database, flow logs) + 2 WAF destinations
    assert {g.inputs.get("kmsKeyId") for g in groups} == {key.outputs["arn"]}
    names = {g.inputs["name"] for g in groups}
    assert {"/aws/rds/instance/shipyard-prod-db/postgresql", "/vpc/shipyard-prod-flow-logs"} <= names
    assert {"/ecs/shipyard-prod/api", "/aws/lambda/shipyard-prod-auto-confirm"} <= names
    # Created with the key: the key (and its policy) exists before any group that uses it.
    assert all(key.urn in g.depends_on for g in groups)


def test_log_key_policy_admits_cloudwatch_logs_of_its_region_only(prod: StackRun) -> None:
    (key,) = _log_keys(prod)
    assert key.inputs["enableKeyRotation"] is True
    statements = {s["Sid"]: s for s in _statements(key.inputs["policy"])}
    logs = statements["CloudWatchLogsEncryptsThisAccountsLogGroups"]
    assert logs["Principal"] == {"Service": "logs.us-east-1.amazonaws.com"}
    assert logs["Condition"] == {
        "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:*"}
    }
    assert set(logs["Action"]) == set(kms.LOG_KEY_ACTIONS)


def test_outside_us_east_1_the_cloudfront_waf_logs_get_the_us_east_1_key() -> None:
    run = evaluate("prod", config_overrides={"aws:region": "eu-west-1"})
    keys = {_region_of(run, k): k for k in _log_keys(run)}
    assert sorted(keys) == ["eu-west-1", "us-east-1"]
    for region, key in keys.items():
        principals = {s["Principal"].get("Service") for s in _statements(key.inputs["policy"])}
        assert f"logs.{region}.amazonaws.com" in principals
    for group in run.of_type(LOG_GROUP):
        region = _region_of(run, group)
        assert group.inputs["kmsKeyId"] == keys[region].outputs["arn"], group.name
    edge_group = run.named("waf-cloudfront-logs")
    assert _region_of(run, edge_group) == "us-east-1"  # WAF takes a CloudFront ACL's logs in us-east-1 only


def test_staging_keeps_default_log_encryption(staging: StackRun) -> None:
    """A key is 1 USD/month; staging's logs hold nothing prod's do not (README "Security logging...")."""
    assert _log_keys(staging) == []
    assert all(not g.inputs.get("kmsKeyId") for g in staging.of_type(LOG_GROUP))


# --------------------------------------------------------------------------------------------- WAF logs


def test_each_web_acl_logs_to_its_own_destination_with_credentials_redacted(prod: StackRun) -> None:
    configs = prod.of_type(WAF_LOGGING)
    assert len(configs) == 2
    for config in configs:
        acl = next(a for a in prod.of_type("aws:wafv2/webAcl:WebAcl") if a.urn in config.depends_on)
        assert config.inputs["resourceArn"] == acl.outputs["arn"]
        (destination,) = config.inputs["logDestinationConfigs"]
        group = next(g for g in prod.of_type(LOG_GROUP) if g.outputs["arn"] == destination)
        assert group.inputs["name"].startswith(LOG_GROUP_PREFIX)
        assert not destination.endswith(":*")  # WAF refuses the ":*" form of a log group ARN
        assert group.inputs["retentionInDays"] == 90  # prod's tier default
        # Destination and its delivery policy exist before the logging configuration.
        policy = next(
            p
            for p in prod.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
            if prod.component_of(p) == prod.component_of(config)
        )
        assert {group.urn, policy.urn} <= set(config.depends_on)
        redacted = [f["singleHeader"]["name"] for f in config.inputs["redactedFields"]]
        assert redacted == list(REDACTED_HEADERS) == ["authorization", "cookie"]


def test_log_delivery_policy_is_held_to_this_account(prod: StackRun) -> None:
    for policy in prod.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy"):
        (statement,) = _statements(policy.inputs["policyDocument"])
        assert statement["Principal"] == {"Service": "delivery.logs.amazonaws.com"}
        assert statement["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert statement["Resource"].startswith(f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{LOG_GROUP_PREFIX}")
        assert statement["Condition"] == {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:logs:us-east-1:{ACCOUNT}:*"},
        }


def test_waf_log_delivery_policies_are_attached_to_their_log_group_not_account_wide(prod: StackRun) -> None:
    """A CloudWatch Logs resource policy without `resourceArn` is account-scoped, and a region allows 10 of those
    per account, a quota that cannot be raised (CloudWatch Logs quotas: "Resource policies: up to 10 CloudWatch
    Logs resource policies per Region per account"; pulumi-aws LogResourcePolicy: "the number of resource
    policies without `resource_arn` is limited to 10 per region"). Two per stack (one per web ACL) would let
    five stacks in a region exhaust it and fail every later `pulumi up`, including other services' log
    delivery. Attached to the log group instead (policy scope RESOURCE), they count against nothing; since 2026
    AWS itself sets vended-log permissions at the log-group level when a group has no policy
    (hashicorp/terraform-provider-aws#47111; "Logs sent to CloudWatch Logs", AWS-logs-infrastructure-CWL)."""
    policies = prod.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
    assert len(policies) == 2
    for policy in policies:
        group = next(g for g in prod.of_type(LOG_GROUP) if prod.component_of(g) == prod.component_of(policy))
        assert policy.inputs.get("resourceArn") == group.outputs["arn"]
        assert "policyName" not in policy.inputs  # exactly one of the two; a name makes it account-scoped
        assert group.urn in policy.depends_on


def test_outside_us_east_1_each_waf_log_delivery_policy_names_its_own_regions_group() -> None:
    """The CloudFront ACL's log group lives in us-east-1 whatever the stack's region: its delivery policy (a
    us-east-1 resource policy) must grant that group, and its logging configuration must point at it. WAF
    accepts a CloudFront ACL's CloudWatch destination only in us-east-1
    (https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html), and a resource policy whose
    Resource names another region's group grants nothing, so delivery would be refused."""
    run = evaluate("prod", config_overrides={"aws:region": "eu-west-1"})
    policies = run.of_type("aws:cloudwatch/logResourcePolicy:LogResourcePolicy")
    assert len(policies) == 2
    for policy in policies:
        region = _region_of(run, policy)
        group = next(g for g in run.of_type(LOG_GROUP) if run.component_of(g) == run.component_of(policy))
        assert _region_of(run, group) == region
        assert group.outputs["arn"].startswith(f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{LOG_GROUP_PREFIX}")
        (statement,) = _statements(policy.inputs["policyDocument"])
        assert statement["Resource"] == f"{group.outputs['arn']}:log-stream:*"
        assert statement["Condition"]["ArnLike"] == {"aws:SourceArn": f"arn:aws:logs:{region}:{ACCOUNT}:*"}
    config = next(c for c in run.of_type(WAF_LOGGING) if "cloudfront" in c.name)
    (destination,) = config.inputs["logDestinationConfigs"]
    assert destination.startswith(f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{LOG_GROUP_PREFIX}")


def test_waf_log_retention_comes_from_config() -> None:
    # WAF protects the ALB (not an HTTP API): a staging with WAF selects the ALB front door too.
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:waf": {"enabled": True, "logRetentionDays": 14},
            "shipyard:service": {"maxCount": 2, "frontDoor": "alb"},
        },
    )
    groups = [g for g in run.of_type(LOG_GROUP) if g.inputs["name"].startswith(LOG_GROUP_PREFIX)]
    assert len(groups) == 2 and {g.inputs["retentionInDays"] for g in groups} == {14}


# --------------------------------------------------------------------------------------------- S3 access logs


def _log_bucket(run: StackRun) -> Resource:
    return run.named("s3-access-logs-bucket")


def test_uploads_and_spa_buckets_log_into_the_access_log_bucket(any_stack: StackRun) -> None:
    log_bucket = _log_bucket(any_stack)
    assert log_bucket.inputs["bucketPrefix"] == f"shipyard-{any_stack.stack}-s3-access-logs-"
    loggings = {r.name: r for r in any_stack.of_type(BUCKET_LOGGING)}
    assert sorted(loggings) == ["s3-access-logs-frontend", "s3-access-logs-uploads"]
    sources = {
        "uploads": any_stack.named("uploads-bucket").outputs["bucket"],
        "frontend": any_stack.named("frontend-bucket").outputs["bucket"],
    }
    policy = any_stack.named("s3-access-logs-policy")
    for label, source in sources.items():
        logging = loggings[f"s3-access-logs-{label}"]
        assert logging.inputs["bucket"] == source
        assert logging.inputs["targetBucket"] == log_bucket.outputs["bucket"]
        assert logging.inputs["targetPrefix"] == f"{label}/"
        assert policy.urn in logging.depends_on  # the grant exists before S3 checks it
    # Never logged into itself.
    assert all(r.inputs["bucket"] != log_bucket.outputs["bucket"] for r in any_stack.of_type(BUCKET_LOGGING))


def test_log_bucket_grants_s3_logging_per_source_and_denies_plain_http(any_stack: StackRun) -> None:
    log_arn = _log_bucket(any_stack).outputs["arn"]
    statements = _statements(any_stack.named("s3-access-logs-policy").inputs["policy"])
    denies = [s for s in statements if s["Effect"] == "Deny"]
    assert {"DenyInsecureTransport", "DenyOutdatedTls"} == {s["Sid"] for s in denies}
    grants = {s["Resource"]: s for s in statements if s["Effect"] == "Allow"}
    uploads_arn = any_stack.named("uploads-bucket").outputs["arn"]
    frontend_arn = any_stack.named("frontend-bucket").outputs["arn"]
    assert sorted(grants) == [f"{log_arn}/frontend/*", f"{log_arn}/uploads/*"]
    for prefix, source_arn in (("uploads", uploads_arn), ("frontend", frontend_arn)):
        grant = grants[f"{log_arn}/{prefix}/*"]
        assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"}
        assert grant["Action"] == "s3:PutObject"
        assert grant["Condition"] == {
            "ArnLike": {"aws:SourceArn": source_arn},
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
        }


def test_log_bucket_is_private_acl_less_sse_s3_and_expires(any_stack: StackRun) -> None:
    block = any_stack.named("s3-access-logs-public-access").inputs
    assert all(
        block[f] is True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    ownership = any_stack.named("s3-access-logs-ownership").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    encryption = any_stack.named("s3-access-logs-encryption").inputs
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    (rule,) = any_stack.named("s3-access-logs-lifecycle").inputs["rules"]
    assert rule["status"] == "Enabled" and rule["expiration"]["days"] == 90
    assert _log_bucket(any_stack).inputs["forceDestroy"] is (any_stack.stack != "prod")


def test_access_log_retention_comes_from_config() -> None:
    run = evaluate("staging", config_overrides={"shipyard:uploads": {"accessLogRetentionDays": 30}})
    (rule,) = run.named("s3-access-logs-lifecycle").inputs["rules"]
    assert rule["expiration"]["days"] == 30


# --------------------------------------------------------------------------------------------- confused deputy


def _trust(role: Resource) -> dict[str, Any]:
    (statement,) = _statements(role.inputs["assumeRolePolicy"])
    return statement


def test_scheduler_roles_trust_only_this_accounts_default_schedule_group(any_stack: StackRun) -> None:
    roles = [r for r in any_stack.of_type(ROLE) if _trust(r)["Principal"] == {"Service": "scheduler.amazonaws.com"}]
    assert len(roles) >= 3  # alert sweep, health checks, auto-confirm, restore-test age
    for role in roles:
        assert _trust(role)["Condition"] == {
            "StringEquals": {"aws:SourceAccount": ACCOUNT},
            "ArnLike": {"aws:SourceArn": f"arn:aws:scheduler:us-east-1:{ACCOUNT}:schedule-group/default"},
        }
    # The condition holds only because every schedule is in the default group.
    schedules = any_stack.of_type("aws:scheduler/schedule:Schedule")
    assert schedules and all(s.inputs.get("groupName") in (None, trust.DEFAULT_SCHEDULE_GROUP) for s in schedules)


def test_scheduled_ecs_tasks_role_carries_the_same_condition() -> None:
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:jobs": {
                "timezone": "America/Sao_Paulo",
                "scheduledTasks": [{"name": "report", "schedule": "cron(0 6 * * ? *)", "command": ["report"]}],
            }
        },
    )
    role = run.named("jobs-role")
    assert _trust(role)["Condition"]["ArnLike"]["aws:SourceArn"].endswith(":schedule-group/default")


def test_flow_log_and_enhanced_monitoring_roles_are_held_to_their_resources(prod: StackRun) -> None:
    flow = _trust(prod.named("network-flow-logs-role"))
    assert flow["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert flow["Condition"] == {
        "StringEquals": {"aws:SourceAccount": ACCOUNT},
        "ArnLike": {"aws:SourceArn": f"arn:aws:ec2:us-east-1:{ACCOUNT}:vpc-flow-log/*"},
    }
    monitoring = _trust(prod.named("database-monitoring-role"))
    instance = prod.one("aws:rds/instance:Instance")
    assert monitoring["Principal"] == {"Service": "monitoring.rds.amazonaws.com"}
    assert monitoring["Condition"]["ArnLike"] == {"aws:SourceArn": instance.outputs["arn"]}
    assert monitoring["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}


def test_alert_topic_key_lets_publishers_encrypt_for_this_accounts_topics_only(prod: StackRun) -> None:
    for key in (k for k in prod.of_type(KEY) if "topic" in k.name):
        grants = [s for s in _statements(key.inputs["policy"]) if "Service" in s["Principal"]]
        (grant,) = grants
        assert set(grant["Principal"]["Service"]) == set(kms.ALARM_TOPIC_PUBLISHERS)
        assert grant["Condition"] == {
            "ArnLike": {"kms:EncryptionContext:aws:sns:topicArn": f"arn:aws:sns:*:{ACCOUNT}:*"}
        }
        topics = [
            t for t in prod.of_type("aws:sns/topic:Topic") if t.inputs.get("kmsMasterKeyId") == key.outputs["arn"]
        ]
        assert topics and all(t.outputs["arn"].startswith(f"arn:aws:sns:us-east-1:{ACCOUNT}:") for t in topics)


# --------------------------------------------------------------------------------------------- least privilege


def _function_policy(run: StackRun, function: Resource) -> list[dict[str, Any]]:
    component = run.component_of(function)
    assert component is not None
    policy = next(
        p
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if run.component_of(p) == component and "scheduler" not in p.name
    )
    return _statements(policy.inputs["policy"])


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_vpc_lambdas_get_eni_actions_inline_and_no_managed_policy(stack: str, stack_runs: dict[str, StackRun]) -> None:
    run = stack_runs[stack]
    attached = [a.inputs["policyArn"] for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")]
    assert not [arn for arn in attached if "AWSLambda" in arn]
    functions = run.of_type("aws:lambda/function:Function")
    in_vpc = [f for f in functions if f.inputs.get("vpcConfig")]
    assert in_vpc and len(in_vpc) < len(functions)
    for function in functions:
        statements = _function_policy(run, function)
        for statement in statements:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            logs = [a for a in actions if a.startswith("logs:")]
            assert not logs or statement["Resource"] not in ("*", ["*"]), function.name  # logs only on its own group
        eni = [s for s in statements if s.get("Sid") == "LambdaManagesItsVpcNetworkInterfaces"]
        if function in in_vpc:
            (statement,) = eni
            assert statement["Action"] == list(VPC_NETWORK_INTERFACE_ACTIONS)
            assert statement["Resource"] == [f"arn:aws:ec2:us-east-1:{ACCOUNT}:*/*"]
            (describe,) = [s for s in statements if s.get("Sid") == "LambdaDescribesItsVpcPlacement"]
            assert describe["Resource"] == ["*"]
            assert set(describe["Action"]) == {"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"}
        else:
            assert eni == [], function.name

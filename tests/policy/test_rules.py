"""Every rule fires on a resource that violates it and stays quiet on a compliant one.

The resources are synthetic but shaped as the engine hands them to a policy pack: camelCase inputs behind
pulumi_policy's unknown-checking proxy, JSON documents as strings, the provider's inputs alongside.
"""

from __future__ import annotations

import builtins
import importlib
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import unknown_checking_proxy

from infra.aws import kms, trust
from infra.policy.pack import PackSettings, resource_policy, stack_policy
from infra.policy.rules import REQUIRED_TAGS, RULES, STACK_RULES, Rule

TAGS = {"project": "shipyard", "stack": "test", "tier": "prod", "owner": "platform-team", "managed-by": "pulumi"}
PROVIDER_PROPS = {"region": "us-east-1", "defaultTags": json.dumps({"tags": TAGS})}
GOOD_PROVIDER = ("aws", PROVIDER_PROPS)


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def _containers(**overrides: Any) -> str:
    container = {
        "name": "api",
        "image": "example/api:1",
        "readonlyRootFilesystem": True,
        "logConfiguration": {"logDriver": "awslogs", "options": {}},
        "environment": [{"name": "DB_SECRET_ARN", "value": "arn:aws:secretsmanager:us-east-1:1:secret:db"}],
        **overrides,
    }
    return json.dumps([container])


TLS_DENY = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
OAC_READ = {
    "Sid": "CloudFrontRead",
    "Effect": "Allow",
    "Principal": {"Service": "cloudfront.amazonaws.com"},
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::b/*",
    "Condition": {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::1:distribution/E1"}},
}
BEHAVIOR = {"targetOriginId": "s3", "viewerProtocolPolicy": "redirect-to-https", "allowedMethods": ["GET", "HEAD"]}
S3_ORIGIN = {"originId": "s3", "domainName": "b.s3.us-east-1.amazonaws.com", "originAccessControlId": "E2OAC"}
API_ORIGIN = {
    "originId": "api",
    "domainName": "api.example.com",
    "customOriginConfig": {
        "httpPort": 80,
        "httpsPort": 443,
        "originProtocolPolicy": "https-only",
        "originSslProtocols": ["TLSv1.2"],
    },
}
DISTRIBUTION = {
    "enabled": True,
    "defaultRootObject": "index.html",
    "origins": [S3_ORIGIN, API_ORIGIN],
    "defaultCacheBehavior": BEHAVIOR,
    "orderedCacheBehaviors": [{**BEHAVIOR, "pathPattern": "/api/*", "targetOriginId": "api"}],
    "viewerCertificate": {"acmCertificateArn": "arn:aws:acm:us-east-1:1:certificate/x", "sslSupportMethod": "sni-only"},
}
RDS = {
    "engine": "postgres",
    "publiclyAccessible": False,
    "storageEncrypted": True,
    "multiAz": True,
    "deletionProtection": True,
    "backupRetentionPeriod": 30,
    "autoMinorVersionUpgrade": True,
    "enabledCloudwatchLogsExports": ["postgresql", "upgrade"],
    "monitoringInterval": 60,
}
ALB = {
    "loadBalancerType": "application",
    "dropInvalidHeaderFields": True,
    "enableDeletionProtection": True,
    "accessLogs": {"bucket": "logs", "enabled": True},
}
KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
WAF_LOG_ARN = "arn:aws:logs:us-east-1:123456789012:log-group:aws-waf-logs-shipyard-prod-waf-regional"
UNSCOPED_TOPIC_GRANT = {
    "Sid": "AwsServicesPublishToEncryptedTopics",
    "Effect": "Allow",
    "Principal": {"Service": ["cloudwatch.amazonaws.com", "events.amazonaws.com"]},
    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
    "Resource": "*",
}


def _header(name: str) -> dict[str, Any]:
    return {"singleHeader": {"name": name}}


def _trust(service: str | list[str]) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}


WEB_INGRESS = [{"protocol": "tcp", "fromPort": 443, "toPort": 443, "cidrBlocks": ["0.0.0.0/0"]}]


@dataclass(frozen=True)
class Case:
    type: str
    bad: dict[str, Any]
    good: dict[str, Any]
    bad_provider: tuple[str, dict[str, Any]] | None = GOOD_PROVIDER
    good_provider: tuple[str, dict[str, Any]] | None = GOOD_PROVIDER
    extra_bad: list[dict[str, Any]] = field(default_factory=list)
    """More violating variants (each must fire too)."""
    good_type: str | None = None
    """For rules that forbid a resource type outright: the compliant alternative's type."""


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


RDS_I = "aws:rds/instance:Instance"
TASK = "aws:ecs/taskDefinition:TaskDefinition"
SG = "aws:ec2/securityGroup:SecurityGroup"

CASES: dict[str, Case] = {
    "rds-not-public": Case(RDS_I, _with(RDS, publiclyAccessible=True), RDS),
    "rds-encrypted": Case(RDS_I, _with(RDS, storageEncrypted=False), RDS, extra_bad=[{"engine": "postgres"}]),
    "rds-cluster-encrypted": Case("aws:rds/cluster:Cluster", {"storageEncrypted": False}, {"storageEncrypted": True}),
    "rds-multi-az": Case(RDS_I, _with(RDS, multiAz=False), RDS),
    "rds-instance-deletion-protection": Case(RDS_I, _with(RDS, deletionProtection=False), RDS),
    "rds-cluster-deletion-protection": Case("aws:rds/cluster:Cluster", {}, {"deletionProtection": True}),
    "rds-log-exports": Case(RDS_I, _with(RDS, enabledCloudwatchLogsExports=["upgrade"]), RDS),
    "rds-backups": Case(
        RDS_I, _with(RDS, backupRetentionPeriod=1), RDS, extra_bad=[_with(RDS, backupRetentionPeriod=0)]
    ),
    "rds-minor-upgrades": Case(RDS_I, _with(RDS, autoMinorVersionUpgrade=False), RDS),
    "rds-enhanced-monitoring": Case(RDS_I, _with(RDS, monitoringInterval=0), RDS),
    "rds-force-ssl": Case(
        "aws:rds/parameterGroup:ParameterGroup",
        {"family": "postgres17", "parameters": [{"name": "rds.force_ssl", "value": "0"}]},
        {"family": "postgres17", "parameters": [{"name": "rds.force_ssl", "value": "1"}]},
    ),
    "s3-public-access-block": Case(
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        {"bucket": "b", "blockPublicAcls": True, "blockPublicPolicy": False, "ignorePublicAcls": True},
        {
            "bucket": "b",
            "blockPublicAcls": True,
            "blockPublicPolicy": True,
            "ignorePublicAcls": True,
            "restrictPublicBuckets": True,
        },
    ),
    "s3-no-public-acl": Case("aws:s3/bucket:Bucket", {"acl": "public-read"}, {"bucket": "b"}),
    "s3-tls-only": Case(
        "aws:s3/bucketPolicy:BucketPolicy", {"policy": _doc(OAC_READ)}, {"policy": _doc(TLS_DENY, OAC_READ)}
    ),
    "s3-policy-not-public": Case(
        "aws:s3/bucketPolicy:BucketPolicy",
        {"policy": _doc(TLS_DENY, {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"})},
        {"policy": _doc(TLS_DENY, OAC_READ)},
    ),
    "cloudfront-default-root-object": Case(
        "aws:cloudfront/distribution:Distribution", _with(DISTRIBUTION, defaultRootObject=""), DISTRIBUTION
    ),
    "cloudfront-https-only": Case(
        "aws:cloudfront/distribution:Distribution",
        _with(
            DISTRIBUTION, orderedCacheBehaviors=[{**BEHAVIOR, "pathPattern": "/x", "viewerProtocolPolicy": "allow-all"}]
        ),
        DISTRIBUTION,
    ),
    "cloudfront-origin-encrypted": Case(
        "aws:cloudfront/distribution:Distribution",
        _with(
            DISTRIBUTION,
            origins=[S3_ORIGIN, {**API_ORIGIN, "customOriginConfig": {"originProtocolPolicy": "http-only"}}],
        ),
        DISTRIBUTION,
    ),
    "cloudfront-origin-tls": Case(
        "aws:cloudfront/distribution:Distribution",
        _with(
            DISTRIBUTION,
            origins=[
                {
                    **API_ORIGIN,
                    "customOriginConfig": {
                        "originProtocolPolicy": "https-only",
                        "originSslProtocols": ["TLSv1", "TLSv1.2"],
                    },
                }
            ],
        ),
        DISTRIBUTION,
    ),
    "cloudfront-oac": Case(
        "aws:cloudfront/distribution:Distribution",
        _with(DISTRIBUTION, origins=[{"originId": "s3", "domainName": "b.s3.amazonaws.com"}]),
        DISTRIBUTION,
        extra_bad=[_with(DISTRIBUTION, origins=[{"originId": "s3", "s3OriginConfig": {"originAccessIdentity": "x"}}])],
    ),
    "cloudfront-sni": Case(
        "aws:cloudfront/distribution:Distribution",
        _with(DISTRIBUTION, viewerCertificate={"acmCertificateArn": "arn:x", "sslSupportMethod": "vip"}),
        DISTRIBUTION,
    ),
    "elb-http-redirects-to-https": Case(
        "aws:lb/listener:Listener",
        {"protocol": "HTTP", "port": 80, "defaultActions": [{"type": "forward", "targetGroupArn": "arn:tg"}]},
        {
            "protocol": "HTTP",
            "port": 80,
            "defaultActions": [
                {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
            ],
        },
    ),
    "elb-drop-invalid-headers": Case(
        "aws:lb/loadBalancer:LoadBalancer", _with(ALB, dropInvalidHeaderFields=False), ALB
    ),
    "elb-access-logs": Case("aws:lb/loadBalancer:LoadBalancer", _with(ALB, accessLogs={"bucket": "l"}), ALB),
    "apigw-v2-access-logs": Case(
        "aws:apigatewayv2/stage:Stage",
        {"apiId": "a", "name": "$default"},
        {"apiId": "a", "name": "$default", "accessLogSettings": {"destinationArn": "arn:aws:logs:r:1:log-group:g"}},
    ),
    "elb-deletion-protection": Case(
        "aws:lb/loadBalancer:LoadBalancer", _with(ALB, enableDeletionProtection=False), ALB
    ),
    "ecs-no-public-ip": Case(
        "aws:ecs/service:Service",
        {"networkConfiguration": {"subnets": ["s"], "assignPublicIp": True}},
        {"networkConfiguration": {"subnets": ["s"], "assignPublicIp": False}},
    ),
    "ecs-no-host-pid": Case(
        TASK, {"pidMode": "host", "containerDefinitions": _containers()}, {"containerDefinitions": _containers()}
    ),
    "ecs-not-privileged": Case(
        TASK, {"containerDefinitions": _containers(privileged=True)}, {"containerDefinitions": _containers()}
    ),
    "ecs-read-only-root": Case(
        TASK,
        {"containerDefinitions": _containers(readonlyRootFilesystem=False)},
        {"containerDefinitions": _containers()},
    ),
    "ecs-no-secrets-in-env": Case(
        TASK,
        {"containerDefinitions": _containers(environment=[{"name": "JWT_SECRET_KEY", "value": "x"}])},
        {"containerDefinitions": _containers()},
        extra_bad=[
            {"containerDefinitions": _containers(environment=[{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA"}])},
            {
                "containerDefinitions": _containers(
                    environment=[{"name": "WEBHOOK", "value": "PLACEHOLDER-NOT-A-SECRET:x"}]
                )
            },
        ],
    ),
    "ecs-logging": Case(
        TASK, {"containerDefinitions": _containers(logConfiguration=None)}, {"containerDefinitions": _containers()}
    ),
    "ecs-container-insights": Case(
        "aws:ecs/cluster:Cluster",
        {"settings": [{"name": "containerInsights", "value": "disabled"}]},
        {"settings": [{"name": "containerInsights", "value": "enhanced"}]},
    ),
    "lambda-not-public": Case(
        "aws:lambda/permission:Permission",
        {"action": "lambda:InvokeFunction", "principal": "*"},
        {"action": "lambda:InvokeFunction", "principal": "sns.amazonaws.com", "sourceArn": "arn:aws:sns:::t"},
        extra_bad=[{"action": "lambda:InvokeFunctionUrl", "principal": "*", "functionUrlAuthType": "NONE"}],
    ),
    "lambda-supported-runtime": Case(
        "aws:lambda/function:Function",
        {"runtime": "python3.8"},
        {"runtime": "python3.13"},
        extra_bad=[{"runtime": "nodejs16.x"}],
    ),
    "lambda-no-secrets-in-env": Case(
        "aws:lambda/function:Function",
        {"runtime": "python3.13", "environment": {"variables": {"SLACK_TOKEN": "xoxb"}}},
        {"runtime": "python3.13", "environment": {"variables": {"DB_SECRET_ARN": "arn:x", "STACK": "prod"}}},
    ),
    "iam-no-admin-policy": Case(
        "aws:iam/rolePolicy:RolePolicy",
        {"policy": _doc({"Effect": "Allow", "Action": "*", "Resource": "*"})},
        {"policy": _doc({"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": "arn:aws:sqs:::q"})},
        extra_bad=[{"policy": _doc({"Effect": "Allow", "Action": ["*"], "Resource": ["*"]})}],
    ),
    "iam-no-service-wildcards": Case(
        "aws:iam/policy:Policy",
        {"policy": _doc({"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"})},
        {"policy": _doc({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})},
    ),
    "iam-no-long-lived-keys": Case(
        "aws:iam/accessKey:AccessKey", {"user": "ci"}, {"assumeRolePolicy": "{}"}, good_type="aws:iam/role:Role"
    ),
    "iam-no-admin-attachment": Case(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/AdministratorAccess"},
        {"role": "r", "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"},
    ),
    "ec2-default-sg-closed": Case(
        "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", {"vpcId": "v", "ingress": WEB_INGRESS}, {"vpcId": "v"}
    ),
    "ec2-subnet-no-auto-public-ip": Case(
        "aws:ec2/subnet:Subnet", {"mapPublicIpOnLaunch": True}, {"mapPublicIpOnLaunch": False}
    ),
    "ec2-only-web-ports-public": Case(
        SG,
        {"ingress": [{"protocol": "tcp", "fromPort": 8443, "toPort": 8443, "cidrBlocks": ["0.0.0.0/0"]}]},
        {
            "ingress": [
                *WEB_INGRESS,
                {"protocol": "tcp", "fromPort": 8000, "toPort": 8000, "cidrBlocks": ["10.0.0.0/16"]},
            ]
        },
        extra_bad=[{"ingress": [{"protocol": "-1", "fromPort": 0, "toPort": 0, "ipv6CidrBlocks": ["::/0"]}]}],
    ),
    "ec2-no-public-admin-ports": Case(
        "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
        {"ipProtocol": "tcp", "fromPort": 22, "toPort": 22, "cidrIpv4": "0.0.0.0/0"},
        {"ipProtocol": "tcp", "fromPort": 5432, "toPort": 5432, "referencedSecurityGroupId": "sg-1"},
        extra_bad=[
            {"ipProtocol": "tcp", "fromPort": 5000, "toPort": 6000, "cidrIpv6": "::/0"},
        ],
    ),
    "sns-encrypted": Case("aws:sns/topic:Topic", {"name": "t"}, {"kmsMasterKeyId": "arn:aws:kms:us-east-1:1:key/k"}),
    "sns-customer-managed-key": Case(
        "aws:sns/topic:Topic", {"kmsMasterKeyId": "alias/aws/sns"}, {"kmsMasterKeyId": "arn:aws:kms:us-east-1:1:key/k"}
    ),
    "sqs-encrypted": Case("aws:sqs/queue:Queue", {"sqsManagedSseEnabled": False}, {"sqsManagedSseEnabled": True}),
    "dynamodb-pitr": Case(
        "aws:dynamodb/table:Table",
        {"pointInTimeRecovery": {"enabled": False}},
        {"pointInTimeRecovery": {"enabled": True}},
    ),
    "secret-recovery-window": Case(
        "aws:secretsmanager/secret:Secret", {"recoveryWindowInDays": 0}, {"recoveryWindowInDays": 7}
    ),
    "kms-rotation": Case("aws:kms/key:Key", {"description": "k"}, {"enableKeyRotation": True}),
    "backup-vault-encrypted": Case("aws:backup/vault:Vault", {"name": "v"}, {"name": "v", "kmsKeyArn": "arn:k"}),
    "backup-retention": Case(
        "aws:backup/plan:Plan",
        {"rules": [{"ruleName": "daily", "lifecycle": {"deleteAfter": 3}}]},
        {"rules": [{"ruleName": "daily", "lifecycle": {"deleteAfter": 30}}]},
    ),
    "elasticache-encrypted-at-rest": Case(
        "aws:elasticache/replicationGroup:ReplicationGroup",
        {"atRestEncryptionEnabled": False},
        {"atRestEncryptionEnabled": True},
    ),
    "elasticache-encrypted-in-transit": Case(
        "aws:elasticache/replicationGroup:ReplicationGroup", {}, {"transitEncryptionEnabled": True}
    ),
    "waf-has-rules": Case("aws:wafv2/webAcl:WebAcl", {"rules": []}, {"rules": [{"name": "common", "priority": 0}]}),
    "ecr-scan-on-push": Case("aws:ecr/repository:Repository", {}, {"imageScanningConfiguration": {"scanOnPush": True}}),
    "ecr-immutable-tags": Case(
        "aws:ecr/repository:Repository", {"imageTagMutability": "MUTABLE"}, {"imageTagMutability": "IMMUTABLE"}
    ),
    "alarm-has-action": Case(
        "aws:cloudwatch/metricAlarm:MetricAlarm",
        {"alarmActions": []},
        {"alarmActions": ["arn:aws:sns:us-east-1:1:critical"]},
        extra_bad=[{"alarmActions": ["arn:aws:sns:us-east-1:1:critical"], "actionsEnabled": False}],
    ),
    # Issue 16: the shapes that were deployed before (bad) against what the program builds now (good).
    "log-group-cmk": Case(
        "aws:cloudwatch/logGroup:LogGroup",
        {"name": "/aws/lambda/x", "retentionInDays": 30},
        {"name": "/aws/lambda/x", "retentionInDays": 30, "kmsKeyId": KEY_ARN},
    ),
    "waf-logging-config": Case(
        "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
        {"logDestinationConfigs": [WAF_LOG_ARN], "redactedFields": [_header("authorization")]},
        {"logDestinationConfigs": [WAF_LOG_ARN], "redactedFields": [_header("authorization"), _header("Cookie")]},
        extra_bad=[
            {"logDestinationConfigs": [WAF_LOG_ARN]},
            {
                "logDestinationConfigs": ["arn:aws:logs:us-east-1:1:log-group:/waf/prod"],
                "redactedFields": [_header("authorization"), _header("cookie")],
            },
        ],
    ),
    "iam-no-broad-lambda-policies": Case(
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        {"role": "fn", "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"},
        {"role": "db", "policyArn": "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"},
        extra_bad=[{"role": "fn", "policyArn": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}],
    ),
    "iam-trust-confused-deputy": Case(
        "aws:iam/role:Role",
        {"assumeRolePolicy": _doc(_trust("scheduler.amazonaws.com"))},
        {"assumeRolePolicy": trust.scheduler_trust_policy("123456789012", "us-east-1")},
        extra_bad=[
            {"assumeRolePolicy": _doc(_trust("vpc-flow-logs.amazonaws.com"))},
            {"assumeRolePolicy": _doc(_trust(["lambda.amazonaws.com", "monitoring.rds.amazonaws.com"]))},
        ],
    ),
    "kms-service-grants-scoped": Case(
        "aws:kms/key:Key",
        {"policy": _doc(UNSCOPED_TOPIC_GRANT)},
        {"policy": kms.alarm_topic_key_policy("123456789012")},
        extra_bad=[{"policy": _doc({**UNSCOPED_TOPIC_GRANT, "Condition": {"Bool": {"aws:SecureTransport": "true"}}})}],
    ),
    "log-group-retention": Case(
        "aws:cloudwatch/logGroup:LogGroup", {"name": "/x"}, {"name": "/x", "retentionInDays": 30}
    ),
    "provider-default-tags": Case(
        "pulumi:providers:aws",
        {"region": "us-east-1", "defaultTags": json.dumps({"tags": {"project": "shipyard"}})},
        PROVIDER_PROPS,
        extra_bad=[{"region": "us-east-1"}],
    ),
    "required-tags": Case(
        "aws:sqs/queue:Queue",
        {"name": "q"},
        {"name": "q"},
        bad_provider=("aws", {"region": "us-east-1"}),
    ),
    "explicit-provider": Case(
        "aws:sqs/queue:Queue", {"name": "q", "tags": TAGS}, {"name": "q"}, bad_provider=("default_7_51_1", {})
    ),
}


def _args(type_: str, props: dict[str, Any], provider: tuple[str, dict[str, Any]] | None) -> ResourceValidationArgs:
    policy_provider = None
    if provider is not None:
        name, provider_props = provider
        policy_provider = PolicyProviderResource(
            "pulumi:providers:aws",
            unknown_checking_proxy(provider_props),
            f"urn:pulumi:test::shipyard::pulumi:providers:aws::{name}",
            name,
        )
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    urn = f"urn:pulumi:test::shipyard::{type_}::synthetic"
    return ResourceValidationArgs(
        type_, unknown_checking_proxy(props), urn, "synthetic", options, policy_provider, None
    )


def _violations(
    rule: Rule, type_: str, props: dict[str, Any], provider: tuple[str, dict[str, Any]] | None
) -> list[str]:
    messages: list[str] = []
    policy = resource_policy(rule, PackSettings(tier="prod"))
    policy.validate(_args(type_, props, provider), lambda message, urn=None: messages.append(message))
    return messages


RULES_BY_ID = {rule.id: rule for rule in RULES}


def test_every_rule_has_a_case_and_there_are_at_least_30() -> None:
    assert len(RULES) >= 30
    assert sorted(CASES) == sorted(RULES_BY_ID)
    assert len(RULES_BY_ID) == len(RULES), "rule ids must be unique"


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_fires_on_violation_and_passes_compliant(rule_id: str) -> None:
    rule, case = RULES_BY_ID[rule_id], CASES[rule_id]
    assert rule.applies_to(case.type)
    bad = _violations(rule, case.type, case.bad, case.bad_provider)
    assert bad, f"{rule_id} did not fire on {case.bad}"
    for variant in case.extra_bad:
        assert _violations(rule, case.type, variant, case.bad_provider), f"{rule_id} did not fire on {variant}"
    assert _violations(rule, case.good_type or case.type, case.good, case.good_provider) == []


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_rule_ignores_other_resource_types(rule_id: str) -> None:
    rule, case = RULES_BY_ID[rule_id], CASES[rule_id]
    other = "digitalocean:index/app:App" if "*aws" in rule.types else "aws:ec2/eip:Eip"
    assert _violations(rule, other, case.bad, case.bad_provider) == []


@pytest.mark.parametrize("rule", [*RULES, *STACK_RULES], ids=lambda r: r.id)
def test_rule_names_its_control_and_prod_is_never_weaker(rule: Any) -> None:
    assert rule.fsbp in rule.description and rule.fsbp
    strength = {"disabled": 0, "advisory": 1, "mandatory": 2}
    assert strength[rule.prod] >= strength[rule.staging]
    assert strength[rule.prod] >= 1


def _engine_properties(type_: str) -> set[str]:
    """Engine names of a pulumi-aws resource's properties, read from the SDK's getters."""
    _, module_path, class_name = type_.split(":")
    module = module_path.split("/")[0]
    cls = getattr(importlib.import_module(f"pulumi_aws.{'lambda_' if module == 'lambda' else module}"), class_name)
    names = set()
    for base in cls.__mro__:
        for attribute in vars(base).values():
            if isinstance(attribute, builtins.property):
                name = getattr(attribute.fget, "_pulumi_name", None)
                if name:
                    names.add(name)
    return names


@pytest.mark.parametrize("rule", [r for r in RULES if r.fields and r.types[0].startswith("aws:")], ids=lambda r: r.id)
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_rule_reads_properties_the_resource_really_has(rule: Rule) -> None:
    """A typo in a property name would make a rule silently pass everything; pulumi-aws's schema catches it."""
    available = {type_: _engine_properties(type_) for type_ in rule.types}
    for field_name in rule.fields:
        assert any(field_name in names for names in available.values()), f"{field_name} is on none of {rule.types}"
    for type_, names in available.items():
        assert names & set(rule.fields), f"{type_} has none of {rule.fields}"


def test_levels_follow_the_tier_and_exceptions_disable() -> None:
    multi_az = RULES_BY_ID["rds-multi-az"]
    assert resource_policy(multi_az, PackSettings(tier="staging")).enforcement_level == EnforcementLevel.ADVISORY
    assert resource_policy(multi_az, PackSettings(tier="prod")).enforcement_level == EnforcementLevel.MANDATORY
    assert resource_policy(multi_az, PackSettings(tier="unknown")).enforcement_level == EnforcementLevel.MANDATORY
    excepted = PackSettings(tier="prod", exceptions={"rds-multi-az": "single-AZ until launch, accepted by the CTO"})
    assert resource_policy(multi_az, excepted).enforcement_level == EnforcementLevel.DISABLED


def test_a_resource_exception_skips_only_that_resource() -> None:
    rule = RULES_BY_ID["rds-multi-az"]
    settings = PackSettings(tier="prod", exceptions={"rds-multi-az@synthetic": "read replica for reports, rebuilt"})
    messages: list[str] = []
    policy = resource_policy(rule, settings)
    policy.validate(_args(RDS_I, _with(RDS, multiAz=False), GOOD_PROVIDER), lambda m, u=None: messages.append(m))
    assert messages == []
    assert policy.enforcement_level == EnforcementLevel.MANDATORY


def test_required_tags_come_from_the_provider_or_the_resource() -> None:
    rule = RULES_BY_ID["required-tags"]
    untagged_provider = ("aws", {"region": "us-east-1"})
    assert _violations(rule, "aws:sqs/queue:Queue", {"tags": TAGS}, untagged_provider) == []
    partial = {"tags": {"project": "shipyard"}}
    (message,) = _violations(rule, "aws:sqs/queue:Queue", partial, untagged_provider)
    assert all(tag in message for tag in REQUIRED_TAGS if tag != "project")


# ---------------------------------------------------------------------------------------------------------
# Stack rules
# ---------------------------------------------------------------------------------------------------------


def _stack_resource(
    type_: str, name: str, props: dict[str, Any], depends_on: tuple[PolicyResource, ...] = ()
) -> PolicyResource:
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
    urn = f"urn:pulumi:test::shipyard::{type_}::{name}"
    return PolicyResource(type_, unknown_checking_proxy(props), urn, name, options, None, None, list(depends_on), {})


def _stack_violations(
    rule_id: str, resources: list[PolicyResource], tier: str = "prod"
) -> list[tuple[str, str | None]]:
    rule = next(r for r in STACK_RULES if r.id == rule_id)
    found: list[tuple[str, str | None]] = []
    stack_policy(rule, PackSettings(tier=tier)).validate(
        StackValidationArgs(resources), lambda message, urn=None: found.append((message, urn))
    )
    return found


def test_every_bucket_needs_a_public_access_block_and_a_tls_policy() -> None:
    guarded = _stack_resource("aws:s3/bucket:Bucket", "site", {"bucket": "site-bucket"})
    bare = _stack_resource("aws:s3/bucket:Bucket", "bare", {"bucket": "bare-bucket"})
    block = _stack_resource(
        PAB := "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "site-pab", {"bucket": "x"}, (guarded,)
    )
    policy = _stack_resource(
        "aws:s3/bucketPolicy:BucketPolicy", "site-policy", {"bucket": "site-bucket", "policy": _doc(TLS_DENY)}
    )
    weak_policy = _stack_resource(
        "aws:s3/bucketPolicy:BucketPolicy", "bare-policy", {"bucket": "bare-bucket", "policy": _doc(OAC_READ)}, (bare,)
    )
    resources = [guarded, bare, block, policy, weak_policy]
    assert [urn for _, urn in _stack_violations("s3-bucket-public-access-blocked", resources)] == [bare.urn]
    assert [urn for _, urn in _stack_violations("s3-bucket-tls-only", resources)] == [bare.urn]
    assert PAB  # the access block type is the one the resource rule checks too
    fixed = [*resources, _stack_resource(PAB, "bare-pab", {"bucket": "bare-bucket"})]
    assert _stack_violations("s3-bucket-public-access-blocked", fixed) == []


def test_every_vpc_needs_flow_logs_and_every_secret_rotation() -> None:
    vpc = _stack_resource("aws:ec2/vpc:Vpc", "vpc", {"cidrBlock": "10.0.0.0/16"})
    other = _stack_resource("aws:ec2/vpc:Vpc", "other", {"cidrBlock": "10.1.0.0/16"})
    flow = _stack_resource("aws:ec2/flowLog:FlowLog", "flow", {"trafficType": "ALL"}, (vpc,))
    assert [urn for _, urn in _stack_violations("vpc-flow-logs", [vpc, other, flow])] == [other.urn]
    secret = _stack_resource("aws:secretsmanager/secret:Secret", "db", {})
    rotated = _stack_resource("aws:secretsmanager/secret:Secret", "rotated", {})
    rotation = _stack_resource("aws:secretsmanager/secretRotation:SecretRotation", "rot", {}, (rotated,))
    assert [urn for _, urn in _stack_violations("secrets-rotation", [secret, rotated, rotation])] == [secret.urn]


def test_a_resource_exception_may_be_a_pattern() -> None:
    settings = PackSettings(tier="prod", exceptions={"sns-encrypted@monitoring-*topic-*": "interim alarm topics"})
    assert settings.resource_exception("sns-encrypted", "monitoring-edge-topic-critical") is not None
    assert settings.resource_exception("sns-encrypted", "alerts-topic-critical") is None
    assert settings.resource_exception("sqs-encrypted", "monitoring-topic-critical") is None


# --- Issue 16 stack rules ---------------------------------------------------------------------------------

BUCKET = "aws:s3/bucket:Bucket"
LOGGING = "aws:s3/bucketLogging:BucketLogging"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
EXPIRE_90 = [{"id": "expire", "status": "Enabled", "expiration": {"days": 90}}]


def test_every_web_acl_must_log_in_prod() -> None:
    regional = _stack_resource("aws:wafv2/webAcl:WebAcl", "waf-regional", {"scope": "REGIONAL"})
    edge = _stack_resource("aws:wafv2/webAcl:WebAcl", "waf-cloudfront", {"scope": "CLOUDFRONT"})
    logging = _stack_resource(
        "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration",
        "waf-regional-logging",
        {"logDestinationConfigs": [WAF_LOG_ARN]},
        (regional,),
    )
    found = _stack_violations("waf-logging", [regional, edge, logging])
    assert [urn for _, urn in found] == [edge.urn]
    assert "no logging configuration" in found[0][0]
    rule = next(r for r in STACK_RULES if r.id == "waf-logging")
    assert (rule.fsbp, rule.staging, rule.prod) == ("WAF.11", "advisory", "mandatory")


def test_buckets_need_access_logging_except_log_buckets() -> None:
    uploads = _stack_resource(BUCKET, "uploads", {"bucket": "p-uploads-1"})
    spa = _stack_resource(BUCKET, "frontend", {"bucket": "p-frontend-1"})
    access_logs = _stack_resource(BUCKET, "access-logs", {"bucket": "p-s3-access-logs-1"})
    alb_logs = _stack_resource(BUCKET, "alb-logs", {"bucket": "p-alb-logs"})
    cdn_logs = _stack_resource(BUCKET, "cdn-logs", {"bucket": "p-cdn-logs-1"})
    alb = _stack_resource("aws:lb/loadBalancer:LoadBalancer", "alb", {"accessLogs": {"bucket": "p-alb-logs"}})
    cdn = _stack_resource(
        "aws:cloudfront/distribution:Distribution",
        "cdn",
        {"loggingConfig": {"bucket": "p-cdn-logs-1.s3.amazonaws.com"}},
    )
    logging = _stack_resource(
        LOGGING, "uploads-logging", {"bucket": "p-uploads-1", "targetBucket": "p-s3-access-logs-1"}
    )
    resources = [uploads, spa, access_logs, alb_logs, cdn_logs, alb, cdn, logging]
    found = _stack_violations("s3-access-logging", resources)
    assert [urn for _, urn in found] == [spa.urn]  # the log buckets themselves are not asked to log
    assert "no server access logging" in found[0][0]
    # Before the fix nothing logged: the uploads bucket (users' files) is caught.
    assert uploads.urn in [urn for _, urn in _stack_violations("s3-access-logging", [uploads, spa])]


def test_access_log_buckets_expire_and_never_log_into_themselves() -> None:
    lifecycle = _stack_resource(LIFECYCLE, "logs-lifecycle", {"bucket": "logs", "rules": EXPIRE_90})
    good = _stack_resource(LOGGING, "uploads-logging", {"bucket": "uploads", "targetBucket": "logs"})
    assert _stack_violations("s3-access-log-bucket", [lifecycle, good]) == []
    looped = _stack_resource(LOGGING, "logs-logging", {"bucket": "logs", "targetBucket": "logs"})
    messages = [m for m, _ in _stack_violations("s3-access-log-bucket", [lifecycle, good, looped])]
    assert messages == ["bucket logs logs into itself: every delivered log object is logged again"]
    no_expiry = _stack_resource(
        LIFECYCLE, "logs-lifecycle", {"bucket": "logs", "rules": [{"id": "x", "status": "Enabled", "expiration": {}}]}
    )
    (message,) = [m for m, _ in _stack_violations("s3-access-log-bucket", [no_expiry, good])]
    assert "no lifecycle expiration" in message


def test_log_group_keys_must_admit_cloudwatch_logs_of_their_region() -> None:
    good_key = _stack_resource(
        "aws:kms/key:Key", "log-key", {"policy": kms.log_key_policy("123456789012", "us-east-1")}
    )
    group = _stack_resource(
        "aws:cloudwatch/logGroup:LogGroup", "fn-logs", {"name": "/aws/lambda/fn", "kmsKeyId": KEY_ARN}, (good_key,)
    )
    assert _stack_violations("log-key-admits-logs", [good_key, group]) == []
    # A data key (root only, as kms.key_policy builds for secrets) silently fails log delivery.
    data_key = _stack_resource(
        "aws:kms/key:Key", "data-key", {"policy": kms.key_policy("123456789012", "us-east-1", ("secretsmanager",))}
    )
    wrong = _stack_resource(
        "aws:cloudwatch/logGroup:LogGroup", "fn-logs", {"name": "/aws/lambda/fn", "kmsKeyId": KEY_ARN}, (data_key,)
    )
    (found,) = _stack_violations("log-key-admits-logs", [data_key, wrong])
    assert found[1] == wrong.urn and "logs.us-east-1.amazonaws.com" in found[0]
    # Another region's log key: the regional principal does not match the group's region.
    west_key = _stack_resource("aws:kms/key:Key", "west", {"policy": kms.log_key_policy("123456789012", "us-west-2")})
    crossed = _stack_resource(
        "aws:cloudwatch/logGroup:LogGroup", "fn-logs", {"name": "/aws/lambda/fn", "kmsKeyId": KEY_ARN}, (west_key,)
    )
    assert [urn for _, urn in _stack_violations("log-key-admits-logs", [west_key, crossed])] == [crossed.urn]

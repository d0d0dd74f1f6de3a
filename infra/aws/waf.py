"""WAF web ACL in front of the ALB (REGIONAL) or the CloudFront distribution (CLOUDFRONT).

Rules, in priority order:
1. AWSManagedRulesKnownBadInputsRuleSet — request patterns known to exploit vulnerabilities (Log4Shell...);
   cheap (200 WCU) and with essentially no false positives, so it runs first;
2. AWSManagedRulesCommonRuleSet — the OWASP-style baseline (XSS, path traversal, oversized headers...);
3. a rate-based rule per client IP (the seeds ask for rate limiting): more than `rate_limit` requests in a
   5-minute window from one address is blocked until the rate drops.

Every rule and the ACL publish CloudWatch metrics and keep sampled requests, so a blocked user can be
traced to the rule that blocked them (WAF console → Sampled requests).

Full request logs (FSBP WAF.11) go to a CloudWatch log group of the ACL's own (simplest destination: no
Firehose, no bucket, Logs Insights works on it directly), created before the logging configuration with:
- the `aws-waf-logs-` name prefix WAF requires of every destination
  (https://docs.aws.amazon.com/waf/latest/developerguide/logging-cw-logs.html);
- a log-group resource policy admitting the log-delivery service (`delivery.logs.amazonaws.com`) for this
  account's deliveries only (aws:SourceAccount / aws:SourceArn, as in "Logs sent to CloudWatch Logs":
  https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/AWS-logs-infrastructure-V2-CloudWatchLogs.html).
  Written here rather than left to WAF: WAF would otherwise add its own account-wide policy on first use
  (outside Pulumi, and counted against the 10 resource policies a region allows);
- a retention per tier (`waf.logRetentionDays`) and the stack's log key where there is one;
- the `authorization` and `cookie` headers redacted: the log keeps who called what, never credentials.

A CLOUDFRONT ACL must be created in us-east-1: pass a component whose provider is a us-east-1 provider. Its
log group is a child, so it lands in us-east-1 too — the only region WAF accepts for a CloudFront ACL's
destination — and its log key must be the us-east-1 one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from infra.component import Component
from infra.naming import Naming

WafScope = Literal["REGIONAL", "CLOUDFRONT"]

LOG_GROUP_PREFIX = "aws-waf-logs-"
"""WAF refuses a logging destination whose name does not start with this."""
REDACTED_HEADERS: tuple[str, ...] = ("authorization", "cookie")
"""Headers replaced by REDACTED in every log record (lower case: WAF's redaction matches it so)."""
LOG_DELIVERY_SERVICE = "delivery.logs.amazonaws.com"


def log_delivery_policy(log_group_arn: str, account_id: str, region: str) -> str:
    """Resource policy letting CloudWatch log delivery write WAF's records into one log group, for this account."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "WafLogDelivery",
                    "Effect": "Allow",
                    "Principal": {"Service": LOG_DELIVERY_SERVICE},
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": f"{log_group_arn}:log-stream:*",
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account_id},
                        "ArnLike": {"aws:SourceArn": f"arn:aws:logs:{region}:{account_id}:*"},
                    },
                }
            ],
        }
    )


MANAGED_RULE_GROUPS: tuple[str, ...] = ("AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesCommonRuleSet")
"""AWS managed rule groups every ACL carries, in priority order."""

RATE_WINDOW_SECONDS = 300
"""The window `rate_limit` counts over; 5 minutes is what `shipyard:waf.rateLimit` is documented as."""


@dataclass(frozen=True)
class WebAclArgs:
    scope: WafScope
    """REGIONAL for the ALB; CLOUDFRONT for the distribution (the component's provider must be us-east-1)."""
    rate_limit: int
    """Requests per client IP per 5 minutes before the rate rule blocks (`shipyard:waf.rateLimit`, 2000)."""
    log_retention_days: int = 90
    """Days request logs are kept (`shipyard:waf.logRetentionDays`; 30 by default, 90 in prod)."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The log key of the ACL's region (`LogKey.arn`); None keeps CloudWatch Logs' default encryption."""


def _metric_name(text: str) -> str:
    """CloudWatch metric names for WAF: letters, digits, '-' and '_' only, at most 128 characters."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)[:128]


def _visibility(metric: str) -> dict[str, Any]:
    return {"cloudwatch_metrics_enabled": True, "sampled_requests_enabled": True, "metric_name": _metric_name(metric)}


class WebAcl(Component):
    acl: aws.wafv2.WebAcl
    arn: pulumi.Output[str]
    name: pulumi.Output[str]
    metric_prefix: str
    """The ACL's metric name; rule metrics are `<metric_prefix>-<rule>` (dimension `WebACL` + `Rule`)."""

    def __init__(self, name: str, args: WebAclArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "WebAcl", name, naming, opts)
        physical = naming.physical(name, max_length=128)
        self.metric_prefix = _metric_name(physical)
        rules: list[dict[str, Any]] = [
            {
                "name": group,
                "priority": priority,
                # none = keep the managed group's own actions (block); `count` would only observe.
                "override_action": {"none": {}},
                "statement": {"managed_rule_group_statement": {"vendor_name": "AWS", "name": group}},
                "visibility_config": _visibility(f"{self.metric_prefix}-{group}"),
            }
            for priority, group in enumerate(MANAGED_RULE_GROUPS)
        ]
        rules.append(
            {
                "name": "rate-limit-per-ip",
                "priority": len(MANAGED_RULE_GROUPS),
                "action": {"block": {}},
                "statement": {
                    "rate_based_statement": {
                        "limit": args.rate_limit,
                        "aggregate_key_type": "IP",
                        "evaluation_window_sec": RATE_WINDOW_SECONDS,
                    }
                },
                "visibility_config": _visibility(f"{self.metric_prefix}-rate-limit-per-ip"),
            }
        )
        self.acl = aws.wafv2.WebAcl(
            self.child_name("acl"),
            name=physical,
            description=f"Managed common + known-bad-inputs rules and {args.rate_limit} requests/5 min per IP",
            scope=args.scope,
            default_action={"allow": {}},
            rules=rules,
            visibility_config=_visibility(self.metric_prefix),
            opts=self.opts(),
        )
        self.log_group = self._logging(physical, args)
        self.arn = self.acl.arn
        self.name = self.acl.name
        self.log_group_name = self.log_group.name
        self.register_outputs({"arn": self.arn, "name": self.name, "logGroupName": self.log_group_name})

    def _logging(self, physical: str, args: WebAclArgs) -> aws.cloudwatch.LogGroup:
        """Destination first (group + delivery policy), then the logging configuration that points at it."""
        log_group = aws.cloudwatch.LogGroup(
            self.child_name("logs"),
            name=f"{LOG_GROUP_PREFIX}{physical}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            opts=self.opts(),
        )
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        delivery_policy = aws.cloudwatch.LogResourcePolicy(
            self.child_name("logs-delivery"),
            policy_name=f"{physical}-waf-log-delivery"[:255],
            policy_document=pulumi.Output.all(log_group.arn, account_id, region).apply(
                lambda values: log_delivery_policy(values[0], values[1], values[2])
            ),
            opts=self.opts(),
        )
        aws.wafv2.WebAclLoggingConfiguration(
            self.child_name("logging"),
            resource_arn=self.acl.arn,
            log_destination_configs=[log_group.arn],
            redacted_fields=[
                aws.wafv2.WebAclLoggingConfigurationRedactedFieldArgs(
                    single_header=aws.wafv2.WebAclLoggingConfigurationRedactedFieldSingleHeaderArgs(name=header)
                )
                for header in REDACTED_HEADERS
            ],
            opts=self.opts(depends_on=[log_group, delivery_policy]),
        )
        return log_group

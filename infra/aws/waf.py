"""WAF web ACL in front of the ALB (REGIONAL) or the CloudFront distribution (CLOUDFRONT).

Rules, in priority order:
1. AWSManagedRulesKnownBadInputsRuleSet — request patterns known to exploit vulnerabilities (Log4Shell...);
   cheap (200 WCU) and with essentially no false positives, so it runs first;
2. AWSManagedRulesCommonRuleSet — the OWASP-style baseline (XSS, path traversal, oversized headers...);
   with `large_body_path_prefixes`, its SizeRestrictions_BODY rule (bodies over 8 KB) only counts, and
   3. `body-over-8kb-outside-large-body-paths` blocks on that rule's label unless the path is one of those
   routes: the exception is as narrow as the routes that take bodies, and every other CRS rule still runs
   on those routes (on the first 8 KB, all an ALB forwards to WAF);
4. a rate-based rule per client IP (the seeds ask for rate limiting): more than `rate_limit` requests in a
   5-minute window from one address is answered 429 until the rate drops.

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

COMMON_RULE_SET = "AWSManagedRulesCommonRuleSet"
BODY_SIZE_RULE = "SizeRestrictions_BODY"
BODY_SIZE_LABEL = "awswaf:managed:aws:core-rule-set:SizeRestrictions_Body"
"""The label the CRS adds when SizeRestrictions_BODY matches, also in count mode (AWS WAF developer guide,
"Core rule set (CRS) managed rule group": https://docs.aws.amazon.com/waf/latest/developerguide/
aws-managed-rule-groups-baseline.html). Labels are visible only to rules evaluated after the group."""
LARGE_BODY_RULE = "body-over-8kb-outside-large-body-paths"

API_UPLOADS_PATH_PREFIX = "/api/uploads"
"""The API's upload routes (app/web.py UPLOADS_PATH_PREFIX; a test keeps the two equal): the only API routes
whose bodies may exceed 8 KB. Uploads themselves go from the browser straight to S3 with a presigned POST,
so this is the app's own limit (UPLOAD_MAX_BYTES) showing through, not the file bytes."""

RATE_WINDOW_SECONDS = 300
"""The window `rate_limit` counts over; 5 minutes is what `shipyard:waf.rateLimit` is documented as."""


RATE_LIMIT_STATUS = 429
"""What the rate rule answers (WAF block actions accept a custom response code)."""


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
    large_body_path_prefixes: tuple[str, ...] = ()
    """Path prefixes (`/api/uploads` covers `/api/uploads` and `/api/uploads/...`) exempt from the CRS's
    8 KB body limit; () keeps the managed rule blocking everywhere (the CloudFront ACL: the SPA takes no
    bodies)."""

    def __post_init__(self) -> None:
        for prefix in self.large_body_path_prefixes:
            if not prefix.startswith("/") or prefix.endswith("/") or "*" in prefix:
                raise ValueError(f"large_body_path_prefixes: {prefix!r} must be a path like /api/uploads")


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
        # CLOUDFRONT-scope ACLs all live in us-east-1, whatever the stack's region: one name per account.
        physical = (
            naming.account_wide(name, max_length=128)
            if args.scope == "CLOUDFRONT"
            else naming.physical(name, max_length=128)
        )
        self.metric_prefix = _metric_name(physical)
        rules: list[dict[str, Any]] = [
            {
                "name": group,
                # none = keep the managed group's own actions (block); `count` would only observe.
                "override_action": {"none": {}},
                "statement": {"managed_rule_group_statement": self._managed_group(group, args)},
                "visibility_config": _visibility(f"{self.metric_prefix}-{group}"),
            }
            for group in MANAGED_RULE_GROUPS
        ]
        if args.large_body_path_prefixes:
            rules.append(self._large_body_rule(args.large_body_path_prefixes))
        rules.append(
            {
                "name": "rate-limit-per-ip",
                # 429 Too Many Requests, not the default 403: a client (and our 4xx metrics) can tell a rate
                # limit from a block; the SPA no longer turns either into a page (infra/aws/frontend.py).
                # https://docs.aws.amazon.com/waf/latest/developerguide/customizing-the-response-for-blocked-requests.html
                "action": {"block": {"custom_response": {"response_code": RATE_LIMIT_STATUS}}},
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
        # Evaluation order is the list order; the large-body rule must follow the CRS to see its label.
        rules = [rule | {"priority": priority} for priority, rule in enumerate(rules)]
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

    @staticmethod
    def _managed_group(group: str, args: WebAclArgs) -> dict[str, Any]:
        statement: dict[str, Any] = {"vendor_name": "AWS", "name": group}
        if group == COMMON_RULE_SET and args.large_body_path_prefixes:
            # Count instead of block: the rule still labels the request, and _large_body_rule decides.
            statement["rule_action_overrides"] = [{"name": BODY_SIZE_RULE, "action_to_use": {"count": {}}}]
        return statement

    def _large_body_rule(self, prefixes: tuple[str, ...]) -> dict[str, Any]:
        return {
            "name": LARGE_BODY_RULE,
            "action": {"block": {}},
            "statement": {
                "and_statement": {
                    "statements": [
                        {"label_match_statement": {"scope": "LABEL", "key": BODY_SIZE_LABEL}},
                        {"not_statement": {"statement": _any_of([_path_match(p) for p in prefixes])}},
                    ]
                }
            },
            "visibility_config": _visibility(f"{self.metric_prefix}-{LARGE_BODY_RULE}"),
        }


def _path_match(prefix: str) -> dict[str, Any]:
    """The path is `prefix` or under `prefix/` — as received: no URL decoding, so an encoded path is never
    exempt (the app routes on the decoded path; a mismatch can only block, never let a large body through)."""

    def byte_match(constraint: str, text: str) -> dict[str, Any]:
        return {
            "byte_match_statement": {
                "positional_constraint": constraint,
                "search_string": text,
                "field_to_match": {"uri_path": {}},
                "text_transformations": [{"priority": 0, "type": "NONE"}],
            }
        }

    return _any_of([byte_match("EXACTLY", prefix), byte_match("STARTS_WITH", prefix + "/")])


def _any_of(statements: list[dict[str, Any]]) -> dict[str, Any]:
    """An or_statement needs two or more statements; one is used as it is."""
    return statements[0] if len(statements) == 1 else {"or_statement": {"statements": statements}}

"""WAF web ACL in front of the ALB (REGIONAL) or the CloudFront distribution (CLOUDFRONT).

Rules, in priority order:
1. AWSManagedRulesKnownBadInputsRuleSet — request patterns known to exploit vulnerabilities (Log4Shell...);
   cheap (200 WCU) and with essentially no false positives, so it runs first;
2. AWSManagedRulesCommonRuleSet — the OWASP-style baseline (XSS, path traversal, oversized headers...);
3. a rate-based rule per client IP (the seeds ask for rate limiting): more than `rate_limit` requests in a
   5-minute window from one address is answered 429 until the rate drops.

Every rule and the ACL publish CloudWatch metrics and keep sampled requests, so a blocked user can be
traced to the rule that blocked them (WAF console → Sampled requests).

A CLOUDFRONT ACL must be created in us-east-1: pass a component whose provider is a us-east-1 provider.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from infra.component import Component
from infra.naming import Naming

WafScope = Literal["REGIONAL", "CLOUDFRONT"]

MANAGED_RULE_GROUPS: tuple[str, ...] = ("AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesCommonRuleSet")
"""AWS managed rule groups every ACL carries, in priority order."""

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
        self.arn = self.acl.arn
        self.name = self.acl.name
        self.register_outputs({"arn": self.arn, "name": self.name})

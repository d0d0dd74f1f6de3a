"""Platform events: what AWS itself says about our database and containers, routed to the alert topics.

Metric alarms see symptoms over minutes; some facts arrive only as events, and on-call wants them at once:
- RDS event notifications for the instance (a native RDS event subscription → SNS): failover, failure,
  low storage and availability (restart, shutdown) on the critical topic; maintenance, notification,
  recovery, configuration change and security patching on the warning topic. The `backup` category is
  left out: it fires for every nightly snapshot and says nothing AWS Backup's own notifications do not.
- ECS tasks of our cluster that stopped for a reason other than a deployment or scale-in (EventBridge):
  a container that crashed (`EssentialContainerExited`), a task that never started (`TaskFailedToStart`),
  or one the scheduler replaced because it failed its ELB or container health check. Warning: the service
  replaces the task; the alarms on healthy hosts page if it keeps happening.
- ECS deployments the circuit breaker failed and rolled back (EventBridge, `SERVICE_DEPLOYMENT_FAILED`):
  warning — the old revision keeps serving, but the release did not go out.

The alert forwarder already renders all three formats (lambdas/alert_forwarder/parse.py); the topics'
policies and their KMS key admit `events.amazonaws.com` and `events.rds.amazonaws.com`
(infra/aws/kms.py: ALARM_TOPIC_PUBLISHERS).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.component import Component
from infra.naming import Naming

RDS_CRITICAL_CATEGORIES: tuple[str, ...] = ("availability", "failover", "failure", "low storage")
"""The database is (or was) down or about to be: page."""
RDS_WARNING_CATEGORIES: tuple[str, ...] = (
    "configuration change",
    "maintenance",
    "notification",
    "recovery",
    "security patching",
)
"""Worth reading during the day: pending maintenance, parameter changes, recovery finished."""

TASK_FAILURE_STOP_CODES: tuple[str, ...] = ("EssentialContainerExited", "TaskFailedToStart")
"""Stop codes that mean the task failed. `ServiceSchedulerInitiated` and `UserInitiated` are deployments,
scale-in and people — except when the scheduler stopped a task for failing health checks (below)."""
HEALTH_CHECK_STOP_REASON_PREFIX = "Task failed"
"""ECS's stoppedReason for health-check replacements: "Task failed ELB health checks in ...",
"Task failed container health checks"."""


def task_stopped_pattern(cluster_arn: str) -> str:
    """EventBridge pattern: a task of this cluster stopped because it failed, not because it was replaced."""
    return json.dumps(
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Task State Change"],
            "detail": {
                "clusterArn": [cluster_arn],
                "lastStatus": ["STOPPED"],
                "$or": [
                    {"stopCode": list(TASK_FAILURE_STOP_CODES)},
                    {"stoppedReason": [{"prefix": HEALTH_CHECK_STOP_REASON_PREFIX}]},
                ],
            },
        }
    )


def deployment_failed_pattern(service_arns: Sequence[str]) -> str:
    """EventBridge pattern: a deployment of one of these services failed (circuit breaker rolled it back)."""
    return json.dumps(
        {
            "source": ["aws.ecs"],
            "detail-type": ["ECS Deployment State Change"],
            "resources": list(service_arns),
            "detail": {"eventName": ["SERVICE_DEPLOYMENT_FAILED"]},
        }
    )


@dataclass(frozen=True)
class PlatformEventsArgs:
    topic_arns: Mapping[str, pulumi.Input[str]]
    """Severity → SNS topic ARN (the alerts component's `topic_arns`); `critical` and `warning` are used."""
    db_instance_identifier: pulumi.Input[str] | None = None
    """The RDS instance whose events are subscribed; None: no database, no subscription."""
    cluster_arn: pulumi.Input[str] | None = None
    """The ECS cluster whose failed tasks are reported; None: no containers, no rule."""
    service_arns: Sequence[pulumi.Input[str]] = ()
    """ECS services whose failed deployments are reported (circuit breaker rollbacks)."""
    rds_critical_categories: Sequence[str] = RDS_CRITICAL_CATEGORIES
    """Default: availability, failover, failure, low storage — the database is or may soon be down."""
    rds_warning_categories: Sequence[str] = RDS_WARNING_CATEGORIES
    """Default: configuration change, maintenance, notification, recovery, security patching."""


class PlatformEvents(Component):
    def __init__(
        self, name: str, args: PlatformEventsArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "PlatformEvents", name, naming, opts)
        missing = sorted({"critical", "warning"} - set(args.topic_arns))
        if missing:
            raise ValueError(f"platform events: no alert topic for severity {', '.join(missing)}")
        self.rds_subscriptions: dict[str, aws.rds.EventSubscription] = {}
        self.rules: dict[str, aws.cloudwatch.EventRule] = {}

        if args.db_instance_identifier is not None:
            for severity, categories in (
                ("critical", args.rds_critical_categories),
                ("warning", args.rds_warning_categories),
            ):
                if not categories:
                    continue
                self.rds_subscriptions[severity] = aws.rds.EventSubscription(
                    self.child_name("rds", severity),
                    name=naming.physical("rds-events", severity),
                    sns_topic=args.topic_arns[severity],
                    source_type="db-instance",
                    source_ids=[args.db_instance_identifier],
                    event_categories=list(categories),
                    enabled=True,
                    opts=self.opts(),
                )

        if args.cluster_arn is not None:
            self._rule(
                "task-stopped",
                "ECS tasks that crashed, failed to start or failed their health checks",
                pulumi.Output.from_input(args.cluster_arn).apply(task_stopped_pattern),
                args.topic_arns["warning"],
            )
        if args.service_arns:
            self._rule(
                "deployment-failed",
                "ECS deployments the circuit breaker failed and rolled back",
                pulumi.Output.all(*args.service_arns).apply(lambda arns: deployment_failed_pattern(list(arns))),
                args.topic_arns["warning"],
            )
        self.register_outputs(
            {
                "rdsSubscriptions": {k: v.name for k, v in self.rds_subscriptions.items()},
                "rules": {k: v.name for k, v in self.rules.items()},
            }
        )

    def _rule(self, part: str, description: str, pattern: pulumi.Input[str], topic_arn: pulumi.Input[str]) -> None:
        rule = aws.cloudwatch.EventRule(
            self.child_name(part),
            name=self.naming.physical(part),
            description=description,
            event_pattern=pattern,
            opts=self.opts(),
        )
        # The raw event goes to SNS unchanged: the forwarder recognises it by source and detail-type.
        aws.cloudwatch.EventTarget(
            self.child_name(part, "target"),
            rule=rule.name,
            arn=topic_arn,
            opts=self.opts(),
        )
        self.rules[part] = rule

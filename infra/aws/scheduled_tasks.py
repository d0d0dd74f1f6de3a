"""ScheduledTasks: cron jobs (`jobs.scheduledTasks`) run as one-off ECS tasks by EventBridge Scheduler.

- One schedule per task, evaluated in `jobs.timezone` (Scheduler handles time zones and DST itself, so
  "every day at 09:00 São Paulo" is written as such, not converted to UTC);
- the target is ECS RunTask of the task's own task definition (the app image with the job's command, from
  the shared TaskDefinitionFactory) on Fargate, in the app's subnets with the no-ingress tasks group;
- a retry policy for RunTask failures (capacity, throttling) bounded in attempts and age, then a dead-letter
  queue (SQS, SSE) so a job that could not even start is visible instead of silently skipped;
- one role for the scheduler: ecs:RunTask on these task definitions in this cluster only, iam:PassRole on the
  task and execution roles only, sqs:SendMessage on the DLQ only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.trust import scheduler_trust_policy
from infra.component import Component
from infra.config import ScheduledTaskConfig
from infra.naming import Naming

RETRY_ATTEMPTS = 3
MAX_EVENT_AGE_SECONDS = 3600
"""A job that could not start within an hour of its slot goes to the DLQ: running it later may be wrong."""
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class ScheduledTaskTarget:
    task_definition_arn: pulumi.Input[str]
    """The revision to run (updated by every deploy)."""
    task_definition_family_arn: pulumi.Input[str]
    """ARN without the revision: what RunTask is allowed on (`<family arn>:*`)."""


@dataclass(frozen=True)
class ScheduledTasksArgs:
    tasks: Sequence[ScheduledTaskConfig]
    """`jobs.scheduledTasks`."""
    timezone: str
    """`jobs.timezone` (IANA), applied to every schedule."""
    cluster_arn: pulumi.Input[str]
    targets: Mapping[str, ScheduledTaskTarget]
    """Task name → its task definition."""
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_ids: Sequence[pulumi.Input[str]]
    assign_public_ip: bool
    pass_role_arns: Sequence[pulumi.Input[str]]
    """The task role and execution role of the task definitions: the only roles the scheduler may pass."""


class ScheduledTasks(Component):
    dead_letter_queue: aws.sqs.Queue
    schedules: dict[str, aws.scheduler.Schedule]
    dead_letter_queue_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ScheduledTasksArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "ScheduledTasks", name, naming, opts)
        missing = sorted({t.name for t in args.tasks} - set(args.targets))
        if missing:
            raise ValueError(f"jobs.scheduledTasks: no task definition for {', '.join(missing)}")
        self.dead_letter_queue = aws.sqs.Queue(
            self.child_name("dlq"),
            name=naming.physical(name, "dlq"),
            sqs_managed_sse_enabled=True,
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            opts=self.opts(),
        )
        role = aws.iam.Role(
            self.child_name("role"),
            name=naming.account_wide(name, "scheduler", max_length=64),  # IAM: account-global
            description="EventBridge Scheduler: run the scheduled ECS tasks, pass their roles, dead-letter",
            # Only for schedules of this account's default schedule group (infra/aws/trust.py).
            assume_role_policy=pulumi.Output.all(
                aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id,
                aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region,
            ).apply(lambda values: scheduler_trust_policy(values[0], values[1])),
            opts=self.opts(),
        )
        families = [args.targets[t.name].task_definition_family_arn for t in args.tasks]

        def policy(values: list[Any]) -> str:
            cluster_arn, queue_arn, pass_roles, *family_arns = values
            return json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "RunScheduledTasks",
                            "Effect": "Allow",
                            "Action": "ecs:RunTask",
                            "Resource": sorted(f"{arn}:*" for arn in family_arns),
                            "Condition": {"ArnEquals": {"ecs:cluster": cluster_arn}},
                        },
                        {
                            "Sid": "PassTaskRoles",
                            "Effect": "Allow",
                            "Action": "iam:PassRole",
                            "Resource": sorted(pass_roles),
                            "Condition": {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}},
                        },
                        {"Sid": "DeadLetter", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn},
                    ],
                }
            )

        if args.tasks:
            aws.iam.RolePolicy(
                self.child_name("policy"),
                role=role.id,
                policy=pulumi.Output.all(
                    args.cluster_arn,
                    self.dead_letter_queue.arn,
                    pulumi.Output.all(*args.pass_role_arns),
                    *families,
                ).apply(policy),
                opts=self.opts(),
            )
        self.schedules = {}
        for task in args.tasks:
            self.schedules[task.name] = aws.scheduler.Schedule(
                self.child_name(task.name),
                name=naming.physical(name, task.name),
                description=f"{task.name}: {' '.join(task.command)}",
                schedule_expression=task.schedule,
                schedule_expression_timezone=args.timezone,
                flexible_time_window={"mode": "OFF"},  # jobs run at their time, not within a window
                target={
                    "arn": args.cluster_arn,
                    "role_arn": role.arn,
                    "ecs_parameters": {
                        "task_definition_arn": args.targets[task.name].task_definition_arn,
                        "launch_type": "FARGATE",
                        "platform_version": "LATEST",
                        "task_count": 1,
                        "network_configuration": {
                            "subnets": list(args.subnet_ids),
                            "security_groups": list(args.security_group_ids),
                            "assign_public_ip": args.assign_public_ip,
                        },
                    },
                    "retry_policy": {
                        "maximum_retry_attempts": RETRY_ATTEMPTS,
                        "maximum_event_age_in_seconds": MAX_EVENT_AGE_SECONDS,
                    },
                    "dead_letter_config": {"arn": self.dead_letter_queue.arn},
                },
                opts=self.opts(),
            )
        self.dead_letter_queue_name = self.dead_letter_queue.name
        self.register_outputs(
            {"deadLetterQueue": self.dead_letter_queue.name, "schedules": sorted(self.schedules)},
        )

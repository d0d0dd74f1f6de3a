"""Trust policies for roles that AWS services assume on our behalf, with confused-deputy conditions.

A service principal in a trust policy lets *that service* assume the role — for any customer's resource, if
nothing says otherwise. `aws:SourceAccount` and `aws:SourceArn` say "only when the service acts for this
account's resource" (IAM User Guide, "The confused deputy problem":
https://docs.aws.amazon.com/IAM/latest/UserGuide/confused-deputy.html).

Both keys are in the request context only when the calling service puts them there, so each service below
uses exactly what its own AWS page documents for the role; a key the service never sends would make every
AssumeRole fail (flow logs stop, schedules stop firing, enhanced monitoring goes dark):

- EventBridge Scheduler — `aws:SourceArn` is the *schedule group* ARN, never a schedule's
  (https://docs.aws.amazon.com/scheduler/latest/UserGuide/cross-service-confused-deputy-prevention.html:
  "The value of aws:SourceArn must be your EventBridge Scheduler schedule group ARN ... Do not scope the
  aws:SourceArn statement to a specific schedule"). Our schedules use the `default` group.
- VPC Flow Logs — `aws:SourceAccount` is the flow log's owner and `aws:SourceArn` the flow log's ARN
  (https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html); the flow log id is unknown
  until the flow log exists, and the flow log needs the role first, so the id is a wildcard (the page's own
  advice).
- RDS Enhanced Monitoring — `aws:SourceArn` is the DB instance ARN, `aws:SourceAccount` the account
  (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Monitoring.OS.Enabling.html, "Protecting
  against the confused deputy problem").
"""

from __future__ import annotations

import json
from typing import Any

SCHEDULER = "scheduler.amazonaws.com"
FLOW_LOGS = "vpc-flow-logs.amazonaws.com"
RDS_MONITORING = "monitoring.rds.amazonaws.com"

DEFAULT_SCHEDULE_GROUP = "default"
"""Schedules created without `group_name` belong to this group (every schedule of ours)."""


def service_trust_policy(service: str, account_id: str, source_arn: str) -> str:
    """`service` may assume the role only for `source_arn` (a resource of `account_id`)."""
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": account_id},
            "ArnLike": {"aws:SourceArn": source_arn},
        },
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def scheduler_trust_policy(account_id: str, region: str, group: str = DEFAULT_SCHEDULE_GROUP) -> str:
    return service_trust_policy(
        SCHEDULER, account_id, f"arn:aws:scheduler:{region}:{account_id}:schedule-group/{group}"
    )


def flow_logs_trust_policy(account_id: str, region: str) -> str:
    return service_trust_policy(FLOW_LOGS, account_id, f"arn:aws:ec2:{region}:{account_id}:vpc-flow-log/*")


def rds_monitoring_trust_policy(account_id: str, region: str, db_instance_identifier: str) -> str:
    return service_trust_policy(
        RDS_MONITORING, account_id, f"arn:aws:rds:{region}:{account_id}:db:{db_instance_identifier}"
    )

"""Customer-managed KMS keys for data components (database, app secrets) and for alarm topics.

One key per concern, rotation on, and a key policy shaped like AWS's own `aws/secretsmanager` key: besides
the account root (which delegates administration to IAM), any principal of this account may decrypt
*through Secrets Manager only*. So a consumer that reads a secret encrypted with one of these keys (an ECS
task execution role, a Lambda) needs nothing beyond `secretsmanager:GetSecretValue` on the secret's ARN —
no per-role KMS grant to forget — while the key still cannot be used directly outside Secrets Manager
without an IAM policy that says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from infra.component import Component

DELETION_WINDOW_DAYS = 30
"""The longest window KMS allows: a key deleted by mistake can be recovered for a month."""


def key_policy(account_id: str, region: str, via_services: Sequence[str]) -> str:
    """Root administers the key (through IAM); account principals may decrypt via the given services."""
    statements: list[dict[str, object]] = [
        {
            "Sid": "AccountAdministersThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if via_services:
        statements.append(
            {
                "Sid": "AccountPrincipalsDecryptThroughServices",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": ["kms:Decrypt", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {
                        "kms:CallerAccount": account_id,
                        "kms:ViaService": [f"{service}.{region}.amazonaws.com" for service in via_services],
                    }
                },
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


def customer_key(
    owner: Component,
    part: str,
    description: str,
    alias: str,
    via_services: Sequence[str] = ("secretsmanager",),
) -> aws.kms.Key:
    """A rotating customer-managed key (+ alias) parented to `owner`."""
    invoke = pulumi.InvokeOutputOptions(parent=owner)
    account_id = aws.get_caller_identity_output(opts=invoke).account_id
    region = aws.get_region_output(opts=invoke).region
    key = aws.kms.Key(
        owner.child_name(part),
        description=description,
        enable_key_rotation=True,
        deletion_window_in_days=DELETION_WINDOW_DAYS,
        policy=pulumi.Output.all(account_id, region).apply(
            lambda values: key_policy(values[0], values[1], via_services)
        ),
        opts=owner.opts(),
    )
    aws.kms.Alias(
        owner.child_name(part, "alias"),
        name=f"alias/{alias}",
        target_key_id=key.key_id,
        opts=owner.opts(),
    )
    return key


ALARM_TOPIC_PUBLISHERS: tuple[str, ...] = (
    "cloudwatch.amazonaws.com",
    "events.amazonaws.com",
    "events.rds.amazonaws.com",
    "backup.amazonaws.com",
)
"""AWS services that publish to alarm/alert topics: CloudWatch alarms, EventBridge rules (ECS task stopped,
deployment failed), RDS event subscriptions, AWS Backup job notifications (infra/aws/platform_events.py)."""


def alarm_topic_key_policy(account_id: str) -> str:
    """Root administers (through IAM); the publishing services may use the key to publish encrypted messages.

    A topic encrypted with the AWS-managed `aws/sns` key cannot take these services' messages (its policy
    cannot be edited to admit them), so alarm topics need a customer key with this policy. No
    aws:SourceAccount condition here: the services reach the key only by publishing to our topics, and the
    topic policies hold them to this account.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AccountAdministersThroughIam",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "AwsServicesPublishToEncryptedTopics",
                    "Effect": "Allow",
                    "Principal": {"Service": list(ALARM_TOPIC_PUBLISHERS)},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                },
            ],
        }
    )

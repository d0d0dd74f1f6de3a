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
from infra.naming import Naming

DELETION_WINDOW_DAYS = 30
"""The longest window KMS allows: a key deleted by mistake can be recovered for a month."""


def account_administers_key(account_id: str) -> dict[str, object]:
    """The statement every key policy of ours starts with: the account root administers the key, so who may use
    it is decided by IAM policies (and shows in them), not by editing the key policy."""
    return {
        "Sid": "AccountAdministersThroughIam",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": "kms:*",
        "Resource": "*",
    }


def key_policy(account_id: str, region: str, via_services: Sequence[str]) -> str:
    """Root administers the key (through IAM); account principals may decrypt via the given services."""
    statements: list[dict[str, object]] = [account_administers_key(account_id)]
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
    """Root administers (through IAM); the publishing services may use the key for this account's topics only.

    A topic encrypted with the AWS-managed `aws/sns` key cannot take these services' messages (its policy
    cannot be edited to admit them), so alarm topics need a customer key with this policy.

    Confused deputy: the grant is held to topics of this account by `kms:EncryptionContext:aws:sns:topicArn`.
    SNS encrypts every message of an encrypted topic under the encryption context `aws:sns:topicArn` = the
    topic's ARN, and AWS's own key policies for a service publishing to an encrypted topic condition on it
    (e.g. https://docs.aws.amazon.com/gamelift/latest/flexmatchguide/queue-notification-sns-sse.html), so it
    is present on every call the publishers make through SNS; a service tricked into publishing for another
    account cannot use this key for that account's topics.
    Not `aws:SourceAccount`/`aws:SourceArn`: no AWS page we could find states that the KMS calls of these four
    publishers (CloudWatch alarm actions, EventBridge targets, RDS event subscriptions, AWS Backup
    notifications) carry them (the knowledge-center recipe for CloudWatch alarms grants the key without any
    condition), and a condition the service never sends would drop every alarm notification silently (the
    failure shows only in the alarm's history). The encryption-context key is the one SNS always sends.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                account_administers_key(account_id),
                {
                    "Sid": "AwsServicesPublishToThisAccountsEncryptedTopics",
                    "Effect": "Allow",
                    "Principal": {"Service": list(ALARM_TOPIC_PUBLISHERS)},
                    "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                    "Resource": "*",
                    "Condition": {
                        "ArnLike": {SNS_TOPIC_CONTEXT_KEY: f"arn:aws:sns:*:{account_id}:*"},
                    },
                },
            ],
        }
    )


SNS_TOPIC_CONTEXT_KEY = "kms:EncryptionContext:aws:sns:topicArn"
"""The encryption context SNS sends on every KMS call for an encrypted topic (its value: the topic's ARN)."""
LOGS_CONTEXT_KEY = "kms:EncryptionContext:aws:logs:arn"
"""The encryption context CloudWatch Logs sends on every KMS call for a log group (its value: the group's ARN)."""
LOG_KEY_ACTIONS: tuple[str, ...] = (
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
)
"""What CloudWatch Logs needs on a log group's key (AWS docs: encrypt-log-data-kms.html, step 2 key policy)."""


def log_key_policy(account_id: str, region: str) -> str:
    """Root administers (through IAM); CloudWatch Logs of this region may use the key for this account's groups.

    Straight from AWS's "Encrypt log data in CloudWatch Logs using AWS Key Management Service"
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/encrypt-log-data-kms.html): the principal is the
    *regional* service principal `logs.<region>.amazonaws.com`, and `kms:EncryptionContext:aws:logs:arn`
    limits it to log groups of this account in this region. Without this statement CreateLogGroup with the
    key fails (AccessDenied) — and a key policy that denies the service after association makes log delivery
    fail silently, which is why a policy rule checks the statement (infra/policy/rules.py).
    Readers of the logs need no KMS permission: CloudWatch Logs decrypts on their behalf.
    """
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                account_administers_key(account_id),
                {
                    "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
                    "Effect": "Allow",
                    "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                    "Action": list(LOG_KEY_ACTIONS),
                    "Resource": "*",
                    "Condition": {
                        "ArnLike": {LOGS_CONTEXT_KEY: f"arn:aws:logs:{region}:{account_id}:log-group:*"},
                    },
                },
            ],
        }
    )


class LogKey(Component):
    """One customer-managed key per region for every CloudWatch log group of the stack there.

    Shared rather than one per log group: a key costs 1 USD a month (plus 1 USD after each of its first two
    yearly rotations, infra/prices.json), and every group of a stack holds the same kind of data with the same
    readers, so separate keys would buy no separation. Created only where the tier asks for it (prod; see
    README "Security logging and encryption keys").
    """

    key: aws.kms.Key
    arn: pulumi.Output[str]

    def __init__(self, name: str, naming: Naming, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aws", "LogKey", name, naming, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region
        self.key = aws.kms.Key(
            self.child_name("key"),
            description=f"{naming.prefix}: CloudWatch log groups of this region",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=pulumi.Output.all(account_id, region).apply(lambda values: log_key_policy(values[0], values[1])),
            opts=self.opts(),
        )
        aws.kms.Alias(
            self.child_name("alias"),
            # The stack's region in the name: the CloudFront WAF's key lives in us-east-1 whatever the stack's
            # region, where another region's stack of the same name may have its own.
            name=f"alias/{naming.account_wide('logs')}",
            target_key_id=self.key.key_id,
            opts=self.opts(),
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.arn})

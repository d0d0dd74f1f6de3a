"""Alerts: the severity topics every alarm publishes to, and the forwarder that turns them into messages.

- Three SNS topics, `<project>-<stack>-alerts-{critical,warning,info}` (the forwarder reads the severity from
  the name's last segment), encrypted with a customer KMS key: the AWS-managed `aws/sns` key's policy cannot
  be edited, so CloudWatch, EventBridge and AWS Backup could not publish to a topic encrypted with it.
- An SQS inbox subscribed to all three (SNS envelopes, not raw), drained by the forwarder Lambda
  (lambdas/alert_forwarder) in batches of up to 100 with a 1 s batching window and partial batch failures.
  A storm of a thousand alerts is a handful of invocations instead of a thousand, and one alert a channel
  refuses is retried alone. A standard queue gives no order, and FIFO is not an option: a FIFO topic cannot
  deliver to the on-call e-mail (https://docs.aws.amazon.com/sns/latest/dg/fifo-message-delivery.html).
  So the forwarder orders one alarm's transitions by their StateChangeTime (`forward.decide`: an OK older
  than the recorded ALARM is `out_of_order`, and cannot leave the alarm open or closed wrongly).
- One dead-letter queue, watched at *critical* severity, for alerts that never reached a person: SNS could
  not deliver to the inbox, or the forwarder failed an alert five times. The function's own on-failure
  destination (its scheduled sweep) is the second.
- The on-call e-mail subscribed to the critical topic directly, so a page reaches a person even when the
  forwarder is broken — including the page saying the forwarder's DLQ is not empty.
- A DynamoDB table for alert state and history (TTL `expires_at`, point-in-time recovery) and one Secrets
  Manager secret with the channel credentials; the function's environment holds the secret's ARN, never a
  value.
- A scheduled sweep (escalations of critical alarms still in ALARM, digests of storm windows, the state a
  flapping alarm settled in).

E-mail goes through SES `SendEmail` from the forwarder, not through SNS e-mail subscriptions: SNS e-mail
sends the raw JSON of the notification with SNS's own subject line, one format for every alert, with no
HTML, cooldown, digest or escalation; SES lets the forwarder send its rendered HTML + text to the addresses
in the secret. The cost is one verified SES identity for the sender (created here; SES mails it a
verification link once) and, while the account is in the SES sandbox, verified recipients too. The on-call
address is the one exception: it is an SNS e-mail subscription on purpose, because it must not depend on
the forwarder.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.function import PythonFunction, PythonFunctionArgs
from infra.aws.kms import (
    ALARM_TOPIC_PUBLISHERS,
    DELETION_WINDOW_DAYS,
    account_administers_key,
    alarm_topic_key_policy,
)
from infra.aws.monitoring import EDGE_REGION, FunctionWatch, QueueWatch, edge_topic_name
from infra.aws.secrets import recovery_window_days
from infra.component import Component
from infra.config import ALERT_CHANNEL_SECRETS, AlertsConfig, AwsStack, Tier
from infra.naming import Naming

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
PACKAGE = "alert_forwarder"

PUBLISHING_SERVICES = ALARM_TOPIC_PUBLISHERS

HISTORY_INDEX = "by_alarm"
"""The forwarder's GSI listing one alarm's history (lambdas/alert_forwarder/state.py: `table_definition`)."""
TTL_ATTRIBUTE = "expires_at"
"""Epoch seconds on every item the forwarder writes; DynamoDB deletes expired items for free."""

SWEEP_EVENT: Mapping[str, str] = {"action": "sweep"}
"""What the scheduler sends; the forwarder's `is_sweep_event` recognises it."""

FORWARDER_TIMEOUT_S = 120
"""The forwarder retries each channel with backoff inside its time budget; two minutes leaves room for a
slow webhook plus its retries while an alert is still news."""
FORWARDER_MEMORY_MB = 256
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
"""The SQS maximum: time for a person to look and redrive."""

# The inbox between the topics and the forwarder. A storm arrives as batches instead of one invocation per
# alert (bench/bench_alert_forwarder.py measures this path), the forwarder answers with partial batch
# failures so one undeliverable alert does not re-send the others, and what fails INBOX_MAX_RECEIVES times
# lands in the dead-letter queue that pages critical.
INBOX_BATCH_SIZE = 100
"""Alerts per invocation at most. Above 10 Lambda needs a batching window (API: BatchSize ≤ 10 without
MaximumBatchingWindowInSeconds); 100 records of SNS envelopes stay far below the 6 MB invocation payload."""
INBOX_BATCHING_WINDOW_S = 1
"""What a single page may wait for company: Lambda invokes when the batch is full *or* this window ends, so
a lone critical alert is delayed by at most one second; a storm still fills batches of 100."""
INBOX_MAX_CONCURRENCY = 2
"""Concurrent forwarder invocations the inbox may start (the API's minimum is 2). Alerts of one alarm in
parallel batches only contend on the alarm's optimistic lock; more parallelism buys nothing for a few hundred
alerts a minute and would take account concurrency from the application in a storm."""
INBOX_MAX_RECEIVES = 5
"""AWS's advice for a Lambda-drained queue is at least 5, so a throttled invocation is not mistaken for a
poison message (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html)."""
INBOX_RETENTION_SECONDS = 4 * 24 * 3600
"""SQS's default; the DLQ alarm fires long before an alert could expire here."""


def inbox_visibility_timeout(function_timeout_s: int) -> int:
    """AWS: "set the source queue's visibility timeout to at least six times the timeout that you configure
    on your function", and Lambda refuses a mapping whose function timeout exceeds it
    (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html)."""
    return 6 * function_timeout_s


# Secret config key (ALERT_CHANNEL_SECRETS) -> key in the forwarder's channel secret JSON.
SECRET_FIELDS: Mapping[str, str] = {
    "slackWebhookUrl": "slack_webhook_url",
    "telegramBotToken": "telegram_bot_token",
    "telegramChatId": "telegram_chat_id",
    "webhookUrl": "webhook_url",
    "webhookSigningKey": "webhook_signing_key",
    "smsNumbers": "sms_numbers",
    "alertEmails": "email_addresses",
}
LIST_FIELDS = frozenset({"smsNumbers", "alertEmails"})
"""Comma-separated in config (one secret string each), lists in the secret JSON."""

DYNAMODB_ACTIONS: tuple[str, ...] = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
"""Exactly the calls lambdas/alert_forwarder/state.py makes (no Scan, no table management)."""


def routing_document(settings: AlertsConfig) -> dict[str, Any]:
    """The forwarder's ROUTING JSON (lambdas/alert_forwarder/config.py `load_routing`) from `shipyard:alerts`.

    Every severity is present ([] = history only): the forwarder refuses a ROUTING missing one.
    """
    document: dict[str, Any] = {severity: [] for severity in SEVERITIES}
    document.update({severity: list(channels) for severity, channels in settings.routing.items()})
    document.update(
        cooldown_seconds=settings.cooldown_minutes * 60,
        escalation_interval_seconds=settings.escalation.interval_minutes * 60,
        escalation_count=settings.escalation.max_count,
        storm_threshold=settings.storm.threshold,
        storm_window_seconds=settings.storm.window_seconds,
        rate_limit_per_minute=settings.rate_limit_per_minute,
    )
    return document


def sweep_minutes(settings: AlertsConfig) -> int:
    """How often the sweep runs: at most the escalation interval, and at least once per storm window.

    Escalations are due-time based (a marker per alarm), so a sweep more frequent than the interval never
    escalates early; it only bounds how late an escalation is. The same sweep sends the digest of a storm
    window that closed with no alert after it, so running it only every 30 minutes would hold that digest
    back for up to half an hour.
    """
    return max(1, min(settings.escalation.interval_minutes, math.ceil(settings.storm.window_seconds / 60)))


def split_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


@dataclass(frozen=True)
class AlertsArgs:
    settings: AlertsConfig
    """`shipyard:alerts`: routing per severity, on-call e-mail, cooldown, escalation, storm, rate limit."""
    tier: Tier
    """prod: the state table cannot be deleted by accident (deletion protection)."""
    channel_secrets: Mapping[str, str]
    """Secret config values by key (ALERT_CHANNEL_SECRETS), only those set: `AwsStack.secret(key)`."""
    layer_arn: pulumi.Input[str]
    """`LambdaDependencies.arn`."""
    email_from: str | None = None
    """Sender of alert e-mails (an SES identity is created for it); required when routing uses email."""
    timezone: str = "UTC"
    """Time zone of the sweep schedule (a rate expression: it only matters for the console)."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`) for the functions' log groups; None keeps the default encryption."""

    @classmethod
    def from_stack(
        cls, config: AwsStack, layer_arn: pulumi.Input[str], log_kms_key_arn: pulumi.Input[str] | None = None
    ) -> AlertsArgs:
        keys = sorted({key for keys in ALERT_CHANNEL_SECRETS.values() for key in keys})
        secrets = {key: value for key in keys if (value := config.secret(key)) is not None}
        email_from = config.alerts.email_from
        if email_from is None and config.domain is not None:
            email_from = f"alerts@{config.domain.name}"
        return cls(
            settings=config.alerts,
            tier=config.tier,
            channel_secrets=secrets,
            layer_arn=layer_arn,
            email_from=email_from,
            timezone=config.jobs.timezone,
            log_kms_key_arn=log_kms_key_arn,
        )


def _policy(statements: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def topic_policy(topic_arn: str, account_id: str) -> str:
    return _policy(
        [
            {
                # What SNS's default policy gives the owner account (its IAM principals still need IAM rights).
                "Sid": "AccountOwner",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
                "Action": [
                    "sns:GetTopicAttributes",
                    "sns:SetTopicAttributes",
                    "sns:AddPermission",
                    "sns:RemovePermission",
                    "sns:DeleteTopic",
                    "sns:Subscribe",
                    "sns:ListSubscriptionsByTopic",
                    "sns:Publish",
                ],
                "Resource": topic_arn,
            },
            {
                "Sid": "AwsServicesOfThisAccountPublish",
                "Effect": "Allow",
                "Principal": {"Service": list(PUBLISHING_SERVICES)},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                # Confused deputy: another account's alarm or backup job cannot use our topic.
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ]
    )


def alert_topic_arns(naming: Naming, *, region: str, account_id: str) -> list[str]:
    """Every topic that may deliver into the inbox: this stack's alert topics and, for CloudFront's alarms, the
    us-east-1 edge topics (monitoring.py). Built from names, not resources: the edge topics are created after
    the inbox, and a queue has exactly one policy."""
    regional = [f"arn:aws:sns:{region}:{account_id}:{naming.physical('alerts', s)}" for s in SEVERITIES]
    edge = [f"arn:aws:sns:{EDGE_REGION}:{account_id}:{edge_topic_name(naming, s)}" for s in SEVERITIES]
    return sorted({*regional, *edge})


def sns_delivery_policy(queue_arn: str, topic_arns: Sequence[str]) -> str:
    """SNS may send to the queue only on behalf of our own topics (SNS sets aws:SourceArn to the topic on every
    delivery: https://docs.aws.amazon.com/sns/latest/dg/subscribe-sqs-queue-to-sns-topic.html)."""
    return _policy(
        [
            {
                "Sid": "AlertTopicsDeliver",
                "Effect": "Allow",
                "Principal": {"Service": "sns.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": list(topic_arns)}},
            }
        ]
    )


def data_key_policy(account_id: str) -> str:
    """The key of the state table and the channel secret: administered through IAM only; the forwarder's
    role gets its (service-scoped) rights in its own policy."""
    return _policy([account_administers_key(account_id)])


def forwarder_statements(
    *,
    secret_arn: str,
    table_arn: str,
    data_key_arn: str | None,
    inbox_arn: str,
    region: str,
    account_id: str,
    alarm_prefix: str,
    email_identity_arn: str | None,
    sms: bool,
) -> list[dict[str, Any]]:
    """The forwarder's rights beyond its logs and DLQ (added by PythonFunction), each on exact ARNs."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ReadChannelCredentials",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": secret_arn,
        },
        {
            "Sid": "AlertStateAndHistory",
            "Effect": "Allow",
            "Action": list(DYNAMODB_ACTIONS),
            "Resource": [table_arn, f"{table_arn}/index/{HISTORY_INDEX}"],
        },
        {
            # What the event source mapping does with the function's role: exactly the calls of AWS's
            # AWSLambdaSQSQueueExecutionRole, on the inbox only.
            "Sid": "DrainAlertInbox",
            "Effect": "Allow",
            "Action": ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
            "Resource": inbox_arn,
        },
        {
            # Escalation checks that the alarm is still in ALARM before re-sending; only this stack's alarms.
            "Sid": "ReadOwnAlarmStates",
            "Effect": "Allow",
            "Action": "cloudwatch:DescribeAlarms",
            "Resource": f"arn:aws:cloudwatch:{region}:{account_id}:alarm:{alarm_prefix}-*",
        },
    ]
    if data_key_arn is not None:
        statements.append(
            {
                "Sid": "UseDataKeyThroughDynamoDbAndSecretsManager",
                "Effect": "Allow",
                "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": data_key_arn,
                "Condition": {
                    "StringEquals": {
                        "kms:ViaService": [
                            f"dynamodb.{region}.amazonaws.com",
                            f"secretsmanager.{region}.amazonaws.com",
                        ]
                    }
                },
            }
        )
    if email_identity_arn is not None:
        statements.append(
            {"Sid": "SendAlertEmail", "Effect": "Allow", "Action": "ses:SendEmail", "Resource": email_identity_arn}
        )
    if sms:
        # A phone number has no ARN, so SMS publishing can only be granted on "*". The Deny takes every
        # topic and platform endpoint (all of which have arn:aws:sns ARNs) back out: what is left is a
        # Publish with PhoneNumber, i.e. SMS.
        statements += [
            {"Sid": "SendSms", "Effect": "Allow", "Action": "sns:Publish", "Resource": "*"},
            {"Sid": "SmsOnlyNoTopics", "Effect": "Deny", "Action": "sns:Publish", "Resource": "arn:aws:sns:*:*:*"},
        ]
    return statements


class Alerts(Component):
    topics: dict[str, aws.sns.Topic]
    topic_arns: dict[str, pulumi.Output[str]]
    """Severity → topic ARN: what alarms, EventBridge rules and AWS Backup publish to."""
    forwarder: PythonFunction
    inbox: aws.sqs.Queue
    """Every alert topic delivers here; the forwarder drains it in batches (`INBOX_*`)."""
    delivery_dlq: aws.sqs.Queue
    """Alerts that never reached a person: SNS could not deliver them to the inbox, or the forwarder failed
    them `INBOX_MAX_RECEIVES` times."""
    table: aws.dynamodb.Table
    secret: aws.secretsmanager.Secret

    def __init__(self, name: str, args: AlertsArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Alerts", name, naming, opts)
        self.args = args
        channels = args.settings.channels_in_use()
        if "email" in channels and args.email_from is None:
            raise ValueError("alerts: routing uses email but no sender is known; set shipyard:alerts.emailFrom")
        invoke = pulumi.InvokeOutputOptions(parent=self)
        self.account_id = aws.get_caller_identity_output(opts=invoke).account_id
        self.region = aws.get_region_output(opts=invoke).region

        self._create_topics()
        self._create_state_table()
        self._create_channel_secret()
        email_identity_arn = self._create_email_identity(channels)
        self._create_queues()
        self._create_forwarder(channels, email_identity_arn)
        self._subscribe_forwarder()
        self._subscribe_oncall()

        self.table_name = self.table.name
        self.function_name = self.forwarder.function_name
        self.dlq_url = self.forwarder.dead_letter_queue.url
        self.register_outputs(
            {
                "topicArns": self.topic_arns,
                "stateTable": self.table_name,
                "functionName": self.function_name,
                "dlqUrl": self.dlq_url,
                "inboxUrl": self.inbox.url,
            }
        )

    def _create_topics(self) -> None:
        self.topic_key = aws.kms.Key(
            self.child_name("topic-key"),
            description=f"{self.naming.physical('alerts')}: alert topics (CloudWatch, EventBridge, AWS Backup publish)",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=self.account_id.apply(alarm_topic_key_policy),
            opts=self.opts(),
        )
        aws.kms.Alias(
            self.child_name("topic-key-alias"),
            name=f"alias/{self.naming.physical('alerts-topics')}",
            target_key_id=self.topic_key.key_id,
            opts=self.opts(),
        )
        self.topics = {}
        for severity in SEVERITIES:
            topic = aws.sns.Topic(
                self.child_name("topic", severity),
                name=self.naming.physical("alerts", severity),
                display_name=f"{self.naming.prefix} {severity} alerts",
                kms_master_key_id=self.topic_key.arn,
                opts=self.opts(),
            )
            aws.sns.TopicPolicy(
                self.child_name("topic-policy", severity),
                arn=topic.arn,
                policy=pulumi.Output.all(topic.arn, self.account_id).apply(lambda v: topic_policy(v[0], v[1])),
                opts=self.opts(),
            )
            self.topics[severity] = topic
        self.topic_arns = {severity: topic.arn for severity, topic in self.topics.items()}

    def _create_state_table(self) -> None:
        self.data_key: aws.kms.Key | None = None
        if self.args.tier == "prod":
            self._create_data_key()
        data_key_arn = self.data_key.arn if self.data_key is not None else None
        # Key schema: lambdas/alert_forwarder/state.py `table_definition` (a test compares the two).
        self.table = aws.dynamodb.Table(
            self.child_name("state"),
            name=self.naming.physical("alerts-state"),
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            range_key="sk",
            attributes=[
                aws.dynamodb.TableAttributeArgs(name=attribute, type="S")
                for attribute in ("pk", "sk", "gsi1pk", "gsi1sk")
            ],
            global_secondary_indexes=[
                aws.dynamodb.TableGlobalSecondaryIndexArgs(
                    name=HISTORY_INDEX,
                    key_schemas=[
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name="gsi1pk", key_type="HASH"),
                        aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name="gsi1sk", key_type="RANGE"),
                    ],
                    projection_type="ALL",
                )
            ],
            ttl=aws.dynamodb.TableTtlArgs(attribute_name=TTL_ATTRIBUTE, enabled=True),
            point_in_time_recovery=aws.dynamodb.TablePointInTimeRecoveryArgs(enabled=True),
            # Without a customer key: the AWS managed key aws/dynamodb (free; use still logged in CloudTrail).
            server_side_encryption=aws.dynamodb.TableServerSideEncryptionArgs(enabled=True, kms_key_arn=data_key_arn),
            deletion_protection_enabled=self.args.tier == "prod",
            opts=self.opts(),
        )

    def _create_data_key(self) -> None:
        """Prod: one customer key for the table and the secret, so access to alert history (which names hosts and
        quotes error text) and to the credentials can be revoked by disabling the key, and key policy changes
        are the account's own. Staging keeps the AWS managed keys (aws/dynamodb, aws/secretsmanager): a key is
        1 USD a month and staging's alerts carry staging's data (issue 19)."""
        self.data_key = aws.kms.Key(
            self.child_name("data-key"),
            description=f"{self.naming.physical('alerts')}: alert state table and channel credentials",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=self.account_id.apply(data_key_policy),
            opts=self.opts(),
        )
        aws.kms.Alias(
            self.child_name("data-key-alias"),
            name=f"alias/{self.naming.physical('alerts-data')}",
            target_key_id=self.data_key.key_id,
            opts=self.opts(),
        )

    def _create_channel_secret(self) -> None:
        args = self.args
        values: dict[str, pulumi.Output[Any]] = {}
        for key, secret_key in SECRET_FIELDS.items():
            given = args.channel_secrets.get(key)
            if given is None:
                continue
            values[secret_key] = pulumi.Output.secret(split_list(given) if key in LIST_FIELDS else given)
        if args.email_from is not None:
            # Not a secret, but the forwarder reads every channel setting from one place.
            values["email_from"] = pulumi.Output.secret(args.email_from)
        self.secret = aws.secretsmanager.Secret(
            self.child_name("channels"),
            # A prefix: a fixed name stays taken for the recovery window after a destroy (infra/aws/secrets.py).
            name_prefix=self.naming.name_prefix("alert-channels"),
            description="Alert channel credentials read by the alert forwarder: " + ", ".join(sorted(values)),
            kms_key_id=self.data_key.arn if self.data_key is not None else None,  # None: aws/secretsmanager
            recovery_window_in_days=recovery_window_days(self.args.tier),
            opts=self.opts(),
        )
        aws.secretsmanager.SecretVersion(
            self.child_name("channels-value"),
            secret_id=self.secret.id,
            # Secret even when no channel is configured (an empty document still says which keys are unset).
            secret_string=pulumi.Output.json_dumps(values).apply(pulumi.Output.secret),
            opts=self.opts(),
        )

    def _create_email_identity(self, channels: AbstractSet[str]) -> pulumi.Input[str | None]:
        self.email_identity: aws.ses.EmailIdentity | None = None
        if "email" not in channels or self.args.email_from is None:
            return None
        self.email_identity = aws.ses.EmailIdentity(
            self.child_name("sender"), email=self.args.email_from, opts=self.opts()
        )
        return self.email_identity.arn

    def _create_queues(self) -> None:
        """The inbox every alert topic delivers to, and the dead-letter queue behind both hops."""
        self.delivery_dlq = aws.sqs.Queue(
            self.child_name("delivery-dlq"),
            name=self.naming.physical("alerts-delivery-dlq"),
            sqs_managed_sse_enabled=True,
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            opts=self.opts(),
        )
        self.inbox = aws.sqs.Queue(
            self.child_name("inbox"),
            name=self.naming.physical("alerts-inbox"),
            # SSE-SQS works with an SNS subscription and needs no key policy for sns.amazonaws.com
            # (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-server-side-encryption.html).
            sqs_managed_sse_enabled=True,
            visibility_timeout_seconds=inbox_visibility_timeout(FORWARDER_TIMEOUT_S),
            message_retention_seconds=INBOX_RETENTION_SECONDS,
            receive_wait_time_seconds=20,
            redrive_policy=self.delivery_dlq.arn.apply(
                lambda arn: json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": INBOX_MAX_RECEIVES})
            ),
            opts=self.opts(),
        )
        publishers = pulumi.Output.all(self.region, self.account_id).apply(
            lambda v: alert_topic_arns(self.naming, region=v[0], account_id=v[1])
        )
        for part, queue in (("inbox-policy", self.inbox), ("delivery-dlq-policy", self.delivery_dlq)):
            aws.sqs.QueuePolicy(
                self.child_name(part),
                queue_url=queue.url,
                policy=pulumi.Output.all(queue.arn, publishers).apply(lambda v: sns_delivery_policy(v[0], v[1])),
                opts=self.opts(),
            )

    def _create_forwarder(self, channels: AbstractSet[str], email_identity_arn: pulumi.Input[str | None]) -> None:
        statements = pulumi.Output.all(
            secret_arn=self.secret.arn,
            table_arn=self.table.arn,
            data_key_arn=self.data_key.arn if self.data_key is not None else None,
            inbox_arn=self.inbox.arn,
            region=self.region,
            account_id=self.account_id,
            email_identity_arn=email_identity_arn,
        ).apply(
            lambda v: forwarder_statements(
                secret_arn=v["secret_arn"],
                table_arn=v["table_arn"],
                data_key_arn=v["data_key_arn"],
                inbox_arn=v["inbox_arn"],
                region=v["region"],
                account_id=v["account_id"],
                alarm_prefix=self.naming.prefix,
                email_identity_arn=v["email_identity_arn"],
                sms="sms" in channels,
            )
        )
        self.routing = routing_document(self.args.settings)
        self.forwarder = PythonFunction(
            self.child_name("forwarder"),
            PythonFunctionArgs(
                package=PACKAGE,
                layer_arn=self.args.layer_arn,
                log_kms_key_arn=self.args.log_kms_key_arn,
                description="Alert forwarder: SNS alert topics to Slack, Telegram, e-mail, SMS and webhooks",
                memory_mb=FORWARDER_MEMORY_MB,
                timeout_seconds=FORWARDER_TIMEOUT_S,
                environment={
                    "ROUTING": json.dumps(self.routing, sort_keys=True, separators=(",", ":")),
                    "CHANNELS_SECRET_ARN": self.secret.arn,
                    "STATE_TABLE": self.table.name,
                    "PROJECT": self.naming.project,
                },
                policy_statements=statements,
            ),
            self.naming,
            self.opts(),
        )
        self.forwarder.add_schedule(
            "sweep", f"rate({_minutes(sweep_minutes(self.args.settings))})", self.args.timezone, SWEEP_EVENT
        )

    def _subscribe_forwarder(self) -> None:
        """Topics → inbox (SNS envelopes, not raw: the forwarder reads the severity from TopicArn and uses
        the SNS MessageId as its idempotency key) → the forwarder, in batches with partial failures."""
        redrive = self.delivery_dlq.arn.apply(lambda arn: json.dumps({"deadLetterTargetArn": arn}))
        for severity, topic in self.topics.items():
            aws.sns.TopicSubscription(
                self.child_name("forwarder", severity),
                topic=topic.arn,
                protocol="sqs",
                endpoint=self.inbox.arn,
                raw_message_delivery=False,
                redrive_policy=redrive,
                opts=self.opts(),
            )
        self.event_source = aws.lambda_.EventSourceMapping(
            self.child_name("inbox-source"),
            event_source_arn=self.inbox.arn,
            function_name=self.forwarder.function.name,
            batch_size=INBOX_BATCH_SIZE,
            maximum_batching_window_in_seconds=INBOX_BATCHING_WINDOW_S,
            function_response_types=["ReportBatchItemFailures"],
            scaling_config=aws.lambda_.EventSourceMappingScalingConfigArgs(maximum_concurrency=INBOX_MAX_CONCURRENCY),
            opts=self.opts(),
        )

    def _subscribe_oncall(self) -> None:
        self.oncall_subscription: aws.sns.TopicSubscription | None = None
        if self.args.settings.oncall_email is not None:
            self.oncall_subscription = aws.sns.TopicSubscription(
                self.child_name("oncall", "critical"),
                topic=self.topics["critical"].arn,
                protocol="email",
                endpoint=self.args.settings.oncall_email,
                opts=self.opts(),
            )

    def function_watches(self) -> list[FunctionWatch]:
        return [
            FunctionWatch(
                label="alert-forwarder",
                function_name=self.forwarder.function_name,
                timeout_seconds=self.forwarder.timeout_seconds,
            )
        ]

    def queue_watches(self) -> list[QueueWatch]:
        """Both dead-letter queues, paged as critical: the e-mail on the critical topic reaches a person even
        when the forwarder, whose failure these queues record, is the thing that is broken."""
        return [
            QueueWatch(label="alert-forwarder", queue_name=self.forwarder.dead_letter_queue.name, severity="critical"),
            QueueWatch(label="alert-delivery", queue_name=self.delivery_dlq.name, severity="critical"),
        ]


def _minutes(count: int) -> str:
    return "1 minute" if count == 1 else f"{count} minutes"

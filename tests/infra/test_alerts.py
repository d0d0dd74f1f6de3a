"""Alert topics, the forwarder Lambda, its state table and secret, read from what the real program registers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.aws.alerts import (
    INBOX_BATCH_SIZE,
    INBOX_MAX_RECEIVES,
    PUBLISHING_SERVICES,
    SEVERITIES,
    SWEEP_EVENT,
    routing_document,
)
from infra.config import ConfigError, parse_stack_config
from infra.harness import Resource, StackRun
from lambdas.alert_forwarder.config import load_routing, parse_channel_secrets
from lambdas.alert_forwarder.handler import is_sweep_event
from lambdas.alert_forwarder.parse import severity_from_topic
from lambdas.alert_forwarder.state import table_definition
from tests.infra.conftest import ALERT_SECRETS, evaluate

TOPIC = "aws:sns/topic:Topic"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
PERMISSION = "aws:lambda/permission:Permission"
EVENT_SOURCE = "aws:lambda/eventSourceMapping:EventSourceMapping"
FUNCTION = "aws:lambda/function:Function"
QUEUE = "aws:sqs/queue:Queue"
QUEUE_POLICY = "aws:sqs/queuePolicy:QueuePolicy"
TABLE = "aws:dynamodb/table:Table"
KEY = "aws:kms/key:Key"
SECRET = "aws:secretsmanager/secret:Secret"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
SCHEDULE = "aws:scheduler/schedule:Schedule"
METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE_ALARM = "aws:cloudwatch/compositeAlarm:CompositeAlarm"


def _topics(run: StackRun) -> dict[str, Resource]:
    return {r.name.removeprefix("alerts-topic-"): r for r in run.of_type(TOPIC) if r.name.startswith("alerts-topic-")}


def _topic_arns(run: StackRun) -> dict[str, str]:
    return {severity: topic.outputs["arn"] for severity, topic in _topics(run).items()}


def _forwarder(run: StackRun) -> Resource:
    return run.one(FUNCTION, "alerts-forwarder-function")


def _statements(run: StackRun) -> list[dict[str, Any]]:
    return json.loads(run.one(ROLE_POLICY, "alerts-forwarder-policy").inputs["policy"])["Statement"]


def _by_sid(run: StackRun) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in _statements(run) if "Sid" in s}


def _channel_secret(run: StackRun) -> Resource:
    return run.one(SECRET_VERSION, "alerts-channels-value")


# ------------------------------------------------------------------------------------------------- topics


def test_one_encrypted_topic_per_severity_named_so_the_forwarder_reads_the_severity(any_stack: StackRun) -> None:
    topics = _topics(any_stack)
    assert sorted(topics) == sorted(SEVERITIES)
    key = any_stack.one(KEY, "alerts-topic-key")
    assert key.inputs["enableKeyRotation"] is True
    for severity, topic in topics.items():
        assert topic.inputs["name"] == f"shipyard-{any_stack.stack}-alerts-{severity}"
        assert severity_from_topic(topic.outputs["arn"]) == severity
        assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
        assert any_stack.component_of(topic).name == "alerts"  # type: ignore[union-attr]
    assert any_stack.outputs["alertTopicArns"] == _topic_arns(any_stack)


def test_topic_key_policy_lets_the_publishing_services_encrypt(any_stack: StackRun) -> None:
    policy = json.loads(any_stack.one(KEY, "alerts-topic-key").inputs["policy"])
    services = [s for s in policy["Statement"] if "Service" in s["Principal"]]
    (statement,) = services
    assert sorted(statement["Principal"]["Service"]) == sorted(PUBLISHING_SERVICES)
    assert set(PUBLISHING_SERVICES) == {
        "cloudwatch.amazonaws.com",
        "events.amazonaws.com",
        "events.rds.amazonaws.com",
        "backup.amazonaws.com",
    }
    assert sorted(statement["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]


def test_topic_policies_let_the_publishing_services_of_this_account_publish(any_stack: StackRun) -> None:
    for severity, arn in _topic_arns(any_stack).items():
        policy_resource = any_stack.one(TOPIC_POLICY, f"alerts-topic-policy-{severity}")
        assert policy_resource.inputs["arn"] == arn
        statements = {s["Sid"]: s for s in json.loads(policy_resource.inputs["policy"])["Statement"]}
        services = statements["AwsServicesOfThisAccountPublish"]
        assert sorted(services["Principal"]["Service"]) == sorted(PUBLISHING_SERVICES)
        assert services["Action"] == "sns:Publish"
        assert services["Resource"] == arn
        assert services["Condition"] == {"StringEquals": {"aws:SourceAccount": "123456789012"}}
        owner = statements["AccountOwner"]
        assert owner["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}
        assert "sns:Publish" in owner["Action"] and owner["Resource"] == arn


# ------------------------------------------------------------------------------------------------- forwarder


def test_every_topic_delivers_sns_envelopes_to_the_inbox_and_never_invokes_the_forwarder_directly(
    any_stack: StackRun,
) -> None:
    inbox = any_stack.one(QUEUE, "alerts-inbox")
    delivery_dlq = any_stack.one(QUEUE, "alerts-delivery-dlq")
    for severity, arn in _topic_arns(any_stack).items():
        subscription = any_stack.one(SUBSCRIPTION, f"alerts-forwarder-{severity}")
        assert subscription.inputs["topic"] == arn
        assert subscription.inputs["protocol"] == "sqs"
        assert subscription.inputs["endpoint"] == inbox.outputs["arn"]
        # Not raw: the forwarder reads the severity from TopicArn and dedupes on the SNS MessageId.
        assert subscription.inputs["rawMessageDelivery"] is False
        # Deliveries SNS cannot make after its retries (queue policy or key broken) are kept, not dropped.
        assert json.loads(subscription.inputs["redrivePolicy"]) == {"deadLetterTargetArn": delivery_dlq.outputs["arn"]}
    # One record per invocation is what made a storm take 35 s: nothing subscribes the function itself.
    assert [s for s in any_stack.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "lambda"] == []
    assert [p for p in any_stack.of_type(PERMISSION) if p.inputs["principal"] == "sns.amazonaws.com"] == []
    assert any_stack.outputs["alertForwarderFunction"] == _forwarder(any_stack).outputs["name"]


def test_the_forwarder_drains_the_inbox_in_batches_with_partial_failures(any_stack: StackRun) -> None:
    inbox = any_stack.one(QUEUE, "alerts-inbox")
    mapping = any_stack.one(EVENT_SOURCE, "alerts-inbox-source")
    assert mapping.inputs["eventSourceArn"] == inbox.outputs["arn"]
    assert mapping.inputs["functionName"] == _forwarder(any_stack).outputs["name"]
    assert mapping.inputs["functionResponseTypes"] == ["ReportBatchItemFailures"]
    # Above 10 records Lambda requires a batching window; the window bounds what a lone page waits.
    assert mapping.inputs["batchSize"] == INBOX_BATCH_SIZE > 10
    assert 1 <= mapping.inputs["maximumBatchingWindowInSeconds"] <= 1
    assert mapping.inputs["scalingConfig"]["maximumConcurrency"] >= 2  # the API's minimum
    # Lambda refuses a mapping whose function timeout exceeds the visibility timeout; AWS advises 6x.
    timeout = _forwarder(any_stack).inputs["timeout"]
    assert inbox.inputs["visibilityTimeoutSeconds"] == 6 * timeout
    assert inbox.inputs["sqsManagedSseEnabled"] is True
    redrive = json.loads(inbox.inputs["redrivePolicy"])
    assert redrive == {
        "deadLetterTargetArn": any_stack.one(QUEUE, "alerts-delivery-dlq").outputs["arn"],
        "maxReceiveCount": INBOX_MAX_RECEIVES,
    }
    assert INBOX_MAX_RECEIVES >= 5
    # The function's role may drain this queue and no other.
    (drain,) = [s for s in _statements(any_stack) if s.get("Sid") == "DrainAlertInbox"]
    assert drain["Resource"] == inbox.outputs["arn"]
    assert sorted(drain["Action"]) == ["sqs:DeleteMessage", "sqs:GetQueueAttributes", "sqs:ReceiveMessage"]


def test_queues_are_encrypted_and_sns_may_write_only_from_our_topics(any_stack: StackRun) -> None:
    function_dlq = any_stack.one(QUEUE, "alerts-forwarder-dlq")
    delivery_dlq = any_stack.one(QUEUE, "alerts-delivery-dlq")
    for queue in (function_dlq, delivery_dlq):
        assert queue.inputs["sqsManagedSseEnabled"] is True
        assert queue.inputs["messageRetentionSeconds"] == 14 * 24 * 3600
    assert any_stack.outputs["alertDlqUrl"] == function_dlq.outputs["url"]
    assert any_stack.outputs["alertDeliveryDlqUrl"] == delivery_dlq.outputs["url"]
    region = any_stack.outputs["region"]
    edge_names = [f"shipyard-{any_stack.stack}-{region}-alarms-edge-{s}" for s in SEVERITIES]
    expected_sources = sorted(
        [*_topic_arns(any_stack).values(), *(f"arn:aws:sns:us-east-1:123456789012:{n}" for n in edge_names)]
    )
    assert all(f":{region}:" in arn for arn in _topic_arns(any_stack).values())
    for part, queue in (("inbox", any_stack.one(QUEUE, "alerts-inbox")), ("delivery-dlq", delivery_dlq)):
        queue_policy = any_stack.one(QUEUE_POLICY, f"alerts-{part}-policy")
        assert queue_policy.inputs["queueUrl"] == queue.outputs["url"]
        (statement,) = json.loads(queue_policy.inputs["policy"])["Statement"]
        assert statement["Principal"] == {"Service": "sns.amazonaws.com"}
        assert statement["Action"] == "sqs:SendMessage"
        assert statement["Resource"] == queue.outputs["arn"]
        assert sorted(statement["Condition"]["ArnEquals"]["aws:SourceArn"]) == expected_sources
    # Lambda's on-failure destination for the forwarder's own asynchronous invocations (the sweep).
    invoke_config = any_stack.one(
        "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig", "alerts-forwarder-async"
    )
    destination = invoke_config.inputs["destinationConfig"]["onFailure"]["destination"]
    assert destination == function_dlq.outputs["arn"]


def test_sweep_runs_on_a_schedule_with_the_event_the_forwarder_recognises(any_stack: StackRun) -> None:
    schedule = any_stack.one(SCHEDULE, "alerts-forwarder-sweep-schedule")
    payload = json.loads(schedule.inputs["target"]["input"])
    assert payload == dict(SWEEP_EVENT)
    assert is_sweep_event(payload)
    assert schedule.inputs["target"]["arn"] == _forwarder(any_stack).outputs["arn"]
    # At most the escalation interval (30 min), at least once per 60-s storm window.
    assert schedule.inputs["scheduleExpression"] == "rate(1 minute)"


def test_sweep_follows_a_short_escalation_interval_and_a_long_storm_window() -> None:
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:alerts": {
                "routing": {"critical": ["slack"], "warning": [], "info": []},
                "escalation": {"intervalMinutes": 5},
                "storm": {"threshold": 10, "windowSeconds": 900},
            }
        },
    )
    assert run.one(SCHEDULE, "alerts-forwarder-sweep-schedule").inputs["scheduleExpression"] == "rate(5 minutes)"


# ------------------------------------------------------------------------------------------------- routing


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_routing_env_is_the_stack_config_and_the_forwarder_parses_it(
    stack: str, stack_runs: dict[str, StackRun]
) -> None:
    run = stack_runs[stack]
    text = _forwarder(run).inputs["environment"]["variables"]["ROUTING"]
    config = parse_stack_config(
        {**_engine_config(stack), **ALERT_SECRETS},
        source=f"Pulumi.{stack}.yaml",
        secret_keys=set(ALERT_SECRETS),
    )
    assert json.loads(text) == routing_document(config.alerts)
    routing = load_routing(text)
    for severity in SEVERITIES:
        assert list(routing.channels_for(severity)) == list(config.alerts.routing.get(severity, []))  # type: ignore[call-overload]
    assert routing.cooldown_seconds == config.alerts.cooldown_minutes * 60
    assert routing.escalation_interval_seconds == config.alerts.escalation.interval_minutes * 60
    assert routing.escalation_count == config.alerts.escalation.max_count
    assert routing.storm_threshold == config.alerts.storm.threshold
    assert routing.storm_window_seconds == config.alerts.storm.window_seconds
    assert set(routing.rate_limit_per_minute.values()) == {config.alerts.rate_limit_per_minute}


def test_prod_routes_critical_to_four_channels(prod: StackRun) -> None:
    routing = load_routing(_forwarder(prod).inputs["environment"]["variables"]["ROUTING"])
    assert routing.channels_for("critical") == ("sms", "telegram", "slack", "email")
    assert routing.channels_for("warning") == ("slack", "telegram")
    assert routing.channels_for("info") == ()


def test_routing_missing_a_severity_still_gives_the_forwarder_all_three() -> None:
    run = evaluate("staging", config_overrides={"shipyard:alerts": {"routing": {"critical": ["slack"]}}})
    routing = load_routing(_forwarder(run).inputs["environment"]["variables"]["ROUTING"])
    assert routing.channels_for("critical") == ("slack",)
    assert routing.channels_for("warning") == () and routing.channels_for("info") == ()


def _engine_config(stack: str) -> dict[str, Any]:
    from infra.harness import engine_config, stack_file

    config, _secret_keys, _placeholders = engine_config(
        stack_file(stack), "shipyard", placeholders_for_missing_secrets=False
    )
    return config


# ------------------------------------------------------------------------------------------------- state


def test_state_table_matches_the_forwarder_schema_with_ttl_pitr_and_our_key(any_stack: StackRun) -> None:
    table = any_stack.one(TABLE, "alerts-state")
    expected = table_definition("x")
    inputs = table.inputs
    assert inputs["billingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
    keys = {k["KeyType"]: k["AttributeName"] for k in expected["KeySchema"]}
    assert (inputs["hashKey"], inputs["rangeKey"]) == (keys["HASH"], keys["RANGE"])
    assert sorted((a["name"], a["type"]) for a in inputs["attributes"]) == sorted(
        (a["AttributeName"], a["AttributeType"]) for a in expected["AttributeDefinitions"]
    )
    (index,) = inputs["globalSecondaryIndexes"]
    (expected_index,) = expected["GlobalSecondaryIndexes"]
    assert index["name"] == expected_index["IndexName"]
    assert [(k["attributeName"], k["keyType"]) for k in index["keySchemas"]] == [
        (k["AttributeName"], k["KeyType"]) for k in expected_index["KeySchema"]
    ]
    assert index["projectionType"] == expected_index["Projection"]["ProjectionType"]
    assert inputs["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert inputs["pointInTimeRecovery"]["enabled"] is True
    if any_stack.stack == "prod":
        data_key = any_stack.one(KEY, "alerts-data-key")
        assert data_key.inputs["enableKeyRotation"] is True
        assert inputs["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": data_key.outputs["arn"]}
    else:  # staging: the AWS managed key aws/dynamodb (issue 19: a customer key is 1 USD a month)
        assert inputs["serverSideEncryption"] == {"enabled": True}
        assert [k for k in any_stack.of_type(KEY) if k.name == "alerts-data-key"] == []
        assert any_stack.one(SECRET, "alerts-channels").inputs.get("kmsKeyId") is None
    assert inputs["deletionProtectionEnabled"] is (any_stack.stack == "prod")
    assert any_stack.outputs["alertStateTable"] == table.outputs["name"]


# ------------------------------------------------------------------------------------------------- secrets


def test_channel_secret_holds_secret_values_the_forwarder_can_parse(prod: StackRun) -> None:
    version = _channel_secret(prod)
    assert "secretString" in version.secret_inputs
    secret = prod.one(SECRET, "alerts-channels")
    assert version.inputs["secretId"] == secret.id
    assert secret.inputs["kmsKeyId"] == prod.one(KEY, "alerts-data-key").outputs["arn"]
    document = json.loads(version.inputs["secretString"])
    assert document == {
        "slack_webhook_url": ALERT_SECRETS["shipyard:slackWebhookUrl"],
        "telegram_bot_token": ALERT_SECRETS["shipyard:telegramBotToken"],
        "telegram_chat_id": ALERT_SECRETS["shipyard:telegramChatId"],
        "webhook_url": ALERT_SECRETS["shipyard:webhookUrl"],
        "webhook_signing_key": ALERT_SECRETS["shipyard:webhookSigningKey"],
        "sms_numbers": ["+5511999990000"],
        "email_addresses": ["oncall@example.com"],
        "email_from": "alerts@example.com",
    }
    parsed = parse_channel_secrets(version.inputs["secretString"])
    for channel in ("slack", "telegram", "webhook", "sms", "email"):
        assert parsed.problem_for(channel) is None


def test_comma_separated_numbers_and_addresses_become_lists() -> None:
    run = evaluate(
        "prod",
        secret_overrides={
            **ALERT_SECRETS,
            "shipyard:smsNumbers": "+5511999990000, +5511988880000",
            "shipyard:alertEmails": "a@example.com,b@example.com ,",
        },
    )
    parsed = parse_channel_secrets(_channel_secret(run).inputs["secretString"])
    assert parsed.sms_numbers == ("+5511999990000", "+5511988880000")
    assert parsed.email_addresses == ("a@example.com", "b@example.com")


def test_lambda_env_holds_the_secret_arn_and_no_credential(any_stack: StackRun) -> None:
    variables = _forwarder(any_stack).inputs["environment"]["variables"]
    assert variables["CHANNELS_SECRET_ARN"] == any_stack.one(SECRET, "alerts-channels").outputs["arn"]
    assert variables["STATE_TABLE"] == any_stack.one(TABLE, "alerts-state").outputs["name"]
    assert variables["STACK"] == any_stack.stack and variables["PROJECT"] == "shipyard"
    flat = json.dumps(variables)
    for value in ALERT_SECRETS.values():
        for part in value.split(","):
            assert part not in flat


# ------------------------------------------------------------------------------------------------- e-mail, SMS


def test_oncall_email_is_subscribed_to_the_critical_topic_only(prod: StackRun, staging: StackRun) -> None:
    emails = [s for s in prod.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "email"]
    (oncall,) = emails
    assert oncall.inputs["endpoint"] == "oncall@example.com"
    assert oncall.inputs["topic"] == _topic_arns(prod)["critical"]
    assert [s for s in staging.of_type(SUBSCRIPTION) if s.inputs["protocol"] == "email"] == []


def test_prod_sends_email_through_a_verified_ses_sender_and_sms_through_sns(prod: StackRun) -> None:
    identity = prod.one("aws:ses/emailIdentity:EmailIdentity")
    assert identity.inputs["email"] == "alerts@example.com"  # alerts@<domain.name> by default
    statements = _by_sid(prod)
    assert statements["SendAlertEmail"]["Action"] == "ses:SendEmail"
    assert statements["SendAlertEmail"]["Resource"] == identity.outputs["arn"]
    assert statements["SendSms"] == {"Sid": "SendSms", "Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}
    assert statements["SmsOnlyNoTopics"]["Effect"] == "Deny"
    assert statements["SmsOnlyNoTopics"]["Resource"] == "arn:aws:sns:*:*:*"


def test_staging_without_email_or_sms_gets_neither_right(staging: StackRun) -> None:
    statements = _by_sid(staging)
    assert "SendAlertEmail" not in statements and "SendSms" not in statements
    assert staging.of_type("aws:ses/emailIdentity:EmailIdentity") == []


def test_email_sender_can_be_configured() -> None:
    run = evaluate(
        "prod",
        config_overrides={
            "shipyard:alerts": {
                "routing": {"critical": ["email"], "warning": [], "info": []},
                "oncallEmail": "oncall@example.com",
                "emailFrom": "pager@ops.example.com",
            }
        },
    )
    assert run.one("aws:ses/emailIdentity:EmailIdentity").inputs["email"] == "pager@ops.example.com"
    assert "SendSms" not in _by_sid(run)


def test_email_without_a_sender_or_domain_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"shipyard:alerts\.emailFrom: required when alerts\.routing uses email"):
        evaluate(
            "staging",
            config_overrides={"shipyard:alerts": {"routing": {"critical": ["email"], "warning": [], "info": []}}},
        )


# ------------------------------------------------------------------------------------------------- IAM


def test_forwarder_rights_are_scoped_to_exact_arns(any_stack: StackRun) -> None:
    statements = _by_sid(any_stack)
    secret = any_stack.one(SECRET, "alerts-channels").outputs["arn"]
    table = any_stack.one(TABLE, "alerts-state").outputs["arn"]
    assert statements["ReadChannelCredentials"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ReadChannelCredentials"]["Resource"] == secret
    assert statements["AlertStateAndHistory"]["Resource"] == [table, f"{table}/index/by_alarm"]
    assert all(a.startswith("dynamodb:") and "*" not in a for a in statements["AlertStateAndHistory"]["Action"])
    assert "dynamodb:Scan" not in statements["AlertStateAndHistory"]["Action"]
    if any_stack.stack == "prod":
        kms = statements["UseDataKeyThroughDynamoDbAndSecretsManager"]
        assert kms["Resource"] == any_stack.one(KEY, "alerts-data-key").outputs["arn"]
        assert sorted(kms["Condition"]["StringEquals"]["kms:ViaService"]) == [
            "dynamodb.us-east-1.amazonaws.com",
            "secretsmanager.us-east-1.amazonaws.com",
        ]
    else:  # AWS managed keys need no grant of ours: their policies admit the account's principals via the service
        assert not [sid for sid in statements if "Key" in sid]
    assert statements["ReadOwnAlarmStates"]["Resource"] == (
        f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:shipyard-{any_stack.stack}-*"
    )

    # "*" appears only for SMS publishing, and only next to the Deny that takes topics back out.
    def resources(statement: dict[str, Any]) -> list[str]:
        value = statement["Resource"]
        return [value] if isinstance(value, str) else value

    wildcard = [s for s in _statements(any_stack) if "*" in resources(s)]
    assert all(s.get("Sid") == "SendSms" for s in wildcard)


def test_data_key_is_administered_through_iam_only(prod: StackRun) -> None:
    (statement,) = json.loads(prod.one(KEY, "alerts-data-key").inputs["policy"])["Statement"]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:root"}


# ------------------------------------------------------------------------------------------------- alarms


def test_every_alarm_acts_on_an_alert_topic_of_its_severity(any_stack: StackRun) -> None:
    topics = _topic_arns(any_stack)
    alarms = any_stack.of_type(METRIC_ALARM) + any_stack.of_type(COMPOSITE_ALARM)
    assert alarms
    for alarm in alarms:
        severity = alarm.inputs["tags"]["severity"]
        assert alarm.inputs["alarmActions"] == [topics[severity]], alarm.name
        assert alarm.inputs["okActions"] == [topics[severity]], alarm.name
    # No bare monitoring topics: everything goes through the alerts component's topics.
    assert {t.name for t in any_stack.of_type(TOPIC)} == {f"alerts-topic-{s}" for s in SEVERITIES}


def test_forwarder_dead_letters_page_critical_so_they_bypass_the_forwarder(prod: StackRun) -> None:
    critical = _topic_arns(prod)["critical"]
    queue_names = {
        prod.one(QUEUE, "alerts-forwarder-dlq").outputs["name"],
        prod.one(QUEUE, "alerts-delivery-dlq").outputs["name"],
    }
    watching = [
        a
        for a in prod.of_type(METRIC_ALARM)
        if a.inputs["tags"]["alarm-id"] == "dlq-depth" and a.inputs["dimensions"]["QueueName"] in queue_names
    ]
    assert len(watching) == 2
    for alarm in watching:
        assert alarm.inputs["name"].startswith("shipyard-prod-critical-")
        assert alarm.inputs["alarmActions"] == [critical]
    oncall = [
        s for s in prod.of_type(SUBSCRIPTION) if s.inputs["topic"] == critical and s.inputs["protocol"] == "email"
    ]
    assert len(oncall) == 1
    # Other DLQs keep the catalogue's severity.
    others = [
        a
        for a in prod.of_type(METRIC_ALARM)
        if a.inputs["tags"]["alarm-id"] == "dlq-depth" and a.inputs["dimensions"]["QueueName"] not in queue_names
    ]
    assert others and all(a.inputs["tags"]["severity"] == "warning" for a in others)


def test_forwarder_function_is_watched(any_stack: StackRun) -> None:
    name = _forwarder(any_stack).outputs["name"]
    watched = {
        a.inputs["tags"]["alarm-id"]
        for a in any_stack.of_type(METRIC_ALARM)
        if (a.inputs.get("dimensions") or {}).get("FunctionName") == name
        or any(
            (q.get("metric") or {}).get("dimensions", {}).get("FunctionName") == name
            for q in a.inputs.get("metricQueries") or []
        )
    }
    assert {"lambda-errors", "lambda-throttles"} <= watched


def test_every_alerts_resource_lives_under_the_component(any_stack: StackRun) -> None:
    component = any_stack.one("shipyard:aws:Alerts")
    names = {r.name for r in any_stack.descendants(component)}
    assert {"alerts-topic-critical", "alerts-state", "alerts-channels", "alerts-forwarder-function"} <= names


def test_outside_us_east_1_the_cloudfront_alarm_topics_still_reach_the_forwarder_and_on_call() -> None:
    run = evaluate("prod", config_overrides={"aws:region": "eu-west-1"})
    inbox_arn = run.one(QUEUE, "alerts-inbox").outputs["arn"]
    assert ":eu-west-1:" in inbox_arn
    (inbox_policy,) = json.loads(run.one(QUEUE_POLICY, "alerts-inbox-policy").inputs["policy"])["Statement"]
    inbox_sources = inbox_policy["Condition"]["ArnEquals"]["aws:SourceArn"]
    edge = {t.name.rsplit("-", 1)[-1]: t for t in run.of_type(TOPIC) if t.name.startswith("monitoring-edge-topic-")}
    assert sorted(edge) == sorted(SEVERITIES)
    for severity, topic in edge.items():
        arn = topic.outputs["arn"]
        subscriptions = {
            s.inputs["protocol"]: s.inputs["endpoint"] for s in run.of_type(SUBSCRIPTION) if s.inputs["topic"] == arn
        }
        expected = {"sqs": inbox_arn, **({"email": "oncall@example.com"} if severity == "critical" else {})}
        assert subscriptions == expected
        # The inbox's policy admits this us-east-1 topic by the ARN it really has.
        assert arn in inbox_sources
    # Encrypted too, with a key of their own region (KMS keys are regional) that CloudWatch may use.
    edge_key = run.one(KEY, "monitoring-edge-topic-key")
    assert edge_key.provider is not None and edge_key.provider == edge["critical"].provider
    assert edge_key.inputs["enableKeyRotation"] is True
    assert all(t.inputs["kmsMasterKeyId"] == edge_key.outputs["arn"] for t in edge.values())
    (publishers,) = [s for s in json.loads(edge_key.inputs["policy"])["Statement"] if "Service" in s["Principal"]]
    assert sorted(publishers["Principal"]["Service"]) == sorted(PUBLISHING_SERVICES)
    (cloudfront_alarm,) = [a for a in run.of_type(METRIC_ALARM) if a.inputs["tags"]["alarm-id"] == "frontend-5xx-rate"]
    assert cloudfront_alarm.inputs["alarmActions"] == [edge["critical"].outputs["arn"]]


def test_alerts_waiting_unread_in_the_inbox_page_critical(any_stack: StackRun) -> None:
    """A disabled mapping or a function that cannot run leaves alerts in the inbox: they never reach the DLQ
    (they are not received) and would expire after the queue's retention without anyone hearing of them."""
    inbox = any_stack.one(QUEUE, "alerts-inbox")
    (stale,) = [a for a in any_stack.of_type(METRIC_ALARM) if a.inputs["tags"]["alarm-id"] == "alert-inbox-stale"]
    assert stale.inputs["metricName"] == "ApproximateAgeOfOldestMessage"
    assert stale.inputs["namespace"] == "AWS/SQS"
    assert stale.inputs["dimensions"] == {"QueueName": inbox.outputs["name"]}
    # Above a retry's wait (the visibility timeout), far below the inbox's retention.
    retry_wait, retention = inbox.inputs["visibilityTimeoutSeconds"], inbox.inputs["messageRetentionSeconds"]
    assert retry_wait < stale.inputs["threshold"] < retention
    assert stale.inputs["alarmActions"] == [_topic_arns(any_stack)["critical"]]

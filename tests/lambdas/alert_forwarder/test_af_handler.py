"""The Lambda handler as Lambda runs it: env config, Secrets Manager, SNS-delivered events, async retries
and the dead-letter queue (all moto on 127.0.0.1), metrics on stdout, and the preview CLI."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.alert_forwarder import handler
from lambdas.alert_forwarder.config import ConfigError
from lambdas.alert_forwarder.forward import DeliveryFailed
from lambdas.alert_forwarder.state import table_definition

from .conftest import SAMPLES, ses_messages
from .events import alarm_message, sns_event, topic_arn
from .sinks import Fault, Sinks

ROOT = Path(__file__).resolve().parents[3]
ROUTING = {
    "critical": ["slack", "telegram", "webhook", "email"],
    "warning": ["slack", "telegram"],
    "info": [],
    "channel_timeout_seconds": 2.0,  # see ROUTING_ALL in conftest.py
    "retry_max_attempts": 3,
    "retry_base_delay_seconds": 0.05,
}
TELEGRAM_TOKEN = "424242:HANDLER-SECRET-TOKEN"
SIGNING_KEY = "whsec-handler-secret"


class Context:
    """The part of the Lambda context the handler uses."""

    def __init__(self, seconds: float = 15.0):
        self._deadline = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


@pytest.fixture
def lambda_env(aws: Callable[[str], Any], sinks: Sinks, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    table = f"alerts-{uuid.uuid4().hex[:8]}"
    aws("dynamodb").create_table(**table_definition(table))
    secret = {
        "slack_webhook_url": sinks.slack.url,
        "telegram_bot_token": TELEGRAM_TOKEN,
        "telegram_chat_id": "-100200300",
        "webhook_url": sinks.webhook.url,
        "webhook_signing_key": SIGNING_KEY,
        "email_addresses": ["oncall@example.com"],
        "email_from": "alerts@example.com",
        "sms_numbers": ["+15555550199"],
    }
    arn = aws("secretsmanager").create_secret(Name=f"channels-{table}", SecretString=json.dumps(secret))["ARN"]
    dlq = aws("sqs").create_queue(QueueName=f"dlq-{table}")["QueueUrl"]
    env = {
        "ROUTING": json.dumps(ROUTING),
        "CHANNELS_SECRET_ARN": arn,
        "STATE_TABLE": table,
        "STACK": "test",
        "PROJECT": "shipyard",
        "TELEGRAM_API_BASE": sinks.telegram.base_url,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handler.reset_runtime()
    yield {"table": table, "dlq": dlq, "secret": secret}
    handler.reset_runtime()


def deliver_through_sns(
    aws: Callable[[str], Any], severity: str, messages: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Publish to a real (moto) SNS topic and take the notifications from an SQS subscription, which
    carries the same envelope Lambda gets in Records[].Sns."""
    sns, sqs = aws("sns"), aws("sqs")
    topic = sns.create_topic(Name=topic_arn(severity).rsplit(":", 1)[-1])["TopicArn"]
    queue = sqs.create_queue(QueueName=f"tap-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    for message in messages:
        sns.publish(TopicArn=topic, Message=json.dumps(message), Subject="ALARM")
    events: list[dict[str, Any]] = []
    for _ in range(10):  # bounded polling
        if len(events) == len(messages):
            break
        received = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        for msg in received.get("Messages", []):
            envelope = json.loads(msg["Body"])
            events.append({"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "Sns": envelope}]})
    assert len(events) == len(messages)
    return events


def invoke_like_lambda(aws: Callable[[str], Any], event: dict[str, Any], dlq_url: str, retries: int = 2) -> str:
    """Lambda's asynchronous invocation contract: the first try plus `retries`, then the DLQ."""
    error: Exception | None = None
    for _ in range(1 + retries):
        try:
            handler.handler(event, Context())
            return "ok"
        except DeliveryFailed as exc:
            error = exc
    aws("sqs").send_message(
        QueueUrl=dlq_url,
        MessageBody=json.dumps(event),
        MessageAttributes={"ErrorMessage": {"DataType": "String", "StringValue": str(error)[:1000]}},
    )
    return "dead-lettered"


def drain(aws: Callable[[str], Any], queue: str) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = []
    for _ in range(20):
        received = aws("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10, MessageAttributeNames=["All"])
        messages = received.get("Messages", [])
        if not messages:
            break
        for msg in messages:
            bodies.append(
                {
                    "event": json.loads(msg["Body"]),
                    "error": msg["MessageAttributes"]["ErrorMessage"]["StringValue"],
                }
            )
            aws("sqs").delete_message(QueueUrl=queue, ReceiptHandle=msg["ReceiptHandle"])
    return bodies


def delivered_names(sinks: Sinks, names: list[str]) -> dict[str, Counter[str]]:
    result = {}
    for kind, sink in (("slack", sinks.slack), ("telegram", sinks.telegram), ("webhook", sinks.webhook)):
        bodies = [r.body.decode() for r in sink.accepted]
        result[kind] = Counter(n for n in names for body in bodies if n in body)  # no name is a prefix of another
    return result


def test_every_record_is_delivered_or_dead_lettered_and_replay_never_duplicates(
    aws: Callable[[str], Any], sinks: Sinks, lambda_env: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    names = [f"shipyard-test-critical-svc{i}-down" for i in range(6)]
    events = deliver_through_sns(aws, "critical", [alarm_message(n, "ALARM", "OK") for n in names])
    emails_before = len(ses_messages())
    sinks.slack.fail_next("500")
    sinks.telegram.fail_next(Fault("429", retry_after=1), "garbage")
    outcomes = []
    for index, event in enumerate(events):
        # The webhook receiver is down (HTTP 500) while events 3 and 4 arrive: longer than Lambda retries.
        sinks.webhook.fail_always("500" if index in (3, 4) else None)
        outcomes.append(invoke_like_lambda(aws, event, lambda_env["dlq"]))
    sinks.webhook.fail_always(None)
    assert outcomes == ["ok", "ok", "ok", "dead-lettered", "dead-lettered", "ok"]

    dead = drain(aws, lambda_env["dlq"])
    assert len(dead) == 2
    assert all("webhook: HTTP 500" in d["error"] for d in dead)
    dead_names = {json.loads(d["event"]["Records"][0]["Sns"]["Message"])["AlarmName"] for d in dead}
    assert dead_names == {names[3], names[4]}
    # None dropped: every record is either fully delivered or in the DLQ; no duplicates anywhere.
    seen = delivered_names(sinks, names)
    assert seen["slack"] == Counter(dict.fromkeys(names, 1))
    assert seen["telegram"] == Counter(dict.fromkeys(names, 1))
    assert seen["webhook"] == Counter({n: 1 for n in names if n not in dead_names})

    for item in dead:  # an operator replays the DLQ once the receiver is back
        assert invoke_like_lambda(aws, item["event"], lambda_env["dlq"]) == "ok"
    seen = delivered_names(sinks, names)
    for kind in ("slack", "telegram", "webhook"):
        assert seen[kind] == Counter(dict.fromkeys(names, 1)), kind
    assert len(ses_messages()) - emails_before == len(names)

    output = capsys.readouterr()
    everything = output.out + output.err
    for secret in (TELEGRAM_TOKEN, SIGNING_KEY, sinks.slack.url, sinks.webhook.url, "+15555550199"):
        assert secret not in everything
    for item in dead:
        assert TELEGRAM_TOKEN not in item["error"]
        assert sinks.webhook.url not in item["error"]


def test_sqs_batch_reports_only_the_failed_items(
    aws: Callable[[str], Any], sinks: Sinks, lambda_env: dict[str, Any]
) -> None:
    names = [f"shipyard-test-critical-queued{i}" for i in range(3)]
    sns_events = deliver_through_sns(aws, "critical", [alarm_message(n, "ALARM", "OK") for n in names])
    sqs_records = [
        {
            "messageId": f"sqs-{i}",
            "receiptHandle": f"rh-{i}",
            "body": json.dumps(event["Records"][0]["Sns"]),
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:alerts-buffer",
        }
        for i, event in enumerate(sns_events)
    ]
    sinks.webhook.fail_matching(names[1], "500")
    response = handler.handler({"Records": sqs_records}, Context())
    assert response == {"batchItemFailures": [{"itemIdentifier": "sqs-1"}]}
    sinks.webhook.clear_faults()
    retried = handler.handler({"Records": [sqs_records[1]]}, Context())  # the queue redelivers item 1
    assert retried == {"batchItemFailures": []}
    seen = delivered_names(sinks, names)
    for kind in ("slack", "telegram", "webhook"):
        assert seen[kind] == Counter(dict.fromkeys(names, 1)), kind


def test_metrics_are_emitted_with_namespace_and_stack_dimension(
    aws: Callable[[str], Any],
    sinks: Sinks,
    lambda_env: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What infra/aws/function.py sets on every function: neither may change the namespace or dimensions.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "alert_forwarder")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Shipyard")
    importlib.reload(handler)  # Powertools reads them when the module-level Metrics is built, as on a cold start
    event = sns_event(
        {
            "EventSource": "aws:sns",
            "Sns": {
                "MessageId": "m-metrics",
                "TopicArn": topic_arn("warning"),
                "Message": json.dumps(alarm_message("shipyard-test-warning-metrics", "ALARM", "OK")),
            },
        }
    )
    summary = handler.handler(event, Context())
    assert summary["sent"] == 2
    assert summary["failed"] == 0
    handler.handler(event, Context())  # the same message again: nothing re-sent
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    blobs = [line for line in lines if "_aws" in line]
    assert len(blobs) == 2
    first, second = blobs
    directive = first["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "Shipyard/AlertForwarder"
    assert directive["Dimensions"] == [["Stack"]]
    assert first["Stack"] == "test"
    names = {m["Name"] for m in directive["Metrics"]}
    assert {"AlertsReceived", "MessagesSent", "DeliveryFailures", "AlertsSuppressed", "DigestsSent"} <= names
    assert first["AlertsReceived"] == [1.0]
    assert first["MessagesSent"] == [2.0]
    assert first["DeliveryFailures"] == [0.0]
    assert second["MessagesSent"] == [0.0]


@pytest.mark.parametrize(
    "event", [{"action": "sweep"}, {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}]
)
def test_scheduled_sweep_event(lambda_env: dict[str, Any], sinks: Sinks, event: dict[str, Any]) -> None:
    summary = handler.handler(event, Context())
    assert summary["kind"] == "sweep"
    assert summary["failed"] == 0
    assert all(sink.requests == [] for sink in sinks.all())


def test_bad_routing_fails_loudly_naming_the_field(lambda_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROUTING", json.dumps({"critical": ["pager"], "warning": [], "info": []}))
    handler.reset_runtime()
    with pytest.raises(ConfigError, match=r"ROUTING\.critical\[0\]: unknown channel 'pager'"):
        handler.handler({"action": "sweep"}, Context())
    monkeypatch.setenv("ROUTING", json.dumps(ROUTING))
    monkeypatch.delenv("STATE_TABLE")
    handler.reset_runtime()
    with pytest.raises(ConfigError, match="STATE_TABLE: environment variable is not set"):
        handler.handler({"action": "sweep"}, Context())


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdas.alert_forwarder", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "STACK": "prod", "PROJECT": "shipyard"},
    )


def test_preview_cli_shows_every_channel_and_sends_nothing() -> None:
    done = run_cli("--preview", str(SAMPLES / "cloudwatch_alarm_single.json"))
    assert done.returncode == 0, done.stderr
    for channel in ("slack", "telegram", "email", "sms", "webhook"):
        assert f"--- {channel} ---" in done.stdout
    assert "X-Shipyard-Signature: sha256=" in done.stdout
    assert "[prod] CRITICAL ALARM" in done.stdout


def test_preview_cli_single_channel_unknown_format_and_plain_text() -> None:
    unknown = run_cli("--preview", str(SAMPLES / "unknown_json.json"), "--channel", "telegram")
    assert unknown.returncode == 0
    assert "--- telegram ---" in unknown.stdout
    assert "--- slack ---" not in unknown.stdout
    assert "Unrecognised JSON message; forwarded raw." in unknown.stdout
    assert "acme-monitor" in unknown.stdout
    text = run_cli("--preview", "-", "--channel", "sms", stdin="Disk almost full on bastion\nsecond line")
    assert text.returncode == 0
    assert "Disk almost full on bastion" in text.stdout
    missing = run_cli("--preview", "/nonexistent/event.json")
    assert missing.returncode == 2
    assert "cannot read /nonexistent/event.json" in missing.stderr


def test_preview_cli_accepts_every_sample() -> None:
    for path in sorted(SAMPLES.glob("*.json")):
        done = run_cli("--preview", str(path), "--channel", "webhook")
        assert done.returncode == 0, (path.name, done.stderr)
        assert '"type": "alert"' in done.stdout, path.name

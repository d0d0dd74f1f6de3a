"""The deployed alert path end to end: SNS topics → SQS inbox → Lambda's SQS event source → the real handler,
on moto in server mode with loopback channel sinks (see inbox.py for what stands in for Lambda's poller)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas.alert_forwarder import handler
from lambdas.alert_forwarder.state import StateStore, table_definition

from .conftest import EMAIL_FROM, ses_messages
from .events import alarm_message, minute
from .inbox import AlertInbox, EventSourceMapping, InboxSettings
from .sinks import Fault, Sinks, unused_port

ROUTING = {
    "critical": ["slack", "telegram", "webhook", "email"],
    "warning": ["slack"],
    "info": [],
    "channel_timeout_seconds": 0.5,
    "retry_max_attempts": 2,
    "retry_base_delay_seconds": 0.05,
}
# The deployed batch size, window and concurrency; timeouts shortened so a dead-letter takes seconds, with the
# visibility timeout still above the function's (as Lambda requires of a real mapping).
SETTINGS = InboxSettings.deployed(function_timeout_s=6.0, visibility_timeout_s=7, max_receives=2)


@pytest.fixture
def inbox(aws: Callable[[str], Any], sinks: Sinks, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The deployed path with the forwarder's environment as infra sets it; tests may change the secret."""
    prefix = f"shipyard-{uuid.uuid4().hex[:6]}"
    table = f"{prefix}-alerts-state"
    aws("dynamodb").create_table(**table_definition(table))
    secret = {
        "slack_webhook_url": sinks.slack.url,
        "telegram_bot_token": "424242:INBOX-TEST",
        "telegram_chat_id": "-100200300",
        "webhook_url": sinks.webhook.url,
        "webhook_signing_key": "whsec-inbox",
        "email_addresses": ["oncall@example.com"],
        "email_from": EMAIL_FROM,
    }
    arn = aws("secretsmanager").create_secret(Name=f"{prefix}-channels", SecretString=json.dumps(secret))["ARN"]
    env = {
        "ROUTING": json.dumps(ROUTING),
        "CHANNELS_SECRET_ARN": arn,
        "STATE_TABLE": table,
        "STACK": "test",
        "PROJECT": "shipyard",
        "TELEGRAM_API_BASE": sinks.telegram.base_url,
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    handler.reset_runtime()
    yield {
        "inbox": AlertInbox(aws("sns"), aws("sqs"), prefix, SETTINGS),
        "store": StateStore(aws("dynamodb"), table),
        "update_secret": lambda **changes: aws("secretsmanager").put_secret_value(
            SecretId=arn, SecretString=json.dumps({**secret, **changes})
        ),
    }
    handler.reset_runtime()


def test_a_flapping_storm_is_absorbed_in_batches_and_every_alert_reaches_history(
    inbox: dict[str, Any], sinks: Sinks
) -> None:
    topics: AlertInbox = inbox["inbox"]
    ids = []
    for flap in range(6):
        for alarm in range(10):
            new, old = ("ALARM", "OK") if flap % 2 == 0 else ("OK", "ALARM")
            message = alarm_message(f"shipyard-test-warning-svc{alarm}-latency", new, old, at=minute(flap * 10 + alarm))
            ids.append(topics.publish("warning", message))
    with EventSourceMapping(topics, handler.handler) as mapping:
        assert mapping.wait_until_drained(60)
    assert len(inbox["store"].get_alerts(ids)) == 60
    assert topics.counts(topics.dlq_url) == (0, 0)
    # Batches, not one invocation per alert; no batch needed a retry.
    assert sum(i.records for i in mapping.invocations) == 60
    assert len(mapping.invocations) < 60 / 2
    assert all(i.failed == 0 and i.error is None for i in mapping.invocations)
    # 60 transitions of 10 alarms: the storm logic holds most of them back.
    assert 0 < len(sinks.slack.accepted) < 60


def test_an_ok_that_overtakes_its_alarm_does_not_reopen_it(inbox: dict[str, Any], sinks: Sinks) -> None:
    """SQS has no order: the OK may be processed in an earlier batch than the ALARM it resolves."""
    topics: AlertInbox = inbox["inbox"]
    name = "shipyard-test-warning-db-cpu"
    recovered = topics.publish("warning", alarm_message(name, "OK", "ALARM", at=minute(5)))
    with EventSourceMapping(topics, handler.handler) as mapping:
        assert mapping.wait_until_drained(30)
        fired = topics.publish("warning", alarm_message(name, "ALARM", "OK", at=minute(1)))
        assert mapping.wait_until_drained(30)
    alerts = inbox["store"].get_alerts([recovered, fired])
    # The recovery is news on its own (its OldStateValue says the alarm was firing); the late ALARM is not.
    assert [alerts[recovered]["decision"], alerts[fired]["decision"]] == ["notify", "out_of_order"]
    state = inbox["store"].get_alarm_state(alerts[fired]["alarm_key"])
    assert state is not None and state.current_state == "OK"
    assert len(sinks.slack.accepted) == 1  # no ALARM after the recovery: nobody is paged for a closed alarm


def test_faulty_channels_lose_nothing_and_healthy_ones_deliver_once(
    inbox: dict[str, Any], sinks: Sinks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack answers 429 + Retry-After, Telegram never answers in time, the webhook refuses connections,
    e-mail (SES) works: each alert is delivered where it can be, exactly once, and the records whose
    channels kept failing end in the dead-letter queue after `max_receives` — none is dropped."""
    sinks.slack.fail_next(Fault("429", retry_after=1), Fault("429", retry_after=1))
    sinks.telegram.slow_seconds = 2.0
    sinks.telegram.fail_always("slow")
    inbox["update_secret"](webhook_url=f"http://127.0.0.1:{unused_port()}/hook")

    topics: AlertInbox = inbox["inbox"]
    ids = [
        topics.publish("critical", alarm_message("shipyard-test-critical-api-5xx", "ALARM", "OK", at=minute(1))),
        topics.publish("critical", alarm_message("shipyard-test-critical-db-down", "ALARM", "OK", at=minute(2))),
        topics.publish("critical", alarm_message("shipyard-test-critical-api-5xx", "OK", "ALARM", at=minute(3))),
    ]
    before = len(ses_messages())
    with EventSourceMapping(topics, handler.handler) as mapping:
        assert mapping.wait_until_drained(60)

    assert len(inbox["store"].get_alerts(ids)) == 3
    # Telegram and the webhook failed for every alert: each record was retried, then dead-lettered.
    assert sorted(topics.dead_lettered()) == sorted(ids)
    assert max(i.failed for i in mapping.invocations) >= 1
    # Redeliveries did not repeat what had been delivered: one Slack message and one e-mail per alert.
    assert len(sinks.slack.accepted) == 3
    assert [r.fault for r in sinks.slack.requests].count("429") == 2
    assert len(ses_messages()) - before == 3

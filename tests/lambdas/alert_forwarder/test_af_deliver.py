"""Transports and the retry loop against real HTTP servers on 127.0.0.1, one fault at a time."""

from __future__ import annotations

import hashlib
import hmac
import random
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from lambdas.alert_forwarder.deliver import (
    RetryPolicy,
    SendOutcome,
    SlackApiTransport,
    SlackWebhookTransport,
    TelegramTransport,
    Transport,
    WebhookTransport,
    send_with_retry,
    urllib_post,
)

from .conftest import Budget
from .sinks import Fault, Sink, unused_port

POLICY = RetryPolicy(max_attempts=4, base_delay=0.05, max_delay=0.2, reserve_seconds=0.5)
TOKEN = "987654:SECRET-BOT-TOKEN"


@pytest.fixture
def sink(request: pytest.FixtureRequest) -> Iterator[Sink]:
    created = Sink(request.param, slow_seconds=2.5)
    yield created
    created.stop()


def transport_for(sink: Sink) -> Transport:
    if sink.kind == "slack_webhook":
        return SlackWebhookTransport(urllib_post, sink.url)
    if sink.kind == "slack_api":
        return SlackApiTransport(urllib_post, "xoxb-test", "C0ALERTS", api_base=sink.base_url + "/api")
    if sink.kind == "telegram":
        return TelegramTransport(urllib_post, TOKEN, "-100", api_base=sink.base_url)
    return WebhookTransport(urllib_post, sink.url, "signing-key")


def payload_for(sink: Sink) -> dict[str, object]:
    if sink.kind == "webhook":
        return {"id": "m-1", "sent_at": "2025-03-14T16:00:00.000Z", "text": "hello"}
    return {"text": "hello"}


def send(
    transport: Transport,
    payload: object,
    *,
    budget: float = 10.0,
    timeout: float = 1.5,
    policy: RetryPolicy = POLICY,
) -> SendOutcome:
    return send_with_retry(
        lambda t: transport.send(payload, t, "m-1/target"),
        timeout=timeout,
        policy=policy,
        remaining=Budget(budget),
        clock=time.time,
        sleep=time.sleep,
        rng=random.Random(7),
    )


ALL_SINKS = ["slack_webhook", "slack_api", "telegram", "webhook"]


@pytest.mark.parametrize("sink", ALL_SINKS, indirect=True)
@pytest.mark.parametrize("fault", ["500", "slow", "garbage"])
def test_transient_fault_is_retried_until_delivered_once(sink: Sink, fault: str) -> None:
    sink.fail_next(fault)
    outcome = send(transport_for(sink), payload_for(sink))
    assert outcome.ok, outcome.error
    assert [a.outcome for a in outcome.attempts] == ["failed", "sent"]
    assert len(sink.requests) == 2
    assert len(sink.accepted) == 1
    expected = {"500": "HTTP 500", "slow": "timed out", "garbage": "bad or no HTTP response"}[fault]
    assert expected in (outcome.attempts[0].error or "")


@pytest.mark.parametrize("sink", ALL_SINKS, indirect=True)
def test_429_retry_after_is_honoured(sink: Sink) -> None:
    sink.fail_next(Fault("429", retry_after=1))
    outcome = send(transport_for(sink), payload_for(sink))
    assert outcome.ok, outcome.error
    first, second = sink.requests
    assert second.at - first.at >= 0.95  # waited for the server's Retry-After (header, or Telegram's parameters)
    assert outcome.attempts[0].retry_after == 1


@pytest.mark.parametrize("sink", ["telegram", "slack_api"], indirect=True)
def test_200_with_a_body_that_is_not_json_is_retried(sink: Sink) -> None:
    sink.fail_next("bad_json")
    outcome = send(transport_for(sink), payload_for(sink))
    assert outcome.ok
    assert len(sink.requests) == 2
    assert "not JSON" in (outcome.attempts[0].error or "")


@pytest.mark.parametrize("sink", ["telegram", "webhook"], indirect=True)
def test_client_error_is_not_retried(sink: Sink) -> None:
    sink.fail_next("400")
    outcome = send(transport_for(sink), payload_for(sink))
    assert not outcome.ok
    assert len(sink.requests) == 1
    assert "HTTP 400" in (outcome.error or "")
    assert TOKEN not in (outcome.error or "")


def test_connection_refused_is_bounded_in_attempts_and_time() -> None:
    transport = WebhookTransport(urllib_post, f"http://127.0.0.1:{unused_port()}/hook", "k")
    started = time.monotonic()
    outcome = send(transport, {"id": "m", "sent_at": "2025-03-14T16:00:00.000Z"})
    assert not outcome.ok
    assert len(outcome.attempts) == POLICY.max_attempts
    assert "connection failed" in (outcome.error or "")
    assert time.monotonic() - started < 6  # well inside the 10 s budget: no waiting it out


@pytest.mark.parametrize("sink", ["slack_webhook"], indirect=True)
def test_retry_after_beyond_the_time_budget_gives_up_early(sink: Sink) -> None:
    sink.fail_next(Fault("429", retry_after=30))
    started = time.monotonic()
    outcome = send(transport_for(sink), payload_for(sink), budget=5.0)
    assert not outcome.ok
    assert len(sink.requests) == 1
    assert "does not fit in the invocation" in (outcome.error or "")
    assert time.monotonic() - started < 10  # did not sleep the 30 s Retry-After


@pytest.mark.parametrize("sink", ["slack_webhook"], indirect=True)
def test_no_attempt_without_time_left(sink: Sink) -> None:
    outcome = send(transport_for(sink), payload_for(sink), budget=0.6)
    assert not outcome.ok
    assert outcome.attempts == []
    assert sink.requests == []
    assert "out of invocation time" in (outcome.error or "")


@pytest.mark.parametrize("sink", ["slack_webhook"], indirect=True)
def test_every_attempt_is_capped_by_the_remaining_time(sink: Sink) -> None:
    sink.fail_always("slow")  # 1 s server; 0.9 s budget minus 0.5 s reserve leaves 0.4 s per attempt
    started = time.monotonic()
    outcome = send(transport_for(sink), payload_for(sink), budget=1.1, timeout=5.0)
    assert not outcome.ok
    assert time.monotonic() - started < 4.0  # the 5 s channel timeout was cut to what remained (0.6 s)


@pytest.mark.parametrize("sink", ["webhook"], indirect=True)
def test_webhook_signature_and_timestamp(sink: Sink) -> None:
    payload = {"id": "m-9", "sent_at": "2025-03-14T16:00:00.000Z", "text": "ünïcødé 🚨"}
    outcome = send(transport_for(sink), payload)
    assert outcome.ok
    assert outcome.ref == "m-1/target"
    request = sink.accepted[0]
    expected = "sha256=" + hmac.new(b"signing-key", request.body, hashlib.sha256).hexdigest()
    assert request.headers["x-shipyard-signature"] == expected
    assert int(request.headers["x-shipyard-timestamp"]) == int(
        datetime.fromisoformat("2025-03-14T16:00:00+00:00").timestamp()
    )
    assert request.headers["x-shipyard-delivery"] == "m-1/target"
    assert request.json["text"] == "ünïcødé 🚨"


@pytest.mark.parametrize("sink", ["slack_api"], indirect=True)
def test_slack_api_returns_ts_and_sends_channel_and_token(sink: Sink) -> None:
    outcome = send(transport_for(sink), {"text": "hi", "thread_ts": "1.2"})
    assert outcome.ok
    assert outcome.ref.startswith("1700000000.")
    request = sink.accepted[0]
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == "Bearer xoxb-test"
    assert request.json == {"text": "hi", "thread_ts": "1.2", "channel": "C0ALERTS"}


@pytest.mark.parametrize("sink", ["telegram"], indirect=True)
def test_telegram_returns_message_id(sink: Sink) -> None:
    outcome = send(transport_for(sink), {"text": "<b>x</b>", "parse_mode": "HTML"})
    assert outcome.ok
    assert outcome.ref == "1001"
    assert sink.accepted[0].path == f"/bot{TOKEN}/sendMessage"
    assert sink.accepted[0].json["chat_id"] == "-100"

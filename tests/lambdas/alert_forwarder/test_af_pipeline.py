"""The forwarder end to end over moto (DynamoDB, SES, SNS, CloudWatch) and HTTP sinks on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lambdas.alert_forwarder.forward import Deps, escalate, flush_digests, process_records, settle, sweep
from lambdas.alert_forwarder.parse import records_from_event
from lambdas.alert_forwarder.state import StateStore

from .conftest import Clock, make_deps, make_secrets, sample, ses_messages, sms_messages
from .events import alarm_event, minute, sns_event, sns_record
from .sinks import Fault, Sink, Sinks, unused_port

ROUTING_WARN = {
    "critical": ["slack", "telegram"],
    "warning": ["slack", "telegram"],
    "info": [],
    "cooldown_seconds": 600,
    "storm_threshold": 100,
    "channel_timeout_seconds": 2.0,  # see ROUTING_ALL in conftest.py
}


def alarm_key(name: str) -> str:
    return f"alarm:arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"


def run(deps: Deps, event: dict[str, Any]) -> Any:
    return process_records(records_from_event(event), deps)


def texts(sink: Sink) -> list[str]:
    return [r.body.decode("utf-8") for r in sink.accepted]


@pytest.fixture
def slack_api() -> Iterator[Sink]:
    sink = Sink("slack_api")
    yield sink
    sink.stop()


def test_alarm_fans_out_to_every_routed_channel_and_is_recorded(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    emails, smses = len(ses_messages()), len(sms_messages())
    deps = make_deps(store, aws, sinks)
    event = sample("cloudwatch_alarm_single.json")
    message_id = event["Records"][0]["Sns"]["MessageId"]
    result = run(deps, event)
    assert result.failures == []
    assert result.notified == 1
    assert result.sent == 6
    assert len(sinks.slack.accepted) == len(sinks.telegram.accepted) == len(sinks.webhook.accepted) == 1
    assert "shipyard-prod-critical-db-cpu-high" in sinks.slack.accepted[0].json["text"]
    assert sinks.telegram.accepted[0].json["parse_mode"] == "HTML"
    hook = sinks.webhook.accepted[0]
    assert (
        hook.headers["x-shipyard-signature"]
        == "sha256=" + hmac.new(b"whsec-test-key", hook.body, hashlib.sha256).hexdigest()
    )
    assert hook.json["alert"]["runbook_url"] == "https://runbooks.example.com/db/cpu-high"
    new_emails = ses_messages()[emails:]
    assert len(new_emails) == 1
    assert "shipyard-prod-critical-db-cpu-high" in new_emails[0].subject
    assert "&gt; 80" in new_emails[0].body  # the HTML part (moto keeps the HTML body when both are given)
    new_sms = sms_messages()[smses:]
    assert sorted(number for number, _ in new_sms) == ["+15555550100", "+15555550101"]
    assert all(len(text) <= 160 for _, text in new_sms)

    items = {item["sk"]: item for item in store.message_items(message_id)}
    assert items["ALERT"]["decision"] == "notify"
    assert items["ALERT"]["expires_at"] > 0
    deliveries = {sk for sk in items if sk.startswith("DELIVERY#")}
    assert len(deliveries) == 6
    assert all(items[sk]["status"] == "sent" for sk in deliveries)
    attempts = [i for sk, i in items.items() if sk.startswith("ATTEMPT#")]
    assert len(attempts) == 6
    assert {a["outcome"] for a in attempts} == {"sent"}
    assert all("+1555" not in sk for sk in items)  # phone numbers are hashed in keys
    history = store.alarm_history(items["ALERT"]["alarm_key"])
    assert [h["decision"] for h in history] == ["notify"]


def test_invocation_retry_does_not_resend_what_succeeded(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    smses = len(sms_messages())
    deps = make_deps(store, aws, sinks)
    event = alarm_event("shipyard-test-critical-db-down", "ALARM", "OK")
    sinks.telegram.fail_always("500")
    first = run(deps, event)
    assert [f.target for f in first.failures] == ["telegram"]
    assert "HTTP 500" in first.failures[0].error
    assert len(sinks.telegram.requests) == 3  # bounded: max_attempts of the test policy

    sinks.telegram.fail_always(None)
    second = run(make_deps(store, aws, sinks), event)  # what Lambda's retry of the same event does
    assert second.failures == []
    assert second.sent == 1
    assert second.already_sent == 5
    for sink in sinks.all():
        assert len(sink.accepted) == 1, sink.kind  # exactly once each, nothing duplicated
    assert len(sms_messages()) - smses == 2
    third = run(make_deps(store, aws, sinks), event)  # SNS redelivering the same message id
    assert third.sent == 0
    assert third.already_sent == 6


def test_cooldown_dedupe_and_suppressed_count(store: StateStore, aws: Callable[[str], Any], sinks: Sinks) -> None:
    clock = Clock()
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN, clock=clock)
    name = "shipyard-test-warning-api-latency"
    first = run(deps, alarm_event(name, "ALARM", "OK", severity="warning", at=minute(0)))
    assert first.decisions
    assert list(first.decisions.values()) == ["notify"]
    # The same transition published twice (e.g. two topics): a new MessageId, same fingerprint.
    dup = run(deps, alarm_event(name, "ALARM", "OK", severity="warning", at=minute(0)))
    assert list(dup.decisions.values()) == ["duplicate"]
    # A new ALARM transition inside the cooldown: suppressed and counted.
    cooled = run(deps, alarm_event(name, "ALARM", "INSUFFICIENT_DATA", severity="warning", at=minute(2)))
    assert list(cooled.decisions.values()) == ["cooldown"]
    assert len(sinks.slack.accepted) == 1
    assert len(sinks.telegram.accepted) == 1
    clock.advance(601)
    later = run(deps, alarm_event(name, "ALARM", "INSUFFICIENT_DATA", severity="warning", at=minute(20)))
    assert list(later.decisions.values()) == ["notify"]
    assert len(sinks.slack.accepted) == 2
    assert "1 suppressed by cooldown" in texts(sinks.slack)[1]
    history = store.alarm_history(alarm_key(name))
    assert Counter(h["decision"] for h in history) == Counter(notify=2, duplicate=1, cooldown=1)


def test_recovery_threads_under_the_original(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks, slack_api: Sink
) -> None:
    secrets = make_secrets(sinks, slack_webhook_url=None, slack_bot_token="xoxb-test", slack_channel="C0ALERTS")
    deps = make_deps(store, aws, sinks, secrets=secrets, slack_api_base=slack_api.base_url + "/api")
    name = "shipyard-test-critical-orders-5xx"
    alarm = alarm_event(name, "ALARM", "OK", at=minute(0))
    alarm_id = alarm["Records"][0]["Sns"]["MessageId"]
    assert run(deps, alarm).failures == []
    assert run(deps, alarm_event(name, "OK", "ALARM", at=minute(5), value=12.0)).failures == []
    original_ts = slack_api.accepted[0].json  # request body has no ts: the response had it
    assert "thread_ts" not in original_ts
    recovery = slack_api.accepted[1].json
    assert recovery["thread_ts"] == "1700000000.000001"
    assert recovery["reply_broadcast"] is True
    assert recovery["channel"] == "C0ALERTS"
    assert sinks.telegram.accepted[1].json["reply_parameters"]["message_id"] == 1001
    assert sinks.webhook.accepted[1].json["in_reply_to"] == alarm_id
    assert sinks.webhook.accepted[1].json["type"] == "recovery"


def test_recovery_with_a_slack_webhook_references_the_original_in_text(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN)
    name = "shipyard-test-warning-queue-depth"
    run(deps, alarm_event(name, "ALARM", "OK", severity="warning", at=minute(0)))
    run(deps, alarm_event(name, "OK", "ALARM", severity="warning", at=minute(3)))
    body = sinks.slack.accepted[1].json
    assert "thread_ts" not in body
    assert "Re: the alert sent" in body["text"]
    assert name in body["text"]


def test_ok_without_an_alarm_notice_is_history_only(store: StateStore, aws: Callable[[str], Any], sinks: Sinks) -> None:
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN)
    result = run(deps, alarm_event("shipyard-test-warning-new", "OK", "INSUFFICIENT_DATA", severity="warning"))
    assert list(result.decisions.values()) == ["no_open_alarm"]
    assert sinks.slack.requests == []
    assert sinks.telegram.requests == []


def test_info_is_history_only(store: StateStore, aws: Callable[[str], Any], sinks: Sinks) -> None:
    deps = make_deps(store, aws, sinks)
    event = alarm_event("shipyard-test-info-deploy", "ALARM", "OK", severity="info")
    result = run(deps, event)
    assert list(result.decisions.values()) == ["history_only"]
    assert store.message_items(event["Records"][0]["Sns"]["MessageId"])[0]["decision"] == "history_only"
    assert all(sink.requests == [] for sink in sinks.all())


def test_out_of_order_alert_does_not_reopen(store: StateStore, aws: Callable[[str], Any], sinks: Sinks) -> None:
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN)
    name = "shipyard-test-warning-disk"
    run(deps, alarm_event(name, "ALARM", "OK", severity="warning", at=minute(0)))
    run(deps, alarm_event(name, "OK", "ALARM", severity="warning", at=minute(10)))
    late = run(deps, alarm_event(name, "ALARM", "OK", severity="warning", at=minute(5)))
    assert list(late.decisions.values()) == ["out_of_order"]
    state = store.get_alarm_state(alarm_key(name))
    assert state is not None
    assert state.current_state == "OK"
    assert len(sinks.slack.accepted) == 2


def test_storm_becomes_one_digest_per_channel(store: StateStore, aws: Callable[[str], Any], sinks: Sinks) -> None:
    clock = Clock()
    routing = dict(ROUTING_WARN, storm_threshold=3, storm_window_seconds=60)
    deps = make_deps(store, aws, sinks, routing=routing, clock=clock)
    event = sns_event(
        *(
            sns_record(
                alarm_event(f"shipyard-test-warning-svc-{i}", "ALARM", "OK", severity="warning")["Records"][0]["Sns"][
                    "Message"
                ],
                "warning",
            )
            for i in range(10)
        )
    )
    result = run(deps, event)
    assert result.failures == []
    assert result.notified == 10
    assert result.held == 7
    assert len(sinks.slack.accepted) == 3
    assert len(sinks.telegram.accepted) == 3
    assert flush_digests(deps, clock()).sent == 0  # window still open
    clock.advance(61)
    flushed = sweep(deps)
    assert flushed.digests_sent == 2
    assert flushed.failures == []
    digest = sinks.slack.accepted[3].json
    assert "7 alerts held" in digest["blocks"][0]["text"]["text"]
    listed = "\n".join(b["text"]["text"] for b in digest["blocks"] if b["type"] == "section")
    assert sum(f"shipyard-test-warning-svc-{i} " in listed for i in range(10)) == 7
    assert "7 alerts held" in sinks.telegram.accepted[3].json["text"]
    assert sweep(deps).digests_sent == 0  # sent once; the marker is gone
    assert store.pending("DIGEST#") == []
    for record in event["Records"]:
        assert store.message_items(record["Sns"]["MessageId"])[0]["decision"] == "notify"


def test_digest_goes_out_with_the_next_alert_after_the_window(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    clock = Clock()
    deps = make_deps(store, aws, sinks, routing=dict(ROUTING_WARN, storm_threshold=1), clock=clock)
    run(
        deps,
        sns_event(
            *(
                alarm_event(f"shipyard-test-warning-a{i}", "ALARM", "OK", severity="warning")["Records"][0]
                for i in range(3)
            )
        ),
    )
    assert len(sinks.slack.accepted) == 1
    clock.advance(61)
    run(deps, alarm_event("shipyard-test-warning-b", "ALARM", "OK", severity="warning"))
    bodies = texts(sinks.slack)
    assert any("2 alerts held" in b for b in bodies)


def test_per_channel_rate_limit_holds_the_excess_for_the_digest(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    clock = Clock()
    routing = dict(ROUTING_WARN, rate_limit_per_minute={"slack": 2, "telegram": 50})
    deps = make_deps(store, aws, sinks, routing=routing, clock=clock)
    run(
        deps,
        sns_event(
            *(
                alarm_event(f"shipyard-test-warning-r{i}", "ALARM", "OK", severity="warning")["Records"][0]
                for i in range(5)
            )
        ),
    )
    assert len(sinks.slack.accepted) == 2
    assert len(sinks.telegram.accepted) == 5
    clock.advance(61)
    assert sweep(deps).digests_sent == 1
    assert len(sinks.slack.accepted) == 3
    assert "3 alerts held" in sinks.slack.accepted[2].json["blocks"][0]["text"]["text"]
    assert len(sinks.telegram.accepted) == 5


def test_escalation_repeats_up_to_the_count_then_stops(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    clock = Clock()
    deps = make_deps(
        store,
        aws,
        sinks,
        routing=dict(ROUTING_WARN, escalation_interval_seconds=900, escalation_count=2),
        clock=clock,
    )
    name = "shipyard-test-critical-payments"
    run(deps, alarm_event(name, "ALARM", "OK", at=minute(0)))
    assert escalate(deps, clock()).sent == 0  # not due yet
    clock.advance(901)
    first = escalate(deps, clock())
    assert first.escalations_sent == 2  # slack + telegram
    assert "escalation 1/2" in sinks.slack.accepted[1].json["text"]
    assert sinks.telegram.accepted[1].json["reply_parameters"]["message_id"] == 1001
    clock.advance(901)
    assert escalate(deps, clock()).escalations_sent == 2
    assert "escalation 2/2" in sinks.telegram.accepted[2].json["text"]
    clock.advance(901)
    assert escalate(deps, clock()).escalations_sent == 0
    assert store.pending("ESCALATION#") == []


def test_recovery_cancels_escalation(store: StateStore, aws: Callable[[str], Any], sinks: Sinks) -> None:
    clock = Clock()
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN, clock=clock)
    name = "shipyard-test-critical-login"
    run(deps, alarm_event(name, "ALARM", "OK", at=minute(0)))
    assert len(store.pending("ESCALATION#")) == 1
    run(deps, alarm_event(name, "OK", "ALARM", at=minute(3)))
    assert store.pending("ESCALATION#") == []
    clock.advance(3600)
    assert escalate(deps, clock()).escalations_sent == 0


def test_escalation_checks_cloudwatch_for_the_live_state(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    clock = Clock()
    name = "shipyard-test-critical-live-check"
    cloudwatch = aws("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        MetricName="CPUUtilization",
        Namespace="AWS/ECS",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=80.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN, clock=clock, cloudwatch=True)
    run(deps, alarm_event(name, "ALARM", "OK", at=minute(0)))
    # The OK notification never reached us (e.g. no OK action), but CloudWatch knows better.
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="recovered")
    clock.advance(1801)
    assert escalate(deps, clock()).escalations_sent == 0
    assert store.pending("ESCALATION#") == []

    other = "shipyard-test-critical-live-still-alarm"
    cloudwatch.put_metric_alarm(
        AlarmName=other,
        MetricName="CPUUtilization",
        Namespace="AWS/ECS",
        Statistic="Average",
        Period=60,
        EvaluationPeriods=1,
        Threshold=80.0,
        ComparisonOperator="GreaterThanThreshold",
    )
    cloudwatch.set_alarm_state(AlarmName=other, StateValue="ALARM", StateReason="still bad")
    run(deps, alarm_event(other, "ALARM", "OK", at=minute(1)))
    clock.advance(1801)
    assert escalate(deps, clock()).escalations_sent == 2


def test_flapping_alarm_settles_with_a_notice_of_its_final_state(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    clock = Clock()
    deps = make_deps(store, aws, sinks, routing=dict(ROUTING_WARN, escalation_count=0), clock=clock)
    name = "shipyard-test-warning-flappy"
    run(deps, alarm_event(name, "ALARM", "OK", severity="warning", at=minute(0)))
    run(deps, alarm_event(name, "OK", "ALARM", severity="warning", at=minute(1)))
    suppressed = run(deps, alarm_event(name, "ALARM", "OK", severity="warning", at=minute(2)))
    assert list(suppressed.decisions.values()) == ["cooldown"]
    assert len(sinks.slack.accepted) == 2  # people last heard "OK", but it is in ALARM again
    assert settle(deps, clock()).settles_sent == 0  # not before the cooldown ends
    clock.advance(601)
    settled = settle(deps, clock())
    assert settled.settles_sent == 2
    assert "now ALARM after flapping" in sinks.slack.accepted[2].json["text"]
    assert settle(deps, clock()).settles_sent == 0
    assert store.pending("SETTLE#") == []


def test_faults_on_every_sink_still_deliver_everything_exactly_once(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    deps = make_deps(store, aws, sinks)
    sinks.slack.fail_next("500", "garbage")
    sinks.telegram.fail_next("slow", "bad_json")
    sinks.webhook.fail_next(Fault("429", retry_after=1))
    names = [f"shipyard-test-critical-multi-{i}" for i in range(3)]
    result = run(deps, sns_event(*(alarm_event(n, "ALARM", "OK")["Records"][0] for n in names)))
    assert result.failures == []
    for sink in (sinks.slack, sinks.telegram, sinks.webhook):
        delivered = Counter(n for n in names for body in texts(sink) if n in body)
        assert delivered == Counter(dict.fromkeys(names, 1)), sink.kind


def test_unreachable_sink_fails_the_record_and_a_later_retry_delivers_once(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    port = unused_port()
    secrets = make_secrets(sinks, webhook_url=f"http://127.0.0.1:{port}/hooks/alerts")
    event = alarm_event("shipyard-test-critical-refused", "ALARM", "OK")
    first = run(make_deps(store, aws, sinks, secrets=secrets), event)
    assert [f.target for f in first.failures] == ["webhook"]
    assert "connection failed" in first.failures[0].error
    late = Sink("webhook", port=port)
    try:
        second = run(make_deps(store, aws, sinks, secrets=secrets), event)
        assert second.failures == []
        assert second.sent == 1
        assert len(late.accepted) == 1
        assert len(sinks.slack.accepted) == 1
    finally:
        late.stop()


def test_missing_credentials_fail_the_channel_with_the_key_named(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    secrets = make_secrets(sinks, telegram_bot_token=None)
    result = run(
        make_deps(store, aws, sinks, secrets=secrets),
        alarm_event("shipyard-test-critical-nocreds", "ALARM", "OK"),
    )
    assert [(f.target, f.error) for f in result.failures] == [
        ("telegram", "CHANNELS_SECRET.telegram_bot_token: required for telegram")
    ]
    assert len(sinks.slack.accepted) == 1  # the other channels are not blocked


def test_unknown_format_is_forwarded_raw(store: StateStore, aws: Callable[[str], Any], sinks: Sinks) -> None:
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN)
    result = run(deps, sample("unknown_json.json"))
    assert result.failures == []
    assert list(result.decisions.values()) == ["notify"]
    body = texts(sinks.slack)[0]
    assert "acme-monitor" in body
    assert "Unrecognised JSON message" in body


def health_run(request_id: str, *, minute_of_day: int, api_up: bool, cert_days: float) -> dict[str, Any]:
    run = sample("health_check_run_destination.json")
    run["requestContext"]["requestId"] = request_id
    run["responsePayload"]["time"] = minute(minute_of_day)
    results = run["responsePayload"]["results"]
    results[0].update(up=api_up, reason=None if api_up else "status", detail=None if api_up else "status 503")
    results[1].update(cert_days_left=cert_days, warnings=["cert_expiring"] if cert_days < 14 else [])
    return run


def test_health_check_runs_alert_once_and_recover_in_thread(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN)
    first = run(deps, health_run("run-1", minute_of_day=0, api_up=False, cert_days=9.6))
    assert Counter(first.decisions.values()) == Counter(notify=2, no_open_alarm=3)
    assert sorted(b.split("\n")[0] for b in (r.json["text"] for r in sinks.telegram.accepted)) == [
        "<b>🔴 CRITICAL ALARM: health check api-ready (prod)</b>",
        "<b>🟠 WARNING ALARM: health check web warnings (prod)</b>",
    ]
    second = run(
        deps, health_run("run-2", minute_of_day=1, api_up=False, cert_days=9.5)
    )  # a minute later, still broken
    assert Counter(second.decisions.values()) == Counter(cooldown=2, no_open_alarm=3)
    third = run(deps, health_run("run-3", minute_of_day=2, api_up=True, cert_days=89.0))  # fixed, certificate renewed
    assert Counter(third.decisions.values()) == Counter(notify=2, no_open_alarm=4)
    recoveries = [r.json for r in sinks.telegram.accepted[2:]]
    assert len(recoveries) == 2
    assert all("RESOLVED" in r["text"] and "reply_parameters" in r for r in recoveries)
    assert store.pending("ESCALATION#") == []  # the recovery cancelled the critical's escalation


def test_health_check_document_of_an_unknown_kind_is_forwarded_raw(
    store: StateStore, aws: Callable[[str], Any], sinks: Sinks
) -> None:
    deps = make_deps(store, aws, sinks, routing=ROUTING_WARN)
    line = {"level": "ERROR", "source": "shipyard.health_check", "event": "config_error", "message": "bad config"}
    result = run(deps, sns_event(sns_record(line, "warning")))
    assert list(result.decisions.values()) == ["notify"]
    assert "config_error" in texts(sinks.slack)[0]

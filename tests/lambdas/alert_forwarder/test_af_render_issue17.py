"""Issue 17's rendering findings: what happened and the runbook survive Telegram's limit, SMS keeps line breaks
as separators and says the title once, control/bidi/zero-width characters never reach a channel, and the
number/statistic/state nits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.alert_forwarder.model import Alert, Digest, Notice
from lambdas.alert_forwarder.parse import fmt_number, parse_record, records_from_event
from lambdas.alert_forwarder.render import RenderContext, render, utf16_len

from .events import alarm_message, sns_event, sns_record

CTX = RenderContext(project="shipyard", stack="prod")
RUNBOOK = "https://runbooks.example.com/api-5xx-rate.md"
HOSTILE = "\x00\r\u202e\u200b\u200d\u2066\ufeff\x1b"  # NUL, CR, RLO, zero-width space/joiner, isolate, BOM, ESC


def parsed(message: dict[str, Any] | str, severity: str = "critical") -> Alert:
    record = records_from_event(sns_event(sns_record(message, severity)))[0]
    return parse_record(record, received_at="2025-03-14T16:00:00.000Z")


def alert(**changes: Any) -> Alert:
    base = Alert(
        message_id="m1",
        kind="metric_alarm",
        alarm_key="k",
        title="api 5xx rate",
        severity="critical",
        new_state="ALARM",
        old_state="OK",
        reason="5xx rate 12% above 5%",
        runbook_url=RUNBOOK,
    )
    return Alert(**{**base.__dict__, **changes})


def test_telegram_keeps_what_happened_and_the_runbook_and_shortens_the_description_first() -> None:
    what_happened = "WHAT-HAPPENED " + "the API answered 5xx to 12% of requests; " * 90  # ~3.7k characters
    long = alert(reason=what_happened, description="STANDING-DESCRIPTION " + "d" * 3500)
    text = render(Notice(long, "k1"), "telegram", CTX)["text"]
    assert utf16_len(text) <= 4096
    assert RUNBOOK in text
    reason_kept = max(len(part) for part in text.split("\n\n") if "WHAT-HAPPENED" in part)
    assert reason_kept > 3000  # before: the reason was cut to nothing while the description kept 3.5k


def test_sms_line_breaks_become_separators_and_the_title_is_said_once() -> None:
    plain = render(Notice(parsed("Disk almost full\nUsed 97%"), "k"), "sms", RenderContext())
    assert plain == "CRITICAL Disk almost full: Used 97%"  # before: "...almost full: Disk almost fullUsed 97%"
    sms = render(Notice(alert(reason="almost full\nUsed 97%"), "k"), "sms", RenderContext())
    assert "fullUsed" not in sms
    assert "almost full / Used 97%" in sms
    hello = render(Notice(parsed("hello"), "k"), "sms", RenderContext())
    assert "hello: hello" not in hello and hello.count("hello") == 1


@pytest.mark.parametrize("channel", ["telegram", "slack", "email", "sms", "webhook"])
def test_control_bidi_and_zero_width_characters_reach_no_channel(channel: str) -> None:
    dirty = alert(
        title=f"api{HOSTILE}down",
        reason=f"reason{HOSTILE}here",
        description=f"desc{HOSTILE}",
        details=(("Input", f"x{HOSTILE}y"),),
    )
    for item in (Notice(dirty, "k"), Digest("d", "2025-03-14T16:00:00Z", "2025-03-14T16:01:00Z", (dirty,))):
        payload = render(item, channel, RenderContext(project="shipyard", stack=f"prod{HOSTILE}"), sent_at="t")
        text = json.dumps(payload.__dict__ if hasattr(payload, "subject") else payload, ensure_ascii=False)
        for char in HOSTILE:
            assert char not in text.replace("\\r", "\r").replace("\\u0000", "\x00").replace("\\u001b", "\x1b")


def test_the_email_subject_has_no_cr_or_invisible_characters() -> None:
    subject = render(Notice(alert(title=f"disk\rBcc: victim@example.com{HOSTILE}"), "k"), "email", CTX).subject
    assert "\r" not in subject and "\n" not in subject
    assert all(char not in subject for char in HOSTILE)
    assert "disk Bcc: victim@example.com" in subject  # the text stays readable, on one header line


def test_huge_values_are_short_and_statistics_keep_cloudwatch_spelling() -> None:
    assert fmt_number(1e308) == "1e+308"
    assert fmt_number(123456.0) == "123456"
    assert fmt_number(1234.56) == "1234.6"
    message = alarm_message("queue-depth", "ALARM", "OK")
    message["Trigger"]["Statistic"] = "SAMPLE_COUNT"
    assert "SampleCount" in (parsed(message).metric or "")


def test_insufficient_data_shows_the_threshold_as_a_threshold() -> None:
    message = alarm_message("api-5xx", "INSUFFICIENT_DATA", "OK", reason="Insufficient Data: 1 datapoint was unknown.")
    text = render(Notice(parsed(message), "k"), "telegram", CTX)["text"]
    assert "Value:</b> threshold" not in text
    assert "Threshold:</b> alarm when &gt; 80" in text

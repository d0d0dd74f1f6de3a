"""Rendering: escaping of hostile values, clean truncation to each channel's limit, threading fields."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from lambdas.alert_forwarder.model import Alert, Digest, Notice, OriginalNotice
from lambdas.alert_forwarder.parse import parse_record, records_from_event
from lambdas.alert_forwarder.render import (
    RenderContext,
    gsm_septets,
    render,
    render_email,
    render_slack,
    render_sms,
    render_telegram,
    utf16_len,
)

from .conftest import sample

CTX = RenderContext(project="shipyard", stack="prod")
TELEGRAM_TAGS = {"b", "i", "u", "s", "a", "code", "pre", "blockquote"}


def hostile_alert() -> Alert:
    record = records_from_event(sample("hostile_alarm.json"))[0]
    return parse_record(record, received_at="2025-03-14T16:00:00.000Z")


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_hostile_sample_is_really_hostile() -> None:
    alert = hostile_alert()
    assert "<script>" in alert.title
    assert "&" in alert.title
    assert "@channel" in alert.title
    assert "🔥" in alert.title
    assert len(alert.reason) >= 5000  # NewStateReason is 5 KB; the reason in words falls back to it


def test_telegram_escapes_every_value_and_fits_the_limit() -> None:
    alert = hostile_alert()
    payload = render_telegram(Notice(alert, alert.message_id), CTX)
    text = payload["text"]
    assert payload["parse_mode"] == "HTML"
    assert utf16_len(text) <= 4096  # Telegram counts UTF-16 units: each emoji here counts 2
    assert "<script>" not in text
    assert "&lt;script&gt;" in text
    parser = _Collect()
    parser.feed(text)
    parser.close()
    assert set(parser.tags) <= TELEGRAM_TAGS  # nothing from the values became markup
    visible = "".join(parser.text)
    assert alert.title in visible  # the exact hostile title survives as text
    assert "*bold*" in visible
    assert "_x_" in visible
    assert "@channel" in visible
    assert "…" in visible  # the 5 KB reason was clipped, visibly
    assert "https://runbooks.example.com/a?b=1&c=<2>" in parser.hrefs  # href attribute escaped and round-trips


def test_telegram_clips_reason_before_escaping_so_no_entity_is_cut() -> None:
    alert = Alert(
        message_id="m",
        kind="text",
        alarm_key="k",
        title="t",
        severity="warning",
        new_state="EVENT",
        reason="&" * 6000,
    )
    text = render_telegram(Notice(alert, "m"), CTX)["text"]
    assert utf16_len(text) <= 4096
    body = text.split("\n\n")[2]
    assert body.endswith("&amp;…")
    assert body.replace("&amp;", "").rstrip("…") == ""


def test_slack_blocks_keep_values_out_of_mrkdwn_and_fallback_is_escaped() -> None:
    alert = hostile_alert()
    payload = render_slack(Notice(alert, alert.message_id), CTX)
    mrkdwn_texts = [
        obj["text"]
        for block in payload["blocks"]
        for obj in [block.get("text") or {}, *block.get("elements", []), *block.get("fields", [])]
        if obj.get("type") == "mrkdwn"
    ]
    # The only mrkdwn is our own mention line and the links; hostile text sits in plain_text objects.
    assert all("<script>" not in t and "*bold*" not in t for t in mrkdwn_texts)
    assert "<!here> critical alarm" in mrkdwn_texts  # @here on a critical ALARM
    link_line = next(t for t in mrkdwn_texts if "Runbook" in t)
    assert "<https://runbooks.example.com/a?b=1&amp;c=%3C2%3E|Runbook>" in link_line
    plain = json.dumps(payload["blocks"], ensure_ascii=False)
    assert "<script>alert(1)</script>" in plain  # shown literally in plain_text
    fallback = payload["text"]
    assert fallback.startswith("<!here> ")
    assert "<script>" not in fallback
    assert "&lt;script&gt;" in fallback
    assert "@channel" not in fallback
    assert "@\u2060channel" in fallback
    assert len(fallback) <= 3000
    header = payload["blocks"][0]["text"]["text"]
    assert len(header) <= 150
    for block in payload["blocks"]:
        for obj in [block.get("text") or {}, *block.get("fields", [])]:
            if obj:
                assert len(obj["text"]) <= (3000 if block["type"] == "section" and "text" in block else 2000)


def test_sms_is_one_gsm_segment_of_plain_ascii() -> None:
    alert = hostile_alert()
    text = render_sms(Notice(alert, alert.message_id), CTX)
    assert gsm_septets(text) <= 160
    assert text.isascii()
    assert "🔥" not in text
    assert text.startswith("[prod] CRITICAL ALARM shipyard-prod-critical-")


def test_email_html_is_escaped_and_subject_is_one_line() -> None:
    alert = hostile_alert()
    email = render_email(Notice(alert, alert.message_id), CTX)
    assert "\n" not in email.subject
    assert len(email.subject) <= 200
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html
    assert '<a href="https://runbooks.example.com/a?b=1&amp;c=&lt;2&gt;">Runbook</a>' in email.html
    assert "<script>alert(1)</script>" in email.text  # plain text part carries the value as-is


def test_webhook_body_is_json_with_clipped_fields() -> None:
    alert = hostile_alert()
    body = render(Notice(alert, alert.message_id), "webhook", CTX, sent_at="2025-03-14T16:00:01.000Z")
    assert body["type"] == "alert"
    assert body["id"] == alert.message_id
    assert body["alert"]["title"] == alert.title
    assert len(body["alert"]["reason"]) <= 16_000
    json.dumps(body)  # serialisable


def test_recovery_refers_to_the_original_on_every_channel() -> None:
    ok = parse_record(records_from_event(sample("cloudwatch_alarm_ok.json"))[0], received_at="2025-03-14T16:00:00.000Z")
    original = OriginalNotice("orig-msg", "2025-03-14T09:27:00.000Z", "shipyard-prod-critical-db-cpu-high")
    notice = Notice(ok, ok.message_id, original=original)
    slack = render_slack(notice, CTX, thread_ts="1700000000.000001")
    assert slack["thread_ts"] == "1700000000.000001"
    assert slack["reply_broadcast"] is True
    assert "Re: the alert sent 2025-03-14 09:27 UTC" in json.dumps(slack["blocks"])
    assert not slack["text"].startswith("<!here>")  # no mention on recovery
    telegram = render_telegram(notice, CTX, reply_to="1001")
    assert telegram["reply_parameters"] == {"message_id": 1001, "allow_sending_without_reply": True}
    assert render(notice, "webhook", CTX, sent_at="x")["in_reply_to"] == "orig-msg"
    assert render(notice, "webhook", CTX, sent_at="x")["type"] == "recovery"
    assert render_sms(notice, CTX).startswith("[prod] RESOLVED (alert 09:27Z) shipyard-prod-critical-db-cpu-high")


def test_digest_lists_alerts_within_each_limit() -> None:
    alerts = tuple(
        Alert(
            message_id=f"m{i}",
            kind="metric_alarm",
            alarm_key=f"k{i}",
            title=f"shipyard-prod-warning-alarm-{i:03d}-<&>",
            severity="warning" if i % 3 else "critical",
            new_state="ALARM",
            occurred_at="2025-03-14T10:00:00.000Z",
        )
        for i in range(400)
    )
    digest = Digest("digest:000001700000", "2025-03-14T10:00:00.000Z", "2025-03-14T10:01:00.000Z", alerts)
    telegram = render(digest, "telegram", CTX)["text"]
    assert utf16_len(telegram) <= 4096
    assert "… and" in telegram
    assert "&lt;&amp;&gt;" in telegram
    slack: dict[str, Any] = render(digest, "slack", CTX)
    assert len(slack["blocks"]) <= 50
    assert all(len(b["text"]["text"]) <= 3000 for b in slack["blocks"] if b["type"] == "section")
    assert "400 alerts held" in slack["blocks"][0]["text"]["text"]
    sms = render(digest, "sms", CTX)
    assert gsm_septets(sms) <= 160
    assert "ALERT STORM: 400 alerts held (134 critical, 266 warning)" in sms
    webhook = render(digest, "webhook", CTX, sent_at="x")
    assert webhook["type"] == "digest"
    assert webhook["count"] == 400
    assert len(webhook["alerts"]) == 400
    email = render(digest, "email", CTX)
    assert email.html.count("<li>") == 400

"""What each channel receives for a notice or a digest.

Every value that came from outside (alarm names, reasons, descriptions, raw messages) is escaped for the
channel's markup at the point it is interpolated, and long fields are clipped *before* escaping so a cut
never lands inside an entity or a tag. Limits: Telegram 4096 UTF-16 units per message, Slack 150 per
header / 3000 per section / 2000 per field, SMS 160 GSM-7 septets (one segment).
"""

from __future__ import annotations

import html
import json
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from .model import ALARM, EVENT, INSUFFICIENT_DATA, OK, SEVERITIES, Alert, Digest, Notice

TELEGRAM_LIMIT = 4096
SLACK_HEADER_LIMIT = 150
SLACK_SECTION_LIMIT = 3000
SLACK_FIELD_LIMIT = 2000
SLACK_FALLBACK_LIMIT = 3000
SMS_LIMIT = 160
EMAIL_SUBJECT_LIMIT = 200
EMAIL_FIELD_LIMIT = 20_000
WEBHOOK_FIELD_LIMIT = 16_000
DIGEST_MAX_LINES = 200


@dataclass(frozen=True)
class RenderContext:
    project: str = ""
    stack: str = ""


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


_STATE_EMOJI = {ALARM: "🔴", OK: "✅", INSUFFICIENT_DATA: "⚪", EVENT: "⚠️"}
_SEVERITY_EMOJI = {"critical": "🔴", "warning": "🟠", "info": "🔵"}


def clip(text: str | None, limit: int) -> str:
    if not text:
        return ""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


T = TypeVar("T")


def fit(build: Callable[[dict[str, int]], T], measure: Callable[[T], int], limit: int, fields: dict[str, int]) -> T:
    """Largest rendering within `limit`, shrinking fields in the given order (binary search per field).

    `fields` maps field name -> its full length; `build` receives the current maximum per field.
    """
    caps = dict(fields)
    result = build(caps)
    if measure(result) <= limit:
        return result
    for name, full in fields.items():
        low, high = 0, full
        while low < high:  # find the largest cap for this field that fits, others as they are
            middle = (low + high + 1) // 2
            caps[name] = middle
            if measure(build(caps)) <= limit:
                low = middle
            else:
                high = middle - 1
        caps[name] = low
        result = build(caps)
        if measure(result) <= limit:
            return result
    return result


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def short_time(iso: str | None) -> str:
    if not iso:
        return ""
    return iso[:16].replace("T", " ") + " UTC"


# --------------------------------------------------------------------------------------- shared content


def headline(notice: Notice) -> str:
    alert = notice.alert
    severity = alert.severity.upper()
    if notice.purpose == "escalation":
        return (
            f"{_SEVERITY_EMOJI.get(alert.severity, '🔴')} {severity} still {alert.new_state} "
            f"(escalation {notice.escalation_number}/{notice.escalation_count}): {alert.title}"
        )
    if notice.purpose == "settle":
        emoji = _STATE_EMOJI.get(alert.new_state, "⚠️")
        return f"{emoji} {severity} now {alert.new_state} after flapping: {alert.title}"
    if alert.new_state == OK:
        return f"✅ RESOLVED {severity}: {alert.title}"
    emoji = (
        _SEVERITY_EMOJI.get(alert.severity, "⚠️") if alert.new_state == ALARM else _STATE_EMOJI.get(alert.new_state, "⚠️")
    )
    return f"{emoji} {severity} {alert.new_state}: {alert.title}"


def state_change(alert: Alert) -> str:
    if alert.new_state == EVENT:
        return "event"
    return f"{alert.old_state or '?'} → {alert.new_state}"


def value_text(alert: Alert) -> str | None:
    if alert.value and alert.threshold:
        return f"{alert.value} (threshold {alert.threshold})"
    if alert.value:
        return alert.value
    if alert.threshold:
        return f"alarm when {alert.threshold}"
    return None


def facts(notice: Notice) -> list[tuple[str, str]]:
    alert = notice.alert
    rows: list[tuple[str, str]] = [("Severity", alert.severity), ("State", state_change(alert))]
    value = value_text(alert)
    if value:
        # Without a datapoint (INSUFFICIENT_DATA, a recovery without one) the row is the threshold, not a value.
        rows.append(("Value" if alert.value else "Threshold", value))
    if alert.metric:
        rows.append(("Metric", alert.metric))
    where = " / ".join(x for x in (alert.region, alert.account) if x)
    if where:
        rows.append(("Region / account", where))
    if alert.occurred_at:
        rows.append(("At", short_time(alert.occurred_at)))
    rows.extend(alert.details)
    if notice.suppressed_repeats:
        rows.append(("Repeats", f"{notice.suppressed_repeats} suppressed by cooldown since the last notice"))
    return rows


def reference_text(notice: Notice) -> str | None:
    original = notice.original
    if original is None:
        return None
    if notice.purpose == "escalation":
        return f"Still unresolved since the alert sent {short_time(original.sent_at)}."
    return f"Re: the alert sent {short_time(original.sent_at)} — {original.title}"


def links(alert: Alert) -> list[tuple[str, str]]:
    result = []
    if alert.console_url:
        result.append(("Console", alert.console_url))
    if alert.runbook_url:
        result.append(("Runbook", alert.runbook_url))
    return result


def _wants_mention(notice: Notice) -> bool:
    return notice.alert.severity == "critical" and notice.alert.new_state == ALARM


# ------------------------------------------------------------------------------------------------ Slack


def slack_escape(text: str) -> str:
    """For mrkdwn: escape the three control characters and defuse broadcast mentions typed as text."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for word in ("channel", "here", "everyone"):
        escaped = escaped.replace(f"@{word}", f"@\u2060{word}")
    return escaped


def slack_link(url: str, label: str) -> str:
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe}|{label}>"


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text or " ", "emoji": True}


def render_slack(notice: Notice, ctx: RenderContext, *, thread_ts: str | None = None) -> dict[str, Any]:
    alert = notice.alert
    mention = "<!here> " if _wants_mention(notice) else ""
    blocks: list[dict[str, Any]] = [{"type": "header", "text": _plain(clip(headline(notice), SLACK_HEADER_LIMIT))}]
    if mention:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "<!here> critical alarm"}})
    reference = reference_text(notice)
    if reference:
        blocks.append({"type": "context", "elements": [_plain(clip(reference, SLACK_FIELD_LIMIT))]})
    rows = facts(notice)
    for start in range(0, min(len(rows), 30), 10):  # Slack allows 10 fields per section
        fields = [_plain(clip(f"{k}: {v}", SLACK_FIELD_LIMIT)) for k, v in rows[start : start + 10]]
        blocks.append({"type": "section", "fields": fields})
    blocks.append({"type": "section", "text": _plain(clip(alert.reason, SLACK_SECTION_LIMIT))})
    if alert.description:
        blocks.append({"type": "section", "text": _plain(clip(alert.description, SLACK_SECTION_LIMIT))})
    if alert.note:
        blocks.append({"type": "context", "elements": [_plain(clip(alert.note, SLACK_FIELD_LIMIT))]})
    if alert.raw:
        blocks.append({"type": "section", "text": _plain(clip("Original message:\n" + alert.raw, SLACK_SECTION_LIMIT))})
    link_items = links(alert)
    if link_items:
        text = " · ".join(slack_link(url, label) for label, url in link_items)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
    if ctx.stack or ctx.project:
        blocks.append({"type": "context", "elements": [_plain(f"{ctx.project} / {ctx.stack}".strip(" /"))]})
    fallback_body = slack_escape(f"{headline(notice)} — {alert.reason}")
    if reference:
        fallback_body += " — " + slack_escape(reference)
    payload: dict[str, Any] = {
        "text": mention + clip(fallback_body, SLACK_FALLBACK_LIMIT - len(mention)),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }
    if thread_ts:
        payload["thread_ts"] = thread_ts
        payload["reply_broadcast"] = True  # the recovery shows in the channel too, not only in the thread
    return payload


def _digest_line(alert: Alert) -> str:
    when = short_time(alert.occurred_at or alert.received_at)
    return f"{alert.severity.upper()} {alert.new_state} {alert.title} ({when})"


def _digest_headline(digest: Digest) -> str:
    return (
        f"⚡ Alert storm: {len(digest.alerts)} alert{'s' if len(digest.alerts) != 1 else ''} held "
        f"between {short_time(digest.window_start)} and {short_time(digest.window_end)}"
    )


def _severity_counts(alerts: tuple[Alert, ...]) -> str:
    counts = {s: sum(1 for a in alerts if a.severity == s) for s in SEVERITIES}
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n)


def render_slack_digest(digest: Digest, ctx: RenderContext) -> dict[str, Any]:
    lines = [_digest_line(a) for a in digest.alerts[:DIGEST_MAX_LINES]]
    more = len(digest.alerts) - len(lines)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(clip(_digest_headline(digest), SLACK_HEADER_LIMIT))},
        {"type": "context", "elements": [_plain(_severity_counts(digest.alerts) or "no alerts")]},
    ]
    chunk: list[str] = []
    sections = 0
    for line in [*lines, *([f"… and {more} more"] if more else [])]:
        candidate = "\n".join([*chunk, clip(line, 500)])
        if len(candidate) > SLACK_SECTION_LIMIT and chunk:
            blocks.append({"type": "section", "text": _plain("\n".join(chunk))})
            sections += 1
            chunk = []
            if sections >= 45:  # Slack's 50-block ceiling, leaving room for header/context
                break
        chunk.append(clip(line, 500))
    if chunk and sections < 45:
        blocks.append({"type": "section", "text": _plain("\n".join(chunk))})
    if ctx.stack or ctx.project:
        blocks.append({"type": "context", "elements": [_plain(f"{ctx.project} / {ctx.stack}".strip(" /"))]})
    return {
        "text": clip(slack_escape(_digest_headline(digest) + ": " + "; ".join(lines[:20])), SLACK_FALLBACK_LIMIT),
        "blocks": blocks,
        "unfurl_links": False,
        "unfurl_media": False,
    }


# --------------------------------------------------------------------------------------------- Telegram


def _h(text: str) -> str:
    return html.escape(text, quote=False)


def _href(url: str) -> str:
    return html.escape(url, quote=True)


def render_telegram(notice: Notice, ctx: RenderContext, *, reply_to: str | None = None) -> dict[str, Any]:
    alert = notice.alert
    rows = facts(notice)
    reference = reference_text(notice)
    link_items = links(alert)

    def build(caps: dict[str, int]) -> str:
        parts = [f"<b>{_h(clip(headline(notice), caps['title']))}</b>"]
        if reference:
            parts.append(f"<i>{_h(clip(reference, caps['reference']))}</i>")
        parts.append("\n".join(f"<b>{_h(k)}:</b> {_h(clip(v, caps['facts']))}" for k, v in rows))
        parts.append(_h(clip(alert.reason, caps["reason"])))
        if alert.description:
            parts.append(f"<i>{_h(clip(alert.description, caps['description']))}</i>")
        if alert.note:
            parts.append(f"<i>{_h(clip(alert.note, caps['note']))}</i>")
        if alert.raw and caps["raw"] > 0:
            parts.append(f"<pre>{_h(clip(alert.raw, caps['raw']))}</pre>")
        if link_items:
            parts.append(" · ".join(f'<a href="{_href(url)}">{label}</a>' for label, url in link_items))
        if ctx.stack or ctx.project:
            parts.append(_h(f"{ctx.project} / {ctx.stack}".strip(" /")))
        return "\n\n".join(p for p in parts if p)

    longest_fact = max((len(v) for _, v in rows), default=0)
    text = fit(
        build,
        utf16_len,
        TELEGRAM_LIMIT,
        # Shrunk in this order: what happened (the reason) and the links are what on-call needs first, so the
        # attached original and the alarm's standing description give way before the reason does.
        {
            "raw": len(alert.raw or ""),
            "description": len(alert.description or ""),
            "note": len(alert.note or ""),
            "facts": longest_fact,
            "reference": len(reference or ""),
            "reason": len(alert.reason),
            "title": len(headline(notice)),
        },
    )
    payload: dict[str, Any] = {
        "text": text,
        "parse_mode": "HTML",
        "link_preview_options": {"is_disabled": True},
    }
    if reply_to and reply_to.isdigit():
        payload["reply_parameters"] = {"message_id": int(reply_to), "allow_sending_without_reply": True}
    return payload


def render_telegram_digest(digest: Digest, ctx: RenderContext) -> dict[str, Any]:
    lines = [_digest_line(a) for a in digest.alerts]

    def build(caps: dict[str, int]) -> str:
        shown = lines[: caps["lines"]]
        body = "\n".join(f"• {_h(clip(line, 300))}" for line in shown)
        more = len(lines) - len(shown)
        tail = f"\n… and {more} more" if more else ""
        counts = _h(_severity_counts(digest.alerts))
        scope = _h(f"{ctx.project} / {ctx.stack}".strip(" /"))
        return f"<b>{_h(_digest_headline(digest))}</b>\n{counts}\n\n{body}{tail}\n\n{scope}".rstrip()

    text = fit(build, utf16_len, TELEGRAM_LIMIT, {"lines": len(lines)})
    return {"text": text, "parse_mode": "HTML", "link_preview_options": {"is_disabled": True}}


# ------------------------------------------------------------------------------------------------ email


def _one_line(text: str) -> str:
    return " ".join(text.split())


def render_email(notice: Notice, ctx: RenderContext) -> EmailContent:
    alert = notice.alert
    prefix = f"[{ctx.stack}] " if ctx.stack else ""
    subject = clip(_one_line(clean_text(prefix + headline(notice))), EMAIL_SUBJECT_LIMIT)
    rows = facts(notice)
    reference = reference_text(notice)
    reason = clip(alert.reason, EMAIL_FIELD_LIMIT)
    description = clip(alert.description, EMAIL_FIELD_LIMIT)
    raw = clip(alert.raw, EMAIL_FIELD_LIMIT)
    link_items = links(alert)

    text_lines = [headline(notice), ""]
    if reference:
        text_lines += [reference, ""]
    text_lines += [f"{k}: {v}" for k, v in rows]
    text_lines += ["", reason]
    if description:
        text_lines += ["", description]
    if alert.note:
        text_lines += ["", f"Note: {alert.note}"]
    if raw:
        text_lines += ["", "Original message:", raw]
    text_lines += [""] + [f"{label}: {url}" for label, url in link_items]
    if ctx.project or ctx.stack:
        text_lines += ["", f"{ctx.project} / {ctx.stack}".strip(" /")]

    table = "".join(
        f"<tr><th align='left' style='padding-right:12px'>{_h(k)}</th><td>{_h(v)}</td></tr>" for k, v in rows
    )
    html_parts = [
        "<!DOCTYPE html><html><body style='font-family:sans-serif'>",
        f"<h2>{_h(headline(notice))}</h2>",
    ]
    if reference:
        html_parts.append(f"<p><i>{_h(reference)}</i></p>")
    html_parts.append(f"<table>{table}</table>")
    html_parts.append(f"<p style='white-space:pre-wrap'>{_h(reason)}</p>")
    if description:
        html_parts.append(f"<p style='white-space:pre-wrap'><i>{_h(description)}</i></p>")
    if alert.note:
        html_parts.append(f"<p><i>{_h(alert.note)}</i></p>")
    if raw:
        html_parts.append(f"<pre>{_h(raw)}</pre>")
    if link_items:
        html_parts.append(
            "<p>" + " · ".join(f'<a href="{_href(url)}">{label}</a>' for label, url in link_items) + "</p>"
        )
    if ctx.project or ctx.stack:
        html_parts.append(f"<p style='color:#888'>{_h(f'{ctx.project} / {ctx.stack}'.strip(' /'))}</p>")
    html_parts.append("</body></html>")
    return EmailContent(subject=subject, text="\n".join(text_lines).strip() + "\n", html="".join(html_parts))


def render_email_digest(digest: Digest, ctx: RenderContext) -> EmailContent:
    prefix = f"[{ctx.stack}] " if ctx.stack else ""
    lines = [_digest_line(a) for a in digest.alerts]
    subject = clip(_one_line(prefix + _digest_headline(digest)), EMAIL_SUBJECT_LIMIT)
    text = "\n".join([_digest_headline(digest), _severity_counts(digest.alerts), "", *lines]) + "\n"
    items = "".join(f"<li>{_h(line)}</li>" for line in lines)
    body = (
        "<!DOCTYPE html><html><body style='font-family:sans-serif'>"
        f"<h2>{_h(_digest_headline(digest))}</h2><p>{_h(_severity_counts(digest.alerts))}</p><ul>{items}</ul>"
        "</body></html>"
    )
    return EmailContent(subject=subject, text=text, html=body)


# -------------------------------------------------------------------------------------------------- SMS

_GSM_EXTENSION = set("^{}\\[]~|")
_SMS_REPLACEMENTS = {
    "→": "->",
    "…": "...",
    "—": "-",
    "–": "-",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
    "`": "'",
}


def sms_safe(text: str) -> str:
    """Plain ASCII: a single emoji would switch the SMS to UCS-2 and cut a segment to 70 characters."""
    lines = [line for line in (_sms_line(line) for line in text.splitlines()) if line]
    return " / ".join(lines)  # a line break becomes a visible separator, not words run together


def _sms_line(text: str) -> str:
    out = []
    for char in text:
        char = _SMS_REPLACEMENTS.get(char, char)
        if char.isspace():
            out.append(" ")
            continue
        folded = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
        out.append(folded if folded.isprintable() else "")
    return " ".join("".join(out).split())


def gsm_septets(text: str) -> int:
    return sum(2 if c in _GSM_EXTENSION else 1 for c in text)


def render_sms(notice: Notice, ctx: RenderContext) -> str:
    alert = notice.alert
    severity = alert.severity.upper()
    value = value_text(alert)
    reason = sms_safe(alert.reason)
    title = sms_safe(alert.title)
    stack = sms_safe(ctx.stack)
    if notice.purpose == "escalation":
        head = f"{severity} STILL {alert.new_state} ({notice.escalation_number}/{notice.escalation_count})"
    elif alert.new_state == OK:
        when = short_time(notice.original.sent_at)[11:16] if notice.original else ""
        head = "RESOLVED" + (f" (alert {when}Z)" if when else "")
    elif alert.new_state == EVENT:
        head = severity
    else:
        head = f"{severity} {alert.new_state}"
    if stack:
        head = f"[{stack}] {head}"
    detail = sms_safe(value) if value and alert.new_state != OK else reason
    if detail.startswith(title):  # plain-text messages: the title is the reason's first line, said once
        detail = detail[len(title) :].lstrip(" :/-")

    def build(caps: dict[str, int]) -> str:
        text = f"{head} {clip(title, caps['title'])}"
        body = clip(detail, caps["detail"])
        if body:
            text += f": {body}"
        return sms_safe(text)

    return fit(build, gsm_septets, SMS_LIMIT, {"detail": len(detail), "title": len(title)})


def render_sms_digest(digest: Digest, ctx: RenderContext) -> str:
    stack = sms_safe(ctx.stack)
    head = (
        f"[{stack}] " if stack else ""
    ) + f"ALERT STORM: {len(digest.alerts)} alerts held ({_severity_counts(digest.alerts)})"
    titles = sms_safe("; ".join(dict.fromkeys(a.title for a in digest.alerts)))

    def build(caps: dict[str, int]) -> str:
        body = clip(titles, caps["titles"])
        return sms_safe(f"{head}: {body}" if body else head)

    return fit(build, gsm_septets, SMS_LIMIT, {"titles": len(titles)})


# ---------------------------------------------------------------------------------------------- webhook


def _alert_body(alert: Alert) -> dict[str, Any]:
    return {
        "message_id": alert.message_id,
        "kind": alert.kind,
        "alarm_key": alert.alarm_key,
        "title": alert.title,
        "severity": alert.severity,
        "state": alert.new_state,
        "previous_state": alert.old_state,
        "reason": clip(alert.reason, WEBHOOK_FIELD_LIMIT),
        "source_reason": clip(alert.raw_reason, WEBHOOK_FIELD_LIMIT) or None,
        "value": alert.value,
        "threshold": alert.threshold,
        "metric": alert.metric,
        "region": alert.region,
        "account": alert.account,
        "console_url": alert.console_url,
        "runbook_url": alert.runbook_url,
        "description": clip(alert.description, WEBHOOK_FIELD_LIMIT) or None,
        "occurred_at": alert.occurred_at,
        "received_at": alert.received_at,
        "details": dict(alert.details),
        "note": alert.note,
        "raw": clip(alert.raw, WEBHOOK_FIELD_LIMIT) or None,
    }


def render_webhook(notice: Notice, ctx: RenderContext, *, sent_at: str) -> dict[str, Any]:
    alert = notice.alert
    purpose = notice.purpose
    if purpose == "alert" and alert.new_state == OK and notice.original is not None:
        purpose = "recovery"
    body: dict[str, Any] = {
        "version": 1,
        "id": notice.delivery_key,
        "type": purpose,
        "project": ctx.project,
        "stack": ctx.stack,
        "sent_at": sent_at,
        "headline": headline(notice),
        "alert": _alert_body(alert),
        "in_reply_to": notice.original.message_key if notice.original else None,
        "suppressed_repeats": notice.suppressed_repeats,
    }
    if notice.purpose == "escalation":
        body["escalation"] = {"number": notice.escalation_number, "of": notice.escalation_count}
    return body


def render_webhook_digest(digest: Digest, ctx: RenderContext, *, sent_at: str) -> dict[str, Any]:
    return {
        "version": 1,
        "id": digest.delivery_key,
        "type": "digest",
        "project": ctx.project,
        "stack": ctx.stack,
        "sent_at": sent_at,
        "headline": _digest_headline(digest),
        "window_start": digest.window_start,
        "window_end": digest.window_end,
        "count": len(digest.alerts),
        "alerts": [
            {
                "message_id": a.message_id,
                "title": a.title,
                "severity": a.severity,
                "state": a.new_state,
                "occurred_at": a.occurred_at,
                "reason": clip(a.reason, 500),
                "console_url": a.console_url,
                "runbook_url": a.runbook_url,
            }
            for a in digest.alerts
        ],
    }


def webhook_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


# ------------------------------------------------------------------------------------------- cleaning

_LINE_BREAKS = {"\r\n": "\n", "\r": "\n", "\u2028": "\n", "\u2029": "\n", "\x85": "\n"}


def clean_text(text: str) -> str:
    """Drop control characters (NUL, ESC... but not line breaks or tabs) and invisible format characters:
    bidi overrides and isolates (U+202A-202E, U+2066-2069: "Trojan Source" reordering), zero-width ones
    (U+200B-200D, U+2060, U+FEFF). CR and the Unicode line separators become plain line breaks, so no
    channel sees a bare CR (in an e-mail header it could start a new header)."""
    for old, new in _LINE_BREAKS.items():
        text = text.replace(old, new)
    return "".join(
        char for char in text if char in "\n\t" or unicodedata.category(char) not in {"Cc", "Cf", "Cs", "Co"}
    )


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, tuple):
        return tuple(_clean_value(v) for v in value)
    return value


def clean_alert(alert: Alert) -> Alert:
    return replace(alert, **{f.name: _clean_value(getattr(alert, f.name)) for f in fields(alert)})


def clean_item(item: Notice | Digest) -> Notice | Digest:
    if isinstance(item, Digest):
        return replace(item, alerts=tuple(clean_alert(a) for a in item.alerts))
    original = item.original
    if original is not None:
        original = replace(original, title=clean_text(original.title))
    return replace(item, alert=clean_alert(item.alert), original=original)


# ------------------------------------------------------------------------------------------- dispatcher


def render(
    item: Notice | Digest,
    channel: str,
    ctx: RenderContext,
    *,
    reply_ref: str | None = None,
    sent_at: str = "",
) -> Any:
    """Payload for one channel: Slack/Telegram/webhook dicts, `EmailContent`, or the SMS text.

    Every text that came from outside is cleaned first (`clean_text`), for every channel.
    """
    item, ctx = clean_item(item), RenderContext(clean_text(ctx.project), clean_text(ctx.stack))
    if isinstance(item, Digest):
        if channel == "slack":
            return render_slack_digest(item, ctx)
        if channel == "telegram":
            return render_telegram_digest(item, ctx)
        if channel == "email":
            return render_email_digest(item, ctx)
        if channel == "sms":
            return render_sms_digest(item, ctx)
        if channel == "webhook":
            return render_webhook_digest(item, ctx, sent_at=sent_at)
    else:
        if channel == "slack":
            return render_slack(item, ctx, thread_ts=reply_ref)
        if channel == "telegram":
            return render_telegram(item, ctx, reply_to=reply_ref)
        if channel == "email":
            return render_email(item, ctx)
        if channel == "sms":
            return render_sms(item, ctx)
        if channel == "webhook":
            return render_webhook(item, ctx, sent_at=sent_at)
    raise ValueError(f"unknown channel {channel!r}")

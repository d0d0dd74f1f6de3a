"""`python -m lambdas.alert_forwarder --preview FILE [--channel ...]`: show what each channel would get.

FILE holds a Lambda SNS event, a single SNS message envelope, a bare alarm/event JSON, or plain text
(`-` reads stdin). Nothing is sent and no AWS access is needed. Unknown formats print as the raw
forward they would become, with exit status 0; only an unreadable FILE exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from .deliver import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, epoch_of, webhook_signature
from .model import CHANNELS, Notice
from .parse import parse_alerts, records_from_event
from .render import EmailContent, RenderContext, gsm_septets, render, utf16_len, webhook_bytes

PREVIEW_SIGNING_KEY = "preview-signing-key"


def _format(channel: str, payload: Any) -> str:
    if channel == "slack":
        return json.dumps(payload, indent=2, ensure_ascii=False)
    if channel == "telegram":
        return f"[{utf16_len(payload['text'])}/4096 UTF-16 units, parse_mode=HTML]\n{payload['text']}"
    if channel == "email":
        assert isinstance(payload, EmailContent)
        return f"Subject: {payload.subject}\n\n--- text/plain ---\n{payload.text}\n--- text/html ---\n{payload.html}"
    if channel == "sms":
        return f"[{gsm_septets(payload)}/160 GSM-7 characters]\n{payload}"
    body = webhook_bytes(payload)
    return (
        f"{SIGNATURE_HEADER}: {webhook_signature(PREVIEW_SIGNING_KEY, body)}"
        "  (preview key, not the real one)\n"
        f"{TIMESTAMP_HEADER}: {epoch_of(payload.get('sent_at'))}\n"
        f"{DELIVERY_HEADER}: {payload.get('id')}/webhook\n\n" + json.dumps(payload, indent=2, ensure_ascii=False)
    )


def preview(text: str, channels: list[str], ctx: RenderContext, default_severity: str = "warning") -> str:
    try:
        event: Any = json.loads(text)
    except json.JSONDecodeError:
        event = text
    received_at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    records = records_from_event(event)
    out = []
    alerts = [
        alert
        for record in records
        for alert in parse_alerts(record, received_at=received_at, default_severity=default_severity)
    ]
    for index, alert in enumerate(alerts, 1):
        state = alert.new_state if not alert.old_state else f"{alert.old_state}→{alert.new_state}"
        out.append(
            f"=== alert {index}/{len(alerts)}: {alert.kind}, severity {alert.severity}, {state}, "
            f"message id {alert.message_id}"
        )
        if alert.note:
            out.append(f"note: {alert.note}")
        notice = Notice(alert, alert.message_id)
        for channel in channels:
            payload = render(notice, channel, ctx, sent_at=received_at)
            out.append(f"--- {channel} ---")
            out.append(_format(channel, payload))
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdas.alert_forwarder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--preview", metavar="FILE", required=True, help="event/message file, or - for stdin")
    parser.add_argument("--channel", choices=CHANNELS, help="show only this channel")
    parser.add_argument("--stack", default=os.environ.get("STACK", "preview"))
    parser.add_argument("--project", default=os.environ.get("PROJECT", "shipyard"))
    parser.add_argument("--default-severity", default="warning", choices=("critical", "warning", "info"))
    args = parser.parse_args(argv)
    try:
        if args.preview == "-":
            text = sys.stdin.read()
        else:
            with open(args.preview, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cannot read {args.preview}: {exc}", file=sys.stderr)
        return 2
    channels = [args.channel] if args.channel else list(CHANNELS)
    sys.stdout.write(preview(text, channels, RenderContext(args.project, args.stack), args.default_severity))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The normalised alert every input format is turned into, and the notices rendered from it."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, fields
from typing import Any

SEVERITIES = ("critical", "warning", "info")
CHANNELS = ("slack", "telegram", "email", "sms", "webhook")

# States an alert can carry. EVENT is for one-off happenings (a task stopped, a backup failed) that have
# no recovery notification of their own.
ALARM, OK, INSUFFICIENT_DATA, EVENT = "ALARM", "OK", "INSUFFICIENT_DATA", "EVENT"


@dataclass(frozen=True)
class Alert:
    message_id: str
    kind: str
    alarm_key: str
    title: str
    severity: str
    new_state: str
    old_state: str | None = None
    reason: str = ""
    raw_reason: str = ""
    value: str | None = None
    threshold: str | None = None
    metric: str | None = None
    region: str | None = None
    account: str | None = None
    console_url: str | None = None
    runbook_url: str | None = None
    description: str | None = None
    occurred_at: str | None = None
    received_at: str | None = None
    details: tuple[tuple[str, str], ...] = ()
    note: str | None = None
    raw: str | None = None
    topic_arn: str | None = None

    @property
    def fingerprint(self) -> str:
        """Same transition seen twice (two topics, a re-publish) gives the same fingerprint."""
        basis = self.occurred_at or hashlib.sha256((self.raw or self.reason).encode()).hexdigest()
        return hashlib.sha256(f"{self.alarm_key}|{self.new_state}|{basis}".encode()).hexdigest()[:32]

    @property
    def is_recovery(self) -> bool:
        return self.new_state == OK and self.old_state not in (None, OK)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["details"] = [list(pair) for pair in self.details]
        return data

    def summary_json(self) -> dict[str, Any]:
        """What history keeps of an alert nobody was told about: enough to read, not to re-render."""
        keep = (
            "message_id",
            "kind",
            "alarm_key",
            "title",
            "severity",
            "new_state",
            "old_state",
            "value",
            "threshold",
            "region",
            "account",
            "occurred_at",
            "received_at",
        )
        data = {k: getattr(self, k) for k in keep}
        data["reason"] = self.reason if len(self.reason) <= 500 else self.reason[:499] + "…"
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["details"] = tuple((str(k), str(v)) for k, v in values.get("details") or ())
        return cls(**values)


@dataclass(frozen=True)
class OriginalNotice:
    """The ALARM notice a recovery or an escalation refers back to."""

    message_key: str
    sent_at: str
    title: str
    refs: dict[str, str] = field(default_factory=dict)  # channel -> provider message id (Slack ts, ...)


@dataclass(frozen=True)
class Notice:
    """One thing to tell people: an alert, its escalation, or the settled state after a flapping spell."""

    alert: Alert
    delivery_key: str
    purpose: str = "alert"  # alert | escalation | settle
    escalation_number: int = 0
    escalation_count: int = 0
    suppressed_repeats: int = 0
    original: OriginalNotice | None = None


@dataclass(frozen=True)
class Digest:
    """Alerts held back during a storm or by a channel's rate limit, sent as one message per channel."""

    delivery_key: str
    window_start: str
    window_end: str
    alerts: tuple[Alert, ...]

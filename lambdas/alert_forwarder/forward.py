"""The forwarder's logic as plain functions over injected dependencies (store, targets, clock, timers).

process_records: parse → decide per alarm (dedupe, cooldown, recovery threading, escalation/settle
markers) and commit that decision atomically with the alert's history item → storm and per-channel rate
limits (overflow is held for the window's digest, never dropped) → deliver, idempotently per channel
target, in parallel, retrying within the invocation's time.
sweep: flush digests of closed windows, escalate critical alarms still in ALARM, and tell people the
state a flapping alarm settled in when its notice was suppressed by cooldown.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import random
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .config import ChannelSecrets, Routing
from .deliver import (
    DEFAULT_SLACK_API_BASE,
    DEFAULT_TELEGRAM_API_BASE,
    EmailTransport,
    HttpSender,
    RetryPolicy,
    SendOutcome,
    SlackApiTransport,
    SlackWebhookTransport,
    SmsTransport,
    TelegramTransport,
    Transport,
    WebhookTransport,
    send_with_retry,
    target_id,
)
from .model import ALARM, EVENT, INSUFFICIENT_DATA, OK, Alert, Digest, Notice, OriginalNotice
from .parse import IncomingRecord, parse_alerts
from .render import RenderContext, render
from .state import AlarmState, StateStore, parallel

CHUNK = 50  # alerts decided per alarm-state write; bounds the state item's journal
MAX_COMMIT_ROUNDS = 20  # conflict retries on top of one round per chunk
ALARM_KINDS = ("metric_alarm", "metric_math_alarm", "anomaly_alarm", "composite_alarm")


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Target:
    channel: str
    target: str
    transport: Transport | None
    problem: str | None = None


def build_targets(
    secrets: ChannelSecrets,
    *,
    http: HttpSender,
    ses: Callable[[], Any] | None = None,
    sns: Callable[[], Any] | None = None,
    slack_api_base: str = DEFAULT_SLACK_API_BASE,
    telegram_api_base: str = DEFAULT_TELEGRAM_API_BASE,
) -> Callable[[str], list[Target]]:
    """channel -> its delivery targets. A channel the credentials cannot serve yields one target carrying
    the problem, so the record fails (and is retried / dead-lettered) with a message naming the key."""

    cache: dict[str, list[Target]] = {}

    def targets(channel: str) -> list[Target]:
        if channel in cache:
            return cache[channel]
        problem = secrets.problem_for(channel)
        result: list[Target]
        if problem:
            result = [Target(channel, channel, None, problem)]
        elif channel == "slack":
            transport: Transport
            if secrets.slack_bot_token:
                transport = SlackApiTransport(http, secrets.slack_bot_token, str(secrets.slack_channel), slack_api_base)
            else:
                transport = SlackWebhookTransport(http, str(secrets.slack_webhook_url))
            result = [Target("slack", "slack", transport)]
        elif channel == "telegram":
            transport = TelegramTransport(
                http, str(secrets.telegram_bot_token), str(secrets.telegram_chat_id), telegram_api_base
            )
            result = [Target("telegram", "telegram", transport)]
        elif channel == "webhook":
            transport = WebhookTransport(http, str(secrets.webhook_url), str(secrets.webhook_signing_key))
            result = [Target("webhook", "webhook", transport)]
        elif channel == "email":
            if ses is None:
                result = [Target("email", "email", None, "no SES client configured")]
            else:
                transport = EmailTransport(ses(), str(secrets.email_from), secrets.email_addresses)
                result = [Target("email", "email", transport)]
        elif channel == "sms":
            if sns is None:
                result = [Target("sms", "sms", None, "no SNS client configured")]
            else:
                client = sns()
                result = [Target("sms", target_id("sms", n), SmsTransport(client, n)) for n in secrets.sms_numbers]
        else:
            result = [Target(channel, channel, None, f"unknown channel {channel!r}")]
        cache[channel] = result
        return result

    return targets


@dataclass
class Deps:
    store: StateStore
    routing: Routing
    targets: Callable[[str], list[Target]]
    ctx: RenderContext = field(default_factory=RenderContext)
    clock: Callable[[], float] = time.time
    remaining: Callable[[], float] = lambda: 60.0
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    cloudwatch: Callable[[], Any] | None = None  # factory: the client is built only when needed
    log: Any = field(default_factory=lambda: logging.getLogger("alert_forwarder"))
    max_workers: int = 8


@dataclass
class Failure:
    message_key: str
    target: str
    error: str


@dataclass
class Result:
    received: int = 0
    notified: int = 0
    suppressed: int = 0
    held: int = 0
    sent: int = 0
    already_sent: int = 0
    digests_sent: int = 0
    escalations_sent: int = 0
    settles_sent: int = 0
    failures: list[Failure] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)
    sqs_ids: dict[str, list[str]] = field(default_factory=dict)  # message key -> SQS message ids carrying it

    def failed_sqs_ids(self) -> list[str]:
        failed = dict.fromkeys(f.message_key for f in self.failures)
        return [sqs_id for key in failed for sqs_id in self.sqs_ids.get(key, [])]

    def merge(self, other: Result) -> None:
        for name in (
            "received",
            "notified",
            "suppressed",
            "held",
            "sent",
            "already_sent",
            "digests_sent",
            "escalations_sent",
            "settles_sent",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.decisions.update(other.decisions)

    def failure_summary(self) -> str:
        by_message: dict[str, list[str]] = defaultdict(list)
        for failure in self.failures:
            by_message[failure.message_key].append(f"{failure.target}: {failure.error}")
        parts = [f"{key} [{'; '.join(errors)}]" for key, errors in by_message.items()]
        return f"{len(by_message)} message(s) not fully delivered: " + " | ".join(parts)


class DeliveryFailed(Exception):
    """Raised by the handler so Lambda retries the invocation (already-sent targets are skipped)."""

    def __init__(self, result: Result):
        super().__init__(result.failure_summary())
        self.result = result


# ------------------------------------------------------------------------------------------- deciding


@dataclass
class Decision:
    alert: Alert
    outcome: str  # notify | duplicate | cooldown | no_open_alarm | out_of_order | history_only
    reason: str
    channels: tuple[str, ...] = ()
    plan: dict[str, str] = field(default_factory=dict)  # channel -> send | digest
    suppressed_repeats: int = 0
    original: dict[str, str] | None = None
    reused: bool = False  # taken from the alarm state's journal: decided (and rate-counted) before


def _sort_key(alert: Alert) -> str:
    return alert.occurred_at or alert.received_at or ""


def decide(alert: Alert, state: AlarmState, routing: Routing, now: float) -> Decision:
    """Decide one alert against its alarm's state (mutated in place). Pure: no I/O."""
    entry = state.journal.get(alert.message_id)
    if entry is not None:
        return Decision(
            alert,
            entry["o"],
            entry.get("r", ""),
            tuple(entry.get("c", ())),
            plan=dict(entry.get("p") or {}),
            suppressed_repeats=int(entry.get("n", 0)),
            original=entry.get("g"),
            reused=True,
        )
    new = alert.new_state
    per = state.per_state.setdefault(new, {})
    previous_state = state.current_state
    last = Alert.from_json(state.last_alert) if state.last_alert else None
    channels = routing.channels_for(alert.severity)
    state.title, state.severity, state.kind = alert.title, alert.severity, alert.kind

    if per.get("fingerprint") == alert.fingerprint and per.get("fingerprint_msg") != alert.message_id:
        return Decision(alert, "duplicate", "same transition already received", channels)
    per["fingerprint"], per["fingerprint_msg"] = alert.fingerprint, alert.message_id

    stale = (
        new != EVENT
        and last is not None
        and last.new_state != EVENT
        and alert.occurred_at is not None
        and last.occurred_at is not None
        and alert.occurred_at < last.occurred_at
    )
    if stale and last is not None:
        return Decision(alert, "out_of_order", f"older than the {last.new_state} already recorded", channels)

    if new != EVENT:
        if previous_state != new or state.current_since is None:
            state.current_state = new
            state.current_since = alert.occurred_at or alert.received_at
        state.last_alert = alert.to_json()

    if new == OK and not (state.notified_state == ALARM or (state.notified_state is None and alert.old_state == ALARM)):
        return Decision(alert, "no_open_alarm", "recovery without an ALARM notice to resolve", channels)
    if not channels:
        return Decision(alert, "history_only", f"no channels routed for severity {alert.severity}", channels)
    last_notice = per.get("last_notice_at")
    if (
        isinstance(last_notice, int | float)
        and now - last_notice < routing.cooldown_seconds
        and per.get("last_notice_msg") != alert.message_id
    ):
        per["suppressed"] = int(per.get("suppressed", 0)) + 1
        return Decision(alert, "cooldown", f"{new} notice sent {int(now - last_notice)} s ago", channels)

    original = None
    if new == OK and state.original_key:
        original = {
            "key": state.original_key,
            "at": state.original_at or "",
            "title": state.original_title or "",
        }
    repeats = int(per.get("suppressed", 0))
    per.update(last_notice_at=now, last_notice_msg=alert.message_id, suppressed=0)
    if new != EVENT:
        state.notified_state = new
    if new == ALARM:
        state.original_key, state.original_at, state.original_title = alert.message_id, iso(now), alert.title
    return Decision(alert, "notify", "", channels, suppressed_repeats=repeats, original=original)


def _marker_ops(
    state: AlarmState, decisions: list[Decision], routing: Routing, now: float
) -> dict[str, dict[str, Any] | None]:
    """Sweep markers to put (dict) or delete (None) after a chunk of decisions for one alarm."""
    ops: dict[str, dict[str, Any] | None] = {}
    esc_sk = f"ESCALATION#{state.alarm_key}"
    settle_sk = f"SETTLE#{state.alarm_key}"
    for decision in decisions:
        alert = decision.alert
        if decision.outcome in ("duplicate", "out_of_order"):
            continue
        if (
            alert.new_state == ALARM
            and alert.severity == "critical"
            and routing.escalation_count > 0
            and decision.channels
        ):
            existing = ops.get(esc_sk)
            if not (existing and existing.get("episode") == state.current_since):
                ops[esc_sk] = {
                    "alarm_key": state.alarm_key,
                    "episode": state.current_since,
                    "count": 0,
                    "due_at": now + routing.escalation_interval_seconds,
                }
        elif alert.new_state in (OK, INSUFFICIENT_DATA):
            ops[esc_sk] = None
        if decision.outcome == "cooldown" and alert.new_state != EVENT and state.notified_state != alert.new_state:
            last_notice = state.per_state.get(alert.new_state, {}).get("last_notice_at", now)
            ops[settle_sk] = {
                "alarm_key": state.alarm_key,
                "due_at": float(last_notice) + routing.cooldown_seconds,
            }
    if state.current_state is not None and state.current_state == state.notified_state:
        ops[settle_sk] = None
    return ops


# ------------------------------------------------------------------------------------------ processing


def _window(now: float, routing: Routing) -> tuple[str, float, float]:
    start = now - (now % routing.storm_window_seconds)
    return f"{int(start):012d}", start, start + routing.storm_window_seconds


def _apply_limits(decisions: list[Decision], deps: Deps, now: float) -> None:
    """Storm threshold, then per-channel rate limits: what exceeds them is held for the digest."""
    routing = deps.routing
    candidates = sorted((d for d in decisions if d.outcome == "notify"), key=lambda d: _sort_key(d.alert))
    if not candidates:
        return
    window, _, _ = _window(now, routing)
    expires = int(now) + 86_400
    total = deps.store.add_counter(f"storm#{window}", len(candidates), expires)
    first_position = total - len(candidates) + 1
    passing: list[Decision] = []
    for offset, decision in enumerate(candidates):
        if first_position + offset > routing.storm_threshold:
            decision.plan = dict.fromkeys(decision.channels, "digest")
        else:
            decision.plan = dict.fromkeys(decision.channels, "send")
            passing.append(decision)
    minute = int(now // 60)
    for channel in deps.routing.used_channels:
        routed = [d for d in passing if channel in d.channels]
        if not routed:
            continue
        count = deps.store.add_counter(f"rate#{channel}#{minute}", len(routed), expires)
        first = count - len(routed) + 1
        limit = routing.rate_limit_per_minute.get(channel, 10**9)
        for offset, decision in enumerate(routed):
            if first + offset > limit:
                decision.plan[channel] = "digest"


def _alert_item(decision: Decision, now: float, routing: Routing) -> dict[str, Any]:
    alert = decision.alert
    received = alert.received_at or iso(now)
    return {
        "pk": f"MSG#{alert.message_id}",
        "sk": "ALERT",
        "gsi1pk": f"ALARM#{alert.alarm_key}",
        "gsi1sk": f"{received}#{alert.message_id}",
        "alarm_key": alert.alarm_key,
        "title": alert.title,
        "severity": alert.severity,
        "state": alert.new_state,
        "kind": alert.kind,
        "decision": decision.outcome,
        "decision_reason": decision.reason or None,
        "plan": decision.plan,
        "suppressed_repeats": decision.suppressed_repeats,
        "original": decision.original,
        # Notices may need re-rendering on a retried invocation; suppressed alerts only need reading.
        "alert": _json(alert.to_json() if decision.outcome == "notify" else alert.summary_json()),
        "received_at": received,
        "occurred_at": alert.occurred_at,
        "expires_at": int(now) + routing.history_days * 86_400,
    }


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _decision_from_item(item: dict[str, Any]) -> Decision:
    alert = Alert.from_json(json.loads(item["alert"]))
    return Decision(
        alert,
        str(item.get("decision")),
        str(item.get("decision_reason") or ""),
        tuple(item.get("plan", {}).keys()),
        plan=dict(item.get("plan") or {}),
        suppressed_repeats=int(item.get("suppressed_repeats") or 0),
        original=item.get("original"),
    )


def _journal_entry(decision: Decision) -> dict[str, Any]:
    return {
        "o": decision.outcome,
        "r": decision.reason,
        "c": list(decision.channels),
        "p": decision.plan,
        "n": decision.suppressed_repeats,
        "g": decision.original,
    }


def _decide_and_commit(
    alerts: list[Alert], deps: Deps, now: float, states: dict[str, AlarmState]
) -> dict[str, Decision]:
    """Decide per alarm, in chunks, and make each chunk's decisions durable.

    Order of writes per chunk: (1) the alarm state, conditionally on the version read — it carries the
    chunk's decisions in its journal; (2) history (ALERT items), digest entries and sweep markers, as
    plain idempotent batch writes. A loser of (1) re-reads the state and re-decides; an invocation that
    died between (1) and (2) finds its decisions in the journal on retry and repeats (2).
    """
    routing, store = deps.routing, deps.store
    by_alarm: dict[str, list[Alert]] = defaultdict(list)
    for alert in sorted(alerts, key=_sort_key):
        by_alarm[alert.alarm_key].append(alert)
    queues = {key: deque(items[i : i + CHUNK] for i in range(0, len(items), CHUNK)) for key, items in by_alarm.items()}
    decided: dict[str, Decision] = {}
    window, _, window_end = _window(now, routing)
    state_expiry = int(now) + max(routing.history_days, 30) * 86_400
    history_expiry = int(now) + routing.history_days * 86_400
    marker_written = False

    max_rounds = max((len(c) for c in queues.values()), default=0) + MAX_COMMIT_ROUNDS
    for _round in range(max_rounds):
        if not queues:
            break
        units = []
        for key, chunks in queues.items():
            current = states.get(key) or AlarmState(alarm_key=key)
            working = copy.deepcopy(current)
            decisions = [decide(a, working, routing, now) for a in chunks[0]]
            units.append((key, current.version, working, decisions))
        _apply_limits([d for _, _, _, ds in units for d in ds if not d.reused], deps, now)
        if not marker_written and any("digest" in d.plan.values() for _, _, _, ds in units for d in ds):
            store.put_marker(f"DIGEST#{window}", window=window, due_at=window_end, expires_at=int(now) + 7 * 86_400)
            marker_written = True
        for _, version, working, decisions in units:
            working.journal = {d.alert.message_id: _journal_entry(d) for d in decisions}
            working.version = version + 1

        def commit(unit: tuple[str, int, AlarmState, list[Decision]]) -> bool:
            _, version, working, _ = unit
            return store.put_alarm_state(working, version, expires_at=state_expiry)

        # Alarms are independent: their conditional puts go out concurrently (one round trip, not fifty).
        committed = parallel(commit, units, deps.max_workers)
        puts: list[dict[str, Any]] = []
        deletes: list[tuple[str, str]] = []
        for (key, _, working, decisions), ok in zip(units, committed, strict=True):
            if not ok:
                deps.log.info("alarm state changed concurrently; re-deciding", extra={"alarm_key": key})
                fresh = store.get_alarm_state(key)
                if fresh is not None:
                    states[key] = fresh
                continue
            states[key] = working
            markers = _marker_ops(working, decisions, routing, now)
            puts += [_alert_item(d, now, routing) for d in decisions]
            puts += [
                {
                    "pk": f"DIGEST#{window}",
                    "sk": f"{d.alert.received_at}#{d.alert.message_id}",
                    "alert": _json(d.alert.to_json()),
                    "channels": [c for c, action in d.plan.items() if action == "digest"],
                    "expires_at": history_expiry,
                }
                for d in decisions
                if "digest" in d.plan.values()
            ]
            puts += [
                {"pk": "PENDING", "sk": sk, **op, "expires_at": int(now) + 30 * 86_400}
                for sk, op in markers.items()
                if op
            ]
            deletes += [("PENDING", sk) for sk, op in markers.items() if op is None]
            for d in decisions:
                decided[d.alert.message_id] = d
            queues[key].popleft()
            if not queues[key]:
                del queues[key]
        store.write(puts, deletes)
    if queues:
        raise RuntimeError(f"could not commit decisions for {len(queues)} alarm(s) after {max_rounds} rounds")
    return decided


# ------------------------------------------------------------------------------------------ delivering


@dataclass
class Job:
    message_key: str
    target: Target
    payload: Any
    kind: str  # alert | digest | escalation | settle


def _refs_for(deps: Deps, original_keys: Iterable[str], channels: Iterable[str]) -> dict[tuple[str, str], str]:
    pairs = [(key, t.target) for key in original_keys for ch in channels for t in deps.targets(ch) if t.transport]
    if not pairs:
        return {}
    items = deps.store.get_deliveries(pairs)
    return {pair: str(item.get("ref") or "") for pair, item in items.items() if item.get("status") == "sent"}


def _jobs_for_notice(
    deps: Deps,
    notice: Notice,
    channels: Iterable[str],
    refs: dict[tuple[str, str], str],
    kind: str,
    now: float,
) -> list[Job]:
    jobs = []
    for channel in channels:
        for target in deps.targets(channel):
            reply = refs.get((notice.original.message_key, target.target)) if notice.original else None
            payload = render(notice, channel, deps.ctx, reply_ref=reply or None, sent_at=iso(now))
            jobs.append(Job(notice.delivery_key, target, payload, kind))
    return jobs


def _run_jobs(jobs: list[Job], deps: Deps, result: Result) -> dict[tuple[str, str], bool]:
    """Deliver every job (channels in parallel); returns (message_key, target) -> delivered."""
    if not jobs:
        return {}
    store, routing = deps.store, deps.routing
    attempt_items: list[dict[str, Any]] = []
    outcome_by_job: dict[tuple[str, str], bool] = {}

    def one(job: Job) -> tuple[Job, str, SendOutcome | None]:
        target = job.target
        now = deps.clock()
        if target.transport is None:
            return job, "problem", SendOutcome(ok=False, error=target.problem)
        status, ref = store.claim_delivery(
            job.message_key,
            target.target,
            now=now,
            lease_until=now + max(deps.remaining(), 1.0),
            expires_at=int(now) + routing.history_days * 86_400,
            channel=target.channel,
        )
        if status == "sent":
            return job, "already", SendOutcome(ok=True, ref=ref)
        if status == "busy":
            return (
                job,
                "busy",
                SendOutcome(ok=False, error="another invocation is delivering this message right now"),
            )
        transport = target.transport
        outcome = send_with_retry(
            lambda timeout: transport.send(job.payload, timeout, f"{job.message_key}/{target.target}"),
            timeout=float(routing.channel_timeout_seconds.get(target.channel, 5.0)),
            policy=deps.retry,
            remaining=deps.remaining,
            clock=deps.clock,
            sleep=deps.sleep,
            rng=random.Random(deps.rng.random()),  # noqa: S311 - backoff jitter, not security
        )
        store.finish_delivery(
            job.message_key,
            target.target,
            ok=outcome.ok,
            ref=outcome.ref,
            error=outcome.error,
            now=deps.clock(),
            attempts=len(outcome.attempts),
        )
        return job, "sent" if outcome.ok else "failed", outcome

    finished = parallel(one, jobs, deps.max_workers)

    for job, status, outcome in finished:
        assert outcome is not None
        key = (job.message_key, job.target.target)
        outcome_by_job[key] = outcome.ok
        for attempt in outcome.attempts:
            attempt_items.append(
                {
                    "pk": f"MSG#{job.message_key}",
                    "sk": f"ATTEMPT#{job.target.target}#{iso(attempt.started_at)}#{attempt.number}",
                    "channel": job.target.channel,
                    "target": job.target.target,
                    "kind": job.kind,
                    "outcome": attempt.outcome,
                    "error": attempt.error,
                    "http_status": attempt.status,
                    "retry_after": attempt.retry_after,
                    "duration_ms": attempt.duration_ms,
                    "at": iso(attempt.started_at),
                    "expires_at": int(attempt.started_at) + routing.history_days * 86_400,
                }
            )
        if status in ("problem", "busy"):
            now = deps.clock()
            attempt_items.append(
                {
                    "pk": f"MSG#{job.message_key}",
                    "sk": f"ATTEMPT#{job.target.target}#{iso(now)}#0",
                    "channel": job.target.channel,
                    "target": job.target.target,
                    "kind": job.kind,
                    "outcome": "not_attempted",
                    "error": outcome.error,
                    "at": iso(now),
                    "expires_at": int(now) + routing.history_days * 86_400,
                }
            )
        if status == "already":
            result.already_sent += 1
        elif outcome.ok:
            result.sent += 1
            if job.kind == "digest":
                result.digests_sent += 1
            elif job.kind == "escalation":
                result.escalations_sent += 1
            elif job.kind == "settle":
                result.settles_sent += 1
        else:
            result.failures.append(Failure(job.message_key, job.target.target, outcome.error or "failed"))
            deps.log.warning(
                "delivery failed",
                extra={"message_key": job.message_key, "target": job.target.target, "error": outcome.error},
            )
    store.put_items(attempt_items)
    return outcome_by_job


def process_records(records: list[IncomingRecord], deps: Deps) -> Result:
    """Handle a batch of incoming records end to end. Failures are reported in the result, not raised."""
    now = deps.clock()
    received_at = iso(now)
    result = Result()
    alerts: dict[str, Alert] = {}
    for record in records:
        for alert in parse_alerts(record, received_at=received_at, default_severity=deps.routing.default_severity):
            alerts.setdefault(alert.message_id, alert)
            if record.sqs_message_id:
                result.sqs_ids.setdefault(alert.message_id, []).append(record.sqs_message_id)
    result.received = len(alerts)
    if not alerts:
        return result

    existing, states = deps.store.load(alerts, {a.alarm_key for a in alerts.values()})
    decided = {key: _decision_from_item(item) for key, item in existing.items()}
    fresh = [a for key, a in alerts.items() if key not in existing]
    if fresh:
        decided.update(_decide_and_commit(fresh, deps, now, states))

    notices: list[tuple[Notice, list[str]]] = []
    for key in alerts:
        decision = decided[key]
        result.decisions[key] = decision.outcome
        if key in existing:
            pass  # a retried invocation: counted the first time
        elif decision.outcome == "notify":
            result.notified += 1
            result.held += int(any(v == "digest" for v in decision.plan.values()))
        elif decision.outcome in ("duplicate", "cooldown", "out_of_order", "no_open_alarm"):
            result.suppressed += 1
        send_channels = (
            [c for c, action in decision.plan.items() if action == "send"] if decision.outcome == "notify" else []
        )
        if not send_channels:
            continue
        original = None
        if decision.original:
            original = OriginalNotice(
                decision.original["key"], decision.original.get("at", ""), decision.original.get("title", "")
            )
        notice = Notice(decision.alert, key, suppressed_repeats=decision.suppressed_repeats, original=original)
        notices.append((notice, send_channels))

    originals = {n.original.message_key for n, _ in notices if n.original}
    all_channels = {c for _, chans in notices for c in chans}
    refs = _refs_for(deps, originals, all_channels)
    jobs = [job for notice, chans in notices for job in _jobs_for_notice(deps, notice, chans, refs, "alert", now)]
    _run_jobs(jobs, deps, result)

    try:  # opportunistic: digests of closed windows go out with the next alert, not only on the sweep
        flushed = flush_digests(deps, deps.clock())
        result.digests_sent += flushed.digests_sent
        result.sent += flushed.sent
        if flushed.failures:
            deps.log.warning("digest flush failed; the sweep retries it", extra={"error": flushed.failure_summary()})
    except Exception:  # the sweep owns digest failures; a record's delivery must not fail because of them
        deps.log.exception("digest flush raised; the sweep retries it")
    return result


# ------------------------------------------------------------------------------------------------ sweep


def flush_digests(deps: Deps, now: float, *, limit: int = 20) -> Result:
    result = Result()
    markers = sorted(
        (m for m in deps.store.pending("DIGEST#") if float(m.get("due_at", 0)) <= now), key=lambda m: m["sk"]
    )
    for marker in markers[:limit]:
        if deps.remaining() < deps.retry.reserve_seconds + 2:
            break
        window = str(marker["window"])
        entries = deps.store.digest_entries(window)
        per_channel: dict[str, list[Alert]] = defaultdict(list)
        for entry in sorted(entries, key=lambda e: e["sk"]):
            alert = Alert.from_json(json.loads(entry["alert"]))
            for channel in entry.get("channels") or []:
                per_channel[channel].append(alert)
        start = float(window)
        digest_key = f"digest:{window}"
        jobs = []
        for channel, alerts in per_channel.items():
            digest = Digest(digest_key, iso(start), iso(float(marker["due_at"])), tuple(alerts))
            for target in deps.targets(channel):
                jobs.append(Job(digest_key, target, render(digest, channel, deps.ctx, sent_at=iso(now)), "digest"))
        delivered = _run_jobs(jobs, deps, result)
        if all(delivered.values()):
            deps.store.delete_marker(marker["sk"])
    return result


def _live_alarm_state(deps: Deps, alert: Alert) -> str | None:
    """Ask CloudWatch whether the alarm is still in ALARM (an OK notification may have been lost)."""
    if deps.cloudwatch is None or alert.kind not in ALARM_KINDS:
        return None
    try:
        response = deps.cloudwatch().describe_alarms(
            AlarmNames=[alert.title], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
        )
    except Exception:  # permissions or region mismatch: fall back to the state we recorded
        deps.log.warning("describe_alarms failed; using the recorded state", extra={"alarm": alert.title})
        return None
    for group in ("MetricAlarms", "CompositeAlarms"):
        for alarm in response.get(group, []):
            if alarm.get("AlarmName") == alert.title:
                return str(alarm.get("StateValue"))
    return None


def _original_for(state: AlarmState) -> OriginalNotice | None:
    if not state.original_key:
        return None
    return OriginalNotice(state.original_key, state.original_at or "", state.original_title or "")


def escalate(deps: Deps, now: float, *, limit: int = 50) -> Result:
    result = Result()
    routing = deps.routing
    due = sorted(
        (m for m in deps.store.pending("ESCALATION#") if float(m.get("due_at", 0)) <= now),
        key=lambda m: m["due_at"],
    )
    for marker in due[:limit]:
        if deps.remaining() < deps.retry.reserve_seconds + 2:
            break
        key = str(marker["alarm_key"])
        state = deps.store.get_alarm_state(key)
        if (
            state is None
            or state.current_state != ALARM
            or state.current_since != marker.get("episode")
            or not state.last_alert
        ):
            deps.store.delete_marker(marker["sk"])
            continue
        alert = Alert.from_json(state.last_alert)
        live = _live_alarm_state(deps, alert)
        if live is not None and live != ALARM:
            deps.log.info(
                "alarm no longer in ALARM per CloudWatch; escalation cancelled",
                extra={"alarm": alert.title, "live": live},
            )
            deps.store.delete_marker(marker["sk"])
            continue
        number = int(marker.get("count", 0)) + 1
        notice = Notice(
            alert,
            f"escalation:{short_hash(key)}:{state.current_since}:{number}",
            purpose="escalation",
            escalation_number=number,
            escalation_count=routing.escalation_count,
            original=_original_for(state),
        )
        channels = routing.channels_for(alert.severity)
        refs = _refs_for(deps, [notice.original.message_key] if notice.original else [], channels)
        delivered = _run_jobs(_jobs_for_notice(deps, notice, channels, refs, "escalation", now), deps, result)
        if not all(delivered.values()):
            continue  # marker stays; the next sweep retries this escalation number (idempotent per target)
        if number >= routing.escalation_count:
            deps.store.delete_marker(marker["sk"])
        else:
            deps.store.put_marker(
                marker["sk"],
                alarm_key=key,
                episode=state.current_since,
                count=number,
                due_at=now + routing.escalation_interval_seconds,
                expires_at=int(now) + 30 * 86_400,
            )
    return result


def settle(deps: Deps, now: float, *, limit: int = 50) -> Result:
    result = Result()
    routing = deps.routing
    due = [m for m in deps.store.pending("SETTLE#") if float(m.get("due_at", 0)) <= now]
    for marker in due[:limit]:
        if deps.remaining() < deps.retry.reserve_seconds + 2:
            break
        key = str(marker["alarm_key"])
        state = deps.store.get_alarm_state(key)
        if (
            state is None
            or not state.last_alert
            or state.current_state in (None, EVENT)
            or state.current_state == state.notified_state
            or (state.current_state == OK and state.notified_state != ALARM)
        ):
            deps.store.delete_marker(marker["sk"])
            continue
        alert = Alert.from_json(state.last_alert)
        channels = routing.channels_for(alert.severity)
        delivery_key = f"settle:{short_hash(key)}:{state.current_since}"
        original = _original_for(state) if state.current_state == OK else None
        notice = Notice(alert, delivery_key, purpose="settle", original=original)
        refs = _refs_for(deps, [original.message_key] if original else [], channels)
        delivered = _run_jobs(_jobs_for_notice(deps, notice, channels, refs, "settle", now), deps, result)
        if not all(delivered.values()):
            continue
        version = state.version
        current = str(state.current_state)
        state.notified_state = current
        state.per_state.setdefault(current, {}).update(last_notice_at=now, last_notice_msg=delivery_key, suppressed=0)
        if current == ALARM:
            state.original_key, state.original_at, state.original_title = delivery_key, iso(now), alert.title
        state.version = version + 1
        state.journal = {}
        if deps.store.put_alarm_state(state, version, expires_at=int(now) + max(routing.history_days, 30) * 86_400):
            deps.store.delete_marker(marker["sk"])
        else:
            deps.log.info("alarm changed while settling; the next alert or sweep decides", extra={"alarm_key": key})
    return result


def sweep(deps: Deps) -> Result:
    """The scheduled pass: digests of closed windows, escalations, settled states after flapping."""
    now = deps.clock()
    result = Result()
    for step in (flush_digests, escalate, settle):
        result.merge(step(deps, now))
    return result

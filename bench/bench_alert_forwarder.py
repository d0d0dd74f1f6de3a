"""Benchmark of the alert path `pulumi up` deploys (plain script; everything on 127.0.0.1).

SNS severity topics → SQS inbox (redrive to the DLQ) → Lambda's SQS event source → the real forwarder
handler (`lambdas.alert_forwarder.handler.handler`), with the batch size, batching window, concurrency and
receive count of infra/aws/alerts.py. SNS, SQS, DynamoDB and Secrets Manager are moto in server mode (its own
process); Slack, Telegram and the webhook are local HTTP sinks; Lambda's poller is emulated as documented
(tests/lambdas/alert_forwarder/inbox.py).

1. Storm: 1 000 alarm notifications from 50 flapping alarms, published as fast as the stand-in SNS takes
   them while the forwarder drains the inbox. Targets: <= 50 outbound messages (digests included), all 1 000
   alerts in history, none failed or dead-lettered, and <= 2 s of forwarder time on its busiest concurrency
   slot (a slot's invocations run back to back: that is how long the storm occupies the forwarder). Wall
   times are printed, not targeted: they measure moto, whose ReceiveMessage deep-copies and scans the
   whole queue on every call (2 s a call with 1 000 messages queued, where SQS answers in milliseconds).
2. Single critical page: publish → Slack, median of 5, on an idle inbox; the batching window (1 s) is the
   price of batching, and is reported beside it.
3. Faults during a storm: Telegram never answers within its timeout, the webhook answers 429 with
   Retry-After, e-mail (SES) refuses connections; Slack is healthy. Targets: nothing lost (every alert in
   history; every alert delivered, or dead-lettered after the receive limit — shortened here, with the
   visibility timeout, so that takes seconds, not the deployed 5 x 12 minutes), Slack got each page once,
   and a page reached Slack no later than the healthy page's latency plus Telegram's timeout.

Prints FAIL and exits 1 when any target is missed, time included.
Run: .venv/bin/python bench/bench_alert_forwarder.py
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402 - after the sys.path entry above

from lambdas.alert_forwarder.state import StateStore, table_definition  # noqa: E402
from tests.lambdas.alert_forwarder.inbox import AlertInbox, EventSourceMapping, InboxSettings  # noqa: E402
from tests.lambdas.alert_forwarder.sinks import respond, unused_port  # noqa: E402

ALARMS, FLAPS = 50, 20
STORM = ALARMS * FLAPS
MAX_MESSAGES, MAX_SECONDS = 50, 2.0
TELEGRAM_TIMEOUT_S = 2.0
ROUTING = {
    "critical": ["slack", "telegram", "webhook", "email"],
    "warning": ["slack", "telegram", "webhook"],
    "info": [],
    "channel_timeout_seconds": {"telegram": TELEGRAM_TIMEOUT_S},
}
REGION = "us-east-1"


class Sinks:
    """One server answering as the Slack webhook, the Telegram Bot API and a webhook receiver, recording when
    each message arrived; `faults` switches Telegram to "never answers in time" and the webhook to 429."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.arrivals: list[tuple[str, float, bytes]] = []
        self.faults = False
        self.rate_limited = 0
        sinks = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = "telegram" if "/sendMessage" in self.path else self.path.strip("/").split("/")[0]
                if sinks.faults and kind == "telegram":
                    time.sleep(TELEGRAM_TIMEOUT_S + 1)  # the client has given up by now
                    return self._answer(200, b"{}")
                if sinks.faults and kind == "webhook" and sinks.rate_limited < 5:
                    with lock:
                        sinks.rate_limited += 1
                    return self._answer(429, b"slow down", {"Retry-After": "1"})
                with lock:
                    sinks.counts[kind] += 1
                    sinks.arrivals.append((kind, time.monotonic(), body))
                    number = len(sinks.arrivals)
                ok = {"ok": True, "result": {"message_id": number}} if kind == "telegram" else None
                self._answer(200, json.dumps(ok).encode() if ok else b"ok")

            def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                respond(self, status, body, headers)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def reset(self, *, faults: bool) -> None:
        self.counts.clear()
        self.arrivals.clear()
        self.faults, self.rate_limited = faults, 0

    def first_arrival(self, kind: str, needle: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived_kind, at, body in list(self.arrivals):
                if arrived_kind == kind and needle.encode() in body:
                    return at
            time.sleep(0.005)
        return None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def alarm(name: str, new: str, old: str, at: str) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "AlarmDescription": f"{name}. Runbook: https://runbooks.example.com/latency",
        "AWSAccountId": "123456789012",
        "NewStateValue": new,
        "OldStateValue": old,
        "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints [900.0 (14/03/25 09:25:00)] "
        "was greater than the threshold (500.0).",
        "StateChangeTime": at,
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}",
        "Trigger": {
            "MetricName": "TargetResponseTime",
            "Namespace": "AWS/ApplicationELB",
            "Statistic": "AVERAGE",
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 500.0,
        },
    }


def storm_messages(tag: str) -> list[dict[str, Any]]:
    messages = []
    for flap in range(FLAPS):
        for number in range(ALARMS):
            new, old = ("ALARM", "OK") if flap % 2 == 0 else ("OK", "ALARM")
            at = f"2025-03-14T10:{flap:02d}:{number:02d}.000+0000"
            messages.append(alarm(f"shipyard-bench-warning-{tag}{number:02d}-latency", new, old, at))
    return messages


class Stack:
    """One deployed alert path in moto: topics, inbox, DLQ, state table, channel secret, the handler's env."""

    def __init__(self, endpoints: Endpoints, sinks: Sinks, settings: InboxSettings, *, ses_endpoint: str | None = None):
        fake = "bench"  # moto accepts any credentials
        session = boto3.session.Session(aws_access_key_id=fake, aws_secret_access_key=fake, region_name=REGION)
        self.client: Callable[[str], Any] = lambda service: session.client(
            service, endpoint_url=endpoints.queues if service in ("sns", "sqs") else endpoints.state
        )
        prefix = f"bench-{uuid.uuid4().hex[:6]}"
        table = f"{prefix}-alerts-state"
        self.client("dynamodb").create_table(**table_definition(table))
        self.store = StateStore(self.client("dynamodb"), table)
        self.client("ses").verify_email_identity(EmailAddress="alerts@example.com")
        secret = {
            "slack_webhook_url": f"{sinks.base}/slack/T0/B0/X",
            "telegram_bot_token": "1:BENCH",
            "telegram_chat_id": "-1",
            "webhook_url": f"{sinks.base}/webhook",
            "webhook_signing_key": "bench",
            "email_addresses": ["oncall@example.com"],
            "email_from": "alerts@example.com",
        }
        arn = self.client("secretsmanager").create_secret(Name=f"{prefix}-channels", SecretString=json.dumps(secret))
        self.inbox = AlertInbox(self.client("sns"), self.client("sqs"), prefix, settings)
        os.environ.update(
            ROUTING=json.dumps(ROUTING),
            CHANNELS_SECRET_ARN=arn["ARN"],
            STATE_TABLE=table,
            STACK="bench",
            PROJECT="shipyard",
            TELEGRAM_API_BASE=sinks.base,
        )
        if ses_endpoint:
            os.environ["AWS_ENDPOINT_URL_SES"] = ses_endpoint
        else:
            os.environ.pop("AWS_ENDPOINT_URL_SES", None)
        from lambdas.alert_forwarder import handler

        handler.reset_runtime()
        self.handler = handler

    def publish_all(self, severity: str, messages: list[dict[str, Any]]) -> list[str]:
        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(lambda m: self.inbox.publish(severity, m), messages))

    def sweep_after_window(self) -> int:
        """The scheduled sweep once the storm window has closed: it sends the held digests."""
        runtime = self.handler._get_runtime()
        deps = runtime.deps(None)
        later = time.time() + runtime.routing.storm_window_seconds + 1
        from lambdas.alert_forwarder.forward import sweep

        return sweep(replace(deps, clock=lambda: later)).digests_sent


def wait_for_fresh_storm_window(window_s: int = 60, margin_s: float = 40.0) -> None:
    """Storm windows are aligned to the clock; a storm straddling a boundary would be two storms."""
    into = time.time() % window_s
    if into > window_s - margin_s:
        time.sleep(window_s - into + 0.1)


def run_storm(endpoint: Endpoints, sinks: Sinks) -> tuple[bool, list[str]]:
    stack = Stack(endpoint, sinks, InboxSettings.deployed())
    sinks.reset(faults=False)
    wait_for_fresh_storm_window()
    mapping = EventSourceMapping(stack.inbox, stack.handler.handler)
    with mapping:
        started = time.perf_counter()
        ids = stack.publish_all("warning", storm_messages("svc"))  # as fast as the stand-in SNS takes them
        published = time.perf_counter()
        drained = mapping.wait_until_drained(600)
        lag = time.perf_counter() - published
    seconds = mapping.busiest_slot_seconds()
    digests = stack.sweep_after_window()
    in_history = len(stack.store.get_alerts(ids))
    dead = stack.inbox.counts(stack.inbox.dlq_url)
    failed = sum(i.failed for i in mapping.invocations)
    outbound = sum(sinks.counts.values())
    sizes = [i.records for i in mapping.invocations]
    lines = [
        f"  1. storm through the inbox: {len(sizes)} invocations of {min(sizes)}-{max(sizes)} records "
        f"(batch <= {stack.inbox.settings.batch_size}, window {stack.inbox.settings.window_s} s, "
        f"concurrency {stack.inbox.settings.max_concurrency}); the storm arrived over {published - started:.1f} s",
        f"     forwarder time on the busiest slot {seconds:.2f} s (target <= {MAX_SECONDS} s: "
        f"{seconds / MAX_SECONDS:.2f}x of budget); done {lag:.1f} s after the last alert arrived",
        f"     outbound messages {outbound} (target <= {MAX_MESSAGES}) {dict(sinks.counts)}, "
        f"of which digests {digests}",
        f"     alerts in history {in_history} / {STORM}; failed records {failed}; dead-lettered {sum(dead)}",
    ]
    good = (
        drained
        and seconds <= MAX_SECONDS
        and outbound <= MAX_MESSAGES
        and in_history == STORM
        and failed == 0
        and dead == (0, 0)
    )
    return good, [*lines, f"     {'PASS' if good else 'FAIL'}"]


def page_latency(
    stack: Stack, sinks: Sinks, tag: str, runs: int = 5, published: list[str] | None = None
) -> list[float]:
    """publish → the Slack sink has it, for `runs` critical alarms, one at a time, on an idle inbox."""
    latencies = []
    with EventSourceMapping(stack.inbox, stack.handler.handler):
        for number in range(runs):
            name = f"shipyard-bench-critical-{tag}{number}-{uuid.uuid4().hex[:6]}"
            started = time.monotonic()
            message_id = stack.inbox.publish("critical", alarm(name, "ALARM", "OK", "2025-03-14T11:00:00.000+0000"))
            if published is not None:
                published.append(message_id)
            arrived = sinks.first_arrival("slack", name, timeout=30)
            latencies.append((arrived - started) if arrived is not None else float("inf"))
    return latencies


def run_single_page(endpoint: Endpoints, sinks: Sinks) -> tuple[bool, list[str], float]:
    stack = Stack(endpoint, sinks, InboxSettings.deployed())
    sinks.reset(faults=False)
    latencies = page_latency(stack, sinks, "page")
    median = statistics.median(latencies)
    window = stack.inbox.settings.window_s
    good = median < float("inf")
    return (
        good,
        [
            f"  2. single critical page, publish -> Slack: median {median:.2f} s of {len(latencies)} "
            f"(min {min(latencies):.2f}, max {max(latencies):.2f}); the batching window accounts for up to "
            f"{window} s of it",
            f"     {'PASS' if good else 'FAIL'}",
        ],
        median,
    )


def run_faults(endpoint: Endpoints, sinks: Sinks, healthy_latency: float) -> tuple[bool, list[str]]:
    # Shortened retry clock so the dead-letter path finishes in seconds (deployed: 6 x 120 s, 5 receives).
    settings = InboxSettings.deployed(function_timeout_s=15.0, visibility_timeout_s=16, max_receives=2)
    stack = Stack(endpoint, sinks, settings, ses_endpoint=f"http://127.0.0.1:{unused_port()}")
    sinks.reset(faults=True)
    page_ids: list[str] = []
    faulty_latency = statistics.median(page_latency(stack, sinks, "faulty", runs=3, published=page_ids))
    slack_before = len(sinks.arrivals)
    ids = stack.publish_all("critical", storm_messages("crit")[:200])
    mapping = EventSourceMapping(stack.inbox, stack.handler.handler)
    with mapping:
        drained = mapping.wait_until_drained(180)
    in_history = stack.store.get_alerts(ids)
    # Alerts with something to send now (the rest wait for the storm digest): Telegram and SES fail for every
    # one of them, so each must be in the DLQ, and have reached Slack exactly once across its redeliveries.
    sending = {i for i, item in in_history.items() if "send" in (item.get("plan") or {}).values()}
    slack_expected = sum(1 for i in sending if in_history[i]["plan"].get("slack") == "send")
    dead = set(stack.inbox.dead_lettered())
    # Digests of storm windows that closed meanwhile go out with later alerts; they are not per-alert messages.
    slack_sent = sum(
        1 for kind, _, body in sinks.arrivals[slack_before:] if kind == "slack" and b"Alert storm" not in body
    )
    lost = [i for i in ids if i not in in_history] + sorted(sending - dead) + sorted(set(page_ids) - dead)
    delay = faulty_latency - healthy_latency
    good = drained and not lost and not (dead - sending - set(page_ids)) and slack_sent == slack_expected
    good = good and delay <= TELEGRAM_TIMEOUT_S
    return good, [
        "  3. faults: Telegram never answers in time, the webhook answers 429 + Retry-After, SES refuses; Slack ok",
        f"     page -> Slack with Telegram hanging: median {faulty_latency:.2f} s "
        f"(healthy {healthy_latency:.2f} s; delayed {delay:+.2f} s, target <= Telegram's {TELEGRAM_TIMEOUT_S} s)",
        f"     200 critical alerts: {len(in_history)} in history; {len(sending)} had a message to send, "
        f"{len(sending & dead)} of them dead-lettered after {settings.max_receives} receives (Telegram/SES "
        f"failed); Slack got {slack_sent} of {slack_expected} exactly once; 429s answered {sinks.rate_limited}",
        f"     lost {len(lost)}; drained {drained}",
        f"     {'PASS' if good else 'FAIL'}",
    ]


@dataclass(frozen=True)
class Endpoints:
    """Two moto servers, as the services are separate in AWS: moto's ReceiveMessage deep-copies and scans the
    queue on every call, and sharing one process (one GIL) with DynamoDB would bill that to the forwarder."""

    queues: str  # SNS and SQS (SNS delivers into SQS inside one moto backend)
    state: str  # DynamoDB, Secrets Manager, SES: what the forwarder calls


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's server in its own process, as the AWS services would be: it does not share our GIL."""
    import urllib.request

    port = unused_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for _ in range(200):  # up to ~20 s for the server to answer
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()  # noqa: S310 - http on loopback
            return process, endpoint
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("moto server did not start")


def main() -> int:
    fake = "bench"  # moto accepts any credentials
    os.environ.update(
        AWS_ACCESS_KEY_ID=fake,
        AWS_SECRET_ACCESS_KEY=fake,
        AWS_DEFAULT_REGION=REGION,
        POWERTOOLS_METRICS_DISABLED="true",
        POWERTOOLS_LOG_LEVEL="CRITICAL",
    )
    queue_server, queues = start_moto()
    state_server, state = start_moto()
    endpoint = Endpoints(queues=queues, state=state)
    os.environ.update(AWS_ENDPOINT_URL=state, AWS_ENDPOINT_URL_SQS=queues, AWS_ENDPOINT_URL_SNS=queues)
    sinks = Sinks()
    results: list[bool] = []
    try:
        print(f"Alert path as deployed: topics -> SQS inbox -> forwarder; {STORM} records, {ALARMS} flapping alarms")
        good, lines = run_storm(endpoint, sinks)
        results.append(good)
        print("\n".join(lines))
        good, lines, healthy = run_single_page(endpoint, sinks)
        results.append(good)
        print("\n".join(lines))
        good, lines = run_faults(endpoint, sinks, healthy)
        results.append(good)
        print("\n".join(lines))
    finally:
        sinks.stop()
        for server in (queue_server, state_server):
            server.terminate()
            server.wait(timeout=10)
    print(f"  (load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("  (cold import of the handler: bench/bench_cold_start.py)")
    print("PASS" if all(results) else "FAIL")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())

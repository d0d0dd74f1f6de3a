"""Benchmark for the alert forwarder (plain script; everything on 127.0.0.1, nothing leaves the machine).

Alarm storm: 1 000 SNS records from 50 flapping alarms (ALARM/OK alternating), routed to Slack,
   Telegram and a webhook (local HTTP sinks), state in DynamoDB (moto server). Targets: <= 50 outbound
   messages, all 1 000 alerts in history, <= 2 s processing. Measured twice: as one SQS batch (the
   handler also accepts an SQS event source; SQS batching is what absorbs a storm), and as 1 000
   single-record invocations running 8 at a time, which is how SNS invokes Lambda directly — that mode
   exercises the optimistic locking between concurrent invocations; its time is reported, not targeted,
   because moto answers one request at a time where DynamoDB would serve them in parallel.
(The handler's cold import is measured with the others in bench/bench_cold_start.py.)

Run: .venv/bin/python bench/bench_alert_forwarder.py   (exit status 1 if a target is missed)
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402 - after the sys.path entry above

from lambdas.alert_forwarder.config import ChannelSecrets, load_routing  # noqa: E402
from lambdas.alert_forwarder.deliver import RetryPolicy, urllib_post  # noqa: E402
from lambdas.alert_forwarder.forward import Deps, build_targets, process_records, sweep  # noqa: E402
from lambdas.alert_forwarder.parse import records_from_event  # noqa: E402
from lambdas.alert_forwarder.render import RenderContext  # noqa: E402
from lambdas.alert_forwarder.state import StateStore, table_definition  # noqa: E402

ALARMS, FLAPS = 50, 20
MAX_MESSAGES, MAX_SECONDS = 50, 2.0
ROUTING = {
    "critical": ["slack", "telegram", "webhook"],
    "warning": ["slack", "telegram", "webhook"],
    "info": [],
}
logging.getLogger("werkzeug").setLevel(logging.WARNING)


class CountingSinks:
    """One server answering as the Slack webhook, the Telegram Bot API and a webhook receiver."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        lock = threading.Lock()
        counts = self.counts
        sequence = [0]

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    sequence[0] += 1
                    kind = "telegram" if "/sendMessage" in self.path else self.path.strip("/").split("/")[0]
                    counts[kind] += 1
                    number = sequence[0]
                body = (
                    json.dumps({"ok": True, "result": {"message_id": number}}).encode() if kind == "telegram" else b"ok"
                )
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def storm_events(batch: int, *, via_sqs: bool) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for flap in range(FLAPS):
        for alarm in range(ALARMS):
            name = f"shipyard-bench-warning-svc{alarm:02d}-latency"
            new, old = ("ALARM", "OK") if flap % 2 == 0 else ("OK", "ALARM")
            message = {
                "AlarmName": name,
                "AlarmDescription": f"Latency of svc{alarm}. Runbook: https://runbooks.example.com/latency",
                "AWSAccountId": "123456789012",
                "NewStateValue": new,
                "OldStateValue": old,
                "NewStateReason": "Threshold Crossed: 1 out of the last 1 datapoints "
                f"[{900 + flap}.0 (14/03/25 09:25:00)] "
                "was greater than the threshold (500.0).",
                "StateChangeTime": f"2025-03-14T10:{flap:02d}:{alarm:02d}.000+0000",
                "AlarmArn": f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}",
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
            envelope = {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:shipyard-bench-alerts-warning",
                "Message": json.dumps(message),
                "Timestamp": "2025-03-14T10:00:00.000Z",
            }
            if via_sqs:
                records.append({"messageId": str(uuid.uuid4()), "eventSource": "aws:sqs", "body": json.dumps(envelope)})
            else:
                records.append({"EventSource": "aws:sns", "Sns": envelope})
    return [{"Records": records[i : i + batch]} for i in range(0, len(records), batch)]


class FrozenClock:
    """The forwarder's clock stands still during the storm: 1 000 alerts inside one storm window is the
    scenario, and the emulator's speed on a busy machine must not stretch it over several windows."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def run_storm(endpoint: str, sinks: CountingSinks, *, batch: int, workers: int, via_sqs: bool) -> dict[str, Any]:
    fake = "bench"  # moto accepts any credentials
    session = boto3.session.Session(aws_access_key_id=fake, aws_secret_access_key=fake, region_name="us-east-1")
    dynamodb = session.client("dynamodb", endpoint_url=endpoint)
    table = f"bench-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(**table_definition(table))
    store = StateStore(dynamodb, table)
    secrets = ChannelSecrets(
        slack_webhook_url=f"{sinks.base}/slack/T0/B0/X",
        telegram_bot_token="1:BENCH",  # noqa: S106 - a local stand-in server, not Telegram
        telegram_chat_id="-1",
        webhook_url=f"{sinks.base}/webhook",
        webhook_signing_key="bench",
    )
    clock = FrozenClock()
    deps = Deps(
        store=store,
        routing=load_routing(json.dumps(ROUTING)),
        targets=build_targets(secrets, http=urllib_post, telegram_api_base=sinks.base),
        ctx=RenderContext("shipyard", "bench"),
        clock=clock,
        retry=RetryPolicy(max_attempts=3, base_delay=0.05),
    )
    events = storm_events(batch, via_sqs=via_sqs)
    sinks.counts.clear()
    started = time.perf_counter()
    if workers == 1:
        results = [process_records(records_from_event(e), deps) for e in events]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(lambda e: process_records(records_from_event(e), deps), events))
    processing = time.perf_counter() - started
    clock.now += 61  # the storm window closes; the next sweep sends the digests
    started = time.perf_counter()
    swept = sweep(deps)
    sweep_seconds = time.perf_counter() - started
    message_ids = [r.message_id for e in events for r in records_from_event(e)]
    in_history = len(store.get_alerts(message_ids))
    decisions = Counter(d for r in results for d in r.decisions.values())
    failures = sum(len(r.failures) for r in results) + len(swept.failures)
    return {
        "processing_s": processing,
        "sweep_s": sweep_seconds,
        "outbound": sum(sinks.counts.values()),
        "per_channel": dict(sinks.counts),
        "digests": swept.digests_sent,
        "history": in_history,
        "decisions": dict(decisions),
        "failures": failures,
    }


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """moto's server in its own process, as DynamoDB would be: it does not share our interpreter's GIL."""
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
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
    server, endpoint = start_moto()
    sinks = CountingSinks()
    ok = True
    try:
        print(f"Alarm storm: {ALARMS * FLAPS} records from {ALARMS} flapping alarms -> slack, telegram, webhook")
        modes = (
            ("SNS -> SQS -> Lambda, one batch of 1 000 records", 1000, 1, True),
            ("SNS -> Lambda, 1 record per invocation, 8 concurrent", 1, 8, False),
        )
        for label, batch, workers, via_sqs in modes:
            result = run_storm(endpoint, sinks, batch=batch, workers=workers, via_sqs=via_sqs)
            print(f"  {label}:")
            print(
                f"    processing {result['processing_s']:.2f} s (target <= {MAX_SECONDS} s: "
                f"{result['processing_s'] / MAX_SECONDS:.2f}x of budget), "
                f"digest sweep {result['sweep_s']:.2f} s"
            )
            print(
                f"    outbound messages {result['outbound']} (target <= {MAX_MESSAGES}) "
                f"{result['per_channel']}, "
                f"of which digests {result['digests']}"
            )
            print(f"    alerts in history {result['history']} / {ALARMS * FLAPS}; decisions {result['decisions']}")
            print(f"    delivery failures {result['failures']}")
            good = (
                result["outbound"] <= MAX_MESSAGES and result["history"] == ALARMS * FLAPS and result["failures"] == 0
            )
            if batch > 1:
                good = good and result["processing_s"] <= MAX_SECONDS
            print(f"    {'PASS' if good else 'FAIL'}")
            ok = ok and good
    finally:
        sinks.stop()
        server.terminate()
        server.wait(timeout=10)

    print(f"  (load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print("  (cold import of the handler: bench/bench_cold_start.py)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

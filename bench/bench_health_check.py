"""Benchmark of lambdas/health_check: the checks of a run happen concurrently.

    .venv/bin/python bench/bench_health_check.py [--rounds 5]

Twenty HTTP endpoints on 127.0.0.1, each answering after 200 ms. One run checks all twenty; the goal is a
run that takes at most 1.5× its slowest single check (one after another it would be about 20×). The
handler's cold import is measured with the others in bench/bench_cold_start.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lambdas.health_check.checks import CheckDeps, run_check  # noqa: E402
from lambdas.health_check.config import parse_targets  # noqa: E402
from lambdas.health_check.runner import run_checks  # noqa: E402

ENDPOINTS = 20
ANSWER_DELAY_S = 0.2
RUN_GOAL = 1.5


class _SlowHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(ANSWER_DELAY_S)
        body = b'{"status": "ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _start_servers() -> list[ThreadingHTTPServer]:
    servers = []
    for _ in range(ENDPOINTS):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
    return servers


def bench_run(rounds: int) -> float:
    servers = _start_servers()
    try:
        targets = parse_targets(
            [
                {
                    "name": f"endpoint-{i}",
                    "kind": "http",
                    "url": f"http://127.0.0.1:{server.server_address[1]}/api/health",
                    "json_field": {"path": "status", "equals": "ok"},
                    "timeout_s": 5,
                }
                for i, server in enumerate(servers)
            ]
        )
        deps = CheckDeps()

        def check(target: Any, ctx: Any) -> Any:
            return run_check(target, ctx, deps)

        solo_ms, run_ms, slowest_ms, summed_ms = [], [], [], []
        for _ in range(rounds):
            solo = run_checks(targets[:1], check, deadline_s=10)
            assert solo.ok, solo.results
            solo_ms.append(solo.duration_ms)

            report = run_checks(targets, check, deadline_s=10)
            assert report.ok, [r.detail for r in report.results if not r.up]
            latencies = [r.latency_ms for r in report.results if r.latency_ms is not None]
            run_ms.append(report.duration_ms)
            slowest_ms.append(max(latencies))
            summed_ms.append(sum(latencies))
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()

    run_median = statistics.median(run_ms)
    ratio = statistics.median(r / s for r, s in zip(run_ms, slowest_ms, strict=True))
    print(f"endpoints: {ENDPOINTS}, each answering in {ANSWER_DELAY_S * 1000:.0f} ms; {rounds} rounds, medians")
    print(f"  one check alone:                    {statistics.median(solo_ms):8.1f} ms")
    print(f"  slowest check inside the run:       {statistics.median(slowest_ms):8.1f} ms")
    print(f"  whole run of {ENDPOINTS} checks:             {run_median:8.1f} ms")
    print(f"  one after another would take about: {statistics.median(summed_ms):8.1f} ms")
    print(f"  run / slowest check:                {ratio:8.2f}x   (goal <= {RUN_GOAL}x)")
    print(f"  run / one check alone:              {run_median / statistics.median(solo_ms):8.2f}x")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    run_ratio = bench_run(args.rounds)
    ok = run_ratio <= RUN_GOAL
    print(f"RATIOS run/slowest={run_ratio:.2f}x -> {'PASS' if ok else 'FAIL'} (cold import: bench/bench_cold_start.py)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

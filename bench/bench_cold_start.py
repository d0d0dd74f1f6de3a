"""Cold start of every Lambda handler, side by side: importing the handler vs a bare `import boto3`.

    .venv/bin/python bench/bench_cold_start.py [--runs 15]

What a new Lambda container pays before the first event is the import of the handler module; the runtime's
own boto3 is the yardstick (goal: each handler <= 1.3x `import boto3`). Every statement runs in a fresh
interpreter (`python -c`), all of them once per round, round after round, so machine noise hits every
line alike; figures are whole-process medians. The "first event" line adds what a handler imports lazily
when its first event arrives (boto3, the database driver, Powertools Metrics): shown for information.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL = 1.3

HANDLERS: dict[str, str] = {
    "auto_confirm": "boto3, pg8000.native, aws_lambda_powertools.metrics, lambdas.auto_confirm.core",
    "alert_forwarder": "boto3, lambdas.alert_forwarder.forward, lambdas.alert_forwarder.parse",
    "health_check": "boto3, pg8000.native, lambdas.health_check.runner",
    "restore_validation": "boto3, pg8000.native, aws_lambda_powertools.metrics",
    "restore_test_age": "boto3, aws_lambda_powertools.metrics",
}
"""Handler package → what its first event imports on top of the handler module."""


def _seconds(statement: str) -> float:
    # No PYTHON* variables (PYTHONPATH, PYTHONDONTWRITEBYTECODE...) from the caller: Lambda has none of them.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - started


def measure(statements: dict[str, str], runs: int) -> dict[str, float]:
    for statement in statements.values():  # warm the file-system and bytecode caches once
        _seconds(statement)
    samples: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(runs):
        for name, statement in statements.items():
            samples[name].append(_seconds(statement))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    statements = {"interpreter only": "pass", "import boto3": "import boto3"}
    for package, first_event in HANDLERS.items():
        statements[package] = f"import lambdas.{package}.handler"
        statements[f"{package} + first event"] = f"import lambdas.{package}.handler, {first_event}"
    medians = measure(statements, args.runs)
    boto3_s = medians["import boto3"]
    print(f"cold import, fresh interpreters, {args.runs} interleaved rounds, whole-process medians")
    print(f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"  {'interpreter only':36s} {medians['interpreter only'] * 1000:7.1f} ms")
    print(f"  {'import boto3':36s} {boto3_s * 1000:7.1f} ms  1.00x")
    worst = 0.0
    for package in HANDLERS:
        ratio = medians[package] / boto3_s
        worst = max(worst, ratio)
        later = medians[f"{package} + first event"]
        print(
            f"  {'lambdas.' + package + '.handler':36s} {medians[package] * 1000:7.1f} ms  {ratio:4.2f}x"
            f"   (+ first event: {later * 1000:6.1f} ms, {later / boto3_s:4.2f}x, info)"
        )
    ok = worst <= GOAL
    print(f"RATIOS worst handler import / boto3 import = {worst:.2f}x (goal <= {GOAL}x) -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""How long the program takes under the offline cloud, per stack, and `make plan` from a cold interpreter.

    .venv/bin/python bench/bench_plan.py [--runs N]

Goals (issue 2, on a 2-core machine): program under mocks <= 5 s per stack; the plan from a cold
interpreter <= 10 s. Prints each median and its ratio to the goal (< 1.0 is within the goal).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.harness import run_stack  # noqa: E402

PROGRAM_GOAL_S = 5.0
COLD_PLAN_GOAL_S = 10.0


def _median(fn: object, runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()  # type: ignore[operator]
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    stacks = sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml"))
    run_stack(stacks[0], placeholders_for_missing_secrets=True)  # warm imports: measure the program, not pulumi_aws
    print(f"{'what':40s} {'median s':>9s} {'goal s':>7s} {'ratio':>6s}")
    worst = 0.0
    for stack in stacks:
        seconds = _median(lambda s=stack: run_stack(s, placeholders_for_missing_secrets=True), args.runs)
        worst = max(worst, seconds / PROGRAM_GOAL_S)
        ratio = seconds / PROGRAM_GOAL_S
        print(f"{'program under mocks: ' + stack:40s} {seconds:9.2f} {PROGRAM_GOAL_S:7.1f} {ratio:6.2f}")
    for stack in stacks:
        command = [sys.executable, "-m", "infra.plan", "--stack", stack]

        def cold(command: list[str] = command) -> None:
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=120)

        seconds = _median(cold, max(3, args.runs // 2))
        worst = max(worst, seconds / COLD_PLAN_GOAL_S)
        print(
            f"{'plan, cold interpreter: ' + stack:40s} {seconds:9.2f} {COLD_PLAN_GOAL_S:7.1f} "
            f"{seconds / COLD_PLAN_GOAL_S:6.2f}"
        )
    print(f"worst ratio to goal: {worst:.2f} ({'within' if worst <= 1 else 'OVER'} goal)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How long the offline plan takes: the program under the offline cloud, and `make plan` from a cold interpreter,
for every stack file at the root and every example (examples/<system>/Pulumi.<stack>.yaml).

    .venv/bin/python bench/bench_plan.py [--runs N] [--cold-only]

Goals on a 2-core machine: the program under mocks <= 5 s per stack (issue 2); the plan from a cold
interpreter <= 10 s for every stack file and example (issues 2 and 18). Prints each median and its ratio to the
goal (< 1.0 is within it), the worst ratio per goal, and the load average (the machine may be shared: a
loaded machine inflates every figure). Exits 1 and says FAIL when a goal is missed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from infra.harness import run_stack  # noqa: E402

PROGRAM_GOAL_S = 5.0
COLD_PLAN_GOAL_S = 10.0


def _median(fn: Callable[[], object], runs: int) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def stack_files() -> list[tuple[str, str, Path]]:
    """(label, stack name, file) for each root stack file and each example."""
    found = []
    for path in sorted([*ROOT.glob("Pulumi.*.yaml"), *ROOT.glob("examples/*/Pulumi.*.yaml")]):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        label = stack if path.parent == ROOT else f"{path.parent.name} ({stack})"
        found.append((label, stack, path))
    return found


def _row(what: str, seconds: float, goal: float) -> float:
    ratio = seconds / goal
    print(f"{what:52s} {seconds:9.2f} {goal:7.1f} {ratio:6.2f}", flush=True)
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5, help="runs per measurement (cold plans: half, at least 3)")
    parser.add_argument("--cold-only", action="store_true", help="measure only the plan from a cold interpreter")
    args = parser.parse_args()
    targets = stack_files()
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPU(s)")
    print(f"{'what':52s} {'median s':>9s} {'goal s':>7s} {'ratio':>6s}")
    worst: dict[str, float] = {}
    run_stack(targets[0][1], config_file=targets[0][2], placeholders_for_missing_secrets=True)  # warm imports
    if not args.cold_only:
        for label, stack, path in targets:

            def program(stack: str = stack, path: Path = path) -> None:
                run_stack(stack, config_file=path, placeholders_for_missing_secrets=True)

            ratio = _row(f"program under mocks: {label}", _median(program, args.runs), PROGRAM_GOAL_S)
            worst["program under mocks"] = max(worst.get("program under mocks", 0.0), ratio)
    cold_runs = max(3, args.runs // 2)
    for label, stack, path in targets:
        command = [sys.executable, "-m", "infra.plan", "--stack", stack, "--config-file", str(path)]

        def cold(command: list[str] = command) -> None:
            subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=120)

        ratio = _row(f"plan, cold interpreter: {label}", _median(cold, cold_runs), COLD_PLAN_GOAL_S)
        worst["plan, cold interpreter"] = max(worst.get("plan, cold interpreter", 0.0), ratio)
    # The floor no change to our code can go below: a cold interpreter importing only the provider SDK modules
    # the programs use (pulumi_aws builds thousands of typed input classes at import).
    sdk = sorted(n for n in sys.modules if n.split(".")[0] in ("pulumi", "pulumi_aws", "pulumi_digitalocean"))
    floor_command = [sys.executable, "-c", "import " + ", ".join(sdk)]

    def floor() -> None:
        subprocess.run(floor_command, cwd=ROOT, check=True, capture_output=True, timeout=120)

    _row("floor: importing the provider SDKs, cold", _median(floor, cold_runs), COLD_PLAN_GOAL_S)
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} after the runs")
    failed = False
    for what, ratio in worst.items():
        verdict = "within goal" if ratio <= 1 else "FAIL: over goal"
        failed = failed or ratio > 1
        print(f"worst ratio to goal, {what}: {ratio:.2f} ({verdict})")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

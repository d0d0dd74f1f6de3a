"""Benchmark of lambdas/restore_validation: cold import of the handler against a bare `import boto3`.

    .venv/bin/python bench/bench_restore_validation.py [--imports 15]

Fresh interpreters, measured alternately in the same loop so machine noise hits both; whole-process medians.
Goal: importing the handler costs at most 1.3x `import boto3` (what the Lambda runtime's own start pays).
What a COMPLETED job loads later, on first use (boto3, pg8000, Powertools Metrics), is shown for information.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMPORT_GOAL = 1.3


def _process_ms(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return (time.perf_counter() - started) * 1000


def bench_import(count: int) -> float:
    handler = "import lambdas.restore_validation.handler"
    baseline = "import boto3"
    first_run = "import lambdas.restore_validation.handler, boto3, pg8000.native, aws_lambda_powertools.metrics"
    _process_ms(handler)  # warm the file-system and bytecode caches
    _process_ms(baseline)
    samples: dict[str, list[float]] = {"pass": [], baseline: [], handler: [], first_run: []}
    for _ in range(count):
        for code in samples:
            samples[code].append(_process_ms(code))
    bare = statistics.median(samples["pass"])
    boto3_ms = statistics.median(samples[baseline])
    handler_ms = statistics.median(samples[handler])
    first_run_ms = statistics.median(samples[first_run])
    ratio = handler_ms / boto3_ms
    print(f"cold import in fresh interpreters, {count} each, alternating, whole-process medians")
    print(f"  python -c pass:                             {bare:8.1f} ms")
    print(f"  import boto3:                               {boto3_ms:8.1f} ms")
    print(f"  import lambdas.restore_validation.handler:  {handler_ms:8.1f} ms")
    print(f"  handler / boto3:                            {ratio:8.2f}x   (goal <= {IMPORT_GOAL}x)")
    print(
        f"  + boto3, pg8000, Metrics (COMPLETED job):   {first_run_ms:8.1f} ms = {first_run_ms / boto3_ms:.2f}x boto3"
        " (info)"
    )
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--imports", type=int, default=15)
    args = parser.parse_args()
    ratio = bench_import(args.imports)
    ok = ratio <= IMPORT_GOAL
    print(f"RATIOS import/boto3={ratio:.2f}x -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

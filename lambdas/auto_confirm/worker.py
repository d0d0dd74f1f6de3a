"""Auto-confirm as a long-running worker: the DigitalOcean target's stand-in for the hourly Lambda schedule.

    python -m lambdas.auto_confirm.worker

App Platform has no scheduled jobs (terraform-provider-digitalocean #1529), so a worker component runs this
loop: one run of the auto-confirm core now, then one per interval, for as long as the container lives. The core
is the same code the AWS Lambda runs (one code base, two targets); only this shell differs.

- Interval: ``AUTO_CONFIRM_INTERVAL_SECONDS`` (default 3600). Runs start on a fixed cadence: a run that takes
  40 s does not push every later run back by 40 s, and one that overruns the interval is followed at once.
- A failed run (database down, a batch rolled back) is logged as ``auto_confirm_run_failed`` and the loop goes
  on: the next run picks up whatever is still due, and App Platform's RESTART_COUNT alert stays meaningful for
  real crashes. Overlapping runs are safe anyway (``FOR UPDATE SKIP LOCKED`` in the core).
- SIGTERM (App Platform's redeploy/scale-down) or SIGINT: a wait is abandoned at once; a run in progress
  stops starting new batches (each batch is its own transaction, so nothing is half-done) and the process
  exits 0 well within the component's termination grace period.

Environment: ``DATABASE_URL`` (secret, TLS: ``?sslmode=require``), ``AUTO_CONFIRM_INTERVAL_SECONDS``,
``AUTO_CONFIRM_BATCH_SIZE`` (default: the core's), ``STACK`` (log context).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from lambdas.auto_confirm import core
from lambdas.shared import db, logs

INTERVAL_ENV = "AUTO_CONFIRM_INTERVAL_SECONDS"
BATCH_SIZE_ENV = "AUTO_CONFIRM_BATCH_SIZE"
DEFAULT_INTERVAL_S = 3600
MAX_INTERVAL_S = 7 * 24 * 3600
RUN_FAILED = "auto_confirm_run_failed"

log = logging.getLogger("lambdas.auto_confirm.worker")

Clock = Callable[[], float]
Wait = Callable[[float], bool]
"""Wait up to N seconds; True when a stop was requested (``threading.Event.wait`` has this contract)."""


class WorkerConfigError(ValueError):
    """A worker environment variable is malformed; the message names it."""


def _positive_int(env: Mapping[str, str], name: str, default: int | None, maximum: int) -> int | None:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise WorkerConfigError(f"{name} must be a whole number of seconds/rows, got {raw!r}") from None
    if not 1 <= value <= maximum:
        raise WorkerConfigError(f"{name} must be between 1 and {maximum}, got {value}")
    return value


def interval_from_env(env: Mapping[str, str]) -> int:
    interval = _positive_int(env, INTERVAL_ENV, DEFAULT_INTERVAL_S, MAX_INTERVAL_S)
    assert interval is not None
    return interval


def run_forever(
    run_once: Callable[[], object],
    interval_s: float,
    stop: threading.Event,
    *,
    clock: Clock = time.monotonic,
    wait: Wait | None = None,
    max_runs: int | None = None,
) -> int:
    """Call ``run_once`` now and every ``interval_s`` until ``stop`` is set (or ``max_runs``); return the runs.

    ``clock`` and ``wait`` are injectable so tests drive hours of schedule in microseconds; by default the
    wait is ``stop.wait``, which a signal handler setting ``stop`` ends immediately.
    """
    if interval_s <= 0:
        raise ValueError(f"interval must be positive, got {interval_s}")
    wait = wait or stop.wait
    runs = 0
    next_run = clock()
    while not stop.is_set() and (max_runs is None or runs < max_runs):
        delay = next_run - clock()
        if delay > 0:
            if wait(delay):
                break
            continue  # woke up: re-read the clock rather than trusting the wait's length
        started = clock()
        next_run = started + interval_s
        runs += 1
        try:
            result = run_once()
        except Exception as error:
            _log(
                logging.ERROR,
                f"auto-confirm run {runs} failed; next run in {interval_s:.0f} s: {error}",
                event=RUN_FAILED,
                error_type=type(error).__name__,
                run=runs,
            )
            continue
        summary = result.summary() if hasattr(result, "summary") else None
        _log(
            logging.INFO,
            f"auto-confirm run {runs} done in {clock() - started:.1f} s",
            event="auto_confirm_run",
            run=runs,
            summary=summary,
        )
    return runs


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (call from the main thread, before the loop)."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()
        _log(logging.INFO, f"{signal.Signals(signum).name} received: stopping", event="auto_confirm_worker_stopping")

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def core_run_once(env: Mapping[str, str], stop: threading.Event) -> Callable[[], core.RunResult]:
    """One run of the auto-confirm core against ``DATABASE_URL``: connect, run, close.

    A connection per run, not one held for the hour: idle connections die in failovers and maintenance
    windows, and one connection an hour costs nothing. A stop request makes the core stop starting batches.
    """
    batch_size = _positive_int(env, BATCH_SIZE_ENV, core.DEFAULT_BATCH_SIZE, core.MAX_BATCH_SIZE)
    assert batch_size is not None
    database_url = env.get("DATABASE_URL", "")
    if not database_url:
        raise WorkerConfigError("DATABASE_URL must be set (the app spec gives the worker the database's URL)")
    try:
        db.parse_database_url(database_url)
    except db.DatabaseConfigError as error:
        raise WorkerConfigError(f"DATABASE_URL: {error}") from None

    def time_left_s() -> float:
        return 0.0 if stop.is_set() else math.inf

    def run_once() -> core.RunResult:
        endpoint, credentials, tls = db.parse_database_url(database_url)
        connection = db.connect(endpoint, credentials, tls=tls, application_name="shipyard-auto-confirm-worker")
        try:
            return core.run(connection, utc_now, batch_size=batch_size, time_left_s=time_left_s)
        finally:
            connection.close()

    return run_once


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _log(level: int, message: str, **fields: Any) -> None:
    logs.log_fields(log, message, level=level, **fields)


def configure_logging(stack: str) -> None:
    """JSON lines on stdout (App Platform's log stream) for the worker and for the core's own events."""
    logs.get_logger("lambdas.auto_confirm")  # parent of this module's logger: one handler for both
    log.handlers.clear()
    log.propagate = True
    _log(logging.INFO, "auto-confirm worker starting", stack=stack)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    configure_logging(env.get("STACK", ""))
    stop = threading.Event()
    install_stop_handlers(stop)
    try:
        interval = interval_from_env(env)
        run_once = core_run_once(env, stop)
    except WorkerConfigError as error:
        _log(logging.ERROR, str(error), event="auto_confirm_worker_config_error")
        return 2
    runs = run_forever(run_once, interval, stop)
    _log(logging.INFO, f"auto-confirm worker stopped after {runs} runs", event="auto_confirm_worker_stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

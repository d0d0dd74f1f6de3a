"""The DigitalOcean auto-confirm worker: cadence, surviving failed runs, stopping on SIGTERM, and the real core."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from lambdas.auto_confirm import worker

from .auto_confirm_support import Marketplace

ROOT = Path(__file__).resolve().parents[3]


class FakeTime:
    """A clock and a wait that advance virtual time only, so an hourly loop runs in microseconds."""

    def __init__(self, stop: threading.Event) -> None:
        self.now = 1000.0
        self.stop = stop
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        return self.stop.is_set()


def test_runs_once_per_interval_on_a_fixed_cadence() -> None:
    stop = threading.Event()
    fake = FakeTime(stop)
    started: list[float] = []

    def run_once() -> None:
        started.append(fake.now)
        fake.now += 40  # a run takes 40 s: the next still starts one interval after this one started

    runs = worker.run_forever(run_once, 3600, stop, clock=fake.clock, wait=fake.wait, max_runs=4)
    assert runs == 4
    assert [t - started[0] for t in started] == [0, 3600, 7200, 10800]
    assert fake.waits == [3560, 3560, 3560]


def test_a_run_longer_than_the_interval_is_followed_at_once() -> None:
    stop = threading.Event()
    fake = FakeTime(stop)
    started: list[float] = []

    def run_once() -> None:
        started.append(fake.now)
        fake.now += 90 if len(started) == 1 else 1

    worker.run_forever(run_once, 60, stop, clock=fake.clock, wait=fake.wait, max_runs=3)
    assert [t - started[0] for t in started] == [0, 90, 150]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def worker_records() -> Iterator[_Records]:
    """The worker's log records, whether or not another test made `lambdas.auto_confirm` stop propagating."""
    logger = logging.getLogger("lambdas.auto_confirm.worker")
    handler = _Records()
    previous_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def test_a_failed_run_is_logged_and_the_loop_goes_on(worker_records: _Records) -> None:
    stop = threading.Event()
    fake = FakeTime(stop)
    calls: list[float] = []

    class Result:
        def summary(self) -> dict[str, int]:
            return {"confirmed": 7}

    def run_once() -> Result:
        calls.append(fake.now)
        if len(calls) == 1:
            raise ConnectionRefusedError("cannot reach PostgreSQL at db:25060")
        return Result()

    runs = worker.run_forever(run_once, 3600, stop, clock=fake.clock, wait=fake.wait, max_runs=2)
    assert runs == 2
    assert [t - calls[0] for t in calls] == [0, 3600]
    records = worker_records.records
    failed = [r for r in records if getattr(r, "shipyard_fields", {}).get("event") == worker.RUN_FAILED]
    assert len(failed) == 1
    assert failed[0].levelno == logging.ERROR
    assert "cannot reach PostgreSQL" in failed[0].getMessage()
    assert failed[0].shipyard_fields["error_type"] == "ConnectionRefusedError"  # type: ignore[attr-defined]
    done = [r for r in records if getattr(r, "shipyard_fields", {}).get("event") == "auto_confirm_run"]
    assert [r.shipyard_fields["summary"] for r in done] == [{"confirmed": 7}]  # type: ignore[attr-defined]


def test_stop_during_the_wait_ends_the_loop_without_another_run() -> None:
    stop = threading.Event()
    fake = FakeTime(stop)
    calls = 0

    def run_once() -> None:
        nonlocal calls
        calls += 1
        stop.set()  # e.g. SIGTERM arrived while this run was in progress

    assert worker.run_forever(run_once, 3600, stop, clock=fake.clock, wait=fake.wait) == 1
    assert calls == 1
    assert fake.waits == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", 3600), ("60", 60), (" 900 ", 900)],
)
def test_interval_from_env(value: str, expected: int) -> None:
    assert worker.interval_from_env({worker.INTERVAL_ENV: value}) == expected


@pytest.mark.parametrize("value", ["hourly", "0", "-5", "99999999"])
def test_a_bad_interval_names_the_variable(value: str) -> None:
    with pytest.raises(worker.WorkerConfigError, match=worker.INTERVAL_ENV):
        worker.interval_from_env({worker.INTERVAL_ENV: value})


# --------------------------------------------------------------------------------------------------------
# A real process and a real signal
# --------------------------------------------------------------------------------------------------------

_LOOP_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    from lambdas.auto_confirm import worker

    run_seconds = float(sys.argv[1])
    worker.configure_logging("test")
    stop = threading.Event()
    worker.install_stop_handlers(stop)

    def run_once():
        print("run started", flush=True)
        time.sleep(run_seconds)
        print("run finished", flush=True)

    runs = worker.run_forever(run_once, 3600, stop)
    print(f"exited after {runs} runs", flush=True)
    """
)


def _start(run_seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _LOOP_SCRIPT, str(run_seconds)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_line(process: subprocess.Popen[str], wanted: str, timeout_s: float = 20.0) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if wanted in line:
            return lines
    process.kill()
    raise AssertionError(f"{wanted!r} never printed; got {lines}")


def test_sigterm_during_the_hourly_wait_exits_0_promptly() -> None:
    process = _start(run_seconds=0)
    try:
        _wait_for_line(process, "run finished")
        time.sleep(0.2)  # let it enter the 3600 s wait
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "exited after 1 runs" in out
    assert elapsed < 5, f"took {elapsed:.1f} s to stop"
    stopping = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(entry.get("event") == "auto_confirm_worker_stopping" for entry in stopping)


def test_sigterm_during_a_run_lets_it_finish_then_exits_0() -> None:
    process = _start(run_seconds=1.0)
    try:
        _wait_for_line(process, "run started")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.index("run finished") < out.index("exited after 1 runs")


# --------------------------------------------------------------------------------------------------------
# The real core on a real PostgreSQL, and the real entry point
# --------------------------------------------------------------------------------------------------------


def _due_order(market: Marketplace) -> tuple[int, int, int]:
    """(order id, client, provider) of one order due by the real clock (the worker reads the time itself)."""
    market.user("admin")
    client = market.user("client", blocked="100.00")
    provider = market.user("provider")
    completed = dt.datetime.now(dt.UTC) - dt.timedelta(hours=40)
    return market.order(client, provider, "100.00", completed_at=completed), client, provider


@pytest.mark.postgres
def test_each_run_confirms_what_is_due_through_the_core(market: Marketplace) -> None:
    order, client, provider = _due_order(market)
    before = market.total_money()
    run_once = worker.core_run_once({"DATABASE_URL": market.url, worker.BATCH_SIZE_ENV: "50"}, threading.Event())
    result = run_once()
    assert result.confirmed == 1
    assert market.status(order)[:2] == ("completed", True)
    assert market.wallet(client) == (Decimal("0.00"), Decimal("0.00"))
    assert market.wallet(provider)[0] == Decimal("95.00")  # 5 % platform fee from the seed
    assert market.total_money() == before
    assert run_once().confirmed == 0  # the next interval finds nothing left


@pytest.mark.postgres
def test_a_stop_request_keeps_the_core_from_starting_a_batch(market: Marketplace) -> None:
    order, _, _ = _due_order(market)
    stop = threading.Event()
    stop.set()
    result = worker.core_run_once({"DATABASE_URL": market.url}, stop)()
    assert result.stopped_early is True
    assert result.confirmed == 0
    assert market.status(order)[0] == "awaiting_confirmation"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "DATABASE_URL"),
        ({"DATABASE_URL": "mysql://x@y/z"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u:p@127.0.0.1/db", worker.BATCH_SIZE_ENV: "lots"}, worker.BATCH_SIZE_ENV),
    ],
)
def test_bad_worker_environment_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(worker.WorkerConfigError, match=variable):
        worker.core_run_once(env, threading.Event())


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_entry_point_survives_an_unreachable_database_and_exits_0_on_sigterm() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"postgresql://app:pw@127.0.0.1:{_closed_port()}/shipyard?sslmode=require",
        "STACK": "test",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "lambdas.auto_confirm.worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = _wait_for_line(process, worker.RUN_FAILED)
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 0, err
    events = [json.loads(line) for line in [*lines, *out.splitlines()] if line.startswith("{")]
    failed = [e for e in events if e.get("event") == worker.RUN_FAILED]
    assert len(failed) == 1 and "cannot reach PostgreSQL" in failed[0]["message"]
    assert events[-1]["event"] == "auto_confirm_worker_stopped"


def test_the_entry_point_refuses_a_bad_interval_with_exit_2() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), worker.INTERVAL_ENV: "hourly", "DATABASE_URL": "postgresql://a@b/c"}
    result = subprocess.run(
        [sys.executable, "-m", "lambdas.auto_confirm.worker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert worker.INTERVAL_ENV in result.stdout

"""The DigitalOcean auto-confirm worker loop: cadence, surviving failed runs, and stopping on SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from lambdas.auto_confirm import worker

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


def test_a_failed_run_is_logged_and_the_loop_goes_on(caplog: pytest.LogCaptureFixture) -> None:
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

    with caplog.at_level(logging.INFO, logger="lambdas.auto_confirm.worker"):
        runs = worker.run_forever(run_once, 3600, stop, clock=fake.clock, wait=fake.wait, max_runs=2)
    assert runs == 2
    assert [t - calls[0] for t in calls] == [0, 3600]
    failed = [r for r in caplog.records if getattr(r, "shipyard_fields", {}).get("event") == worker.RUN_FAILED]
    assert len(failed) == 1
    assert failed[0].levelno == logging.ERROR
    assert "cannot reach PostgreSQL" in failed[0].getMessage()
    assert failed[0].shipyard_fields["error_type"] == "ConnectionRefusedError"  # type: ignore[attr-defined]
    done = [r for r in caplog.records if getattr(r, "shipyard_fields", {}).get("event") == "auto_confirm_run"]
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

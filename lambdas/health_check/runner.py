"""Run every check at once, each on its own thread, and stop waiting at each check's deadline.

A check's deadline is its own timeout or the run's deadline, whichever comes first. The runner does not
trust a check to respect it: at the deadline it records a timeout and cancels the check (shutting its
sockets), so one hanging server can neither hang the run nor delay the other results.

Plain daemon threads, not a ThreadPoolExecutor: the executor joins its workers at interpreter exit, so a
check stuck in name resolution (which cannot be interrupted) would hang the command-line tool's exit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from lambdas.health_check.checks import INTERNAL, TIMEOUT, CheckContext, CheckResult, utc_now
from lambdas.health_check.config import Target

Check = Callable[[Target, CheckContext], CheckResult]


@dataclass(frozen=True)
class RunReport:
    results: tuple[CheckResult, ...]
    started_at: datetime
    duration_ms: float
    deadline_s: float

    @property
    def ok(self) -> bool:
        return all(result.up for result in self.results)


def run_checks(
    targets: Sequence[Target],
    check: Check,
    *,
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
) -> RunReport:
    """Run `check` on every target concurrently; return one result per target, in the targets' order.

    `clock` must advance with real time (the runner sleeps on it); inject it only to observe, not to fake.
    """
    started_at = now()
    start = clock()
    run_deadline = start + deadline_s
    contexts = [CheckContext(min(start + target.timeout_s, run_deadline), clock) for target in targets]
    results: list[CheckResult | None] = [None] * len(targets)
    finished = threading.Condition()

    def work(index: int) -> None:
        target = targets[index]
        try:
            result = check(target, contexts[index])
        except Exception as error:  # a bug in a check must cost one result, not the run
            result = CheckResult.for_target(target).fail(
                INTERNAL, f"unexpected {type(error).__name__}: {error}", contexts[index].phase
            )
        with finished:
            if results[index] is None:  # the runner may already have recorded a timeout
                results[index] = result
                finished.notify()

    for index, target in enumerate(targets):
        threading.Thread(target=work, args=(index,), name=f"health-check:{target.name}", daemon=True).start()

    with finished:
        while True:
            pending = [index for index, result in enumerate(results) if result is None]
            if not pending:
                break
            current = clock()
            for index in pending:
                context = contexts[index]
                if context.deadline <= current:
                    results[index] = _timed_out(
                        targets[index],
                        context,
                        cut_by_run=context.deadline < start + targets[index].timeout_s,
                        deadline_s=deadline_s,
                    )
                    context.cancel()
            waiting = [contexts[i].deadline for i in pending if results[i] is None]
            if waiting:
                finished.wait(timeout=max(0.0, min(waiting) - current))

    done = [result for result in results if result is not None]
    assert len(done) == len(targets)
    return RunReport(
        results=tuple(done),
        started_at=started_at,
        duration_ms=round((clock() - start) * 1000, 3),
        deadline_s=deadline_s,
    )


def _timed_out(target: Target, context: CheckContext, *, cut_by_run: bool, deadline_s: float) -> CheckResult:
    if cut_by_run:
        detail = f"still running at the run deadline ({deadline_s:g} s) during {context.phase}"
    else:
        detail = f"no answer within {target.timeout_s:g} s (during {context.phase})"
    result = CheckResult.for_target(target).fail(TIMEOUT, detail, context.phase)
    result.phases_ms = dict(context.phases_ms)
    return result

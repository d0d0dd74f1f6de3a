"""The run, wired together: settings and dependencies in, log lines and metrics out, result event back.

The handler and the command-line tool both call `execute`; only the dependencies they pass differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from lambdas.health_check.checks import CheckContext, CheckDeps, CheckResult, run_check, utc_now
from lambdas.health_check.config import Settings, Target
from lambdas.health_check.report import check_log_line, emf_documents, result_event
from lambdas.health_check.runner import RunReport, run_checks

# Left for printing the results after the deadline; printing takes milliseconds, so this is generous.
EMIT_MARGIN_S = 1.0
MIN_DEADLINE_S = 0.1

Emit = Callable[[dict[str, Any]], None]


def effective_deadline(configured_s: float, remaining_ms: int | None) -> float:
    """RUN_DEADLINE_S, cut short so the results are printed before Lambda stops the invocation."""
    if remaining_ms is None:
        return configured_s
    return max(MIN_DEADLINE_S, min(configured_s, remaining_ms / 1000 - EMIT_MARGIN_S))


def check_all(
    settings: Settings,
    deps: CheckDeps,
    *,
    deadline_s: float,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], datetime] = utc_now,
) -> RunReport:
    def check(target: Target, ctx: CheckContext) -> CheckResult:
        return run_check(target, ctx, deps)

    return run_checks(settings.targets, check, deadline_s=deadline_s, clock=clock, now=now)


def publish(report: RunReport, stack: str, emit: Emit) -> dict[str, Any]:
    """Emit one log line per check, the EMF metric documents, then the summary; return the summary."""
    for result in report.results:
        emit(check_log_line(result, stack))
    for document in emf_documents(report, stack):
        emit(document)
    event = result_event(report, stack)
    emit(event)
    return event


def execute(settings: Settings, deps: CheckDeps, *, deadline_s: float, emit: Emit) -> dict[str, Any]:
    report = check_all(settings, deps, deadline_s=deadline_s)
    return publish(report, settings.stack, emit)

"""Lambda entry point ``lambdas.restore_test_age.handler.handler``, run once a day by EventBridge Scheduler.

Environment: ``RESTORE_TESTING_PLAN_NAME`` (the plan whose jobs count), ``STACK`` (metric dimension).
Publishes ``Shipyard/Backup`` ``DaysSinceLastRestoreTest`` ``{Stack}`` (EMF) and logs one JSON line. Raises
when AWS Backup cannot be read, so the invocation fails (retries, then the DLQ) and the metric goes missing,
which the restore-test-overdue alarm treats as breaching.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from lambdas.restore_test_age import core
from lambdas.shared import logs

Clock = Callable[[], dt.datetime]


def backup_client() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("backup", config=config)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(os.environ, backup_client(), lambda: dt.datetime.now(dt.UTC))


def handle(env: Mapping[str, str], backup: Any, clock: Clock) -> dict[str, Any]:
    from lambdas.shared import metrics

    log = logs.get_logger("lambdas.restore_test_age")
    stack = metrics.stack_from_env(env)
    plan_name = env.get("RESTORE_TESTING_PLAN_NAME", "").strip()
    if not plan_name:
        raise ValueError("RESTORE_TESTING_PLAN_NAME must be set (the restore testing plan to watch)")
    try:
        age = core.measure(backup, plan_name, clock())
    except core.PlanError as error:
        logs.log_event(log, "restore_test_age_failed", str(error))
        raise
    metrics.publish(core.NAMESPACE, stack, age.metrics())
    summary = {
        "plan": age.plan_arn,
        "days_since_last_restore_test": round(age.days, 2),
        "last_validated_restore": age.last_success.isoformat() if age.last_success else None,
        "completed_jobs_seen": age.jobs_seen,
    }
    logs.log_fields(
        log,
        f"last validated restore test {summary['last_validated_restore'] or 'never'}: {age.days:.1f} days ago",
        level=logging.INFO,
        event="restore_test_age",
        **summary,
    )
    return summary

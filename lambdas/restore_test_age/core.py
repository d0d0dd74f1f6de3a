"""Days since the last restore test whose restored copy passed validation, from AWS Backup's own records.

Why a separate daily gauge: the restore test runs monthly, and a CloudWatch alarm sees at most 7 days back
(period × evaluation periods <= 604 800 s), so "no successful restore test in 35 days" cannot be an alarm on
the validator's once-a-month metrics. Asking AWS Backup every day and publishing the age turns it into a
plain threshold (age > 35 days) plus missing data (this check itself stopped).

Plain functions over a boto3 ``backup`` client (or anything with the same two methods), so tests drive them
against a local HTTP server speaking the AWS Backup API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdas.shared.metrics import MetricValue

NAMESPACE = "Shipyard/Backup"
METRIC = "DaysSinceLastRestoreTest"
LOOKBACK_DAYS = 90
"""Jobs completed in the last 90 days are listed: enough to see three monthly tests, and the age caps there."""
MAX_PAGES = 20
"""ListRestoreJobs pages read at most (100 jobs each): a plan runs one job a month, so this is never reached
unless the API misbehaves, and then the check fails instead of looping."""
PAGE_SIZE = 100


@dataclass(frozen=True)
class RestoreTestAge:
    plan_arn: str
    days: float
    """Days since the last validated restore; since the plan was created when it never had one (capped at
    LOOKBACK_DAYS: older than that we do not look)."""
    last_success: dt.datetime | None
    jobs_seen: int

    def metrics(self) -> list[MetricValue]:
        return [MetricValue(METRIC, "None", round(self.days, 2))]


class PlanError(RuntimeError):
    """The restore testing plan could not be read (missing, or the API refused): nothing to measure."""


def last_validated(jobs: Iterable[Mapping[str, Any]]) -> dt.datetime | None:
    """Completion time of the newest job that restored (COMPLETED) and passed validation (SUCCESSFUL)."""
    done = [
        job["CompletionDate"]
        for job in jobs
        if job.get("Status") == "COMPLETED"
        and job.get("ValidationStatus") == "SUCCESSFUL"
        and isinstance(job.get("CompletionDate"), dt.datetime)
    ]
    return max(done) if done else None


def age_days(now: dt.datetime, last_success: dt.datetime | None, plan_created: dt.datetime) -> float:
    since = last_success or plan_created
    return min(max((now - since).total_seconds() / 86_400, 0.0), float(LOOKBACK_DAYS))


def list_plan_jobs(backup: Any, plan_arn: str, since: dt.datetime) -> list[dict[str, Any]]:
    """COMPLETED restore jobs of the plan completed after ``since``, every page (bounded by MAX_PAGES)."""
    jobs: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "ByRestoreTestingPlanArn": plan_arn,
        "ByStatus": "COMPLETED",
        "ByCompleteAfter": since,
        "MaxResults": PAGE_SIZE,
    }
    for _ in range(MAX_PAGES):
        page = backup.list_restore_jobs(**request)
        jobs.extend(page.get("RestoreJobs", []))
        token = page.get("NextToken")
        if not token:
            return jobs
        request["NextToken"] = token
    raise PlanError(f"ListRestoreJobs returned more than {MAX_PAGES} pages for {plan_arn}; refusing to go on")


def measure(backup: Any, plan_name: str, now: dt.datetime) -> RestoreTestAge:
    try:
        plan = backup.get_restore_testing_plan(RestoreTestingPlanName=plan_name)["RestoreTestingPlan"]
    except Exception as error:  # botocore's ClientError and connection errors alike: nothing to measure
        raise PlanError(f"restore testing plan {plan_name!r} could not be read: {error}") from error
    plan_arn = str(plan["RestoreTestingPlanArn"])
    jobs = list_plan_jobs(backup, plan_arn, now - dt.timedelta(days=LOOKBACK_DAYS))
    last = last_validated(jobs)
    return RestoreTestAge(
        plan_arn=plan_arn, days=age_days(now, last, plan["CreationTime"]), last_success=last, jobs_seen=len(jobs)
    )

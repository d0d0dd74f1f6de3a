"""parse_restore_event: the real event shape in, clear errors naming the field for anything else."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from lambdas.restore_validation.core import EventError, parse_restore_event

from .events import COMPLETED, FAILED, PLAN_ARN, RESTORE_SECONDS, completed, failed


def test_a_completed_rds_restore_test_event() -> None:
    job = parse_restore_event(COMPLETED)

    assert job.restore_job_id == "AB123456-78C9-0123-456D-789012E34567"
    assert job.status == "COMPLETED"
    assert job.db_instance_identifier == "awsbackup-restore-test-1a2b3c"
    assert job.restore_testing_plan_arn == PLAN_ARN
    assert job.creation_date == dt.datetime(2026, 11, 1, 5, 10, 1, 742000, tzinfo=dt.UTC)
    assert job.restore_seconds == pytest.approx(RESTORE_SECONDS)
    assert {m.name: (m.unit, m.value) for m in job.metrics()} == {
        "RestoreJobFailed": ("Count", 0.0),
        "RestoreTimeSeconds": ("Seconds", pytest.approx(RESTORE_SECONDS)),
    }


def test_a_failed_restore_job_has_no_resource_and_counts_as_failed() -> None:
    job = parse_restore_event(FAILED)

    assert job.status == "FAILED"
    assert job.created_resource_arn is None and job.completion_date is None
    assert job.status_message and "subnet group" in job.status_message
    assert {m.name: m.value for m in job.metrics()} == {"RestoreJobFailed": 1.0}


def test_an_aborted_job_counts_as_failed() -> None:
    assert {m.name: m.value for m in parse_restore_event(failed(status="ABORTED")).metrics()} == {
        "RestoreJobFailed": 1.0
    }


def _without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    target = changed
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return changed


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ("not json", r"event must be a JSON object, got str"),
        ({**COMPLETED, "source": "aws.rds"}, r"event field source must be 'aws.backup', got 'aws.rds'"),
        ({**COMPLETED, "detail-type": "Backup Job State Change"}, r"event field detail-type must be 'Restore Job"),
        ({**COMPLETED, "detail": []}, r"event field detail must be an object, got list"),
        (_without(COMPLETED, "detail", "restoreJobId"), r"event field detail\.restoreJobId is missing"),
        (completed(status="RUNNING"), r"detail\.status must be one of COMPLETED, FAILED, ABORTED .* got 'RUNNING'"),
        (completed(restoreJobId=42), r"event field detail\.restoreJobId must be a string, got int"),
        (
            _without(COMPLETED, "detail", "restoreTestingPlanArn"),
            r"detail\.restoreTestingPlanArn is missing: not a restore-test job",
        ),
        (_without(COMPLETED, "detail", "createdResourceArn"), r"event field detail\.createdResourceArn is missing"),
        (_without(COMPLETED, "detail", "completionDate"), r"event field detail\.completionDate is missing"),
        (completed(creationDate="yesterday"), r"detail\.creationDate is not an ISO 8601 time: 'yesterday'"),
        (completed(creationDate="2026-11-01T05:10:01"), r"detail\.creationDate has no UTC offset"),
        (completed(resourceType="Aurora"), r"event field detail\.resourceType must be 'RDS' .*got 'Aurora'"),
        (
            completed(createdResourceArn="arn:aws:rds:us-east-1:123456789012:cluster:awsbackup-restore-test-1"),
            r"event field detail\.createdResourceArn must be an RDS DB instance ARN",
        ),
    ],
)
def test_bad_events_name_the_field(event: Any, error: str) -> None:
    with pytest.raises(EventError, match=error):
        parse_restore_event(event)

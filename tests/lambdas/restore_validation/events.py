"""Restore-job events in the shape AWS Backup sends (AWS Backup developer guide, "Monitoring AWS Backup events
using Amazon EventBridge", example "Restore Job State Change" events; restoreTestingPlanArn added as the guide
says it is for jobs of a restore testing plan)."""

from __future__ import annotations

import copy
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"
PLAN_ARN = f"arn:aws:backup:{REGION}:{ACCOUNT}:restore-testing-plan:shipyard_prod_monthly-8f6b7e2a"

COMPLETED: dict[str, Any] = {
    "version": "0",
    "id": "ab32977c-378d-2122-e985-1234596f0709",
    "detail-type": "Restore Job State Change",
    "source": "aws.backup",
    "account": ACCOUNT,
    "time": "2026-11-01T05:14:58Z",
    "region": REGION,
    "resources": [f"arn:aws:rds:{REGION}:{ACCOUNT}:snapshot:awsbackup:job-1a2bcd34-567e-8901-23f4-5a6bcdef7890"],
    "detail": {
        "restoreJobId": "AB123456-78C9-0123-456D-789012E34567",
        "backupVaultArn": f"arn:aws:backup:{REGION}:{ACCOUNT}:backup-vault:shipyard-prod",
        "recoveryPointArn": f"arn:aws:backup:{REGION}:{ACCOUNT}:recovery-point:6f7fc1f8-2f2e-40ac-943b-8f8efa9ba99d",
        "sourceResourceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:shipyard-prod-db",
        "backupSizeInBytes": "0",
        "creationDate": "2026-11-01T05:10:01.742Z",
        "iamRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shipyard-prod-restore-testing",
        "percentDone": 0,
        "resourceType": "RDS",
        "status": "COMPLETED",
        "createdResourceArn": f"arn:aws:rds:{REGION}:{ACCOUNT}:db:awsbackup-restore-test-1a2b3c",
        "completionDate": "2026-11-01T05:24:53.128Z",
        "restoreTestingPlanArn": PLAN_ARN,
    },
}

FAILED: dict[str, Any] = {
    **{key: value for key, value in COMPLETED.items() if key != "detail"},
    "detail": {
        "restoreJobId": "1B234A56-789B-01CD-2A34-4567A08901FD",
        "backupSizeInBytes": "22548578304",
        "creationDate": "2026-11-01T05:10:07.303Z",
        "iamRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shipyard-prod-restore-testing",
        "percentDone": 0,
        "resourceType": "RDS",
        "status": "FAILED",
        "statusMessage": "DB subnet group 'shipyard-prod-db' does not cover enough Availability Zones.",
        "restoreTestingPlanArn": PLAN_ARN,
    },
}

RESTORE_SECONDS = 891.386  # completionDate - creationDate of COMPLETED


def completed(instance_identifier: str | None = None, **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(COMPLETED)
    if instance_identifier:
        event["detail"]["createdResourceArn"] = f"arn:aws:rds:{REGION}:{ACCOUNT}:db:{instance_identifier}"
    event["detail"].update(detail)
    return event


def failed(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(FAILED)
    event["detail"].update(detail)
    return event

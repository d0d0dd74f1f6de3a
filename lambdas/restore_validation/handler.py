"""Lambda entry point ``lambdas.restore_validation.handler.handler``: AWS Backup restore tests, validated.

Triggered (asynchronously, by an EventBridge rule) by ``aws.backup`` / ``Restore Job State Change`` events of
the restore testing plan with ``detail.status`` COMPLETED, FAILED or ABORTED. Runs outside the VPC (it only
calls AWS APIs); the database work is the probe's (:mod:`lambdas.restore_validation.probe`, in the VPC), so
neither half needs a NAT gateway or interface endpoints.

- COMPLETED: find the restored DB instance (``detail.createdResourceArn`` -> ``rds:DescribeDBInstances``),
  invoke the probe (``PROBE_FUNCTION``, synchronously) with its address, port and IAM-auth flag, report
  ``backup:PutRestoreValidationResult`` (SUCCESSFUL/FAILED with the reasons) and publish the metrics.
- FAILED / ABORTED: publish ``RestoreJobFailed = 1`` and log the job's status message; nothing to validate.
- ``{"validate_db_instance": "<identifier>"}`` (``aws lambda invoke`` from the restore runbook): the same
  checks on a manually restored instance, returned as the response; no report, no metric.

A validation that fails — including a database that cannot be reached, an instance without IAM auth, a
probe that errors or cannot be invoked, or a setting that is wrong — is a *result*: reported to AWS Backup,
``RestoreValidationSucceeded = 0``, and the invocation succeeds. The invocation fails (so Lambda retries,
then the DLQ keeps the event) only when it could not report: a malformed event (no restore job to report
on) or a failed PutRestoreValidationResult call.

Module load imports only the standard library and our own light modules; boto3 and Powertools load on
first use, and each AWS client is built once per container on first use (a FAILED job never builds one).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from lambdas.restore_validation import core, probe
from lambdas.shared import logs

PROBE_READ_TIMEOUT_S = 100
"""How long to wait for the probe's answer: longer than its 90 s timeout (infra/aws/backup.py), so a probe
that runs out of time comes back as Lambda's "Task timed out" error, not as our own read timeout."""

MANUAL_FIELD = "validate_db_instance"
"""Event field of a manual check (see :func:`validate_on_request`)."""

ClientFactory = Callable[[str], Any]

_clients: dict[str, Any] = {}


def aws_client(service: str) -> Any:
    """A boto3 client per service, built on first use and reused while the container is warm.

    Short timeouts and a few standard retries for the small API calls; the probe's invocation waits as long
    as the probe may run and is not retried (a second probe would only repeat the verdict on its way).
    """
    if service not in _clients:
        import boto3
        from botocore.config import Config

        if service == "lambda":
            config = Config(connect_timeout=3, read_timeout=PROBE_READ_TIMEOUT_S, retries={"total_max_attempts": 1})
        else:
            config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
        _clients[service] = boto3.client(service, config=config)
    return _clients[service]


class ReportError(RuntimeError):
    """PutRestoreValidationResult failed: the invocation fails so Lambda retries it (then the DLQ keeps it)."""


def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, os.environ)


def handle(
    event: Any,
    env: Mapping[str, str],
    *,
    client: ClientFactory = aws_client,
) -> dict[str, Any]:
    """The whole invocation. ``client(service)`` gives boto3 clients (rds, lambda, backup)."""
    from lambdas.shared import metrics

    log = logs.get_logger("lambdas.restore_validation")
    stack = metrics.stack_from_env(env)  # without it no metric can be published: fail loudly first
    if isinstance(event, Mapping) and MANUAL_FIELD in event:
        return validate_on_request(event, env, client=client)
    try:
        job = core.parse_restore_event(event)
    except core.EventError as error:
        logs.log_event(log, "invalid_event", f"not a usable restore-job event: {error}")
        raise

    if job.status != "COMPLETED":
        metrics.publish(core.NAMESPACE, stack, job.metrics())
        logs.log_fields(
            log,
            f"restore job {job.restore_job_id} {job.status}: {job.status_message or 'no status message'}",
            level=logging.ERROR,
            event="restore_job_failed",
            restore_job_id=job.restore_job_id,
            status=job.status,
            status_message=job.status_message,
            restore_testing_plan_arn=job.restore_testing_plan_arn,
            stack=stack,
        )
        return {"restore_job_id": job.restore_job_id, "restore_status": job.status, "validated": False}

    result = validate_restored(job.db_instance_identifier, env, client=client)
    message = result.message()
    metrics.publish(core.NAMESPACE, stack, job.metrics() + core.validation_metrics(result))
    summary = {
        "restore_job_id": job.restore_job_id,
        "restore_status": job.status,
        "validated": True,
        "db_instance": job.db_instance_identifier,
        "restore_seconds": job.restore_seconds,
        "validation": result.summary(),
        "message": message,
    }
    logs.log_fields(
        log,
        f"restore job {job.restore_job_id}: validation {result.status}: {message}",
        level=logging.INFO if result.ok else logging.ERROR,
        event="restore_validated" if result.ok else "restore_validation_failed",
        summary=summary,
        stack=stack,
    )
    try:
        client("backup").put_restore_validation_result(
            RestoreJobId=job.restore_job_id, ValidationStatus=result.status, ValidationStatusMessage=message
        )
    except Exception as error:
        # botocore's errors, matched broadly on purpose: whatever stopped the report, the retry should see it
        logs.log_event(
            log,
            "validation_report_failed",
            f"could not report validation of restore job {job.restore_job_id}: {error}",
            error_type=type(error).__name__,
        )
        raise ReportError(f"PutRestoreValidationResult for restore job {job.restore_job_id} failed: {error}") from error
    return summary


def validate_on_request(event: Mapping[str, Any], env: Mapping[str, str], *, client: ClientFactory) -> dict[str, Any]:
    """``{"validate_db_instance": "<identifier>"}``: the restore runbook's check of a manually restored instance.

    Same checks, by the probe inside the VPC where the instance is reachable; nothing is reported to AWS Backup and no
    metric is published (a manual restore is not a restore test). The result is the invocation's response.
    """
    identifier = event.get(MANUAL_FIELD)
    if not isinstance(identifier, str) or not re.fullmatch(core.DB_INSTANCE_IDENTIFIER, identifier):
        raise core.EventError(f"event field {MANUAL_FIELD} must be a DB instance identifier, got {identifier!r}")
    unknown = sorted(set(event) - {MANUAL_FIELD})
    if unknown:
        raise core.EventError(f"unknown event field(s) {unknown} next to {MANUAL_FIELD}")
    result = validate_restored(identifier, env, client=client)
    summary = {"db_instance": identifier, "validation": result.summary(), "message": result.message()}
    logs.log_fields(
        logs.get_logger("lambdas.restore_validation"),
        f"manual validation of {identifier}: {result.status}: {summary['message']}",
        level=logging.INFO if result.ok else logging.WARNING,
        event="manual_validation",
        summary=summary,
    )
    return summary


def validate_restored(identifier: str, env: Mapping[str, str], *, client: ClientFactory) -> core.ValidationResult:
    """Locate the copy, have the probe validate it. Every problem on the way is a failed result with its reason."""
    started = time.monotonic()

    probe_function = env.get("PROBE_FUNCTION", "").strip()
    if not probe_function:
        return core.ValidationResult.stopped(
            "settings", "validator misconfigured: missing environment variable(s): PROBE_FUNCTION", started=started
        )
    try:
        target = describe_instance(client("rds"), identifier)
    except LookupError as error:
        return core.ValidationResult.stopped("instance", str(error), started=started)
    try:
        result = invoke_probe(client("lambda"), probe_function, target)
    except ProbeError as error:
        return core.ValidationResult.stopped("probe", str(error), started=started)
    result.duration_s = time.monotonic() - started
    return result


class ProbeError(RuntimeError):
    """The probe could not be invoked, failed, or answered with something that is not a result."""


def invoke_probe(lambda_client: Any, function: str, target: probe.Target) -> core.ValidationResult:
    """Invoke the probe synchronously and rebuild its result; ProbeError says what went wrong."""
    try:
        response = lambda_client.invoke(
            FunctionName=function, InvocationType="RequestResponse", Payload=json.dumps(target.request()).encode()
        )
        raw = response["Payload"].read()
    except Exception as error:
        # botocore's errors, matched broadly on purpose: any of them means no verdict, which is a failed test
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        reason = f"{code or type(error).__name__}: {error}"
        raise ProbeError(f"cannot invoke validator probe {function}: {reason}") from error
    try:
        answer = json.loads(raw or b"null")
    except ValueError:
        answer = None
    if response.get("FunctionError"):
        details = answer if isinstance(answer, Mapping) else {}
        raise ProbeError(
            f"validator probe {function} failed: {details.get('errorType', response['FunctionError'])}: "
            f"{details.get('errorMessage', raw[:200].decode(errors='replace'))}"
        )
    try:
        return core.ValidationResult.from_summary(answer)
    except ValueError as error:
        raise ProbeError(f"validator probe {function} answered with no usable result: {error}") from None


def describe_instance(rds: Any, identifier: str) -> probe.Target:
    """The restored instance's endpoint and IAM-auth flag; LookupError (with the cause) when RDS cannot say."""
    try:
        described = rds.describe_db_instances(DBInstanceIdentifier=identifier)
    except Exception as error:
        code = getattr(error, "response", {}).get("Error", {}).get("Code")
        raise LookupError(
            f"cannot describe restored instance {identifier}: {code or type(error).__name__}: {error}"
        ) from error
    instances = described.get("DBInstances") or []
    if not instances:
        raise LookupError(f"restored instance {identifier} not found")
    found = instances[0]
    endpoint = found.get("Endpoint") or {}
    if not endpoint.get("Address"):
        raise LookupError(
            f"restored instance {identifier} has no endpoint yet (status {found.get('DBInstanceStatus', '?')})"
        )
    return probe.Target(
        identifier=identifier,
        address=str(endpoint["Address"]),
        port=int(endpoint.get("Port") or 5432),
        iam_auth=bool(found.get("IAMDatabaseAuthenticationEnabled")),
    )

"""Lambda entry point ``lambdas.restore_validation.handler.handler``: AWS Backup restore tests, validated.

Triggered (asynchronously, by an EventBridge rule) by ``aws.backup`` / ``Restore Job State Change`` events of
the restore testing plan with ``detail.status`` COMPLETED, FAILED or ABORTED.

- COMPLETED: find the restored DB instance (``detail.createdResourceArn`` -> ``rds:DescribeDBInstances``),
  connect with TLS as ``DB_USER`` using an IAM auth token (or the secret in ``DB_SECRET_ARN``), run
  :func:`lambdas.restore_validation.core.validate`, report ``backup:PutRestoreValidationResult``
  (SUCCESSFUL/FAILED with the reasons) and publish the metrics.
- FAILED / ABORTED: publish ``RestoreJobFailed = 1`` and log the job's status message; nothing to validate.
- ``{"validate_db_instance": "<identifier>"}`` (``aws lambda invoke`` from the restore runbook): the same
  checks on a manually restored instance, returned as the response; no report, no metric.

A validation that fails — including a database that cannot be reached, an instance without IAM auth, or a
setting of this function that is wrong — is a *result*: reported to AWS Backup, ``RestoreValidationSucceeded
= 0``, and the invocation succeeds. The invocation fails (so Lambda retries, then the DLQ keeps the event)
only when it could not report: a malformed event (no restore job to report on) or a failed
PutRestoreValidationResult call.

Module load imports only the standard library and our own light modules; boto3, pg8000 and Powertools load
on first use, and each AWS client is built once per container on first use (a FAILED job never builds one).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdas.restore_validation import core
from lambdas.shared import logs

CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_MS = 20_000
"""Every check is a catalogue lookup or a bounded aggregate; 20 s means the restored copy is unwell."""

MANUAL_FIELD = "validate_db_instance"
"""Event field of a manual check (see :func:`validate_on_request`)."""

ClientFactory = Callable[[str], Any]
Connect = Callable[..., Any]

_clients: dict[str, Any] = {}


def aws_client(service: str) -> Any:
    """A boto3 client per service, built on first use and reused while the container is warm.

    Short timeouts and a few standard retries: the API calls here are small, and a missing VPC endpoint
    should cost seconds, not the function's whole timeout.
    """
    if service not in _clients:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
        _clients[service] = boto3.client(service, config=config)
    return _clients[service]


class SettingsError(ValueError):
    """An environment variable of this function is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    db_name: str
    db_user: str
    secret_arn: str | None = None
    ca_file: str | None = None
    expectations: core.Expectations = field(default_factory=core.Expectations)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        missing = [name for name in ("DB_NAME", "DB_USER") if not env.get(name, "").strip()]
        secret_arn = env.get("DB_SECRET_ARN", "").strip() or None
        if secret_arn:
            missing = [name for name in missing if name != "DB_USER"]  # the secret names its user
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        if secret_arn and not secret_arn.startswith("arn:"):
            raise SettingsError(f"DB_SECRET_ARN must be a Secrets Manager ARN, got {secret_arn[:40]!r}")
        try:
            expectations = core.Expectations.from_json(env.get("MIN_ROWS_JSON"))
        except core.ExpectationsError as error:
            raise SettingsError(str(error)) from None
        return cls(
            db_name=env["DB_NAME"].strip(),
            db_user=env.get("DB_USER", "").strip(),
            secret_arn=secret_arn,
            ca_file=env.get("DB_CA_FILE", "").strip() or None,
            expectations=expectations,
        )


@dataclass(frozen=True)
class RestoredInstance:
    identifier: str
    address: str
    port: int
    status: str
    iam_auth: bool


class ReportError(RuntimeError):
    """PutRestoreValidationResult failed: the invocation fails so Lambda retries it (then the DLQ keeps it)."""


def handler(event: Any, context: Any) -> dict[str, Any]:
    return handle(event, os.environ)


def handle(
    event: Any,
    env: Mapping[str, str],
    *,
    client: ClientFactory = aws_client,
    connect: Connect | None = None,
) -> dict[str, Any]:
    """The whole invocation. ``client(service)`` gives boto3 clients; ``connect`` is ``lambdas.shared.db.connect``
    unless a caller passes another (same signature)."""
    from lambdas.shared import metrics

    log = logs.get_logger("lambdas.restore_validation")
    stack = metrics.stack_from_env(env)  # without it no metric can be published: fail loudly first
    if isinstance(event, Mapping) and MANUAL_FIELD in event:
        return validate_on_request(event, env, client=client, connect=connect)
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

    result = validate_restored(job.db_instance_identifier, env, client=client, connect=connect)
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


def validate_on_request(
    event: Mapping[str, Any], env: Mapping[str, str], *, client: ClientFactory, connect: Connect | None = None
) -> dict[str, Any]:
    """``{"validate_db_instance": "<identifier>"}``: the restore runbook's check of a manually restored instance.

    Same checks, from inside the VPC where the instance is reachable; nothing is reported to AWS Backup and no
    metric is published (a manual restore is not a restore test). The result is the invocation's response.
    """
    identifier = event.get(MANUAL_FIELD)
    if not isinstance(identifier, str) or not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{0,62}", identifier):
        raise core.EventError(f"event field {MANUAL_FIELD} must be a DB instance identifier, got {identifier!r}")
    unknown = sorted(set(event) - {MANUAL_FIELD})
    if unknown:
        raise core.EventError(f"unknown event field(s) {unknown} next to {MANUAL_FIELD}")
    result = validate_restored(identifier, env, client=client, connect=connect)
    summary = {"db_instance": identifier, "validation": result.summary(), "message": result.message()}
    logs.log_fields(
        logs.get_logger("lambdas.restore_validation"),
        f"manual validation of {identifier}: {result.status}: {summary['message']}",
        level=logging.INFO if result.ok else logging.WARNING,
        event="manual_validation",
        summary=summary,
    )
    return summary


def validate_restored(
    identifier: str, env: Mapping[str, str], *, client: ClientFactory, connect: Connect | None = None
) -> core.ValidationResult:
    """Locate, authenticate, connect, validate. Every problem on the way is a failed result with its reason."""
    from lambdas.shared import db

    started = time.monotonic()

    def failed(check: str, reason: str) -> core.ValidationResult:
        result = core.ValidationResult()
        result.fail(check, reason)
        result.duration_s = time.monotonic() - started
        return result

    try:
        settings = Settings.from_env(env)
    except SettingsError as error:
        return failed("settings", f"validator misconfigured: {error}")
    try:
        instance = describe_instance(client("rds"), identifier)
    except LookupError as error:
        return failed("instance", str(error))

    try:
        if settings.secret_arn:
            credentials = db.fetch_credentials(settings.secret_arn, client("secretsmanager"))
        else:
            if not instance.iam_auth:
                return failed(
                    "iam_auth",
                    f"IAM database authentication is off on restored instance {instance.identifier}: set the "
                    "restore testing selection's override enableIamDatabaseAuthentication=true, or DB_SECRET_ARN",
                )
            credentials = iam_credentials(client("rds"), instance, settings.db_user)
    except (db.DatabaseUnavailable, db.DatabaseConfigError) as error:
        return failed("credentials", str(error))

    endpoint = db.DatabaseEndpoint(instance.address, instance.port, settings.db_name, settings.ca_file)
    open_connection = connect or db.connect

    def connect_to_restored() -> Any:
        return open_connection(
            endpoint,
            credentials,
            tls=True,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            statement_timeout_ms=STATEMENT_TIMEOUT_MS,
            application_name="shipyard-restore-validation",
        )

    result = core.validate_database(connect_to_restored, settings.expectations)
    result.duration_s = time.monotonic() - started
    return result


def describe_instance(rds: Any, identifier: str) -> RestoredInstance:
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
    return RestoredInstance(
        identifier=identifier,
        address=str(endpoint["Address"]),
        port=int(endpoint.get("Port") or 5432),
        status=str(found.get("DBInstanceStatus", "")),
        iam_auth=bool(found.get("IAMDatabaseAuthenticationEnabled")),
    )


def iam_credentials(rds: Any, instance: RestoredInstance, user: str) -> Any:
    """A 15-minute IAM auth token as the password (signed locally by the SDK; no API call, no stored secret)."""
    from lambdas.shared import db

    token = rds.generate_db_auth_token(
        DBHostname=instance.address, Port=instance.port, DBUsername=user, Region=rds.meta.region_name
    )
    return db.Credentials(username=user, password=token)

"""Lambda entry point ``lambdas.auto_confirm.handler.handler`` (hourly, from EventBridge Scheduler).

Thin on purpose: read the event and the environment, sign an IAM token as the ``auto_confirm`` role (or
fetch the database secret when no IAM user is configured), connect with TLS, call
:func:`lambdas.auto_confirm.core.run`, publish the metrics, log one summary line. Any failure publishes
``RunFailed = 1`` and re-raises, so the invocation fails (Scheduler retries, then its DLQ). Module load
imports only the standard library and our own modules; boto3, pg8000 and Powertools load on first use.

Event (optional fields; EventBridge envelope fields are ignored, anything else is rejected):
``{"batch_size": 1000, "dry_run": false}``. Environment: see README.md.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lambdas.auto_confirm import core
from lambdas.shared import logs

if TYPE_CHECKING:
    from lambdas.shared.db import Credentials, DatabaseEndpoint, TokenSigner

SAFETY_MARGIN_S = 15.0  # stop starting batches this long before the Lambda timeout
_ENVELOPE_KEYS = frozenset(
    {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
)
_OPTION_KEYS = frozenset({"batch_size", "dry_run"})


class EventError(ValueError):
    """The invocation event is malformed; the message names the field."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_event(event: Any) -> tuple[int, bool]:
    """(batch_size, dry_run) from the event, with defaults."""
    if event is None:
        event = {}
    if not isinstance(event, Mapping):
        raise EventError(f"event must be a JSON object, got {type(event).__name__}")
    unknown = set(event) - _OPTION_KEYS - _ENVELOPE_KEYS
    if unknown:
        raise EventError(f"unknown event field(s) {sorted(unknown)}; allowed: {sorted(_OPTION_KEYS)}")
    batch_size = event.get("batch_size", core.DEFAULT_BATCH_SIZE)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= core.MAX_BATCH_SIZE:
        raise EventError(f"event field batch_size must be an integer in [1, {core.MAX_BATCH_SIZE}], got {batch_size!r}")
    dry_run = event.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise EventError(f"event field dry_run must be true or false, got {dry_run!r}")
    return batch_size, dry_run


def handler(event: Any, context: Any) -> dict[str, Any]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)

    def time_left_s() -> float:
        return float("inf") if remaining is None else remaining() / 1000 - SAFETY_MARGIN_S

    return handle(event, os.environ, clock=utc_now, time_left_s=time_left_s)


def database_credentials(
    env: Mapping[str, str], endpoint: DatabaseEndpoint, secrets_client: Any, sign_token: TokenSigner | None
) -> Credentials:
    """As the function's own role with an IAM token (AWS), or from the secret named by DATABASE_SECRET_ARN."""
    from lambdas.shared import db

    iam_user = db.iam_user_from_env(env)
    if iam_user is not None:
        return db.iam_credentials(endpoint, iam_user, sign_token or db.rds_token_signer())
    secret_arn = db.secret_arn_from_env(env)
    if secrets_client is None:
        import boto3

        secrets_client = boto3.client("secretsmanager")
    return db.fetch_credentials(secret_arn, secrets_client)


def handle(
    event: Any,
    env: Mapping[str, str],
    *,
    clock: Callable[[], dt.datetime],
    time_left_s: Callable[[], float],
    secrets_client: Any = None,
    sign_token: TokenSigner | None = None,
) -> dict[str, Any]:
    """One run. ``sign_token`` (a ``db.TokenSigner``) and ``secrets_client`` default to the real AWS ones."""
    from lambdas.shared import db, metrics

    log = logs.get_logger("lambdas.auto_confirm")
    started = time.monotonic()
    stack = metrics.stack_from_env(env)  # without it no metric can be published: fail loudly first
    result: core.RunResult | None = None
    dry_run = False
    try:
        batch_size, dry_run = parse_event(event)
        endpoint = db.DatabaseEndpoint.from_env(env)
        credentials = database_credentials(env, endpoint, secrets_client, sign_token)
        connection = db.connect(endpoint, credentials, tls=True, application_name="shipyard-auto-confirm")
        try:
            result = core.run(connection, clock, batch_size=batch_size, dry_run=dry_run, time_left_s=time_left_s)
        finally:
            connection.close()
    except Exception as error:
        partial = error.result if isinstance(error, core.AutoConfirmError) else None
        if isinstance(error, db.DatabaseUnavailable):
            logs.log_event(log, logs.DATABASE_ERROR, str(error))
        elif not isinstance(error, core.BatchFailed):  # BatchFailed logged its financial_error already
            logs.log_event(log, "run_failed", f"auto-confirm run failed: {error}", error_type=type(error).__name__)
        if not dry_run:
            failed = partial or core.RunResult(
                now=clock(),
                deadline_hours=core.DEFAULT_DEADLINE_HOURS,
                fee_percentage=Decimal(0),
                dry_run=False,
            )
            failed.duration_ms = round((time.monotonic() - started) * 1000, 1)
            failure_metrics = failed.metrics(failed=True)
            if partial is None:  # nothing is known about the backlog; publishing 0 would look healthy
                failure_metrics = [m for m in failure_metrics if m.name != "OldestOverdueSeconds"]
            metrics.publish(core.NAMESPACE, stack, failure_metrics)
        raise
    result.duration_ms = round((time.monotonic() - started) * 1000, 1)
    summary = result.summary()
    if not dry_run:
        metrics.publish(core.NAMESPACE, stack, result.metrics())
    logs.log_fields(
        log,
        f"auto-confirm {'dry run' if dry_run else 'run'}: {result.confirmed} confirmed, {len(result.skipped)} skipped",
        level=logging.WARNING if result.skipped or result.warnings else logging.INFO,
        summary=summary,
        stack=stack,
    )
    return summary

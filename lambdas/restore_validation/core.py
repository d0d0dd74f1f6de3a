"""Does a restored database hold the marketplace? Plain functions over a pg8000 connection.

Used by the Lambda that AWS Backup's monthly restore test triggers (handler.py) and by people checking a
manual restore (``python -m lambdas.restore_validation --database-url URL``).

What :func:`validate` checks, all read-only (the session is put in ``default_transaction_read_only``) and
cheap on a database of any size (no full scans beyond two indexed-or-small aggregates):

1. the core tables of the schema contract (issue 4: users, wallets, orders, transactions, audit_log,
   system_config) exist with the contract's columns — looked up in ``pg_catalog``, which, unlike
   ``information_schema``, does not hide tables the validation role cannot read;
2. the tables a seeded production database always has rows in reach their minimum
   (:data:`DEFAULT_MIN_ROWS`, overridable by ``MIN_ROWS_JSON``), counted with a ``LIMIT`` so a big table
   costs no more than a small one;
3. ``system_config`` holds every key the seed writes (:data:`SEEDED_CONFIG_KEYS`);
4. the platform wallet exists (an admin user with a wallet: auto-confirm pays fees into it and refuses
   to run without it);
5. money invariants: no wallet with a negative balance, no order with a non-positive amount (the schema's
   CHECK constraints forbid both; a restore that lost them, or data loaded around them, shows up here).

Each failed check yields one short reason naming the table, key or invariant; :meth:`ValidationResult.message`
joins them within :data:`MESSAGE_LIMIT` characters for ``ValidationStatusMessage``.

The restore-job event (EventBridge ``aws.backup`` / ``Restore Job State Change``) is parsed by
:func:`parse_restore_event`; its errors name the event field.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambdas.shared.metrics import MetricValue

if TYPE_CHECKING:
    import pg8000.native

NAMESPACE = "Shipyard/Backup"
VALIDATION_ROLE = "restore_validator"
"""The LOGIN role app/migrations/0003 creates for this check (env ``DB_USER``)."""

CORE_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "users": ("id", "email", "role"),
    "wallets": ("user_id", "available", "blocked"),
    "orders": (
        "id",
        "client_id",
        "provider_id",
        "amount",
        "status",
        "provider_completed_at",
        "confirmed_at",
        "auto_confirmed",
    ),
    "transactions": ("id", "order_id", "user_id", "kind", "amount", "created_at"),
    "audit_log": ("id", "entity", "entity_id", "action", "details", "created_at"),
    "system_config": ("key", "value", "description", "category"),
}
"""The schema contract of issue 4: tables and columns other components rely on (added to, never renamed)."""

SEEDED_CONFIG_KEYS: tuple[str, ...] = (
    "platform_fee_percentage",
    "contestation_fee",
    "cancellation_fee_percentage",
    "confirmation_deadline_hours",
)
"""Keys app/seed.sql inserts; a production database without one was never seeded or lost rows."""

DEFAULT_MIN_ROWS: Mapping[str, int] = {"users": 1, "wallets": 1, "system_config": len(SEEDED_CONFIG_KEYS)}
"""Rows a production database has from its first day: the admin (platform) user, its wallet, the seed."""

MESSAGE_LIMIT = 500
"""Characters of ValidationStatusMessage we send. The API model declares no maximum; the console shows it
in a narrow column, and the full list of reasons is in the function's log line anyway."""


class ExpectationsError(ValueError):
    """An expectation setting (MIN_ROWS_JSON) is malformed; the message names it."""


class EventError(ValueError):
    """The invocation event is not a usable restore-job event; the message names the field."""


# -- expectations ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expectations:
    min_rows: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIN_ROWS))
    """Table -> minimum row count. Tables outside the contract may be named (they must then exist)."""
    config_keys: tuple[str, ...] = SEEDED_CONFIG_KEYS
    platform_wallet: bool = True
    """Require an admin user with a wallet (the platform's)."""
    schema: str = "public"

    @classmethod
    def from_json(cls, raw: str | None, *, setting: str = "MIN_ROWS_JSON") -> Expectations:
        """Defaults, with ``raw`` (e.g. ``{"users": 1, "system_config": 4}``) replacing the minimums it names."""
        if raw is None or not raw.strip():
            return cls()
        try:
            parsed = json.loads(raw)
        except ValueError as error:
            raise ExpectationsError(f"{setting} is not JSON: {error}") from None
        if not isinstance(parsed, dict):
            raise ExpectationsError(f'{setting} must be a JSON object like {{"users": 1}}, got {type(parsed).__name__}')
        min_rows = dict(DEFAULT_MIN_ROWS)
        for table, minimum in parsed.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", table):
                raise ExpectationsError(f"{setting}: {table!r} is not a plain lower-case table name")
            if isinstance(minimum, bool) or not isinstance(minimum, int) or minimum < 0:
                raise ExpectationsError(f"{setting}: {table} must map to a whole number >= 0, got {minimum!r}")
            min_rows[table] = minimum
        return cls(min_rows=min_rows)


# -- result ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckFailure:
    check: str
    """Stable name: connect, tables, columns, rows, config, platform_wallet, balances, amounts."""
    reason: str


@dataclass
class ValidationResult:
    failures: list[CheckFailure] = field(default_factory=list)
    checks_passed: list[str] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    """Rows seen per table, capped at the minimum asked for (a count stops there)."""
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and bool(self.checks_passed)

    @property
    def status(self) -> str:
        """ValidationStatus for PutRestoreValidationResult."""
        return "SUCCESSFUL" if self.ok else "FAILED"

    def fail(self, check: str, reason: str) -> None:
        self.failures.append(CheckFailure(check, reason))

    def message(self, limit: int = MESSAGE_LIMIT) -> str:
        if self.ok:
            counts = ", ".join(f"{table} >= {count}" for table, count in sorted(self.row_counts.items()))
            text = f"{len(self.checks_passed)} checks passed ({', '.join(self.checks_passed)}); rows: {counts}"
            return _clip(text, limit)
        if not self.failures:
            return "no check ran"
        reasons = [failure.reason for failure in self.failures]
        # whole reasons while they fit, then how many were left out (all of them are in the log line)
        for kept in range(len(reasons), 0, -1):
            text = "; ".join(reasons[:kept])
            if kept < len(reasons):
                text += f" (+{len(reasons) - kept} more)"
            if len(text) <= limit:
                return text
        return _clip(reasons[0], limit)

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "failures": [{"check": f.check, "reason": f.reason} for f in self.failures],
            "checks_passed": self.checks_passed,
            "row_counts": self.row_counts,
            "duration_s": round(self.duration_s, 3),
        }

    @classmethod
    def stopped(cls, check: str, reason: str, *, started: float) -> ValidationResult:
        """The result of a validation that could not go on: one failure, timed from ``started`` (monotonic)."""
        result = cls()
        result.fail(check, reason)
        result.duration_s = time.monotonic() - started
        return result

    @classmethod
    def from_summary(cls, summary: Any) -> ValidationResult:
        """The result :meth:`summary` described, as the probe Lambda returns it; ValueError names what is off.

        Strict on purpose: the verdict reported to AWS Backup is rebuilt from this, so a payload that is not a
        summary must become a failed validation, never a silent pass.
        """
        if not isinstance(summary, Mapping):
            raise ValueError(f"expected a JSON object, got {type(summary).__name__}")
        failures, passed, counts = summary.get("failures"), summary.get("checks_passed"), summary.get("row_counts")
        duration = summary.get("duration_s", 0.0)
        if not isinstance(failures, list) or not all(
            isinstance(f, Mapping) and isinstance(f.get("check"), str) and isinstance(f.get("reason"), str)
            for f in failures
        ):
            raise ValueError("field failures must be a list of {check, reason} strings")
        if not isinstance(passed, list) or not all(isinstance(name, str) for name in passed):
            raise ValueError("field checks_passed must be a list of strings")
        if not isinstance(counts, Mapping) or not all(
            isinstance(table, str) and isinstance(n, int) and not isinstance(n, bool) for table, n in counts.items()
        ):
            raise ValueError("field row_counts must map table names to integers")
        if not isinstance(duration, (int, float)) or isinstance(duration, bool):
            raise ValueError("field duration_s must be a number")
        result = cls(
            failures=[CheckFailure(f["check"], f["reason"]) for f in failures],
            checks_passed=list(passed),
            row_counts=dict(counts),
            duration_s=float(duration),
        )
        if summary.get("status") != result.status:
            raise ValueError(f"field status {summary.get('status')!r} contradicts the checks ({result.status})")
        return result


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


# -- validation --------------------------------------------------------------------------------------------


def validate(connection: pg8000.native.Connection, expectations: Expectations | None = None) -> ValidationResult:
    """Run every check on an open connection; never raises for what it finds (that is the result)."""
    expectations = expectations or Expectations()
    started = time.monotonic()
    result = ValidationResult()
    try:
        # A restored copy is evidence: nothing here may change it, even by mistake.
        connection.run("SET default_transaction_read_only = on")
        present = _check_tables(connection, expectations, result)
        _check_rows(connection, expectations, present, result)
        if "system_config" in present:
            _check_config(connection, expectations, result)
        if expectations.platform_wallet and {"users", "wallets"} <= present:
            _check_platform_wallet(connection, expectations, result)
        _check_money(connection, expectations, present, result)
    finally:
        result.duration_s = time.monotonic() - started
    return result


def validate_database(
    connect: Callable[[], pg8000.native.Connection], expectations: Expectations | None = None
) -> ValidationResult:
    """Connect with ``connect`` (which raises DatabaseUnavailable / DatabaseConfigError), validate, close.

    Not reaching the database is a failed validation with the cause as its reason, not an exception.
    """
    from lambdas.shared import db

    started = time.monotonic()
    try:
        connection = connect()
    except (db.DatabaseUnavailable, db.DatabaseConfigError) as error:
        return ValidationResult.stopped("connect", str(error), started=started)
    try:
        result = validate(connection, expectations)
    finally:
        connection.close()
    result.duration_s = time.monotonic() - started
    return result


def _qualified(expectations: Expectations, table: str) -> str:
    # identifiers cannot be bound parameters; both parts passed the plain-name pattern
    return f'"{expectations.schema}"."{table}"'


def _query(
    connection: pg8000.native.Connection, result: ValidationResult, check: str, sql: str, **params: Any
) -> list[list[Any]] | None:
    """Rows of ``sql``, or None after recording the database's error as the check's failure."""
    import pg8000.exceptions

    from lambdas.shared import db

    try:
        return connection.run(sql, **params) or []
    except pg8000.exceptions.DatabaseError as error:
        result.fail(check, f"{check} check could not run: {db.describe_error(error)}")
        return None


def _check_tables(
    connection: pg8000.native.Connection, expectations: Expectations, result: ValidationResult
) -> set[str]:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", expectations.schema):
        raise ExpectationsError(f"schema {expectations.schema!r} is not a plain lower-case name")
    wanted = sorted(set(CORE_COLUMNS) | set(expectations.min_rows))
    rows = _query(
        connection,
        result,
        "tables",
        """SELECT c.relname, a.attname
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
            WHERE n.nspname = :schema AND c.relkind IN ('r', 'p') AND c.relname = ANY(CAST(:tables AS text[]))""",
        schema=expectations.schema,
        tables=wanted,
    )
    if rows is None:
        return set()
    columns: dict[str, set[str]] = {}
    for table, column in rows:
        columns.setdefault(str(table), set())
        if column is not None:
            columns[str(table)].add(str(column))
    missing = [table for table in wanted if table not in columns]
    if missing:
        result.fail("tables", f"missing table(s) in schema {expectations.schema}: {', '.join(missing)}")
    lacking = [
        f"{table}.{column}"
        for table, required in CORE_COLUMNS.items()
        if table in columns
        for column in required
        if column not in columns[table]
    ]
    if lacking:
        result.fail("columns", f"missing column(s): {', '.join(lacking)}")
    if not missing and not lacking:
        result.checks_passed.append("tables")
    return set(columns)


def _check_rows(
    connection: pg8000.native.Connection, expectations: Expectations, present: set[str], result: ValidationResult
) -> None:
    short: list[str] = []
    unreadable = False
    for table, minimum in sorted(expectations.min_rows.items()):
        if table not in present or minimum == 0:
            continue
        rows = _query(
            connection,
            result,
            "rows",
            f"SELECT count(*) FROM (SELECT 1 FROM {_qualified(expectations, table)} LIMIT :n) AS bounded",
            n=minimum,
        )
        if rows is None:
            unreadable = True
            continue
        count = int(rows[0][0])
        result.row_counts[table] = count
        if count < minimum:
            short.append(f"{table} has {count} row(s), expected at least {minimum}")
    if short:
        result.fail("rows", "; ".join(short))
    elif not unreadable and any(table in present for table in expectations.min_rows):
        result.checks_passed.append("rows")


def _check_config(connection: pg8000.native.Connection, expectations: Expectations, result: ValidationResult) -> None:
    if not expectations.config_keys:
        return
    rows = _query(
        connection,
        result,
        "config",
        f"SELECT key FROM {_qualified(expectations, 'system_config')} WHERE key = ANY(CAST(:keys AS text[]))",
        keys=list(expectations.config_keys),
    )
    if rows is None:
        return
    found = {str(row[0]) for row in rows}
    missing = [key for key in expectations.config_keys if key not in found]
    if missing:
        result.fail("config", f"system_config lacks seeded key(s): {', '.join(missing)}")
    else:
        result.checks_passed.append("config")


def _check_platform_wallet(
    connection: pg8000.native.Connection, expectations: Expectations, result: ValidationResult
) -> None:
    rows = _query(
        connection,
        result,
        "platform_wallet",
        f"""SELECT EXISTS (SELECT 1 FROM {_qualified(expectations, "users")} u
                             JOIN {_qualified(expectations, "wallets")} w ON w.user_id = u.id
                            WHERE u.role = 'admin')""",
    )
    if rows is None:
        return
    if rows[0][0]:
        result.checks_passed.append("platform_wallet")
    else:
        result.fail("platform_wallet", "no admin user with a wallet (the platform wallet auto-confirm pays fees into)")


def _check_money(
    connection: pg8000.native.Connection, expectations: Expectations, present: set[str], result: ValidationResult
) -> None:
    if "wallets" in present:
        rows = _query(
            connection,
            result,
            "balances",
            f"""SELECT count(*), min(user_id) FROM {_qualified(expectations, "wallets")}
                 WHERE available < 0 OR blocked < 0""",
        )
        if rows is not None:
            negative, first_user = int(rows[0][0]), rows[0][1]
            if negative:
                result.fail("balances", f"{negative} wallet(s) with a negative balance (first: user {first_user})")
            else:
                result.checks_passed.append("balances")
    if "orders" in present:
        rows = _query(
            connection,
            result,
            "amounts",
            f"SELECT count(*), min(id) FROM {_qualified(expectations, 'orders')} WHERE amount <= 0",
        )
        if rows is not None:
            bad, first_order = int(rows[0][0]), rows[0][1]
            if bad:
                result.fail("amounts", f"{bad} order(s) with a non-positive amount (first: order {first_order})")
            else:
                result.checks_passed.append("amounts")


# -- the restore-job event ---------------------------------------------------------------------------------

REPORTED_STATUSES = ("COMPLETED", "FAILED", "ABORTED")
"""What the EventBridge rule lets through (detail.status); other states are not final."""

DB_INSTANCE_IDENTIFIER = r"[a-zA-Z][a-zA-Z0-9-]{0,62}"
"""An RDS DB instance identifier: a letter, then letters, digits and hyphens, 63 at most."""

_RDS_INSTANCE_ARN = re.compile(
    rf"^arn:aws[a-z-]*:rds:(?P<region>[a-z0-9-]+):(?P<account>\d{{12}}):db:(?P<id>{DB_INSTANCE_IDENTIFIER})$"
)


@dataclass(frozen=True)
class RestoreJob:
    """The fields of a ``Restore Job State Change`` event this validator uses."""

    restore_job_id: str
    status: str
    resource_type: str
    creation_date: dt.datetime
    completion_date: dt.datetime | None
    created_resource_arn: str | None
    restore_testing_plan_arn: str
    status_message: str | None = None

    @property
    def restore_seconds(self) -> float | None:
        """How long AWS Backup took to restore (completionDate - creationDate): the measured part of the RTO."""
        if self.completion_date is None:
            return None
        return max((self.completion_date - self.creation_date).total_seconds(), 0.0)

    @property
    def db_instance_identifier(self) -> str:
        """The restored instance's identifier, from ``detail.createdResourceArn`` (COMPLETED RDS jobs only)."""
        match = _RDS_INSTANCE_ARN.match(self.created_resource_arn or "")
        if not match:
            raise EventError(
                "event field detail.createdResourceArn must be an RDS DB instance ARN "
                f"(arn:aws:rds:<region>:<account>:db:<id>), got {self.created_resource_arn!r}"
            )
        return match["id"]

    def metrics(self) -> list[MetricValue]:
        """RestoreJobFailed on every reported job (so its sample count is the number of restore tests);
        RestoreTimeSeconds when the job completed."""
        values = [MetricValue("RestoreJobFailed", "Count", 0.0 if self.status == "COMPLETED" else 1.0)]
        seconds = self.restore_seconds
        if self.status == "COMPLETED" and seconds is not None:
            values.append(MetricValue("RestoreTimeSeconds", "Seconds", round(seconds, 3)))
        return values


def parse_restore_event(event: Any) -> RestoreJob:
    """Read an EventBridge ``aws.backup`` ``Restore Job State Change`` event of a restore testing plan.

    Shape (AWS Backup developer guide, "Monitoring AWS Backup events using Amazon EventBridge")::

        {"source": "aws.backup", "detail-type": "Restore Job State Change", "detail": {
            "restoreJobId": "AB12...", "status": "COMPLETED", "resourceType": "RDS",
            "creationDate": "2020-07-15T03:10:01.742Z", "completionDate": "2020-07-15T03:14:53.128Z",
            "createdResourceArn": "arn:aws:rds:us-west-2:111122223333:db:awsbackup-restore-test-...",
            "restoreTestingPlanArn": "arn:aws:backup:...:restore-testing-plan:...", "statusMessage": "..."}}
    """
    if not isinstance(event, Mapping):
        raise EventError(f"event must be a JSON object, got {type(event).__name__}")
    if event.get("source") != "aws.backup":
        raise EventError(f"event field source must be 'aws.backup', got {event.get('source')!r}")
    if event.get("detail-type") != "Restore Job State Change":
        raise EventError(
            f"event field detail-type must be 'Restore Job State Change', got {event.get('detail-type')!r}"
        )
    detail = event.get("detail")
    if not isinstance(detail, Mapping):
        raise EventError(f"event field detail must be an object, got {type(detail).__name__}")

    def text(name: str, *, required: bool = True) -> str | None:
        return _string(detail, name, required=required, kind="a string")

    job_id = text("restoreJobId")
    assert job_id is not None
    status = text("status")
    if status not in REPORTED_STATUSES:
        raise EventError(
            f"event field detail.status must be one of {', '.join(REPORTED_STATUSES)} (the rule's filter), "
            f"got {status!r}"
        )
    plan_arn = text("restoreTestingPlanArn", required=False)
    if plan_arn is None:
        raise EventError(
            "event field detail.restoreTestingPlanArn is missing: not a restore-test job (only those are validated)"
        )
    resource_type = text("resourceType")
    assert resource_type is not None
    creation = _timestamp(detail, "creationDate", required=True)
    assert creation is not None
    completion = _timestamp(detail, "completionDate", required=status == "COMPLETED")
    job = RestoreJob(
        restore_job_id=job_id,
        status=status,
        resource_type=resource_type,
        creation_date=creation,
        completion_date=completion,
        created_resource_arn=text("createdResourceArn", required=status == "COMPLETED"),
        restore_testing_plan_arn=plan_arn,
        status_message=text("statusMessage", required=False),
    )
    if status == "COMPLETED":
        if resource_type != "RDS":
            raise EventError(f"event field detail.resourceType must be 'RDS' (a DB instance), got {resource_type!r}")
        job.db_instance_identifier  # noqa: B018 - validates createdResourceArn now, with the field's name
    return job


def _string(detail: Mapping[str, Any], name: str, *, required: bool, kind: str) -> str | None:
    """detail.<name> as a non-empty string; None when absent and optional; otherwise an error naming the field."""
    value = detail.get(name)
    if value is None or value == "":
        if required:
            raise EventError(f"event field detail.{name} is missing")
        return None
    if not isinstance(value, str):
        raise EventError(f"event field detail.{name} must be {kind}, got {type(value).__name__}")
    return value


def _timestamp(detail: Mapping[str, Any], name: str, *, required: bool) -> dt.datetime | None:
    value = _string(detail, name, required=required, kind="an ISO 8601 string")
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(f"event field detail.{name} is not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise EventError(f"event field detail.{name} has no UTC offset: {value!r}")
    return parsed


def validation_metrics(result: ValidationResult) -> list[MetricValue]:
    return [
        MetricValue("RestoreValidationSucceeded", "Count", 1.0 if result.ok else 0.0),
        MetricValue("ValidationDurationSeconds", "Seconds", round(result.duration_s, 3)),
    ]

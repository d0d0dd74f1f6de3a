"""Auto-confirmation of orders whose client neither confirmed nor disputed within the deadline.

Plain functions over a pg8000 connection and a clock; the Lambda handler and the CLI are thin shells.

Due: ``status = 'awaiting_confirmation' AND provider_completed_at + deadline <= now``, with the deadline
read from ``system_config.confirmation_deadline_hours`` on every run (36 h, plus a warning, when the row
is missing or not a positive number of hours).

Work is done in batches, one transaction each, by a single set-based statement (:data:`BATCH_SQL`):
it locks up to ``batch_size`` due orders with ``FOR NO KEY UPDATE SKIP LOCKED`` (so overlapping runs
share the work and never confirm an order twice), locks the wallets involved in user-id order (so
concurrent batches cannot deadlock; order locks never wait), and then, for the orders that can be
settled, in the same statement:

- ``orders``: status completed, ``auto_confirmed``, ``confirmed_at = now``;
- ``wallets``: client ``blocked - amount``; provider ``available + (amount - fee)``; platform
  ``available + fee`` (the platform wallet is the wallet of the admin with the lowest user id);
- ``transactions``: ``escrow_release`` (client, amount), ``order_payment`` (provider, amount - fee),
  ``platform_fee`` (platform, fee) — a zero move (fee 0, or fee = amount) writes no row;
- ``audit_log``: one ``auto_confirmed`` row per order.

Fee rounding: ``fee = amount * platform_fee_percentage / 100`` rounded to cents, ties to even
(banker's rounding, ABNT NBR 5891; Python's ``Decimal.quantize(..., ROUND_HALF_EVEN)``). The provider
gets ``amount - fee``, so every order moves exactly zero money in total and a run conserves the sum of
all wallets to the cent.

An order that cannot be settled — client or provider wallet missing, or the client's blocked balance
does not cover it (a client's due orders in a batch are covered in (provider_completed_at, id) order,
and once one does not fit, the rest of that client's orders in the batch wait too) — is left awaiting,
reported as ``balance_inconsistency`` and counted as skipped; the rest of the batch proceeds. The batch
loop walks a keyset cursor over (provider_completed_at, id) that only moves forward, so skipped orders
are not picked up again in the same run and the loop always ends; the next run sees them again.

A batch whose statement fails rolls back entirely (no partial money movement); earlier batches stay
committed (each is complete on its own) and the run stops with :class:`BatchFailed`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, NoReturn

from lambdas.shared import logs
from lambdas.shared.metrics import MetricValue

if TYPE_CHECKING:
    import pg8000.native

NAMESPACE = "Shipyard/AutoConfirm"
DEADLINE_KEY = "confirmation_deadline_hours"
FEE_KEY = "platform_fee_percentage"
DEFAULT_DEADLINE_HOURS = Decimal(36)
MAX_DEADLINE_HOURS = Decimal(24 * 366)
# Tuned with bench/bench_auto_confirm.py --sweep: per-order work dominates (2 000 -> 5 000 saved only
# ~10 % of the run), while lock-hold time grows linearly (~0.1 ms per order on a quiet 2-core machine, up
# to 3x that under load). Every batch locks the platform wallet, so API writes to it wait up to one
# batch: 1 000 keeps that near 100 ms and far from the 1 s ceiling even on a busy server.
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 20_000
CENT = Decimal("0.01")
_START_OF_TIME = dt.datetime(1, 1, 1, tzinfo=dt.UTC)

Clock = Callable[[], dt.datetime]

log = logging.getLogger("lambdas.auto_confirm")


class AutoConfirmError(RuntimeError):
    """The run could not complete; ``result`` holds what was committed before the failure."""

    def __init__(self, message: str, result: RunResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class ConfigurationError(AutoConfirmError):
    """Financial configuration the job will not guess (fee percentage, platform wallet)."""


class BatchFailed(AutoConfirmError):
    """One batch's statement failed and was rolled back; batches before it are committed."""


def fee_for(amount: Decimal, fee_percentage: Decimal) -> Decimal:
    """The platform fee, by the documented rule (the SQL in :data:`BATCH_SQL` computes the same)."""
    return (amount * fee_percentage / 100).quantize(CENT, rounding=ROUND_HALF_EVEN)


@dataclass(frozen=True)
class OrderOutcome:
    order_id: int
    client_id: int
    provider_id: int
    amount: Decimal
    fee: Decimal
    provider_completed_at: dt.datetime
    skip_reason: str | None = None

    @property
    def provider_amount(self) -> Decimal:
        return self.amount - self.fee


@dataclass(frozen=True)
class BatchStats:
    selected: int
    confirmed: int
    skipped: int
    duration_ms: float  # from BEGIN to COMMIT returning: the longest any of its locks was held


@dataclass
class RunResult:
    now: dt.datetime
    deadline_hours: Decimal
    fee_percentage: Decimal
    dry_run: bool
    platform_user_id: int | None = None
    confirmed: int = 0
    amount_released: Decimal = Decimal("0.00")
    fees: Decimal = Decimal("0.00")
    oldest_overdue_seconds: float = 0.0
    skipped: list[OrderOutcome] = field(default_factory=list)
    confirmed_orders: list[OrderOutcome] = field(default_factory=list)  # only with collect_orders=True
    batches: list[BatchStats] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stopped_early: bool = False
    duration_ms: float = 0.0

    @property
    def max_batch_ms(self) -> float:
        return max((batch.duration_ms for batch in self.batches), default=0.0)

    def metrics(self, *, failed: bool = False) -> list[MetricValue]:
        """The run's CloudWatch metrics (namespace :data:`NAMESPACE`, dimension Stack)."""
        return [
            MetricValue("OrdersConfirmed", "Count", self.confirmed),
            MetricValue("AmountReleased", "None", float(self.amount_released)),
            MetricValue("OldestOverdueSeconds", "Seconds", self.oldest_overdue_seconds),
            MetricValue("OrdersSkipped", "Count", len(self.skipped)),
            MetricValue("RunDurationMs", "Milliseconds", self.duration_ms),
            MetricValue("MaxBatchDurationMs", "Milliseconds", self.max_batch_ms),
            MetricValue("RunFailed", "Count", 1 if failed else 0),
        ]

    def summary(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "deadline_hours": str(self.deadline_hours),
            "fee_percentage": str(self.fee_percentage),
            "confirmed": self.confirmed,
            "amount_released": str(self.amount_released),
            "fees": str(self.fees),
            "skipped": len(self.skipped),
            "skipped_orders": [outcome.order_id for outcome in self.skipped[:50]],
            "oldest_overdue_seconds": self.oldest_overdue_seconds,
            "batches": len(self.batches),
            "max_batch_ms": round(self.max_batch_ms, 1),
            "duration_ms": round(self.duration_ms, 1),
            "stopped_early": self.stopped_early,
            "warnings": self.warnings,
        }


# One batch, one statement. Parameters: cutoff, after_ts, after_id, batch_size, fee_pct, platform,
# now, deadline_hours, detail. Data-modifying CTEs all see one snapshot and run exactly once, so each
# table is written by exactly one of them, and wallet deltas are aggregated per user first (a row can
# be updated only once per statement). The wallet rows are already locked by `locked`, so the UPDATE
# applies its deltas to their latest committed versions.
BATCH_SQL = """
WITH due AS (
    SELECT o.id, o.client_id, o.provider_id, o.amount, o.provider_completed_at
    FROM orders o
    WHERE o.status = 'awaiting_confirmation'
      AND o.provider_completed_at <= CAST(:cutoff AS timestamptz)
      AND (o.provider_completed_at, o.id) > (CAST(:after_ts AS timestamptz), CAST(:after_id AS bigint))
    ORDER BY o.provider_completed_at, o.id
    LIMIT CAST(:batch_size AS integer)
    FOR NO KEY UPDATE OF o SKIP LOCKED
),
priced AS (
    SELECT d.*,
           -- fee in cents, ties to even: amount * pct / 100 in currency = amount * pct in cents
           CAST(CASE WHEN d.amount * CAST(:fee_pct AS numeric)
                               - floor(d.amount * CAST(:fee_pct AS numeric)) = 0.5
                     THEN floor(d.amount * CAST(:fee_pct AS numeric))
                          + mod(floor(d.amount * CAST(:fee_pct AS numeric)), 2)
                     ELSE round(d.amount * CAST(:fee_pct AS numeric))
                END / 100 AS numeric(14, 2)) AS fee,
           sum(d.amount) OVER (PARTITION BY d.client_id
                               ORDER BY d.provider_completed_at, d.id) AS client_needs
    FROM due d
),
locked AS (
    SELECT w.user_id, w.blocked
    FROM wallets w
    WHERE w.user_id IN (SELECT client_id FROM due
                        UNION SELECT provider_id FROM due
                        UNION SELECT CAST(:platform AS bigint))
    ORDER BY w.user_id
    FOR NO KEY UPDATE
),
judged AS (
    SELECT p.*,
           CASE WHEN NOT EXISTS (SELECT 1 FROM locked WHERE user_id = CAST(:platform AS bigint))
                     THEN 'platform_wallet_missing'
                WHEN cw.user_id IS NULL THEN 'client_wallet_missing'
                WHEN pw.user_id IS NULL THEN 'provider_wallet_missing'
                WHEN p.client_needs > cw.blocked THEN 'insufficient_blocked_balance'
           END AS skip_reason,
           cw.blocked AS client_blocked
    FROM priced p
    LEFT JOIN locked cw ON cw.user_id = p.client_id
    LEFT JOIN locked pw ON pw.user_id = p.provider_id
),
settled AS (
    SELECT * FROM judged WHERE skip_reason IS NULL
),
confirmed AS (
    UPDATE orders o
    SET status = 'completed', auto_confirmed = true,
        confirmed_at = CAST(:now AS timestamptz), updated_at = CAST(:now AS timestamptz)
    FROM settled s
    WHERE o.id = s.id
    RETURNING o.id
),
deltas AS (
    SELECT user_id, sum(d_available) AS d_available, sum(d_blocked) AS d_blocked
    FROM (
        SELECT client_id AS user_id, 0 AS d_available, -amount AS d_blocked FROM settled
        UNION ALL
        SELECT provider_id, amount - fee, 0 FROM settled
        UNION ALL
        SELECT CAST(:platform AS bigint), fee, 0 FROM settled
    ) moves
    GROUP BY user_id
),
moved AS (
    UPDATE wallets w
    SET available = w.available + d.d_available,
        blocked = w.blocked + d.d_blocked,
        updated_at = CAST(:now AS timestamptz)
    FROM deltas d
    WHERE w.user_id = d.user_id
    RETURNING w.user_id
),
ledger AS (
    INSERT INTO transactions (order_id, user_id, kind, amount, created_at)
    SELECT id, client_id, 'escrow_release', amount, CAST(:now AS timestamptz) FROM settled
    UNION ALL
    SELECT id, provider_id, 'order_payment', amount - fee, CAST(:now AS timestamptz)
    FROM settled WHERE amount > fee
    UNION ALL
    SELECT id, CAST(:platform AS bigint), 'platform_fee', fee, CAST(:now AS timestamptz)
    FROM settled WHERE fee > 0
    RETURNING 1
),
audited AS (
    INSERT INTO audit_log (entity, entity_id, action, details, created_at)
    SELECT 'order', id, 'auto_confirmed',
           jsonb_build_object(
               'amount', amount::text, 'fee', fee::text, 'provider_amount', (amount - fee)::text,
               'client_id', client_id, 'provider_id', provider_id,
               'platform_user_id', CAST(:platform AS bigint),
               'provider_completed_at', provider_completed_at,
               'deadline_hours', CAST(:deadline_hours AS numeric)::text,
               'by', 'auto_confirm'),
           CAST(:now AS timestamptz)
    FROM settled
    RETURNING 1
),
last_key AS (
    SELECT provider_completed_at, id FROM due ORDER BY provider_completed_at DESC, id DESC LIMIT 1
)
SELECT
    (SELECT count(*) FROM due) AS selected,
    (SELECT count(*) FROM settled) AS settled,
    (SELECT count(*) FROM confirmed) AS confirmed,
    (SELECT count(*) FROM deltas) AS wallets_expected,
    (SELECT count(*) FROM moved) AS wallets_moved,
    (SELECT count(*) FROM ledger) AS ledger_rows,
    (SELECT count(*) FROM audited) AS audit_rows,
    (SELECT coalesce(sum(amount), 0) FROM settled) AS released,
    (SELECT coalesce(sum(fee), 0) FROM settled) AS fees,
    (SELECT provider_completed_at FROM last_key) AS last_ts,
    (SELECT id FROM last_key) AS last_id,
    (SELECT json_agg(json_build_array(id, client_id, provider_id, amount::text, fee::text,
                                      provider_completed_at, skip_reason, client_blocked::text)
                     ORDER BY provider_completed_at, id)
     FROM judged WHERE skip_reason IS NOT NULL) AS skipped,
    CASE WHEN CAST(:detail AS boolean) THEN
        (SELECT json_agg(json_build_array(id, client_id, provider_id, amount::text, fee::text,
                                          provider_completed_at)
                         ORDER BY provider_completed_at, id)
         FROM settled)
    END AS settled_detail
"""

OLDEST_OVERDUE_SQL = """
SELECT min(provider_completed_at) FROM orders
WHERE status = 'awaiting_confirmation' AND provider_completed_at <= CAST(:cutoff AS timestamptz)
"""

PLATFORM_USER_SQL = """
SELECT u.id, w.user_id IS NOT NULL AS has_wallet
FROM users u LEFT JOIN wallets w ON w.user_id = u.id
WHERE u.role = 'admin'
ORDER BY u.id
LIMIT 1
"""


def read_deadline_hours(connection: pg8000.native.Connection, warnings: list[str]) -> Decimal:
    rows = connection.run("SELECT value FROM system_config WHERE key = :key", key=DEADLINE_KEY)
    if not rows:
        problem = f"system_config.{DEADLINE_KEY} is missing"
    else:
        raw = rows[0][0]
        try:
            hours = Decimal(str(raw).strip())
        except InvalidOperation:
            hours = Decimal("NaN")
        if hours.is_finite() and 0 < hours <= MAX_DEADLINE_HOURS:
            return hours
        problem = f"system_config.{DEADLINE_KEY} = {raw!r} is not a number of hours in (0, {MAX_DEADLINE_HOURS}]"
    message = f"{problem}; using the default {DEFAULT_DEADLINE_HOURS} h"
    warnings.append(message)
    logs.log_event(log, logs.CONFIG_WARNING, message, level=logging.WARNING, key=DEADLINE_KEY)
    return DEFAULT_DEADLINE_HOURS


def read_fee_percentage(connection: pg8000.native.Connection) -> Decimal:
    """No default: guessing a fee would move the wrong amounts of money. The run fails instead."""
    rows = connection.run("SELECT value FROM system_config WHERE key = :key", key=FEE_KEY)
    if not rows:
        raise ConfigurationError(f"system_config.{FEE_KEY} is missing; refusing to guess the platform fee")
    raw = rows[0][0]
    try:
        percentage = Decimal(str(raw).strip())
    except InvalidOperation:
        percentage = Decimal("NaN")
    if not (percentage.is_finite() and 0 <= percentage <= 100):
        raise ConfigurationError(f"system_config.{FEE_KEY} = {raw!r} is not a percentage in [0, 100]")
    return percentage


def find_platform_user(connection: pg8000.native.Connection) -> int:
    rows = connection.run(PLATFORM_USER_SQL)
    if not rows:
        raise ConfigurationError("no platform wallet: there is no user with role 'admin'")
    user_id, has_wallet = rows[0]
    if not has_wallet:
        raise ConfigurationError(f"no platform wallet: admin user {user_id} has no row in wallets")
    return int(user_id)


UNMIGRATED_SQLSTATES = frozenset({"42P01", "42703", "42883"})
"""undefined_table, undefined_column, undefined_function: the schema the job reads is not there (yet)."""


def preflight_error(error: Exception) -> AutoConfirmError:
    """What reading the settings failed on, in words: an un-migrated database says how to fix it."""
    from lambdas.shared.db import describe_error, sqlstate

    cause = describe_error(error)
    if sqlstate(error) in UNMIGRATED_SQLSTATES:
        return ConfigurationError(
            f"the database has no auto-confirm schema ({cause}): run app.migrate first "
            "(python -m app.migrate --database-url URL)"
        )
    if cause == "timed out":
        cause = "no answer from the server to a statement (phase: statement)"
    return AutoConfirmError(f"reading system_config and the platform wallet failed: {cause}")


def run(
    connection: pg8000.native.Connection,
    clock: Clock,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    dry_run: bool = False,
    collect_orders: bool = False,
    time_left_s: Callable[[], float] | None = None,
) -> RunResult:
    """Confirm every order due at ``clock()``; see the module docstring for the rules.

    ``dry_run`` does everything in ONE transaction and rolls it back, so the result is exactly what a run
    would do now (cumulative balances included); it holds its locks until the end, so keep it for people.
    ``collect_orders`` fills ``confirmed_orders`` (the CLI prints them; the Lambda only needs totals).
    ``time_left_s`` lets the handler stop starting new batches before the Lambda times out.
    """
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, got {batch_size}")
    started = time.monotonic()
    now = clock()
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("the clock must return an aware datetime (UTC)")
    warnings: list[str] = []
    try:
        deadline_hours = read_deadline_hours(connection, warnings)
        result = RunResult(
            now=now, deadline_hours=deadline_hours, fee_percentage=Decimal(0), dry_run=dry_run, warnings=warnings
        )
        result.fee_percentage = read_fee_percentage(connection)
        result.platform_user_id = find_platform_user(connection)
        cutoff = now - dt.timedelta(seconds=float(deadline_hours * 3600))
        oldest = connection.run(OLDEST_OVERDUE_SQL, cutoff=cutoff)[0][0]
    except AutoConfirmError:
        raise
    except Exception as error:
        raise preflight_error(error) from error
    result.oldest_overdue_seconds = 0.0 if oldest is None else round((cutoff - oldest).total_seconds(), 3)

    after_ts, after_id = _START_OF_TIME, 0
    if dry_run:
        connection.run("START TRANSACTION")
    try:
        while True:
            if time_left_s is not None and time_left_s() <= 0:
                result.stopped_early = True
                break
            batch_started = time.monotonic()
            if not dry_run:
                connection.run("START TRANSACTION")
            try:
                row = connection.run(
                    BATCH_SQL,
                    cutoff=cutoff,
                    after_ts=after_ts,
                    after_id=after_id,
                    batch_size=batch_size,
                    fee_pct=result.fee_percentage,
                    platform=result.platform_user_id,
                    now=now,
                    deadline_hours=deadline_hours,
                    detail=collect_orders,
                )[0]
                _check_batch(row)
                if not dry_run:
                    connection.run("COMMIT")
            except Exception as error:
                if not dry_run:
                    _rollback_quietly(connection)
                _fail_batch(result, error, after_ts, after_id, batch_size)
            selected = int(row[0])
            if selected == 0:
                break
            skipped = [_outcome(item) for item in row[11] or []]
            result.batches.append(
                BatchStats(selected, int(row[2]), len(skipped), (time.monotonic() - batch_started) * 1000)
            )
            result.confirmed += int(row[2])
            result.amount_released += Decimal(row[7])
            result.fees += Decimal(row[8])
            result.skipped.extend(skipped)
            if collect_orders:
                result.confirmed_orders.extend(_outcome(item) for item in row[12] or [])
            for outcome in skipped:
                _report_skip(outcome, dry_run)
            after_ts, after_id = row[9], int(row[10])
            if selected < batch_size:  # the index range ran out: nothing due is left unlocked
                break
    finally:
        if dry_run:
            _rollback_quietly(connection)
    result.duration_ms = round((time.monotonic() - started) * 1000, 1)
    return result


def _check_batch(row: list[Any]) -> None:
    """Cross-check the statement's own counts; a mismatch means money moved wrongly: roll back."""
    selected, settled, confirmed, wallets_expected, wallets_moved, ledger_rows, audit_rows = map(int, row[:7])
    if confirmed != settled or wallets_moved != wallets_expected or audit_rows != settled:
        raise AutoConfirmError(
            f"batch bookkeeping mismatch (selected {selected}, settled {settled}, "
            f"orders updated {confirmed}, "
            f"wallets {wallets_moved}/{wallets_expected}, ledger rows {ledger_rows}, audit rows {audit_rows})"
        )


def _fail_batch(result: RunResult, error: Exception, after_ts: dt.datetime, after_id: int, batch_size: int) -> NoReturn:
    from lambdas.shared.db import describe_error

    message = (
        f"batch {len(result.batches) + 1} rolled back, no money moved for it: {describe_error(error)}; "
        f"{result.confirmed} orders confirmed by earlier batches stay committed"
    )
    logs.log_event(
        log,
        logs.FINANCIAL_ERROR,
        message,
        batch=len(result.batches) + 1,
        after_provider_completed_at=after_ts.isoformat(),
        after_order_id=after_id,
        batch_size=batch_size,
        confirmed_before_failure=result.confirmed,
    )
    raise BatchFailed(message, result) from error


def _rollback_quietly(connection: pg8000.native.Connection) -> None:
    try:
        connection.run("ROLLBACK")
    except Exception:  # the connection may be gone; the server rolls back on disconnect anyway
        log.debug("rollback failed", exc_info=True)


def _outcome(item: list[Any]) -> OrderOutcome:
    completed_at = dt.datetime.fromisoformat(item[5])
    return OrderOutcome(
        order_id=int(item[0]),
        client_id=int(item[1]),
        provider_id=int(item[2]),
        amount=Decimal(item[3]),
        fee=Decimal(item[4]),
        provider_completed_at=completed_at,
        skip_reason=item[6] if len(item) > 6 else None,
    )


def _report_skip(outcome: OrderOutcome, dry_run: bool) -> None:
    logs.log_event(
        log,
        logs.BALANCE_INCONSISTENCY,
        f"order {outcome.order_id} not auto-confirmed: {outcome.skip_reason}",
        level=logging.WARNING if dry_run else logging.ERROR,
        order_id=outcome.order_id,
        reason=outcome.skip_reason,
        client_id=outcome.client_id,
        provider_id=outcome.provider_id,
        amount=str(outcome.amount),
        dry_run=dry_run,
    )

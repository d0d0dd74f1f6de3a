"""Run the auto-confirm job by hand.

    python -m lambdas.auto_confirm --database-url URL [--dry-run] [--now ISO] [--batch-size N]

Prints one line per order confirmed (or, with --dry-run, that would be confirmed) and per order skipped,
then a summary; warnings and errors go to stderr as JSON log lines. Exit status: 0 done (skipped orders
are not a failure), 1 the run failed, 2 bad arguments. The URL takes ``?sslmode=disable|require|
verify-full`` (default require) and ``sslrootcert=PATH`` for verify-full.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Callable

from lambdas.auto_confirm import core
from lambdas.shared import logs


def _parse_now(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {value!r}") from None
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no UTC offset; write e.g. 2026-01-31T12:00:00Z")
    return parsed.astimezone(dt.UTC)


def _parse_batch_size(value: str) -> int:
    try:
        size = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 1 <= size <= core.MAX_BATCH_SIZE:
        raise argparse.ArgumentTypeError(f"must be between 1 and {core.MAX_BATCH_SIZE}")
    return size


def _overdue(outcome: core.OrderOutcome, result: core.RunResult) -> str:
    due_at = outcome.provider_completed_at + dt.timedelta(seconds=float(result.deadline_hours * 3600))
    seconds = int((result.now - due_at).total_seconds())
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdas.auto_confirm", description=__doc__.split("\n")[1])
    parser.add_argument("--database-url", required=True, help="postgresql://user:password@host:port/db[?sslmode=...]")
    parser.add_argument("--dry-run", action="store_true", help="show what would be confirmed; change nothing")
    parser.add_argument("--now", type=_parse_now, help="evaluate the deadline at this time (ISO 8601 with offset)")
    parser.add_argument("--batch-size", type=_parse_batch_size, default=core.DEFAULT_BATCH_SIZE)
    args = parser.parse_args(argv)

    from lambdas.shared import db

    logs.get_logger("lambdas.auto_confirm", stream=sys.stderr)
    fixed_now: dt.datetime | None = args.now
    clock: Callable[[], dt.datetime] = (lambda: fixed_now) if fixed_now else (lambda: dt.datetime.now(dt.UTC))
    try:
        endpoint, credentials, tls = db.parse_database_url(args.database_url)
    except db.DatabaseConfigError as error:  # a bad argument: exit 2, as argparse does
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 2
    try:
        connection = db.connect(endpoint, credentials, tls=tls, application_name="shipyard-auto-confirm-cli")
    except db.DatabaseUnavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        result = core.run(connection, clock, batch_size=args.batch_size, dry_run=args.dry_run, collect_orders=True)
    except core.AutoConfirmError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # e.g. the connection dropped mid-run: one line, never a traceback
        print(f"error: auto-confirm run failed: {db.describe_error(error)}", file=sys.stderr)
        return 1
    finally:
        connection.close()

    verb = "would confirm" if args.dry_run else "confirmed"
    for order in result.confirmed_orders:
        print(
            f"{verb} order {order.order_id}: amount {order.amount}, fee {order.fee}, "
            f"provider {order.provider_id} receives {order.provider_amount}, client {order.client_id} "
            f"(overdue {_overdue(order, result)})"
        )
    for order in result.skipped:
        print(f"skipped order {order.order_id}: {order.skip_reason} (client {order.client_id}, amount {order.amount})")
    for warning in result.warnings:
        print(f"warning: {warning}")
    print(
        f"{'dry run' if args.dry_run else 'done'} at {result.now.isoformat()}: "
        f"{verb} {result.confirmed} orders, "
        f"released {result.amount_released} (platform fees {result.fees}), skipped {len(result.skipped)}; "
        f"deadline {result.deadline_hours} h, fee {result.fee_percentage} %, "
        f"{len(result.batches)} batches, {result.duration_ms:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Auto-confirm job vs a per-order loop vs one bare UPDATE, side by side on one PostgreSQL server.

    .venv/bin/python bench/bench_auto_confirm.py [--orders 100000] [--batch-size N] [--loop-sample 2000]
                                                 [--repeats 3] [--fast-commits] [--sweep 500,1000,5000]

Starts its own embedded PostgreSQL 18 (durable commits, i.e. fsync on, unless --fast-commits), builds
a template database once (N due orders, their clients' and providers' wallets, plus not-yet-due and
already-completed orders so the index has to discriminate), and clones it for every measured run so
each starts from identical data:

- job: lambdas.auto_confirm.core.run, exactly as the Lambda runs it;
- loop: the seed's way, one transaction per order (lock the order and the client's wallet, update three
  wallets and the order, insert three transactions and one audit row, commit), with prepared statements
  so the driver is not what is measured; timed on the first --loop-sample due orders and extrapolated
  linearly to N (printed as such);
- bare UPDATE: ``UPDATE orders SET status='completed', ... WHERE <due>`` in one transaction: the floor
  for touching those rows at all (no money moves, no ledger, no audit);
- same writes: every row the job must write by the issue's contract (the order, three ledger rows, one
  audit row, the wallets), as one statement in one transaction with no locking, no checks and no
  batching: the floor for doing this job at all on this schema, with its foreign keys and indexes.

Prints medians over --repeats, the ratios, and the longest time any job batch held its locks (BEGIN to
COMMIT), against the goals: >= 20x faster than the loop, <= 3x the bare UPDATE, no batch over 1 s. The
same-writes lines show how much of each ratio is the writes themselves: no single run that writes the
contract's rows can beat the floor, so "same writes vs loop" bounds the first goal on this server (the loop
is mostly 100 000 commits, so it moves with the disk's flush latency). See lambdas/auto_confirm/README.md,
"Performance".
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a plain script from anywhere

from app.migrate import migrate
from lambdas.auto_confirm import core
from tests.conftest import EmbeddedPostgres, database_name

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DEADLINE = dt.timedelta(hours=36)

SEED_SQL = """
SELECT setseed(0.42);
INSERT INTO users (email, role) VALUES ('platform@example.com', 'admin');
INSERT INTO users (email, role)
    SELECT 'client' || g || '@example.com', 'client' FROM generate_series(1, {clients}) g;
INSERT INTO users (email, role)
    SELECT 'provider' || g || '@example.com', 'provider' FROM generate_series(1, {providers}) g;
-- due orders: done by the provider between 36 h and ~10 days ago
INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at)
    SELECT 2 + (g % {clients}), 2 + {clients} + (g % {providers}),
           round((10 + random() * 490)::numeric, 2), 'awaiting_confirmation',
           TIMESTAMPTZ '{cutoff}' - (random() * interval '8 days')
    FROM generate_series(1, {due}) g;
-- awaiting but not due yet, and history the job must not touch
INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at)
    SELECT 2 + (g % {clients}), 2 + {clients} + (g % {providers}),
           round((10 + random() * 490)::numeric, 2), 'awaiting_confirmation',
           TIMESTAMPTZ '{cutoff}' + (1 + random() * 35) * interval '1 hour'
    FROM generate_series(1, {not_due}) g;
INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at, confirmed_at)
    SELECT 2 + (g % {clients}), 2 + {clients} + (g % {providers}),
           round((10 + random() * 490)::numeric, 2), 'completed',
           TIMESTAMPTZ '{cutoff}' - interval '30 days', TIMESTAMPTZ '{cutoff}' - interval '29 days'
    FROM generate_series(1, {history}) g;
-- clients' blocked balances hold exactly their awaiting orders (the escrow)
INSERT INTO wallets (user_id, available, blocked)
    SELECT u.id, 0, coalesce(escrow.total, 0)
    FROM users u
    LEFT JOIN (SELECT client_id, sum(amount) AS total FROM orders
               WHERE status = 'awaiting_confirmation' GROUP BY client_id) escrow ON escrow.client_id = u.id;
"""

DUE_WHERE = "status = 'awaiting_confirmation' AND provider_completed_at <= CAST(:cutoff AS timestamptz)"


def build_template(server: EmbeddedPostgres, orders: int) -> str:
    name = "bench_template"
    url = server.create_database(name)
    migrate(url)
    connection = server.connect(name)
    try:
        connection.run(
            SEED_SQL.format(
                clients=max(orders // 5, 10),
                providers=max(orders // 20, 10),
                due=orders,
                not_due=orders // 5,
                history=orders // 2,
                cutoff=(NOW - DEADLINE).isoformat(),
            )
        )
        connection.run("VACUUM ANALYZE")
    finally:
        connection.close()
    return name


def fresh_copy(server: EmbeddedPostgres, template: str) -> str:
    url = server.create_database(template=template)
    connection = server.connect(database_name(url))
    try:
        connection.run("CHECKPOINT")
    finally:
        connection.close()
    return database_name(url)


@contextmanager
def on_fresh_copy(server: EmbeddedPostgres, template: str) -> Iterator[Any]:
    """A connection to a new copy of the template, dropped afterwards: every measured run starts equal."""
    database = fresh_copy(server, template)
    connection = server.connect(database)
    try:
        yield connection
    finally:
        connection.close()
        server.drop_database(database)


def total_money(connection: object) -> Decimal:
    rows = connection.run("SELECT sum(available + blocked) FROM wallets")  # type: ignore[attr-defined]
    return Decimal(rows[0][0])


def run_job(server: EmbeddedPostgres, template: str, orders: int, batch_size: int) -> tuple[float, float, int]:
    with on_fresh_copy(server, template) as connection:
        before = total_money(connection)
        started = time.perf_counter()
        result = core.run(connection, lambda: NOW, batch_size=batch_size)
        elapsed = time.perf_counter() - started
        left = connection.run(f"SELECT count(*) FROM orders WHERE {DUE_WHERE}", cutoff=NOW - DEADLINE)[0][0]
        if result.confirmed != orders or left != 0 or total_money(connection) != before or result.skipped:
            raise SystemExit(f"job result is wrong: {result.summary()} left={left}")
        return elapsed, result.max_batch_ms, len(result.batches)


def run_loop(server: EmbeddedPostgres, template: str, sample: int) -> float:
    """The seed's way on the first `sample` due orders; returns seconds for the sample."""
    with on_fresh_copy(server, template) as connection:
        fee_pct = Decimal(connection.run("SELECT value FROM system_config WHERE key = 'platform_fee_percentage'")[0][0])
        platform = connection.run("SELECT min(id) FROM users WHERE role = 'admin'")[0][0]
        ids = [
            row[0]
            for row in connection.run(
                f"SELECT id FROM orders WHERE {DUE_WHERE} ORDER BY provider_completed_at, id LIMIT :n",
                cutoff=NOW - DEADLINE,
                n=sample,
            )
        ]
        lock_order = connection.prepare(
            "SELECT client_id, provider_id, amount FROM orders WHERE id = :id "
            "AND status = 'awaiting_confirmation' FOR UPDATE"
        )
        lock_wallet = connection.prepare("SELECT blocked FROM wallets WHERE user_id = :user_id FOR UPDATE")
        debit_blocked = connection.prepare(
            "UPDATE wallets SET blocked = blocked - :amount, updated_at = :now WHERE user_id = :user_id"
        )
        credit = connection.prepare(
            "UPDATE wallets SET available = available + :amount, updated_at = :now WHERE user_id = :user_id"
        )
        complete = connection.prepare(
            "UPDATE orders SET status = 'completed', auto_confirmed = true, confirmed_at = :now, "
            "updated_at = :now WHERE id = :id"
        )
        ledger = connection.prepare(
            "INSERT INTO transactions (order_id, user_id, kind, amount, created_at) "
            "VALUES (:order_id, :user_id, :kind, :amount, :now)"
        )
        audit = connection.prepare(
            "INSERT INTO audit_log (entity, entity_id, action, details, created_at) "
            "VALUES ('order', :id, 'auto_confirmed', CAST(:details AS jsonb), :now)"
        )
        started = time.perf_counter()
        for order_id in ids:
            connection.run("START TRANSACTION")
            client_id, provider_id, amount = lock_order.run(id=order_id)[0]
            lock_wallet.run(user_id=client_id)
            fee = core.fee_for(amount, fee_pct)
            debit_blocked.run(amount=amount, now=NOW, user_id=client_id)
            credit.run(amount=amount - fee, now=NOW, user_id=provider_id)
            credit.run(amount=fee, now=NOW, user_id=platform)
            complete.run(now=NOW, id=order_id)
            ledger.run(order_id=order_id, user_id=client_id, kind="escrow_release", amount=amount, now=NOW)
            ledger.run(order_id=order_id, user_id=provider_id, kind="order_payment", amount=amount - fee, now=NOW)
            ledger.run(order_id=order_id, user_id=platform, kind="platform_fee", amount=fee, now=NOW)
            audit.run(id=order_id, details=f'{{"amount": "{amount}", "fee": "{fee}"}}', now=NOW)
            connection.run("COMMIT")
        return time.perf_counter() - started


def run_bare_update(server: EmbeddedPostgres, template: str, orders: int) -> float:
    with on_fresh_copy(server, template) as connection:
        started = time.perf_counter()
        connection.run("START TRANSACTION")
        connection.run(
            f"UPDATE orders SET status = 'completed', auto_confirmed = true, confirmed_at = :now, "
            f"updated_at = :now WHERE {DUE_WHERE}",
            now=NOW,
            cutoff=NOW - DEADLINE,
        )
        updated = connection.row_count
        connection.run("COMMIT")
        elapsed = time.perf_counter() - started
        if updated != orders:
            raise SystemExit(f"bare UPDATE touched {updated} rows, expected {orders}")
        return elapsed


SAME_WRITES_SQL = f"""
WITH due AS (
    SELECT id, client_id, provider_id, amount,
           round(amount * CAST(:fee_pct AS numeric) / 100, 2) AS fee, provider_completed_at
    FROM orders WHERE {DUE_WHERE}
), completed AS (
    UPDATE orders SET status = 'completed', auto_confirmed = true, confirmed_at = :now, updated_at = :now
    FROM due WHERE orders.id = due.id
    RETURNING 1
), ledger AS (
    INSERT INTO transactions (order_id, user_id, kind, amount, created_at)
    SELECT id, client_id, 'escrow_release', amount, :now FROM due
    UNION ALL SELECT id, provider_id, 'order_payment', amount - fee, :now FROM due WHERE amount > fee
    UNION ALL SELECT id, CAST(:platform AS bigint), 'platform_fee', fee, :now FROM due WHERE fee > 0
    RETURNING 1
), audited AS (
    INSERT INTO audit_log (entity, entity_id, action, details, created_at)
    SELECT 'order', id, 'auto_confirmed',
           jsonb_build_object('amount', amount::text, 'fee', fee::text, 'provider_amount', (amount - fee)::text,
                              'client_id', client_id, 'provider_id', provider_id,
                              'platform_user_id', CAST(:platform AS bigint),
                              'provider_completed_at', provider_completed_at, 'by', 'auto_confirm'),
           :now
    FROM due
    RETURNING 1
), deltas AS (
    SELECT user_id, sum(d_available) AS d_available, sum(d_blocked) AS d_blocked
    FROM (SELECT client_id AS user_id, 0 AS d_available, -amount AS d_blocked FROM due
          UNION ALL SELECT provider_id, amount - fee, 0 FROM due
          UNION ALL SELECT CAST(:platform AS bigint), fee, 0 FROM due) moves
    GROUP BY user_id
), moved AS (
    UPDATE wallets SET available = available + deltas.d_available, blocked = blocked + deltas.d_blocked,
                       updated_at = :now
    FROM deltas WHERE wallets.user_id = deltas.user_id
    RETURNING 1
)
SELECT (SELECT count(*) FROM completed), (SELECT count(*) FROM ledger), (SELECT count(*) FROM audited),
       (SELECT count(*) FROM moved)
"""


def run_same_writes(server: EmbeddedPostgres, template: str, orders: int) -> float:
    """Every row the job writes, as one unbatched, unchecked statement: the floor for this schema."""
    with on_fresh_copy(server, template) as connection:
        fee_pct = Decimal(connection.run("SELECT value FROM system_config WHERE key = 'platform_fee_percentage'")[0][0])
        platform = connection.run("SELECT min(id) FROM users WHERE role = 'admin'")[0][0]
        started = time.perf_counter()
        connection.run("START TRANSACTION")
        completed, _ledger, audited, _wallets = connection.run(
            SAME_WRITES_SQL, now=NOW, cutoff=NOW - DEADLINE, fee_pct=fee_pct, platform=platform
        )[0]
        connection.run("COMMIT")
        elapsed = time.perf_counter() - started
        if completed != orders or audited != orders:
            raise SystemExit(f"same-writes statement completed {completed} orders, expected {orders}")
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=core.DEFAULT_BATCH_SIZE)
    parser.add_argument("--loop-sample", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fast-commits", action="store_true", help="fsync off (commits cost nothing)")
    parser.add_argument(
        "--sweep",
        default="",
        help="comma-separated batch sizes to time the job with as well (how DEFAULT_BATCH_SIZE was chosen)",
    )
    args = parser.parse_args()
    sample = min(args.loop_sample, args.orders)

    with EmbeddedPostgres(durable=not args.fast_commits) as server:
        started = time.perf_counter()
        template = build_template(server, args.orders)
        print(
            f"PostgreSQL 18 on 127.0.0.1, "
            f"{'fsync off' if args.fast_commits else 'durable commits (fsync on)'}; "
            f"{args.orders} due orders (+{args.orders // 5} not yet due, +{args.orders // 2} completed); "
            f"data built in {time.perf_counter() - started:.1f} s; medians of {args.repeats}"
        )
        job, max_batch, loop, bare, writes = [], [], [], [], []
        batches = 0
        for _ in range(args.repeats):
            seconds, batch_ms, batches = run_job(server, template, args.orders, args.batch_size)
            job.append(seconds)
            max_batch.append(batch_ms)
            loop.append(run_loop(server, template, sample) * args.orders / sample)
            bare.append(run_bare_update(server, template, args.orders))
            writes.append(run_same_writes(server, template, args.orders))
        sweep = []
        for size in (int(item) for item in args.sweep.split(",") if item.strip()):
            seconds, batch_ms, count = run_job(server, template, args.orders, size)
            sweep.append((size, seconds, batch_ms, count))

    job_s, loop_s, bare_s = statistics.median(job), statistics.median(loop), statistics.median(bare)
    writes_s = statistics.median(writes)
    worst_batch_ms = max(max_batch)
    print(f"job (batch size {args.batch_size}, {batches} batches): {job_s:8.2f} s")
    print(f"per-order loop (extrapolated from {sample} orders):  {loop_s:8.2f} s")
    print(f"bare UPDATE of the same rows:                      {bare_s:8.2f} s")
    print(f"same writes, one unchecked statement (the floor):  {writes_s:8.2f} s")
    print(f"job vs loop:        {loop_s / job_s:6.1f}x faster   (goal >= 20x)")
    print(f"job vs bare UPDATE: {job_s / bare_s:6.2f}x slower   (goal <= 3x)")
    print(f"same writes vs bare UPDATE: {writes_s / bare_s:6.2f}x   (what the contract's rows cost before any logic)")
    print(f"job vs same writes:         {job_s / writes_s:6.2f}x   (the cost of batching, locking and checks)")
    print(f"same writes vs loop:        {loop_s / writes_s:6.1f}x faster   (no single run gains more)")
    print(f"longest batch holding locks: {worst_batch_ms:.0f} ms (goal <= 1000 ms)")
    for size, seconds, batch_ms, count in sweep:
        print(f"  sweep: batch size {size:6d}: {seconds:6.2f} s, {count:4d} batches, longest {batch_ms:5.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())

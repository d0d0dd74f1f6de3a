"""Eight overlapping runs over 10 000 due orders: each confirmed exactly once, money conserved."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from lambdas.auto_confirm import core

from .auto_confirm_support import DEADLINE, NOW, Marketplace

pytestmark = pytest.mark.postgres


ORDERS = 10_000
RUNS = 8
CLIENTS = 40  # few wallets, so the runs' batches fight over the same rows
PROVIDERS = 15


def test_eight_concurrent_runs_confirm_each_order_exactly_once(market: Marketplace) -> None:
    platform = market.user("admin", available="0")
    connection = market.connection
    connection.run(
        """
        INSERT INTO users (email, role)
            SELECT 'c' || g || '@example.com', 'client' FROM generate_series(1, :clients) g;
        """.replace(":clients", str(CLIENTS))
    )
    connection.run(
        "INSERT INTO users (email, role) SELECT 'p' || g || '@example.com', 'provider' FROM generate_series(1, :n) g",
        n=PROVIDERS,
    )
    clients = [row[0] for row in connection.run("SELECT id FROM users WHERE role = 'client' ORDER BY id")]
    providers = [row[0] for row in connection.run("SELECT id FROM users WHERE role = 'provider' ORDER BY id")]
    connection.run(
        """INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at)
           SELECT (CAST(:clients AS bigint[]))[1 + g % :nc], (CAST(:providers AS bigint[]))[1 + g % :np],
                  round(CAST(1 + (g * 7919 % 50000) / 100.0 AS numeric), 2), 'awaiting_confirmation',
                  CAST(:cutoff AS timestamptz) - (g % 600) * interval '1 minute'
           FROM generate_series(1, :orders) g""",
        clients=clients,
        providers=providers,
        nc=CLIENTS,
        np=PROVIDERS,
        orders=ORDERS,
        cutoff=NOW - DEADLINE,
    )
    # escrow: each client's blocked balance is exactly what its orders need, plus a little
    connection.run(
        """INSERT INTO wallets (user_id, available, blocked)
           SELECT u.id, 0, coalesce(e.total, 0) + 1
           FROM users u LEFT JOIN (SELECT client_id, sum(amount) AS total FROM orders GROUP BY client_id) e
                ON e.client_id = u.id
           WHERE u.role <> 'admin'"""
    )
    connection.run("ANALYZE")
    expected_fees = sum(
        (core.fee_for(Decimal(amount), Decimal("5.0")) for (amount,) in connection.run("SELECT amount FROM orders")),
        Decimal(0),
    )
    money_before = market.total_money()

    start = threading.Barrier(RUNS)
    results: list[core.RunResult] = []
    errors: list[BaseException] = []

    def one_run() -> None:
        own = market.connect()
        try:
            start.wait(timeout=30)
            results.append(core.run(own, lambda: NOW, batch_size=250))
        except BaseException as error:
            errors.append(error)
        finally:
            own.close()

    threads = [threading.Thread(target=one_run, name=f"auto-confirm-{i}") for i in range(RUNS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a run did not finish in 120 s"
    assert errors == []

    assert sum(result.confirmed for result in results) == ORDERS
    assert sum(1 for result in results if result.confirmed > 0) >= 2, "the runs did not overlap"
    assert all(not result.skipped for result in results)
    per_order = connection.run(
        """SELECT
               (SELECT count(*) FROM orders WHERE status = 'completed' AND auto_confirmed
                                              AND confirmed_at = CAST(:now AS timestamptz)),
               (SELECT count(*) FROM (SELECT entity_id FROM audit_log WHERE action = 'auto_confirmed'
                                      GROUP BY entity_id HAVING count(*) = 1) once),
               (SELECT count(*) FROM audit_log),
               (SELECT count(*) FROM (SELECT order_id FROM transactions WHERE kind = 'escrow_release'
                                      GROUP BY order_id HAVING count(*) = 1) once),
               (SELECT count(*) FROM transactions WHERE kind = 'escrow_release')""",
        now=NOW,
    )[0]
    assert per_order == [ORDERS, ORDERS, ORDERS, ORDERS, ORDERS]
    assert market.total_money() == money_before
    assert market.wallet(platform) == (expected_fees, Decimal("0.00"))
    assert sum(result.fees for result in results) == expected_fees
    # every client's escrow was released exactly: the +1 cushion is all that is left blocked
    leftover = connection.run(
        "SELECT DISTINCT blocked FROM wallets w JOIN users u ON u.id = w.user_id WHERE role = 'client'"
    )
    assert leftover == [[Decimal("1.00")]]

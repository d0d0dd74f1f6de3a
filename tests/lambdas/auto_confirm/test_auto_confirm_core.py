"""The auto-confirm rules on a real PostgreSQL: due boundaries, money moves, skips, failures, dry runs."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import random
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from lambdas.auto_confirm import core
from lambdas.shared import logs

from .auto_confirm_support import DEADLINE, NOW, Marketplace

pytestmark = pytest.mark.postgres


@pytest.fixture
def captured_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    logs.get_logger("lambdas.auto_confirm", stream=stream)
    yield stream
    logging.getLogger("lambdas.auto_confirm").handlers.clear()


def events(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def run(market: Marketplace, now: dt.datetime = NOW, **kwargs: object) -> core.RunResult:
    return core.run(market.connection, lambda: now, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def parties(market: Marketplace) -> tuple[int, int, int]:
    """(platform admin, client with 1000.00 in escrow, provider)."""
    return market.user("admin"), market.user("client", blocked="1000.00"), market.user("provider")


def test_due_boundary_exactly_at_deadline_is_confirmed_one_second_before_is_not(
    market: Marketplace, parties: tuple[int, int, int]
) -> None:
    _, client, provider = parties
    at_deadline = market.order(client, provider, "10.00", completed_at=NOW - DEADLINE)
    one_second_early = market.order(client, provider, "10.00", completed_at=NOW - DEADLINE + dt.timedelta(seconds=1))

    result = run(market)

    assert market.status(at_deadline) == ("completed", True, NOW)
    assert market.status(one_second_early) == ("awaiting_confirmation", False, None)
    assert result.confirmed == 1
    assert result.oldest_overdue_seconds == 0


def test_orders_in_other_states_are_untouched(market: Marketplace, parties: tuple[int, int, int]) -> None:
    _, client, provider = parties
    long_ago = NOW - dt.timedelta(days=30)
    others = {
        status: market.order(client, provider, "25.00", completed_at=long_ago, status=status)
        for status in ("disputed", "cancelled", "completed", "in_progress")
    }
    before = market.total_money()

    result = run(market)

    assert result.confirmed == 0
    for status, order_id in others.items():
        assert market.status(order_id) == (status, False, None)
        assert market.ledger(order_id) == []
        assert market.audit(order_id) == []
    assert market.total_money() == before


def test_money_moves_ledger_and_audit_for_one_order(market: Marketplace, parties: tuple[int, int, int]) -> None:
    platform, client, provider = parties
    order_id = market.order(client, provider, "100.10", completed_at=NOW - DEADLINE - dt.timedelta(hours=2))

    result = run(market)

    fee = Decimal("5.00")  # 5.005 rounds half to even
    assert market.wallet(client) == (Decimal("0.00"), Decimal("899.90"))
    assert market.wallet(provider) == (Decimal("100.10") - fee, Decimal("0.00"))
    assert market.wallet(platform) == (fee, Decimal("0.00"))
    assert market.ledger(order_id) == [
        (client, "escrow_release", Decimal("100.10")),
        (provider, "order_payment", Decimal("95.10")),
        (platform, "platform_fee", fee),
    ]
    [audit] = market.audit(order_id)
    assert audit["action"] == "auto_confirmed"
    assert (audit["amount"], audit["fee"], audit["provider_amount"]) == ("100.10", "5.00", "95.10")
    assert (audit["client_id"], audit["provider_id"], audit["platform_user_id"]) == (
        client,
        provider,
        platform,
    )
    assert (result.confirmed, result.amount_released, result.fees) == (1, Decimal("100.10"), fee)
    assert result.oldest_overdue_seconds == 2 * 3600
    assert result.platform_user_id == platform


def test_fee_rounding_matches_the_documented_rule(market: Marketplace, parties: tuple[int, int, int]) -> None:
    platform, client, provider = parties
    market.set_config("platform_fee_percentage", "7.5")
    generator = random.Random(7)
    # ties (x.xx5 after the percentage) in both directions, tiny amounts, and random ones
    amounts = ["0.01", "0.06", "0.14", "0.20", "1.00", "10.10", "10.30", "3.30", "333.33", "99999.99"]
    amounts += [f"{generator.randint(1, 5_000_000) / 100:.2f}" for _ in range(200)]
    market.connection.run("UPDATE wallets SET blocked = 100000000 WHERE user_id = :id", id=client)
    orders = {market.order(client, provider, amount): Decimal(amount) for amount in amounts}
    before = market.total_money()

    result = run(market)

    assert result.confirmed == len(orders)
    expected_fees = Decimal(0)
    for order_id, amount in orders.items():
        expected_fee = (amount * Decimal("7.5") / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
        assert core.fee_for(amount, Decimal("7.5")) == expected_fee
        moves = {kind: value for _, kind, value in market.ledger(order_id)}
        assert moves.get("platform_fee", Decimal(0)) == expected_fee, amount
        assert moves["escrow_release"] == amount
        assert moves.get("order_payment", Decimal(0)) == amount - expected_fee
        expected_fees += expected_fee
    assert market.wallet(platform)[0] == expected_fees == result.fees
    assert market.total_money() == before
    # 0.20 * 7.5 % = 0.015 -> 0.02 (tie to even); 0.06 * 7.5 % = 0.0045 -> 0.00: no fee row at all
    assert core.fee_for(Decimal("0.20"), Decimal("7.5")) == Decimal("0.02")
    zero_fee_order = next(order for order, amount in orders.items() if amount == Decimal("0.06"))
    assert [kind for _, kind, _ in market.ledger(zero_fee_order)] == ["escrow_release", "order_payment"]


def test_custom_deadline_from_system_config_is_honoured(market: Marketplace, parties: tuple[int, int, int]) -> None:
    _, client, provider = parties
    market.set_config("confirmation_deadline_hours", "48")
    due_at_48 = market.order(client, provider, "10.00", completed_at=NOW - dt.timedelta(hours=48))
    due_at_36_only = market.order(client, provider, "10.00", completed_at=NOW - dt.timedelta(hours=40))

    result = run(market)

    assert result.deadline_hours == 48
    assert market.status(due_at_48)[0] == "completed"
    assert market.status(due_at_36_only)[0] == "awaiting_confirmation"
    assert result.warnings == []


@pytest.mark.parametrize("value", [None, "abc", "0", "-5", "NaN", "Infinity", ""])
def test_missing_or_invalid_deadline_falls_back_to_36_hours_with_a_warning(
    market: Marketplace, parties: tuple[int, int, int], captured_log: io.StringIO, value: str | None
) -> None:
    _, client, provider = parties
    if value is None:
        market.delete_config("confirmation_deadline_hours")
    else:
        market.set_config("confirmation_deadline_hours", value)
    due = market.order(client, provider, "10.00", completed_at=NOW - dt.timedelta(hours=36))
    not_due = market.order(client, provider, "10.00", completed_at=NOW - dt.timedelta(hours=35))

    result = run(market)

    assert result.deadline_hours == 36
    assert market.status(due)[0] == "completed"
    assert market.status(not_due)[0] == "awaiting_confirmation"
    assert len(result.warnings) == 1
    assert "confirmation_deadline_hours" in result.warnings[0]
    [warning] = [line for line in events(captured_log) if line.get("event") == logs.CONFIG_WARNING]
    assert warning["level"] == "WARNING"
    assert warning["key"] == "confirmation_deadline_hours"


def test_unsettleable_orders_are_skipped_logged_and_the_rest_proceed(
    market: Marketplace, parties: tuple[int, int, int], captured_log: io.StringIO
) -> None:
    platform, client, provider = parties
    poor_client = market.user("client", blocked="15.00")
    walletless_client = market.user("client", available=None)
    walletless_provider = market.user("provider", available=None)
    fits = market.order(poor_client, provider, "10.00", completed_at=NOW - DEADLINE - dt.timedelta(hours=3))
    does_not_fit = market.order(poor_client, provider, "10.00", completed_at=NOW - DEADLINE - dt.timedelta(hours=2))
    no_client_wallet = market.order(walletless_client, provider, "10.00")
    no_provider_wallet = market.order(client, walletless_provider, "10.00")
    fine = [market.order(client, provider, "20.00") for _ in range(5)]
    before = market.total_money()

    result = run(market, batch_size=3)

    reasons = {outcome.order_id: outcome.skip_reason for outcome in result.skipped}
    assert reasons == {
        does_not_fit: "insufficient_blocked_balance",
        no_client_wallet: "client_wallet_missing",
        no_provider_wallet: "provider_wallet_missing",
    }
    assert result.confirmed == 6
    for order_id in [fits, *fine]:
        assert market.status(order_id)[0] == "completed"
    for order_id in reasons:
        assert market.status(order_id) == ("awaiting_confirmation", False, None)
        assert market.ledger(order_id) == []
    assert market.wallet(poor_client) == (Decimal("0.00"), Decimal("5.00"))
    assert market.total_money() == before
    logged = {
        line["order_id"]: line for line in events(captured_log) if line.get("event") == logs.BALANCE_INCONSISTENCY
    }
    assert {order_id: line["reason"] for order_id, line in logged.items()} == reasons
    assert all(line["level"] == "ERROR" for line in logged.values())
    assert [metric.value for metric in result.metrics() if metric.name == "OrdersSkipped"] == [3]

    # the skipped orders stay awaiting; the next run reports them again and still ends
    again = run(market, batch_size=1)
    assert again.confirmed == 0
    assert {outcome.order_id for outcome in again.skipped} == set(reasons)
    assert again.oldest_overdue_seconds > 0
    assert platform == result.platform_user_id


def test_a_failing_batch_rolls_back_whole_and_keeps_earlier_batches(
    market: Marketplace, parties: tuple[int, int, int], captured_log: io.StringIO
) -> None:
    platform, client, provider = parties
    orders = [
        market.order(client, provider, "10.00", completed_at=NOW - DEADLINE - dt.timedelta(minutes=60 - i))
        for i in range(12)
    ]
    poisoned = orders[6]  # second batch of four
    market.connection.run(
        f"""CREATE FUNCTION refuse_poisoned() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.order_id = {poisoned} AND NEW.kind = 'platform_fee' THEN
                    RAISE EXCEPTION 'injected failure for order %', NEW.order_id;
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER refuse_poisoned BEFORE INSERT ON transactions
                FOR EACH ROW EXECUTE FUNCTION refuse_poisoned();"""
    )
    before = market.total_money()

    with pytest.raises(core.BatchFailed, match="injected failure") as failure:
        run(market, batch_size=4)

    assert failure.value.result is not None
    assert failure.value.result.confirmed == 4
    assert [market.status(order_id)[0] for order_id in orders] == ["completed"] * 4 + ["awaiting_confirmation"] * 8
    for order_id in orders[4:]:
        assert market.ledger(order_id) == []
        assert market.audit(order_id) == []
    assert market.wallet(client) == (Decimal("0.00"), Decimal("960.00"))
    assert market.wallet(provider) == (Decimal("38.00"), Decimal("0.00"))
    assert market.wallet(platform) == (Decimal("2.00"), Decimal("0.00"))
    assert market.total_money() == before
    [error] = [line for line in events(captured_log) if line.get("event") == logs.FINANCIAL_ERROR]
    assert error["batch"] == 2
    assert error["confirmed_before_failure"] == 4
    assert "rolled back" in str(error["message"])


def test_dry_run_reports_exactly_what_a_run_does_and_changes_nothing(
    market: Marketplace, parties: tuple[int, int, int]
) -> None:
    _, client, provider = parties
    tight_client = market.user("client", blocked="30.00")
    for i in range(5):
        market.order(tight_client, provider, "10.00", completed_at=NOW - DEADLINE - dt.timedelta(minutes=10 - i))
        market.order(client, provider, "12.34")
    snapshot = market.connection.run("SELECT * FROM wallets ORDER BY user_id")
    orders_snapshot = market.connection.run("SELECT id, status FROM orders ORDER BY id")

    preview = run(market, dry_run=True, batch_size=2, collect_orders=True)

    assert market.connection.run("SELECT * FROM wallets ORDER BY user_id") == snapshot
    assert market.connection.run("SELECT id, status FROM orders ORDER BY id") == orders_snapshot
    assert market.connection.run("SELECT count(*) FROM transactions")[0][0] == 0
    assert market.connection.run("SELECT count(*) FROM audit_log")[0][0] == 0

    real = run(market, batch_size=2, collect_orders=True)
    assert [o.order_id for o in preview.confirmed_orders] == [o.order_id for o in real.confirmed_orders]
    assert [o.order_id for o in preview.skipped] == [o.order_id for o in real.skipped]
    assert (preview.confirmed, preview.amount_released, preview.fees) == (
        real.confirmed,
        real.amount_released,
        real.fees,
    )
    assert preview.confirmed == 8  # the tight client's escrow covers three of its five orders
    assert len(preview.skipped) == 2


def test_run_result_metrics_carry_the_values(market: Marketplace, parties: tuple[int, int, int]) -> None:
    _, client, provider = parties
    market.order(client, provider, "40.00", completed_at=NOW - DEADLINE - dt.timedelta(minutes=90))
    market.order(client, provider, "60.00")

    result = run(market)

    values = {metric.name: (metric.unit, metric.value) for metric in result.metrics()}
    assert values["OrdersConfirmed"] == ("Count", 2)
    assert values["AmountReleased"] == ("None", 100.0)
    assert values["OldestOverdueSeconds"] == ("Seconds", 5400.0)
    assert values["OrdersSkipped"] == ("Count", 0)
    assert values["RunFailed"] == ("Count", 0)
    assert values["RunDurationMs"][0] == "Milliseconds"
    assert values["RunDurationMs"][1] > 0


def test_missing_fee_configuration_fails_the_run_without_moving_money(
    market: Marketplace, parties: tuple[int, int, int]
) -> None:
    _, client, provider = parties
    order_id = market.order(client, provider, "10.00")
    market.set_config("platform_fee_percentage", "five")
    with pytest.raises(core.ConfigurationError, match="platform_fee_percentage = 'five'"):
        run(market)
    market.delete_config("platform_fee_percentage")
    with pytest.raises(core.ConfigurationError, match="platform_fee_percentage is missing"):
        run(market)
    assert market.status(order_id)[0] == "awaiting_confirmation"


def test_no_platform_wallet_fails_the_run(market: Marketplace) -> None:
    client = market.user("client", blocked="10.00")
    provider = market.user("provider")
    market.order(client, provider, "10.00")
    with pytest.raises(core.ConfigurationError, match="no user with role 'admin'"):
        run(market)
    admin = market.user("admin", available=None)
    with pytest.raises(core.ConfigurationError, match=f"admin user {admin} has no row in wallets"):
        run(market)


def test_time_budget_stops_between_batches(market: Marketplace, parties: tuple[int, int, int]) -> None:
    _, client, provider = parties
    for _ in range(6):
        market.order(client, provider, "1.00")
    budget = iter([1.0, 1.0, 0.0])

    result = core.run(market.connection, lambda: NOW, batch_size=2, time_left_s=lambda: next(budget))

    assert result.stopped_early
    assert result.confirmed == 4
    assert len(result.batches) == 2


def test_naive_clock_and_bad_batch_size_are_rejected(market: Marketplace) -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        core.run(market.connection, lambda: dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="batch_size"):
        core.run(market.connection, lambda: NOW, batch_size=0)


def test_due_query_uses_the_partial_index(market: Marketplace, parties: tuple[int, int, int]) -> None:
    _, client, provider = parties
    market.connection.run(
        "INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at, confirmed_at) "
        "SELECT :c, :p, 1, 'completed', now() - interval '90 days', now() FROM generate_series(1, 5000)",
        c=client,
        p=provider,
    )
    market.order(client, provider, "1.00")
    market.connection.run("ANALYZE orders")
    plan = "\n".join(
        row[0]
        for row in market.connection.run(
            "EXPLAIN SELECT id FROM orders WHERE status = 'awaiting_confirmation' "
            "AND provider_completed_at <= CAST(:cutoff AS timestamptz) "
            "ORDER BY provider_completed_at, id LIMIT 100",
            cutoff=NOW - DEADLINE,
        )
    )
    assert "orders_awaiting_confirmation_due_idx" in plan

"""`python -m lambdas.auto_confirm`: the seed's "run the job by hand" step, as a subprocess."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .auto_confirm_support import DEADLINE, NOW, Marketplace

pytestmark = pytest.mark.postgres


REPO_ROOT = Path(__file__).resolve().parents[3]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lambdas.auto_confirm", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.fixture
def orders(market: Marketplace) -> list[int]:
    market.user("admin")
    client = market.user("client", blocked="100.00")
    provider = market.user("provider")
    return [
        market.order(client, provider, "40.00", completed_at=NOW - DEADLINE - dt.timedelta(hours=2, minutes=5)),
        market.order(client, provider, "80.00", completed_at=NOW - DEADLINE),  # escrow left: 60.00
        market.order(client, provider, "10.00", completed_at=NOW - DEADLINE + dt.timedelta(minutes=1)),
    ]


def test_dry_run_prints_what_would_happen_and_changes_nothing(market: Marketplace, orders: list[int]) -> None:
    done = cli("--database-url", market.url, "--dry-run", "--now", NOW.isoformat(), "--batch-size", "1")

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"would confirm order {orders[0]}: amount 40.00, fee 2.00, provider 3 receives 38.00, client 2 (overdue 2h05m)"
    )
    assert lines[1] == f"skipped order {orders[1]}: insufficient_blocked_balance (client 2, amount 80.00)"
    assert lines[2].startswith("dry run at 2026-03-01T12:00:00+00:00: would confirm 1 orders, released 40.00")
    assert '"event":"balance_inconsistency"' in done.stderr
    assert [market.status(order)[0] for order in orders] == ["awaiting_confirmation"] * 3


def test_real_run_confirms_and_reports(market: Marketplace, orders: list[int]) -> None:
    later = (NOW + dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    market.connection.run("UPDATE wallets SET blocked = 1000 WHERE user_id = 2")

    done = cli("--database-url", market.url, "--now", later)

    assert done.returncode == 0, done.stderr
    assert [line.split(":")[0] for line in done.stdout.splitlines()[:3]] == [
        f"confirmed order {order}" for order in orders
    ]
    assert "confirmed 3 orders, released 130.00 (platform fees 6.50), skipped 0" in done.stdout
    assert [market.status(order)[0] for order in orders] == ["completed"] * 3


def test_bad_arguments_exit_2_naming_the_argument(market: Marketplace) -> None:
    naive = cli("--database-url", market.url, "--now", "2026-03-01T12:00:00")
    assert naive.returncode == 2
    assert "--now" in naive.stderr
    assert "no UTC offset" in naive.stderr
    batch = cli("--database-url", market.url, "--batch-size", "0")
    assert batch.returncode == 2
    assert "--batch-size" in batch.stderr
    missing = cli("--dry-run")
    assert missing.returncode == 2
    assert "--database-url" in missing.stderr


def test_unreachable_database_exits_1_with_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = cli("--database-url", f"postgresql://job:secret-pw@127.0.0.1:{port}/shop?sslmode=disable")
    assert done.returncode == 1
    assert f"error: cannot reach PostgreSQL at 127.0.0.1:{port}/shop" in done.stderr
    assert "secret-pw" not in done.stderr


def test_tls_is_the_default_for_urls(market: Marketplace) -> None:
    plain_url = market.url.replace("?sslmode=disable", "")
    done = cli("--database-url", plain_url, "--dry-run")
    assert done.returncode == 1
    assert "server does not offer TLS, and TLS is required" in done.stderr

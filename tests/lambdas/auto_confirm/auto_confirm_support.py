"""Helpers for the auto-confirm tests: a clock value, and a builder that writes marketplace rows."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pg8000.native

from lambdas.shared import db

NOW = dt.datetime(2026, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
DEADLINE = dt.timedelta(hours=36)


class Marketplace:
    """Writes users, wallets and orders straight into the schema, and reads balances back."""

    def __init__(self, connection: pg8000.native.Connection, url: str) -> None:
        self.connection = connection
        self.url = url
        self._emails = 0

    def user(self, role: str, *, available: str | None = "0", blocked: str | None = "0") -> int:
        """A user; with a wallet unless ``available`` is None."""
        self._emails += 1
        user_id = int(
            self.connection.run(
                "INSERT INTO users (email, role) VALUES (:email, :role) RETURNING id",
                email=f"{role}{self._emails}@example.com",
                role=role,
            )[0][0]
        )
        if available is not None:
            self.connection.run(
                "INSERT INTO wallets (user_id, available, blocked) "
                "VALUES (:id, CAST(:a AS numeric), CAST(:b AS numeric))",
                id=user_id,
                a=available,
                b=blocked or "0",
            )
        return user_id

    def order(
        self,
        client_id: int,
        provider_id: int,
        amount: str,
        *,
        completed_at: dt.datetime | None = None,
        status: str = "awaiting_confirmation",
    ) -> int:
        return int(
            self.connection.run(
                "INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at) "
                "VALUES (:c, :p, CAST(:amount AS numeric), :status, :done) RETURNING id",
                c=client_id,
                p=provider_id,
                amount=amount,
                status=status,
                done=completed_at or NOW - DEADLINE - dt.timedelta(hours=1),
            )[0][0]
        )

    def wallet(self, user_id: int) -> tuple[Decimal, Decimal]:
        available, blocked = self.connection.run(
            "SELECT available, blocked FROM wallets WHERE user_id = :id", id=user_id
        )[0]
        return Decimal(available), Decimal(blocked)

    def total_money(self) -> Decimal:
        return Decimal(self.connection.run("SELECT coalesce(sum(available + blocked), 0) FROM wallets")[0][0])

    def status(self, order_id: int) -> tuple[str, bool, dt.datetime | None]:
        status, auto, confirmed_at = self.connection.run(
            "SELECT status, auto_confirmed, confirmed_at FROM orders WHERE id = :id", id=order_id
        )[0]
        return str(status), bool(auto), confirmed_at

    def set_config(self, key: str, value: str) -> None:
        self.connection.run(
            "INSERT INTO system_config (key, value) VALUES (:k, :v) ON CONFLICT (key) DO UPDATE SET value = :v",
            k=key,
            v=value,
        )

    def delete_config(self, key: str) -> None:
        self.connection.run("DELETE FROM system_config WHERE key = :k", k=key)

    def ledger(self, order_id: int) -> list[tuple[int, str, Decimal]]:
        rows = self.connection.run(
            "SELECT user_id, kind, amount FROM transactions WHERE order_id = :id ORDER BY id", id=order_id
        )
        return [(int(user), str(kind), Decimal(amount)) for user, kind, amount in rows]

    def audit(self, order_id: int) -> list[dict[str, Any]]:
        rows = self.connection.run(
            "SELECT action, details FROM audit_log WHERE entity = 'order' AND entity_id = :id ORDER BY id",
            id=order_id,
        )
        return [
            {"action": action, **(details if isinstance(details, dict) else json.loads(details))}
            for action, details in rows
        ]

    def connect(self) -> pg8000.native.Connection:
        """A new connection the way the job makes one (lambdas.shared.db), TLS off for the test server."""
        endpoint, credentials, tls = db.parse_database_url(self.url)
        return db.connect(endpoint, credentials, tls=tls)


def open_market(database_url: str) -> Iterator[Marketplace]:
    """Body of the ``market`` fixture."""
    endpoint, credentials, tls = db.parse_database_url(database_url)
    connection = db.connect(endpoint, credentials, tls=tls)
    try:
        yield Marketplace(connection, database_url)
    finally:
        connection.close()

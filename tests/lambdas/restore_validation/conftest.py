"""Fixtures for the restore-validation tests: a seeded "production" database and the validation role."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import Any

import pg8000.native
import pytest

from lambdas.restore_validation.core import VALIDATION_ROLE
from tests.conftest import EmbeddedPostgres, database_name


def seed_marketplace(connection: pg8000.native.Connection) -> None:
    """What a production database has on top of the migrations: the admin (platform) user and its wallet,
    a client and a provider with wallets, one order and its ledger row."""
    ids = {}
    for role in ("admin", "client", "provider"):
        ids[role] = connection.run(
            "INSERT INTO users (email, role) VALUES (:email, :role) RETURNING id",
            email=f"{role}@example.com",
            role=role,
        )[0][0]
        connection.run("INSERT INTO wallets (user_id, available, blocked) VALUES (:id, 0, 0)", id=ids[role])
    connection.run("UPDATE wallets SET blocked = 100 WHERE user_id = :id", id=ids["client"])
    order = connection.run(
        "INSERT INTO orders (client_id, provider_id, amount, status) VALUES (:c, :p, 100, 'in_progress') RETURNING id",
        c=ids["client"],
        p=ids["provider"],
    )[0][0]
    connection.run(
        "INSERT INTO transactions (order_id, user_id, kind, amount) VALUES (:o, :u, 'escrow_hold', 100)",
        o=order,
        u=ids["client"],
    )


@pytest.fixture(scope="session")
def validator_password(pg_server: EmbeddedPostgres, _migrated_template: str) -> str:
    """The migration creates the role without a password (RDS uses IAM tokens); give it one for this server."""
    password = secrets.token_hex(16)
    admin = pg_server.connect()
    try:
        admin.run(f"ALTER ROLE {VALIDATION_ROLE} PASSWORD '{password}'")  # our own hex token: safe to inline
    finally:
        admin.close()
    return password


@pytest.fixture
def seeded_database(pg_server: EmbeddedPostgres, migrated_database_url: str) -> str:
    """Name of a migrated database holding the seed and a small marketplace."""
    name = database_name(migrated_database_url)
    connection = pg_server.connect(name)
    try:
        seed_marketplace(connection)
    finally:
        connection.close()
    return name


@pytest.fixture
def as_validator(pg_server: EmbeddedPostgres, validator_password: str) -> Iterator[Any]:
    """Factory: a plain-TCP connection to a database as the validation role (what the Lambda logs in as)."""
    opened: list[pg8000.native.Connection] = []

    def open_as_validator(database: str) -> pg8000.native.Connection:
        connection = pg8000.native.Connection(
            VALIDATION_ROLE,
            host=pg_server.host,
            port=pg_server.port,
            database=database,
            password=validator_password,
            timeout=30,
        )
        opened.append(connection)
        return connection

    yield open_as_validator
    for connection in opened:
        with contextlib.suppress(Exception):  # the code under test may have closed it already
            connection.close()

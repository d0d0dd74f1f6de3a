"""core.validate and core.validate_database against a real PostgreSQL (the app's own migrations and seed)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pg8000.native
import pytest

from lambdas.restore_validation import core
from lambdas.shared import db
from tests.conftest import EmbeddedPostgres, database_name

pytestmark = pytest.mark.postgres


def test_a_migrated_and_seeded_database_passes_as_the_validation_role(
    seeded_database: str, as_validator: Callable[[str], pg8000.native.Connection]
) -> None:
    result = core.validate(as_validator(seeded_database))

    assert result.failures == []
    assert result.ok and result.status == "SUCCESSFUL"
    assert result.checks_passed == ["tables", "rows", "config", "platform_wallet", "balances", "amounts"]
    assert result.row_counts == {"users": 1, "wallets": 1, "system_config": 4}  # counts stop at the minimum
    assert result.message().startswith("6 checks passed")


def test_validation_never_writes(seeded_database: str, as_validator: Callable[[str], pg8000.native.Connection]) -> None:
    connection = as_validator(seeded_database)
    core.validate(connection)
    with pytest.raises(pg8000.exceptions.DatabaseError, match="read-only transaction"):
        connection.run("CREATE TEMP TABLE scratch (x int)")


def test_an_empty_database_fails_naming_the_missing_tables(pg_server: EmbeddedPostgres, database_url: str) -> None:
    connection = pg_server.connect(database_name(database_url))
    try:
        result = core.validate(connection)
    finally:
        connection.close()

    assert not result.ok and result.status == "FAILED"
    assert [f.check for f in result.failures] == ["tables"]
    assert result.message() == (
        "missing table(s) in schema public: audit_log, orders, system_config, transactions, users, wallets"
    )


def test_a_migrated_database_without_marketplace_rows_fails_on_rows_and_platform_wallet(
    pg_server: EmbeddedPostgres, migrated_database_url: str
) -> None:
    connection = pg_server.connect(database_name(migrated_database_url))
    try:
        result = core.validate(connection)
    finally:
        connection.close()

    assert {f.check: f.reason for f in result.failures} == {
        "rows": "users has 0 row(s), expected at least 1; wallets has 0 row(s), expected at least 1",
        "platform_wallet": "no admin user with a wallet (the platform wallet auto-confirm pays fees into)",
    }
    assert "config" in result.checks_passed  # the seed ran
    assert result.message().startswith("users has 0 row(s), expected at least 1;")


def test_missing_seed_rows_fail_naming_the_keys(pg_server: EmbeddedPostgres, seeded_database: str) -> None:
    connection = pg_server.connect(seeded_database)
    try:
        connection.run("DELETE FROM system_config WHERE key IN ('contestation_fee', 'confirmation_deadline_hours')")
        result = core.validate(connection)
    finally:
        connection.close()

    assert {f.check: f.reason for f in result.failures} == {
        "rows": "system_config has 2 row(s), expected at least 4",
        "config": "system_config lacks seeded key(s): contestation_fee, confirmation_deadline_hours",
    }


def test_a_missing_column_and_broken_money_invariants_are_named(
    pg_server: EmbeddedPostgres, seeded_database: str
) -> None:
    connection = pg_server.connect(seeded_database)
    try:
        # what a restore that lost its CHECK constraints, or a hand-made "fix", could leave behind
        connection.run("ALTER TABLE wallets DROP CONSTRAINT wallets_available_not_negative")
        connection.run("UPDATE wallets SET available = -5 WHERE user_id = (SELECT min(user_id) FROM wallets)")
        connection.run("ALTER TABLE orders DROP CONSTRAINT orders_amount_positive")
        connection.run("UPDATE orders SET amount = 0")
        connection.run("ALTER TABLE audit_log DROP COLUMN details")
        first_user = connection.run("SELECT min(user_id) FROM wallets")[0][0]
        first_order = connection.run("SELECT min(id) FROM orders")[0][0]
        result = core.validate(connection)
    finally:
        connection.close()

    assert {f.check: f.reason for f in result.failures} == {
        "columns": "missing column(s): audit_log.details",
        "balances": f"1 wallet(s) with a negative balance (first: user {first_user})",
        "amounts": f"1 order(s) with a non-positive amount (first: order {first_order})",
    }


def test_a_table_the_role_cannot_read_is_a_failure_with_the_database_reason(
    pg_server: EmbeddedPostgres, seeded_database: str, as_validator: Callable[[str], pg8000.native.Connection]
) -> None:
    admin = pg_server.connect(seeded_database)
    try:
        admin.run(f"REVOKE SELECT ON users FROM {core.VALIDATION_ROLE}")
    finally:
        admin.close()

    result = core.validate(as_validator(seeded_database))

    assert not result.ok
    reasons = {f.check: f.reason for f in result.failures}
    assert reasons["rows"] == "rows check could not run: SQLSTATE 42501: permission denied for table users"
    assert "platform_wallet" in reasons and "tables" in result.checks_passed  # pg_catalog still sees it


def test_min_rows_overrides_are_honoured(pg_server: EmbeddedPostgres, seeded_database: str) -> None:
    connection = pg_server.connect(seeded_database)
    try:
        result = core.validate(connection, core.Expectations.from_json('{"users": 5, "orders": 1}'))
    finally:
        connection.close()

    assert [f.reason for f in result.failures] == ["users has 3 row(s), expected at least 5"]
    assert result.row_counts == {"orders": 1, "system_config": 4, "users": 3, "wallets": 1}


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        ("[1]", r"MIN_ROWS_JSON must be a JSON object"),
        ("{", r"MIN_ROWS_JSON is not JSON"),
        ('{"users": -1}', r"MIN_ROWS_JSON: users must map to a whole number >= 0, got -1"),
        ('{"users": true}', r"MIN_ROWS_JSON: users must map to a whole number"),
        ('{"Users; drop": 1}', r"MIN_ROWS_JSON: 'Users; drop' is not a plain lower-case table name"),
    ],
)
def test_bad_min_rows_json_names_the_setting(raw: str, error: str) -> None:
    with pytest.raises(core.ExpectationsError, match=error):
        core.Expectations.from_json(raw)


def test_the_message_fits_the_limit_and_says_how_many_reasons_were_left_out() -> None:
    result = core.ValidationResult()
    for index in range(40):
        result.fail("rows", f"table_{index:02d} has 0 row(s), expected at least 1")
    message = result.message()
    assert len(message) <= core.MESSAGE_LIMIT
    assert message.startswith("table_00 has 0 row(s)")
    kept = message.count("expected at least")
    assert message.endswith(f"(+{40 - kept} more)")
    huge = core.ValidationResult()
    huge.fail("connect", "x" * 2000)
    assert len(huge.message()) == core.MESSAGE_LIMIT


# -- the connect step --------------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _connect_to(server: Any, database: str, *, port: int | None = None, tls: bool = False) -> Callable[[], Any]:
    endpoint = db.DatabaseEndpoint("127.0.0.1", port or server.port, database)
    credentials = db.Credentials(server.user, server.password)
    return lambda: db.connect(endpoint, credentials, tls=tls, connect_timeout_s=2)


def test_validate_database_connects_validates_and_closes(pg_server: EmbeddedPostgres, seeded_database: str) -> None:
    opened: list[Any] = []

    def connect() -> Any:
        connection = _connect_to(pg_server, seeded_database)()
        opened.append(connection)
        return connection

    result = core.validate_database(connect)

    assert result.ok, result.failures
    with pytest.raises(pg8000.exceptions.InterfaceError):
        opened[0].run("SELECT 1")  # closed


def test_a_stopped_server_is_a_failed_validation_with_the_reason_within_the_timeout(
    make_pg_server: Callable[[], EmbeddedPostgres],
) -> None:
    server = make_pg_server()
    server.stop()

    started = time.monotonic()
    result = core.validate_database(_connect_to(server, "postgres"))

    assert time.monotonic() - started < 5
    assert [f.check for f in result.failures] == ["connect"]
    assert result.message().startswith(f"cannot reach PostgreSQL at 127.0.0.1:{server.port}/postgres: ")
    assert "refused" in result.message().lower()


def test_a_wrong_port_is_a_failed_validation_naming_it() -> None:
    port = _closed_port()
    endpoint = db.DatabaseEndpoint("127.0.0.1", port, "app")
    result = core.validate_database(
        lambda: db.connect(endpoint, db.Credentials(core.VALIDATION_ROLE, ""), connect_timeout_s=2)
    )
    assert [f.check for f in result.failures] == ["connect"]
    assert f"127.0.0.1:{port}/app" in result.message()


def test_a_server_that_does_not_answer_times_out_within_the_bound() -> None:
    # accepts TCP connections (backlog) but never speaks: the connect timeout must end the wait
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        endpoint = db.DatabaseEndpoint("127.0.0.1", port, "app")
        started = time.monotonic()
        result = core.validate_database(
            lambda: db.connect(
                endpoint, db.Credentials("u", "p"), tls=False, connect_timeout_s=1, statement_timeout_ms=500
            )
        )
        elapsed = time.monotonic() - started

    assert elapsed < 5
    assert [f.check for f in result.failures] == ["connect"]
    assert "timed out" in result.message()


def test_tls_is_required_by_default(pg_server: EmbeddedPostgres, seeded_database: str) -> None:
    result = core.validate_database(_connect_to(pg_server, seeded_database, tls=True))
    assert result.message().endswith("server does not offer TLS, and TLS is required")

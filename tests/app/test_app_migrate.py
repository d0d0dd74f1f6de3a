"""python -m app.migrate on a real PostgreSQL: the schema contract, idempotence, the advisory lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from typing import Any

import pg8000.exceptions
import pg8000.native
import pytest

from app import migrate as migrations

from .app_support import REPO_ROOT, db_name

pytestmark = pytest.mark.postgres

CONTRACT = {
    "users": {"id": "bigint", "email": "text", "role": "text"},
    "wallets": {"user_id": "bigint", "available": "numeric(14,2)", "blocked": "numeric(14,2)"},
    "orders": {
        "id": "bigint",
        "client_id": "bigint",
        "provider_id": "bigint",
        "amount": "numeric(14,2)",
        "status": "text",
        "provider_completed_at": "timestamp with time zone",
        "confirmed_at": "timestamp with time zone",
        "auto_confirmed": "boolean",
    },
    "transactions": {
        "id": "bigint",
        "order_id": "bigint",
        "user_id": "bigint",
        "kind": "text",
        "amount": "numeric(14,2)",
        "created_at": "timestamp with time zone",
    },
    "audit_log": {
        "id": "bigint",
        "entity": "text",
        "entity_id": "bigint",
        "action": "text",
        "details": "jsonb",
        "created_at": "timestamp with time zone",
    },
    "system_config": {"key": "text", "value": "text", "description": "text", "category": "text"},
}


def run_cli(url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.migrate", "--database-url", url, *extra],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def last_log(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr
    return lines[-1]


def test_schema_matches_the_contract(migrated_database_url: str, pg_server: Any) -> None:
    conn = pg_server.connect(db_name(migrated_database_url))
    try:
        for table, columns in CONTRACT.items():
            rows = conn.run(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 AND NOT a.attisdropped",
                t=table,
            )
            actual = dict(rows)
            for column, kind in columns.items():
                assert actual.get(column) == kind, f"{table}.{column}"
        seed = dict(conn.run("SELECT key, value FROM system_config"))
        assert seed == {
            "platform_fee_percentage": "5.0",
            "contestation_fee": "10.00",
            "cancellation_fee_percentage": "10.0",
            "confirmation_deadline_hours": "36",
        }
        conn.run("INSERT INTO users (email, role) VALUES ('a@x', 'client'), ('b@x', 'provider')")
        orders = "INSERT INTO orders (client_id, provider_id, amount, status) VALUES (1, 2"
        violations = {
            "INSERT INTO users (email, role) VALUES ('c@x', 'root')": "users_role_known",
            "INSERT INTO wallets (user_id, available) VALUES (1, -0.01)": "wallets_available_not_negative",
            "INSERT INTO wallets (user_id, blocked) VALUES (1, -1)": "wallets_blocked_not_negative",
            f"{orders}, 0, 'pending')": "orders_amount_positive",
            f"{orders}, 5, 'lost')": "orders_status_known",
            f"{orders}, 5, 'awaiting_confirmation')": "orders_awaiting_has_completion_time",
            "INSERT INTO orders (client_id, provider_id, amount) VALUES (1, 1, 5)": ("orders_client_is_not_provider"),
            "INSERT INTO transactions (user_id, kind, amount) VALUES (1, 'x', -5)": ("transactions_amount_positive"),
        }
        for statement, constraint in violations.items():
            with pytest.raises(pg8000.exceptions.DatabaseError) as error:
                conn.run(statement)
            assert error.value.args[0]["n"] == constraint, statement
    finally:
        conn.close()


def schema_dump(pg_server: Any, database: str) -> str:
    done = pg_server.run_tool("pg_dump", ["--schema-only", "--no-owner", database])
    assert done.returncode == 0, done.stderr
    # pg_dump 18 brackets its output with a random \restrict key; it is not part of the schema
    return "\n".join(line for line in done.stdout.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def bookkeeping(pg_server: Any, database: str) -> list[Any]:
    conn = pg_server.connect(database)
    try:
        return [
            conn.run("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY version"),
            conn.run("SELECT key, value, description, category, updated_at FROM system_config ORDER BY key"),
        ]
    finally:
        conn.close()


def test_migrating_twice_changes_nothing(pg_server: Any, database_url: str) -> None:
    database = db_name(database_url)
    first = run_cli(database_url)
    assert first.returncode == 0, first.stdout + first.stderr
    assert last_log(first)["applied"] == [migration.filename for migration in migrations.discover()]
    schema_before, rows_before = schema_dump(pg_server, database), bookkeeping(pg_server, database)

    second = run_cli(database_url)

    assert second.returncode == 0
    assert last_log(second)["applied"] == []
    assert last_log(second)["seed_inserted"] == []
    assert schema_dump(pg_server, database) == schema_before
    assert bookkeeping(pg_server, database) == rows_before


def test_seed_never_overwrites_an_operators_value(pg_server: Any, migrated_database_url: str) -> None:
    database = db_name(migrated_database_url)
    conn = pg_server.connect(database)
    try:
        conn.run("UPDATE system_config SET value = '48' WHERE key = 'confirmation_deadline_hours'")
        conn.run("DELETE FROM system_config WHERE key = 'contestation_fee'")
        report = migrations.migrate(migrated_database_url)
        assert report.seed_inserted == ["contestation_fee"]
        values = dict(conn.run("SELECT key, value FROM system_config"))
        assert values["confirmation_deadline_hours"] == "48"
        assert values["contestation_fee"] == "10.00"
    finally:
        conn.close()


def waiting_runners(holder: pg8000.native.Connection) -> int:
    return int(
        holder.run(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = 'shipyard-migrate'"
        )[0][0]
    )


def wait_for_runners(holder: pg8000.native.Connection, count: int, timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if waiting_runners(holder) == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"expected {count} runner(s) queued on the advisory lock, saw {waiting_runners(holder)}")


def test_two_runners_at_once_serialise(pg_server: Any, database_url: str) -> None:
    database = db_name(database_url)
    command = [sys.executable, "-m", "app.migrate", "--database-url", database_url]
    holder = pg_server.connect(database)
    try:
        # park both runners on the lock, then let them go at the same instant
        holder.run("SELECT pg_advisory_lock(:key)", key=migrations.LOCK_KEY)
        runners = [
            subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        wait_for_runners(holder, 2)
        holder.run("SELECT pg_advisory_unlock(:key)", key=migrations.LOCK_KEY)
        outputs = [runner.communicate(timeout=120) for runner in runners]

        assert [runner.returncode for runner in runners] == [0, 0], outputs
        applied = [json.loads(out.splitlines()[-1])["applied"] for out, _ in outputs]
        expected = [migration.filename for migration in migrations.discover()]
        assert sorted(applied, key=len) == [[], expected]  # one did everything, the other found it done
        assert holder.run("SELECT version, count(*) FROM schema_migrations GROUP BY version ORDER BY version") == [
            [migration.version, 1] for migration in migrations.discover()
        ]
    finally:
        holder.close()


def test_a_runner_waits_while_another_holds_the_lock(pg_server: Any, database_url: str) -> None:
    database = db_name(database_url)
    holder = pg_server.connect(database)
    try:
        holder.run("SELECT pg_advisory_lock(:key)", key=migrations.LOCK_KEY)
        runner = subprocess.Popen(
            [sys.executable, "-m", "app.migrate", "--database-url", database_url],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_runners(holder, 1)
        time.sleep(0.3)
        assert runner.poll() is None
        assert holder.run("SELECT to_regclass('public.users')") == [[None]]  # nothing applied meanwhile

        holder.run("SELECT pg_advisory_unlock(:key)", key=migrations.LOCK_KEY)
        out, err = runner.communicate(timeout=60)
        assert runner.returncode == 0, err
        summary = json.loads(out.splitlines()[-1])
        assert summary["waited_for_lock_s"] >= 0.3
        assert len(summary["applied"]) == len(migrations.discover())
    finally:
        holder.close()


def test_lock_wait_is_bounded(pg_server: Any, database_url: str) -> None:
    holder = pg_server.connect(db_name(database_url))
    try:
        holder.run("SELECT pg_advisory_lock(:key)", key=migrations.LOCK_KEY)
        with pytest.raises(migrations.MigrationError, match=r"could not take the migration lock within 0\.3 s"):
            migrations.migrate(database_url, lock_timeout_s=0.3)
    finally:
        holder.close()


def test_an_edited_applied_migration_is_refused(migrated_database_url: str) -> None:
    edited = migrations.discover()
    edited[0] = migrations.Migration(edited[0].version, edited[0].name, edited[0].sql + "\n-- tweak\n")
    with pytest.raises(migrations.MigrationError, match=r"0001_core_schema\.sql was changed after it was applied"):
        migrations.migrate(migrated_database_url, migrations=edited)


def test_a_failing_migration_is_rolled_back_and_not_recorded(pg_server: Any, database_url: str) -> None:
    broken = [
        *migrations.discover(),
        migrations.Migration(90, "half_done", "CREATE TABLE half_done (id int);\nSELECT 1 / 0;"),
    ]
    with pytest.raises(
        migrations.MigrationError, match=r"0090_half_done.sql failed and was rolled back: SQLSTATE 22012"
    ):
        migrations.migrate(database_url, migrations=broken)
    conn = pg_server.connect(db_name(database_url))
    try:
        assert conn.run("SELECT to_regclass('public.half_done')") == [[None]]
        recorded = [row[0] for row in conn.run("SELECT version FROM schema_migrations ORDER BY 1")]
        assert recorded == [migration.version for migration in migrations.discover()]  # all but 0090
    finally:
        conn.close()


def test_unreachable_database_exits_1_with_a_json_reason() -> None:
    done = run_cli("postgresql://deploy:topsecret@127.0.0.1:1/shop?sslmode=disable")
    assert done.returncode == 1
    logged = last_log(done)
    assert logged["event"] == "database_error"
    assert "cannot reach PostgreSQL at deploy@127.0.0.1:1/shop" in logged["message"]
    assert "topsecret" not in done.stdout + done.stderr


def test_migrations_need_only_database_ownership_and_createrole(make_pg_server: Any) -> None:
    """RDS's master user is not a superuser: the migrations must work for a database owner with CREATEROLE
    (what the master and DO's doadmin have; the roles of 0003/0004 need it). A private server, so the roles
    do not already exist from another test (roles are cluster-wide)."""
    server = make_pg_server()
    role, database, password = "owner_role", "owned_db", uuid.uuid4().hex
    admin = server.connect()
    try:
        admin.run(f"CREATE ROLE {role} LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD '{password}'")
        admin.run(f"CREATE DATABASE {database} OWNER {role}")
    finally:
        admin.close()
    url = f"postgresql://{role}:{password}@127.0.0.1:{server.port}/{database}?sslmode=disable"
    report = migrations.migrate(url)
    assert report.applied == [migration.filename for migration in migrations.discover()]


def test_postgres_url_fixture_is_a_plain_owner(postgres_url: str) -> None:
    from lambdas.shared import db

    endpoint, credentials, _ = db.parse_database_url(postgres_url)
    connection = db.connect(endpoint, credentials, tls=False)
    try:
        assert connection.run("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") == [[False]]
        assert connection.run(
            "SELECT pg_get_userbyid(datdba) = current_user FROM pg_database WHERE datname = current_database()"
        ) == [[True]]
    finally:
        connection.close()


def test_runs_from_the_database_parts_the_ecs_task_injects(pg_server: Any, database_url: str) -> None:
    # The migrate task gets DATABASE_HOST/PORT/NAME/USER/PASSWORD (the password from the RDS-managed secret),
    # never a URL: the runner must connect from those parts, like the API does.
    from urllib.parse import urlsplit

    parts = urlsplit(database_url)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_HOST": parts.hostname or "",
        "DATABASE_PORT": str(parts.port),
        "DATABASE_NAME": parts.path.lstrip("/"),
        "DATABASE_USER": parts.username or "",
        "DATABASE_PASSWORD": parts.password or "",
        "DATABASE_SSLMODE": "disable",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.migrate"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert last_log(done)["applied"]


def test_without_url_or_parts_the_error_names_what_is_missing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app.migrate"],
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "missing: DATABASE_HOST, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD" in done.stderr

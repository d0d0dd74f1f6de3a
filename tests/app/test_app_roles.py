"""Migrations as a NON-superuser, and one role per consumer that can do its job and nothing more (issue #14).

Everything runs on a private embedded PostgreSQL (roles are cluster-wide; the shared server stays untouched):
the migrations are applied by ``rds_master``, a ``NOSUPERUSER CREATEDB CREATEROLE`` login that owns the
database — what RDS's master user (member of rds_superuser) and DigitalOcean's doadmin are. The consumer
roles get passwords from the test's superuser only so the test can log in as them; on AWS they log in with
IAM tokens.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pg8000.exceptions
import pg8000.native
import pytest

from app.migrate import APP_LOGIN_ROLES, MigrationError, migrate
from infra.aws.db_access import CONSUMER_DB_USERS
from lambdas.auto_confirm import core
from tests.conftest import EmbeddedPostgres

pytestmark = pytest.mark.postgres

DATABASE = "shop"
MASTER = "rds_master"
CONSUMERS = ("api", "auto_confirm", "health_check")
INSUFFICIENT_PRIVILEGE = "42501"
READ_ONLY_TRANSACTION = "25006"


class Cluster:
    """A private server with a database owned by a non-superuser master, migrated twice."""

    def __init__(self, server: EmbeddedPostgres) -> None:
        self.server = server
        self.master_password = secrets.token_urlsafe(12)
        self.passwords = {role: secrets.token_urlsafe(12) for role in CONSUMERS}
        admin = server.connect()
        try:
            admin.run(f"CREATE ROLE {MASTER} LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD '{self.master_password}'")
            admin.run(f"CREATE DATABASE {DATABASE} OWNER {MASTER}")
        finally:
            admin.close()

    def url(self, user: str = MASTER, password: str | None = None) -> str:
        password = self.master_password if password is None else password
        return f"postgresql://{user}:{password}@{self.server.host}:{self.server.port}/{DATABASE}?sslmode=disable"

    def give_passwords(self) -> None:
        admin = self.server.connect(DATABASE)
        try:
            for role, password in self.passwords.items():
                admin.run(f"ALTER ROLE {role} PASSWORD '{password}'")
        finally:
            admin.close()

    def login(self, role: str) -> pg8000.native.Connection:
        return pg8000.native.Connection(
            role,
            host=self.server.host,
            port=self.server.port,
            database=DATABASE,
            password=self.passwords[role],
            ssl_context=False,
            timeout=30,
        )

    def superuser(self) -> pg8000.native.Connection:
        return self.server.connect(DATABASE)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with EmbeddedPostgres() as server:
        cluster = Cluster(server)
        first = migrate(cluster.url())
        second = migrate(cluster.url())
        assert "0004_consumer_roles.sql" in first.applied
        assert second.applied == [] and "0004_consumer_roles.sql" in second.already_applied
        cluster.give_passwords()
        yield cluster


def _refused(connection: pg8000.native.Connection, sql: str, **params: Any) -> str:
    """Run ``sql`` expecting the server to refuse it; return the SQLSTATE.

    pg8000.native autocommits, so nothing stays open after the error."""
    with pytest.raises(pg8000.exceptions.DatabaseError) as raised:
        connection.run(sql, **params)
    return str(raised.value.args[0]["C"])


def test_migrations_apply_twice_as_a_non_superuser_and_the_roles_can_log_in(cluster: Cluster) -> None:
    admin = cluster.superuser()
    try:
        master = admin.run("SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = :r", r=MASTER)
        roles = admin.run(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles "
            "WHERE rolname = ANY(:names) ORDER BY rolname",
            names=list(CONSUMERS),
        )
        owners = admin.run(
            "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c JOIN pg_namespace n ON n.oid = relnamespace "
            "WHERE nspname = 'public'"
        )
    finally:
        admin.close()
    assert master == [[False, True, True]]
    assert tuple(sorted(CONSUMER_DB_USERS)) == tuple(sorted(CONSUMERS))  # the users infra grants rds-db:connect to
    assert roles == [[name, True, False, False, False, False] for name in sorted(CONSUMERS)]
    assert owners == [[MASTER]]  # the master owns every object; no consumer owns (so can drop) anything
    for role in CONSUMERS:
        connection = cluster.login(role)
        try:
            assert connection.run("SELECT 1") == [[1]]
        finally:
            connection.close()


def test_a_login_without_createrole_cannot_migrate(cluster: Cluster) -> None:
    """Issue #14 item 3: DO's app user (no CREATEROLE, no CREATE on public) fails the PRE_DEPLOY job."""
    admin = cluster.server.connect()
    try:
        admin.run("CREATE DATABASE plain_user_db")
        admin.run("CREATE ROLE plain_app LOGIN PASSWORD 'plain-pw'")
        admin.run("GRANT CONNECT ON DATABASE plain_user_db TO plain_app")
    finally:
        admin.close()
    url = f"postgresql://plain_app:plain-pw@{cluster.server.host}:{cluster.server.port}/plain_user_db?sslmode=disable"
    with pytest.raises(MigrationError, match="permission denied for schema public"):
        migrate(url)


def test_health_check_can_select_1_and_nothing_else(cluster: Cluster) -> None:
    connection = cluster.login("health_check")
    try:
        assert connection.run("SELECT 1") == [[1]]
        assert _refused(connection, "CREATE TABLE pwned (id int)") == READ_ONLY_TRANSACTION
        assert _refused(connection, "SELECT count(*) FROM users") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "SELECT value FROM system_config") == INSUFFICIENT_PRIVILEGE
        # Even with the read-only default switched off, the grants themselves refuse every write.
        connection.run("SET default_transaction_read_only = off")
        assert _refused(connection, "INSERT INTO audit_log (entity, action) VALUES ('x', 'y')") == (
            INSUFFICIENT_PRIVILEGE
        )
        assert _refused(connection, "DELETE FROM orders") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "CREATE TABLE pwned (id int)") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "DROP TABLE orders") == INSUFFICIENT_PRIVILEGE
    finally:
        connection.close()


def test_api_has_dml_on_the_contract_tables_and_no_ddl(cluster: Cluster) -> None:
    connection = cluster.login("api")
    try:
        user_id = connection.run("INSERT INTO users (email, role) VALUES ('a@example.com', 'client') RETURNING id")[0][
            0
        ]
        connection.run("UPDATE users SET email = 'b@example.com' WHERE id = :id", id=user_id)
        connection.run("INSERT INTO wallets (user_id) VALUES (:id)", id=user_id)
        connection.run("INSERT INTO audit_log (entity, entity_id, action) VALUES ('user', :id, 'created')", id=user_id)
        assert connection.run("SELECT count(*) FROM system_config")[0][0] > 0
        connection.run("DELETE FROM wallets WHERE user_id = :id", id=user_id)
        connection.run("DELETE FROM users WHERE id = :id", id=user_id)

        assert _refused(connection, "CREATE TABLE pwned (id int)") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "DROP TABLE orders") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "ALTER TABLE orders ADD COLUMN x int") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "TRUNCATE audit_log") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "DELETE FROM audit_log") == INSUFFICIENT_PRIVILEGE  # append-only ledger
        assert _refused(connection, "UPDATE transactions SET amount = 1") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "SELECT * FROM schema_migrations") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "CREATE ROLE pwned") == INSUFFICIENT_PRIVILEGE
    finally:
        connection.close()


def _seed_due_order(admin: pg8000.native.Connection, now: dt.datetime) -> int:
    platform, client, provider = (
        admin.run("INSERT INTO users (email, role) VALUES (:e, :r) RETURNING id", e=email, r=role)[0][0]
        for email, role in (("p@x", "admin"), ("c@x", "client"), ("v@x", "provider"))
    )
    for user_id, blocked in ((platform, "0"), (client, "100.00"), (provider, "0")):
        admin.run("INSERT INTO wallets (user_id, blocked) VALUES (:id, CAST(:b AS numeric))", id=user_id, b=blocked)
    return int(
        admin.run(
            "INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at) "
            "VALUES (:c, :p, 100.00, 'awaiting_confirmation', :done) RETURNING id",
            c=client,
            p=provider,
            done=now - dt.timedelta(days=3),
        )[0][0]
    )


def test_auto_confirm_can_run_the_job_and_nothing_more(cluster: Cluster) -> None:
    now = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)
    admin = cluster.superuser()
    try:
        order_id = _seed_due_order(admin, now)
    finally:
        admin.close()
    connection = cluster.login("auto_confirm")
    try:
        result = core.run(connection, lambda: now, batch_size=10, time_left_s=lambda: 60.0)
        assert result.confirmed == 1 and result.skipped == []
        assert result.amount_released == Decimal("100.00")

        assert _refused(connection, "SELECT email FROM users") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "UPDATE orders SET amount = 1 WHERE id = :id", id=order_id) == (
            INSUFFICIENT_PRIVILEGE
        )
        assert _refused(connection, "DELETE FROM orders") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "UPDATE transactions SET amount = 1") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "INSERT INTO users (email, role) VALUES ('x', 'admin')") == (INSUFFICIENT_PRIVILEGE)
        assert _refused(connection, "UPDATE system_config SET value = '0'") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "CREATE TABLE pwned (id int)") == INSUFFICIENT_PRIVILEGE
        assert _refused(connection, "DROP TABLE orders") == INSUFFICIENT_PRIVILEGE
    finally:
        connection.close()
    admin = cluster.superuser()
    try:
        status = admin.run("SELECT status, auto_confirmed FROM orders WHERE id = :id", id=order_id)
    finally:
        admin.close()
    assert status == [["completed", True]]


def test_app_login_joins_the_api_and_auto_confirm_roles_every_run(cluster: Cluster) -> None:
    """DigitalOcean: the migrate job runs as doadmin and makes the DO-created app user act as api + worker."""
    admin = cluster.server.connect()
    try:
        admin.run("CREATE ROLE do_app_user LOGIN PASSWORD 'do-app-pw'")  # made by DO's API, not by us
    finally:
        admin.close()
    report = migrate(cluster.url(), app_logins=("do_app_user",))
    again = migrate(cluster.url(), app_logins=("do_app_user",))
    assert report.app_logins == again.app_logins == ["do_app_user"]
    app = pg8000.native.Connection(
        "do_app_user",
        host=cluster.server.host,
        port=cluster.server.port,
        database=DATABASE,
        password="do-app-pw",
        ssl_context=False,
        timeout=30,
    )
    try:
        members = app.run(
            "SELECT r.rolname FROM pg_roles r WHERE pg_has_role('do_app_user', r.oid, 'USAGE') "
            "AND r.rolname = ANY(:roles) ORDER BY 1",
            roles=list(APP_LOGIN_ROLES),
        )
        assert members == [[role] for role in sorted(APP_LOGIN_ROLES)]
        assert app.run("SELECT count(*) FROM system_config")[0][0] > 0
        assert _refused(app, "DROP TABLE orders") == INSUFFICIENT_PRIVILEGE
    finally:
        app.close()
    with pytest.raises(MigrationError, match="no_such_login: no such user"):
        migrate(cluster.url(), app_logins=("no_such_login",))

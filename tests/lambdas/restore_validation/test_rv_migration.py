"""app/migrations/0003_restore_validator_role.sql: idempotent, works on plain PostgreSQL and on RDS (rds_iam)."""

from __future__ import annotations

from collections.abc import Callable

import pg8000.native
import pytest

from app.migrate import MIGRATIONS_DIR, migrate
from lambdas.restore_validation.core import CORE_COLUMNS, VALIDATION_ROLE
from tests.conftest import EmbeddedPostgres, database_name

pytestmark = pytest.mark.postgres

MIGRATION = MIGRATIONS_DIR / "0003_restore_validator_role.sql"


def _grants(connection: pg8000.native.Connection) -> set[tuple[str, str]]:
    rows = connection.run(
        "SELECT table_name, privilege_type FROM information_schema.role_table_grants WHERE grantee = :role",
        role=VALIDATION_ROLE,
    )
    return {(str(table), str(privilege)) for table, privilege in rows}


def test_the_role_can_log_in_and_only_read_the_contract_tables(
    pg_server: EmbeddedPostgres, migrated_database_url: str
) -> None:
    connection = pg_server.connect(database_name(migrated_database_url))
    try:
        role = connection.run(
            "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = :r",
            r=VALIDATION_ROLE,
        )
        grants = _grants(connection)
        has_rds_iam = connection.run("SELECT count(*) FROM pg_roles WHERE rolname = 'rds_iam'")[0][0]
    finally:
        connection.close()

    assert role == [[True, False, False, False]]
    assert grants == {(table, "SELECT") for table in [*CORE_COLUMNS, "schema_migrations"]}
    assert has_rds_iam == 0  # plain PostgreSQL: the guarded grant was skipped, the migration still applied


def test_the_sql_itself_applies_twice_and_the_runner_then_changes_nothing(
    pg_server: EmbeddedPostgres, migrated_database_url: str
) -> None:
    name = database_name(migrated_database_url)
    connection = pg_server.connect(name)
    try:
        before = _grants(connection)
        connection.run(MIGRATION.read_text())  # again, by hand: the role already exists on this server
        connection.run(MIGRATION.read_text())
        after = _grants(connection)
    finally:
        connection.close()
    report = migrate(migrated_database_url)

    assert after == before
    assert report.applied == [] and MIGRATION.name in report.already_applied


def test_on_rds_the_role_joins_rds_iam(make_pg_server: Callable[[], EmbeddedPostgres]) -> None:
    # A private server, because roles are cluster-wide: the shared one must stay "plain PostgreSQL".
    server = make_pg_server()
    admin = server.connect()
    try:
        admin.run("CREATE ROLE rds_iam NOLOGIN")  # what RDS provides on every instance
    finally:
        admin.close()
    url = server.create_database("app")
    migrate(url)
    migrate(url)

    connection = server.connect("app")
    try:
        members = connection.run(
            """SELECT m.rolname FROM pg_auth_members a
                 JOIN pg_roles r ON r.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
                WHERE r.rolname = 'rds_iam' ORDER BY 1"""
        )
    finally:
        connection.close()
    # every IAM-auth login joins rds_iam: the validator (0003) and the consumers of 0004
    assert members == [[name] for name in sorted([VALIDATION_ROLE, "api", "auto_confirm", "health_check"])]

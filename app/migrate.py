"""Apply the schema migrations and the system_config seed: ``python -m app.migrate --database-url URL``.

- Migrations are ``app/migrations/NNNN_name.sql``, applied in version order, each in its own
  transaction together with its row in ``schema_migrations`` (version, name, checksum, applied_at):
  a migration is either fully applied and recorded, or not at all.
- A session-level advisory lock (:data:`LOCK_KEY`) is held for the whole run, so two runners (two
  deploys, two tasks starting at once) serialise: the second waits, then finds nothing left to do.
- Idempotent: recorded versions are skipped; a recorded version whose file changed is an error (edit by
  adding a migration, never by rewriting an applied one). Versions in the database that this code does
  not know (a rolled-back deploy) are reported, not touched.
- Then ``app/seed.sql`` inserts missing system_config rows without overwriting operators' values.
- Then, on every run, each ``--app-login`` (``DATABASE_APP_LOGINS``, comma-separated) is made a member of
  the consumer roles a platform without per-consumer logins needs (:data:`APP_LOGIN_ROLES`): DigitalOcean's
  app user, created through DO's API, acts as the API and the auto-confirm worker that way, while this job
  runs as the cluster's admin. Membership is re-granted each run (idempotent), so it also heals a user that
  DO re-created.

Exit status: 0 done, 1 failed (one JSON log line says why), 2 bad command line.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app import jsonlog
from app.config import ConfigError, database_target_from_env
from app.db import (
    DatabaseConfigError,
    DatabaseTarget,
    DatabaseUnavailable,
    connect,
    describe_error,
    ssl_context_for,
)

if TYPE_CHECKING:
    import pg8000.native

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SEED_FILE = Path(__file__).resolve().parent / "seed.sql"
# Any constant works as long as every runner uses the same one; this is crc32("shipyard.migrations").
LOCK_KEY = 0x2F6C_8E51
_NAME_PATTERN = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")
APP_LOGIN_ROLES = ("api", "auto_confirm")
"""Roles (migration 0004) an ``--app-login`` joins: the DO app's one login serves the API and the worker."""
_LOGIN_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

log = logging.getLogger("app.migrate")


class MigrationError(RuntimeError):
    """A migration could not be applied, or the recorded history disagrees with the files."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def filename(self) -> str:
        return f"{self.version:04d}_{self.name}.sql"


@dataclass
class MigrationReport:
    applied: list[str] = field(default_factory=list)
    already_applied: list[str] = field(default_factory=list)
    unknown_in_database: list[int] = field(default_factory=list)
    seed_inserted: list[str] = field(default_factory=list)
    app_logins: list[str] = field(default_factory=list)
    waited_for_lock_s: float = 0.0


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME_PATTERN.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_lowercase_name.sql")
        version = int(match["version"])
        if version in migrations:
            raise MigrationError(f"{path}: version {version} also used by {migrations[version].filename}")
        migrations[version] = Migration(version, match["name"], path.read_text())
    return [migrations[version] for version in sorted(migrations)]


def migrate(
    database_url: str | DatabaseTarget,
    *,
    lock_timeout_s: float = 300,
    migrations: list[Migration] | None = None,
    connect_timeout_s: float = 10,
    app_logins: tuple[str, ...] = (),
) -> MigrationReport:
    target = (
        database_url
        if isinstance(database_url, DatabaseTarget)
        else DatabaseTarget.from_url(database_url, setting="--database-url")
    )
    pending_files = discover() if migrations is None else migrations
    app_logins = check_app_logins(app_logins)
    # No statement timeout: a migration may legitimately rewrite a big table. Lock waits are bounded
    # instead, so a runner stuck behind another one (or behind a long transaction) fails visibly.
    connection = connect(
        target,
        connect_timeout_s=connect_timeout_s,
        statement_timeout_ms=0,
        application_name="shipyard-migrate",
    )
    report = MigrationReport()
    try:
        connection.run(f"SET lock_timeout = '{int(lock_timeout_s * 1000)}ms'")
        started = time.monotonic()
        try:
            connection.run("SELECT pg_advisory_lock(:key)", key=LOCK_KEY)
        except Exception as error:
            raise MigrationError(
                f"could not take the migration lock within {lock_timeout_s:g} s "
                f"(another runner still holds it?): {describe_error(error)}"
            ) from error
        report.waited_for_lock_s = round(time.monotonic() - started, 3)
        try:
            _apply(connection, pending_files, report)
            _seed(connection, report)
            _grant_app_logins(connection, app_logins, report)
        finally:
            connection.run("SELECT pg_advisory_unlock(:key)", key=LOCK_KEY)
    finally:
        connection.close()
    return report


def _apply(connection: pg8000.native.Connection, migrations: list[Migration], report: MigrationReport) -> None:
    try:
        connection.run(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version     integer PRIMARY KEY,
                   name        text NOT NULL,
                   checksum    text NOT NULL,
                   applied_at  timestamptz NOT NULL DEFAULT now())"""
        )
    except Exception as error:
        # e.g. a login without CREATE on `public` (PostgreSQL >= 15, DO's API-made users): say so, no traceback
        raise MigrationError(f"cannot create schema_migrations: {describe_error(error)}") from error
    recorded = {int(row[0]): str(row[1]) for row in connection.run("SELECT version, checksum FROM schema_migrations")}
    known = {migration.version for migration in migrations}
    report.unknown_in_database = sorted(set(recorded) - known)
    if report.unknown_in_database:
        jsonlog.log_event(
            log,
            "migrations_unknown_versions",
            "database has migrations this code does not know; leaving them alone",
            level=logging.WARNING,
            versions=report.unknown_in_database,
        )
    for migration in migrations:
        if migration.version in recorded:
            if recorded[migration.version] != migration.checksum:
                raise MigrationError(
                    f"{migration.filename} was changed after it was applied (checksum differs); "
                    "add a new migration instead of editing an applied one"
                )
            report.already_applied.append(migration.filename)
            continue
        started = time.monotonic()
        connection.run("START TRANSACTION")
        try:
            connection.run(migration.sql)
            connection.run(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (:version, :name, :checksum)",
                version=migration.version,
                name=migration.name,
                checksum=migration.checksum,
            )
            connection.run("COMMIT")
        except Exception as error:
            connection.run("ROLLBACK")
            raise MigrationError(f"{migration.filename} failed and was rolled back: {describe_error(error)}") from error
        report.applied.append(migration.filename)
        log.info(
            "applied migration %s",
            migration.filename,
            extra={
                "migration": migration.filename,
                "duration_ms": round((time.monotonic() - started) * 1000),
            },
        )


def _seed(connection: pg8000.native.Connection, report: MigrationReport) -> None:
    connection.run("START TRANSACTION")
    try:
        rows = connection.run(SEED_FILE.read_text())
        connection.run("COMMIT")
    except Exception as error:
        connection.run("ROLLBACK")
        raise MigrationError(f"{SEED_FILE.name} failed and was rolled back: {describe_error(error)}") from error
    report.seed_inserted = sorted(str(key) for key, inserted in (rows or []) if inserted)


def check_app_logins(logins: tuple[str, ...] | list[str], setting: str = "--app-login") -> tuple[str, ...]:
    """Plain lower-case PostgreSQL identifiers only: the names are spliced into GRANT (quoted, but still)."""
    bad = [login for login in logins if not _LOGIN_PATTERN.match(login)]
    if bad:
        raise DatabaseConfigError(f"{setting}: not a plain PostgreSQL user name: {bad}")
    return tuple(logins)


def _grant_app_logins(connection: pg8000.native.Connection, logins: tuple[str, ...], report: MigrationReport) -> None:
    roles = ", ".join(f'"{role}"' for role in APP_LOGIN_ROLES)
    for login in logins:
        if not connection.run("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = :login", login=login):
            raise MigrationError(f"--app-login {login}: no such user on this server (create it first)")
        try:
            connection.run(f'GRANT {roles} TO "{login}"')
        except Exception as error:
            raise MigrationError(f"cannot make {login} a member of {roles}: {describe_error(error)}") from error
        report.app_logins.append(login)


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 < seconds < 86_400:  # NaN fails this too
        raise argparse.ArgumentTypeError(f"must be more than 0 and less than a day, got {value!r}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.migrate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="postgresql://user:password@host:port/db[?sslmode=disable|require|verify-full&sslrootcert=PATH] "
        "(default: $DATABASE_URL, else the DATABASE_HOST/PORT/NAME/USER/PASSWORD parts the API reads too)",
    )
    parser.add_argument(
        "--lock-timeout", type=_positive_seconds, default=300, help="seconds to wait for another runner"
    )
    parser.add_argument(
        "--app-login",
        action="append",
        default=[item.strip() for item in os.environ.get("DATABASE_APP_LOGINS", "").split(",") if item.strip()],
        help=f"a login to make a member of {', '.join(APP_LOGIN_ROLES)} after migrating (repeatable; "
        "default: $DATABASE_APP_LOGINS, comma-separated). DigitalOcean's app user.",
    )
    args = parser.parse_args(argv)
    try:
        app_logins = check_app_logins(args.app_login)
    except DatabaseConfigError as error:
        parser.error(str(error))
    jsonlog.configure(os.environ.get("LOG_LEVEL", "INFO"))
    target: DatabaseTarget
    if args.database_url:
        try:
            target = DatabaseTarget.from_url(args.database_url, setting="--database-url")
            ssl_context_for(target)  # a missing or unreadable CA bundle is a bad argument too
        except DatabaseConfigError as error:
            parser.error(str(error))  # exit 2: a bad argument
    else:
        # The ECS migrate task gets the parts, like the API: the RDS-managed password cannot be put in a URL
        # by the deploy pipeline without exposing it.
        try:
            target = database_target_from_env(os.environ)
        except (ConfigError, DatabaseConfigError) as error:
            parser.error(f"--database-url or DATABASE_URL, or the DATABASE_* parts: {error}")
    try:
        report = migrate(target, lock_timeout_s=args.lock_timeout, app_logins=app_logins)
    except (DatabaseConfigError, DatabaseUnavailable, MigrationError) as error:
        event = jsonlog.DATABASE_ERROR if isinstance(error, DatabaseUnavailable) else "migration_failed"
        jsonlog.log_event(log, event, str(error))
        return 1
    log.info(
        "migrations done: %d applied, %d already applied",
        len(report.applied),
        len(report.already_applied),
        extra={
            "applied": report.applied,
            "already_applied": report.already_applied,
            "seed_inserted": report.seed_inserted,
            "app_logins": report.app_logins,
            "waited_for_lock_s": report.waited_for_lock_s,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The database check against the real embedded PostgreSQL (TCP + TLS + SCRAM login + SELECT 1)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from lambdas.health_check.checks import CheckDeps, CheckFailure, CheckResult, DbCredentials, run_check
from lambdas.health_check.config import parse_targets
from lambdas.health_check.credentials import OncePerRun
from lambdas.health_check.runner import RunReport, run_checks
from tests.tls import Pki

from .conftest import TlsPostgres
from .support import closed_port, one_reply_server

pytestmark = pytest.mark.postgres


def db_target(db: TlsPostgres, ca_file: object = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": "database",
        "kind": "postgres",
        "host": db.host,
        "port": db.port,
        "dbname": db.dbname,
        "ca_file": str(ca_file or db.ca_file),
        **extra,
    }


def credentials_of(db: TlsPostgres) -> DbCredentials:
    return DbCredentials(username=db.user, password=db.password)


def run(targets: list[dict[str, Any]], deps: CheckDeps, deadline_s: float = 10) -> RunReport:
    return run_checks(parse_targets(targets), lambda t, ctx: run_check(t, ctx, deps), deadline_s=deadline_s)


def check(target: dict[str, Any], deps: CheckDeps) -> CheckResult:
    return run([target], deps).results[0]


def test_reachable_database_is_up(tls_postgres: TlsPostgres) -> None:
    deps = CheckDeps(credentials=lambda: credentials_of(tls_postgres))

    result = check(db_target(tls_postgres, None, latency_budget_ms=4000), deps)

    assert result.up, result.detail
    assert result.reason is None
    assert {"credentials", "dns", "connect", "tls", "query"} <= set(result.phases_ms)
    assert result.latency_ms is not None
    assert result.latency_ms > 0
    # The server's certificate was issued for 30 days: under the default 14-day warning it is not.
    assert result.cert_days_left is not None
    assert 29 < result.cert_days_left <= 30
    assert result.warnings == []


def test_database_certificate_expiry_is_warned_about_too(tls_postgres: TlsPostgres) -> None:
    deps = CheckDeps(credentials=lambda: credentials_of(tls_postgres))

    result = check(db_target(tls_postgres, None, cert_warn_days=45), deps)

    assert result.up
    assert result.warnings == ["cert_expiring"]


def test_closed_database_port_is_refused(tls_postgres: TlsPostgres) -> None:
    deps = CheckDeps(credentials=lambda: DbCredentials("nobody", "x"))
    with closed_port() as port:
        target = {"name": "database", "kind": "postgres", "host": "127.0.0.1", "port": port, "dbname": "x"}
        result = check(target, deps)

    assert (result.up, result.reason, result.phase) == (False, "refused", "connect")


def test_wrong_password_is_database_and_does_not_leak(tls_postgres: TlsPostgres) -> None:
    user = credentials_of(tls_postgres).username
    deps = CheckDeps(credentials=lambda: DbCredentials(user, "not-the-password-7f3a"))

    result = check(db_target(tls_postgres), deps)

    assert (result.up, result.reason, result.phase) == (False, "database", "query")
    assert result.detail == f'28P01 password authentication failed for user "{user}"'
    assert "7f3a" not in repr(result.as_dict())


def test_unknown_database_is_database(tls_postgres: TlsPostgres) -> None:
    deps = CheckDeps(credentials=lambda: credentials_of(tls_postgres))

    result = check({**db_target(tls_postgres), "dbname": "no_such_db"}, deps)

    assert (result.up, result.reason) == (False, "database")
    assert result.detail == '3D000 database "no_such_db" does not exist'


def test_database_certificate_from_an_unknown_ca_is_tls(tls_postgres: TlsPostgres, tmp_path: Any) -> None:
    other_ca = Pki(tmp_path)  # not the CA that signed the server's certificate
    deps = CheckDeps(credentials=lambda: credentials_of(tls_postgres))

    result = check(db_target(tls_postgres, other_ca.ca_file), deps)

    assert (result.up, result.reason, result.phase) == (False, "tls", "tls")
    assert result.detail is not None
    assert result.detail.startswith("certificate verification failed")


def test_database_without_tls_is_tls(postgres_url: str) -> None:
    # The embedded server itself, without the TLS front: it answers the TLS request with "N".
    url = urlsplit(postgres_url)
    deps = CheckDeps(credentials=lambda: DbCredentials(url.username or "", url.password or ""))
    target = {
        "name": "database",
        "kind": "postgres",
        "host": url.hostname,
        "port": url.port,
        "dbname": url.path.lstrip("/"),
    }

    result = check(target, deps)

    assert (result.up, result.reason, result.detail) == (
        False,
        "tls",
        "the server does not accept TLS connections",
    )


def test_something_other_than_postgres_is_tls() -> None:
    deps = CheckDeps(credentials=lambda: DbCredentials("u", "p"))
    with one_reply_server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        target = {"name": "database", "kind": "postgres", "host": "127.0.0.1", "port": port, "dbname": "x"}
        result = check(target, deps)

    assert (result.up, result.reason) == (False, "tls")
    assert result.detail == "unexpected answer b'H' to the TLS request (not PostgreSQL?)"


def test_credential_failure_is_credentials_and_fetched_once_for_all_databases(
    tls_postgres: TlsPostgres,
) -> None:
    calls = []

    def failing_fetch() -> DbCredentials:
        calls.append(1)
        raise CheckFailure("credentials", "GetSecretValue failed: AccessDeniedException")

    base = db_target(tls_postgres)
    report = run(
        [{**base, "name": "primary"}, {**base, "name": "replica"}],
        CheckDeps(credentials=OncePerRun(failing_fetch)),
    )

    assert [(r.reason, r.detail, r.phase) for r in report.results] == [
        ("credentials", "GetSecretValue failed: AccessDeniedException", "credentials")
    ] * 2
    assert len(calls) == 1

"""The key proof of issue #14: after the master password changes, the running API and every Lambda's database
code keep working without a restart — against a real PostgreSQL, over TLS with full verification.

There is no IAM here, so the token signer is the injected dependency it is in production code (the API's
``DatabaseTarget.password_source``, the Lambdas' ``TokenSigner``): :class:`Tokens` plays RDS's IAM auth by
giving each consumer role a password that the test rotates, as a token changes from one connection to the
next. It counts what is asked of it, so the test also proves that each NEW connection asks for a fresh
credential and that a pooled one does not. (The real signer, botocore's ``generate_db_auth_token``, is
tested in tests/app/test_app_db_auth.py.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pg8000.exceptions
import pg8000.native
import pytest

from app.config import Settings
from app.migrate import MigrationError, migrate
from app.web import READY_CACHE_SECONDS, create_app
from lambdas.auto_confirm import handler as auto_confirm_handler
from lambdas.health_check import handler as health_check_handler
from lambdas.restore_validation import probe as restore_probe
from tests.conftest import EmbeddedPostgres, PgTlsFrontend

pytestmark = pytest.mark.postgres

DATABASE = "shop"
MASTER = "rds_master"
CONSUMERS = ("api", "auto_confirm", "health_check", "restore_validator")
NOW = dt.datetime(2026, 3, 1, 12, tzinfo=dt.UTC)


class Tokens:
    """RDS IAM auth, played by passwords: ``sign(host, port, user)`` gives the role's current credential."""

    def __init__(self, server: EmbeddedPostgres, tls_port: int) -> None:
        self.server = server
        self.tls_port = tls_port
        self.current: dict[str, str] = {}
        self.asked: Counter[str] = Counter()
        self._lock = threading.Lock()

    def rotate(self, role: str) -> str:
        """A new credential for ``role``; the previous one stops working at once (like an expired token)."""
        new = secrets.token_urlsafe(16)
        admin = self.server.connect(DATABASE)
        try:
            admin.run(f"ALTER ROLE {role} PASSWORD '{new}'")
        finally:
            admin.close()
        previous = self.current.get(role, "")
        self.current[role] = new
        return previous

    def sign(self, host: str, port: int, user: str) -> str:
        assert (host, port) == ("127.0.0.1", self.tls_port), "signed for another endpoint"
        with self._lock:
            self.asked[user] += 1
            return self.current[user]


@dataclasses.dataclass
class Deployment:
    server: EmbeddedPostgres
    frontend: PgTlsFrontend
    tokens: Tokens
    master_password: str

    def master_url(self, password: str | None = None) -> str:
        password = self.master_password if password is None else password
        return f"postgresql://{MASTER}:{password}@127.0.0.1:{self.server.port}/{DATABASE}?sslmode=disable"

    def rotate_master_password(self) -> str:
        """What RDS's SecretRotation does every month; returns the old password."""
        old, self.master_password = self.master_password, secrets.token_urlsafe(16)
        admin = self.server.connect()
        try:
            admin.run(f"ALTER ROLE {MASTER} PASSWORD '{self.master_password}'")
        finally:
            admin.close()
        return old

    def terminate_backends_of(self, role: str) -> int:
        """Drop the role's open connections (a failover, an idle timeout): the next use needs a new one."""
        admin = self.server.connect()
        try:
            rows = admin.run(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = :role", role=role
            )
        finally:
            admin.close()
        return int(rows[0][0])


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    with EmbeddedPostgres() as server:
        frontend = PgTlsFrontend(server.port)
        try:
            master_password = secrets.token_urlsafe(16)
            admin = server.connect()
            try:
                admin.run(f"CREATE ROLE {MASTER} LOGIN NOSUPERUSER CREATEDB CREATEROLE PASSWORD '{master_password}'")
                admin.run(f"CREATE DATABASE {DATABASE} OWNER {MASTER}")
            finally:
                admin.close()
            deployment = Deployment(server, frontend, Tokens(server, frontend.port), master_password)
            migrate(deployment.master_url())
            for role in CONSUMERS:
                deployment.tokens.rotate(role)
            _seed_due_order(server)
            yield deployment
        finally:
            frontend.close()


def _seed_due_order(server: EmbeddedPostgres) -> None:
    admin = server.connect(DATABASE)
    try:
        ids = [
            admin.run("INSERT INTO users (email, role) VALUES (:e, :r) RETURNING id", e=f"{role}@x", r=role)[0][0]
            for role in ("admin", "client", "provider")
        ]
        for user_id, blocked in zip(ids, ("0", "500.00", "0"), strict=True):
            admin.run("INSERT INTO wallets (user_id, blocked) VALUES (:id, CAST(:b AS numeric))", id=user_id, b=blocked)
        for hours_ago in (100, 90):
            admin.run(
                "INSERT INTO orders (client_id, provider_id, amount, status, provider_completed_at) "
                "VALUES (:c, :p, 10.00, 'awaiting_confirmation', :done)",
                c=ids[1],
                p=ids[2],
                done=NOW - dt.timedelta(hours=hours_ago),
            )
    finally:
        admin.close()


class ApiClient:
    """The WSGI app's test client, and the clock of its readiness cache (advanced past it before each call, so
    every /api/health/ready really reaches the database through the pool)."""

    def __init__(self, settings: Settings) -> None:
        self.now = 0.0
        self.client = create_app(settings, clock=lambda: self.now).test_client()

    def ready(self) -> int:
        self.now += READY_CACHE_SECONDS + 1
        status: int = self.client.get("/api/health/ready").status_code
        return status


def _api_client(deployment: Deployment) -> ApiClient:
    """The API as gunicorn loads it (Settings from the AWS environment, then create_app), token source injected."""
    env = {
        "DATABASE_AUTH": "iam",
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(deployment.frontend.port),
        "DATABASE_NAME": DATABASE,
        "DATABASE_USER": "api",
        "DATABASE_SSLMODE": "verify-full",
        "DATABASE_CA_FILE": str(deployment.frontend.ca_file),
        "AWS_REGION": "eu-west-1",
        "SECRET_KEY": "s" * 32,
        "JWT_SECRET_KEY": "j" * 32,
    }
    settings = Settings.from_env(env)
    tokens = deployment.tokens
    database = dataclasses.replace(
        settings.database, password_source=lambda: tokens.sign(settings.database.host, settings.database.port, "api")
    )
    return ApiClient(dataclasses.replace(settings, database=database))


def _lambda_env(deployment: Deployment, role: str) -> dict[str, str]:
    return {
        "STACK": "staging",
        "DATABASE_AUTH": "iam",
        "DATABASE_USER": role,
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(deployment.frontend.port),
        "DATABASE_NAME": DATABASE,
        "DATABASE_CA_FILE": str(deployment.frontend.ca_file),
    }


def _run_auto_confirm(deployment: Deployment) -> dict[str, Any]:
    result: dict[str, Any] = auto_confirm_handler.handle(
        {},
        _lambda_env(deployment, "auto_confirm"),
        clock=lambda: NOW,
        time_left_s=lambda: 60.0,
        sign_token=deployment.tokens.sign,
    )
    return result


def _run_health_check(deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    target = {
        "name": "database",
        "kind": "postgres",
        "host": "127.0.0.1",
        "port": deployment.frontend.port,
        "dbname": DATABASE,
        "ca_file": str(deployment.frontend.ca_file),
        "timeout_s": 10,
    }
    for key, value in (_lambda_env(deployment, "health_check") | {"TARGETS": json.dumps([target])}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(health_check_handler, "rds_token_signer", lambda: deployment.tokens.sign)
    summary: dict[str, Any] = health_check_handler.handler({}, None)
    return summary


class TokenSigningRds:
    """The one RDS client call the restore probe makes, answered by :class:`Tokens` (stands in for AWS)."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.meta = type("Meta", (), {"region_name": "eu-west-1"})()

    def generate_db_auth_token(self, *, DBHostname: str, Port: int, DBUsername: str, Region: str) -> str:
        assert Region == "eu-west-1"
        return self.tokens.sign(DBHostname, Port, DBUsername)


def _run_restore_probe(deployment: Deployment) -> dict[str, Any]:
    """The restore validator's in-VPC half, logging in as restore_validator (here on the live copy)."""
    rds = TokenSigningRds(deployment.tokens)
    summary: dict[str, Any] = restore_probe.probe(
        {"identifier": "shop-restore-test", "address": "127.0.0.1", "port": deployment.frontend.port, "iam_auth": True},
        {"DB_NAME": DATABASE, "DB_USER": "restore_validator", "DB_CA_FILE": str(deployment.frontend.ca_file)},
        client=lambda service: rds,
    )
    return summary


def test_master_rotation_leaves_the_api_and_every_lambda_working(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    tokens = deployment.tokens
    api = _api_client(deployment)

    # Before: the API answers from one pooled connection, signed once.
    assert [api.ready() for _ in range(3)] == [200, 200, 200]
    assert tokens.asked["api"] == 1

    # RDS rotates the master password. Migrations read the new one when they run; the old one is dead.
    old_master = deployment.rotate_master_password()
    with pytest.raises(Exception, match="password authentication failed"):
        migrate(deployment.master_url(old_master))
    assert migrate(deployment.master_url()).applied == []

    # The running API (same process, same pool) and every Lambda's database code keep working: none of them
    # uses the master.
    assert api.ready() == 200
    first = _run_auto_confirm(deployment)
    assert first["confirmed"] == 2
    health = _run_health_check(deployment, monkeypatch)
    assert health["ok"] is True, health
    restore = _run_restore_probe(deployment)
    assert restore["status"] == "SUCCESSFUL", restore  # it logged in and read the contract tables
    capsys.readouterr()

    # New connections ask for a fresh credential, and only then: the API's pool reconnects with a new token
    # after its connection died, each Lambda run signs a token for its own connection.
    asked_before = Counter(tokens.asked)
    for role in CONSUMERS:
        tokens.rotate(role)
    assert deployment.terminate_backends_of("api") == 1
    assert api.ready() == 200
    assert _run_auto_confirm(deployment)["confirmed"] == 0  # nothing left to confirm, but it logged in
    assert _run_health_check(deployment, monkeypatch)["ok"] is True
    assert _run_restore_probe(deployment)["status"] == "SUCCESSFUL"
    assert tokens.asked - asked_before == Counter(
        {"api": 1, "auto_confirm": 1, "health_check": 1, "restore_validator": 1}
    )


def test_a_stale_credential_is_refused(deployment: Deployment) -> None:
    """The rotation above is real: the server checks what the signer gives (pg_hba is SCRAM, not trust)."""
    stale = deployment.tokens.rotate("api")
    with pytest.raises(pg8000.exceptions.DatabaseError, match="28P01"):
        pg8000.native.Connection(
            "api", host="127.0.0.1", port=deployment.server.port, database=DATABASE, password=stale, ssl_context=False
        )


def test_without_a_master_the_migrations_are_the_only_thing_that_fails(deployment: Deployment) -> None:
    """The master secret has one consumer left: a wrong master password stops migrations, nothing else."""
    with pytest.raises((MigrationError, Exception), match="password authentication failed"):
        migrate(deployment.master_url("not-the-master-password"))
    assert _api_client(deployment).ready() == 200

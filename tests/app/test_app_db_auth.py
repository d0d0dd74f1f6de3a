"""How the API logs in (issue #14): IAM token per new connection, a small pool, TLS verify-full on AWS.

The IAM signer is botocore's real ``generate_db_auth_token`` with fake credentials (it signs locally: no
network). The pool is exercised against the real PostgreSQL of the test session.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pg8000.exceptions
import pg8000.native
import pytest

from app.config import ConfigError, Settings, database_target_from_env
from app.db import ConnectionPool, DatabaseTarget, DatabaseUnavailable, IamTokenSigner, connect

from .test_app_config import SECRETS, URL

MINIMAL_ENV = {"DATABASE_URL": URL, **SECRETS}
REGION = "eu-west-1"
RDS_HOST = "shop.abc123xyz.eu-west-1.rds.amazonaws.com"
IAM_ENV = {
    "DATABASE_AUTH": "iam",
    "DATABASE_HOST": RDS_HOST,
    "DATABASE_PORT": "5432",
    "DATABASE_NAME": "shop",
    "DATABASE_USER": "api",
    "DATABASE_SSLMODE": "verify-full",
    "DATABASE_CA_FILE": "/srv/certs/rds-global-bundle.pem",
    "AWS_REGION": REGION,
}


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Static keys in the environment and nothing else botocore could go looking for over the network."""
    for name in ("AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _token_parts(token: str) -> tuple[str, dict[str, str]]:
    """``host:port/?Action=connect&DBUser=...&X-Amz-...`` -> (host:port, query)."""
    parts = urlsplit("https://" + token)
    return parts.netloc, {key: values[0] for key, values in parse_qs(parts.query).items()}


def test_iam_signer_signs_for_the_host_port_user_and_region(fake_aws_credentials: None) -> None:
    signer = IamTokenSigner(RDS_HOST, 5432, "api", REGION)
    first = signer()
    where, query = _token_parts(first)

    assert where == f"{RDS_HOST}:5432"
    assert query["Action"] == "connect" and query["DBUser"] == "api"
    # SigV4 for the rds-db service in the instance's region, valid 15 minutes (what RDS accepts)
    assert query["X-Amz-Credential"].split("/")[2:4] == [REGION, "rds-db"]
    assert query["X-Amz-Credential"].startswith("AKIAIOSFODNN7EXAMPLE/")
    assert query["X-Amz-Expires"] == "900"
    assert "X-Amz-Signature" in query


def test_environment_with_iam_auth_builds_a_token_source_and_no_password(fake_aws_credentials: None) -> None:
    target = database_target_from_env(IAM_ENV)

    assert (target.user, target.sslmode, target.password) == ("api", "verify-full", "")
    assert isinstance(target.password_source, IamTokenSigner)
    assert (target.password_source.host, target.password_source.region) == (RDS_HOST, REGION)
    where, query = _token_parts(target.login_password())
    assert (where, query["DBUser"]) == (f"{RDS_HOST}:5432", "api")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_PASSWORD": "master-password"}, "DATABASE_PASSWORD must not be set with DATABASE_AUTH=iam"),
        ({"DATABASE_SSLMODE": "disable"}, "DATABASE_AUTH=iam needs TLS"),
        ({"AWS_REGION": ""}, "DATABASE_AUTH=iam needs AWS_REGION"),
        ({"DATABASE_USER": ""}, "DATABASE_AUTH=iam needs DATABASE_HOST/NAME/USER (missing: DATABASE_USER)"),
        ({"DATABASE_AUTH": "kerberos"}, "DATABASE_AUTH must be one of password, iam"),
        ({"DATABASE_URL": "postgresql://u:p@h/db"}, "DATABASE_AUTH=iam takes DATABASE_HOST"),
    ],
)
def test_iam_settings_mistakes_name_the_variable(change: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        database_target_from_env(IAM_ENV | change)


def test_settings_read_the_pool_size_and_statement_timeout() -> None:
    settings = Settings.from_env(MINIMAL_ENV | {"DATABASE_POOL_SIZE": "7", "DATABASE_STATEMENT_TIMEOUT_MS": "2500"})
    assert (settings.database_pool_size, settings.database_statement_timeout_ms) == (7, 2500)
    with pytest.raises(ConfigError, match="DATABASE_POOL_SIZE must be positive"):
        Settings.from_env(MINIMAL_ENV | {"DATABASE_POOL_SIZE": "0"})


def test_no_aws_credentials_is_a_database_unavailable_naming_the_token(
    monkeypatch: pytest.MonkeyPatch, fake_aws_credentials: None
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    target = DatabaseTarget(
        host="127.0.0.1",
        port=1,
        database="shop",
        user="api",
        password="",
        password_source=IamTokenSigner("127.0.0.1", 1, "api", REGION),
    )
    with pytest.raises(DatabaseUnavailable) as raised:
        connect(target, connect_timeout_s=1, statement_timeout_ms=1000, application_name="t")
    assert raised.value.cause.startswith("cannot get a login token: ")
    assert "Unable to locate credentials" in raised.value.cause


# -- the pool, against the real PostgreSQL -------------------------------------------------------------------


class CountingSource:
    """A password source that counts how often it is asked (each NEW connection asks once)."""

    def __init__(self, password: str) -> None:
        self.password = password
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
        return self.password


@pytest.fixture
def pooled(pg_server: Any) -> Iterator[tuple[ConnectionPool, CountingSource, list[float]]]:
    source = CountingSource(pg_server.password)
    target = DatabaseTarget(
        host=pg_server.host,
        port=pg_server.port,
        database="postgres",
        user=pg_server.user,
        password="not-this-one",
        sslmode="disable",
        password_source=source,
    )
    now = [1000.0]
    pool = ConnectionPool(
        lambda: connect(target, connect_timeout_s=5, statement_timeout_ms=5000, application_name="pool-test"),
        max_size=2,
        acquire_timeout_s=0.2,
        clock=lambda: now[0],
    )
    yield pool, source, now
    pool.close()


def _backend_pid(connection: pg8000.native.Connection) -> int:
    return int(connection.run("SELECT pg_backend_pid()")[0][0])


def test_pool_reuses_connections_and_asks_for_a_password_only_per_new_one(
    pooled: tuple[ConnectionPool, CountingSource, list[float]],
) -> None:
    pool, source, _ = pooled
    pids = {pool.run(_backend_pid) for _ in range(5)}
    assert len(pids) == 1 and source.calls == 1 and pool.opened == 1

    with pool.connection() as first, pool.connection() as second:  # two at once: a second connection
        assert _backend_pid(first) != _backend_pid(second)
    assert source.calls == 2 and pool.idle_count() == 2


def test_pool_is_bounded_and_says_so(pooled: tuple[ConnectionPool, CountingSource, list[float]]) -> None:
    pool, _, _ = pooled
    with (
        pool.connection(),
        pool.connection(),
        pytest.raises(DatabaseUnavailable, match=r"no free database connection within 0\.2 s") as raised,
        pool.connection(),
    ):
        pass
    assert raised.value.cause == "pool exhausted"


def test_a_dead_pooled_connection_is_replaced_without_a_failed_call(
    pooled: tuple[ConnectionPool, CountingSource, list[float]], pg_server: Any
) -> None:
    pool, source, _ = pooled
    pid = pool.run(_backend_pid)
    admin = pg_server.connect()
    try:
        admin.run("SELECT pg_terminate_backend(:pid)", pid=pid)
    finally:
        admin.close()

    assert pool.run(_backend_pid) != pid
    assert source.calls == 2  # the replacement asked for a fresh password (token)


def test_idle_connections_are_pinged_and_old_ones_retired(
    pooled: tuple[ConnectionPool, CountingSource, list[float]], pg_server: Any
) -> None:
    pool, source, now = pooled
    pid = pool.run(_backend_pid)
    admin = pg_server.connect()
    try:
        admin.run("SELECT pg_terminate_backend(:pid)", pid=pid)
    finally:
        admin.close()
    now[0] += pool.ping_after_s + 1  # idle long enough to be checked before it is lent
    with pool.connection() as connection:
        fresh = _backend_pid(connection)
    assert fresh != pid and source.calls == 2

    now[0] += pool.max_lifetime_s + 1  # alive, but too old: replaced
    assert pool.run(_backend_pid) != fresh
    assert source.calls == 3


def test_a_sql_error_keeps_the_connection_and_an_open_transaction_is_rolled_back(
    pooled: tuple[ConnectionPool, CountingSource, list[float]],
) -> None:
    pool, source, _ = pooled
    with pytest.raises(pg8000.exceptions.DatabaseError), pool.connection() as connection:
        connection.run("SELECT 1/0")
    with pool.connection() as connection:
        connection.run("START TRANSACTION")
        connection.run("CREATE TEMP TABLE left_open (id int)")
    with pool.connection() as connection:
        assert connection.run("SELECT to_regclass('pg_temp.left_open') IS NULL") == [[True]]
    assert source.calls == 1

"""lambdas.shared.db: the RDS-managed secret, TLS and timeouts, against moto and the real server."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pg8000.exceptions
import pytest

from lambdas.shared import db

pytestmark = pytest.mark.postgres


@pytest.fixture
def secrets(moto_endpoint: str) -> Any:
    return boto3.client(
        "secretsmanager",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def make_secret(secrets: Any, name: str, value: str) -> str:
    return str(secrets.create_secret(Name=name, SecretString=value)["ARN"])


def test_credentials_come_from_the_secret(secrets: Any, pg_server: Any, pg_tls_frontend: Any) -> None:
    arn = make_secret(
        secrets,
        "db-ok",
        json.dumps({"username": pg_server.user, "password": pg_server.password, "engine": "postgres"}),
    )
    credentials = db.fetch_credentials(arn, secrets)
    assert credentials.username == pg_server.user
    assert pg_server.password not in repr(credentials)

    endpoint = db.DatabaseEndpoint("127.0.0.1", pg_tls_frontend.port, "postgres", str(pg_tls_frontend.ca_file))
    connection = db.connect(endpoint, credentials)
    try:
        assert connection.run("SELECT current_user") == [[pg_server.user]]
    finally:
        connection.close()

    wrong = db.Credentials(pg_server.user, "not-the-password")
    with pytest.raises(db.DatabaseUnavailable, match="SQLSTATE 28P01: password authentication failed"):
        db.connect(endpoint, wrong)


def test_malformed_or_missing_secrets_fail_clearly(secrets: Any) -> None:
    not_json = make_secret(secrets, "db-not-json", "hunter2-plain-text")
    with pytest.raises(db.DatabaseConfigError, match="not JSON with 'username' and 'password'") as error:
        db.fetch_credentials(not_json, secrets)
    assert "hunter2" not in str(error.value)
    no_password = make_secret(secrets, "db-no-password", json.dumps({"username": "app"}))
    with pytest.raises(db.DatabaseConfigError, match="db-no-password"):
        db.fetch_credentials(no_password, secrets)
    missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:does-not-exist-AbCdEf"
    with pytest.raises(db.DatabaseUnavailable, match=r"cannot read database secret .*does-not-exist"):
        db.fetch_credentials(missing, secrets)


def test_tls_is_required_unless_explicitly_disabled(pg_server: Any, pg_tls_frontend: Any) -> None:
    credentials = db.Credentials(pg_server.user, pg_server.password)
    plain = db.DatabaseEndpoint("127.0.0.1", pg_server.port, "postgres")
    with pytest.raises(db.DatabaseUnavailable, match="server does not offer TLS, and TLS is required"):
        db.connect(plain, credentials)
    connection = db.connect(plain, credentials, tls=False)
    connection.close()

    # a TLS-only server (the frontend, like rds.force_ssl=1) turns plaintext clients away
    tls_only = db.DatabaseEndpoint("127.0.0.1", pg_tls_frontend.port, "postgres")
    dropped_before = pg_tls_frontend.plaintext_clients_dropped
    with pytest.raises(db.DatabaseUnavailable, match=f"127.0.0.1:{pg_tls_frontend.port}/postgres"):
        db.connect(tls_only, credentials, tls=False, connect_timeout_s=2)
    assert pg_tls_frontend.plaintext_clients_dropped == dropped_before + 1
    # without a CA file: encrypted, certificate not checked (libpq's sslmode=require)
    db.connect(tls_only, credentials).close()


def test_statement_and_lock_timeouts_hold_from_the_first_statement(pg_server: Any) -> None:
    endpoint = db.DatabaseEndpoint("127.0.0.1", pg_server.port, "postgres")
    credentials = db.Credentials(pg_server.user, pg_server.password)
    connection = db.connect(endpoint, credentials, tls=False, statement_timeout_ms=300, lock_timeout_ms=700)
    try:
        assert connection.run("SHOW statement_timeout") == [["300ms"]]
        assert connection.run("SHOW lock_timeout") == [["700ms"]]
        with pytest.raises(pg8000.exceptions.DatabaseError) as error:
            connection.run("SELECT pg_sleep(3)")
        assert db.sqlstate(error.value) == "57014"  # query_canceled by statement_timeout
        assert "SQLSTATE 57014" in db.describe_error(error.value)
    finally:
        connection.close()


def test_settings_errors_name_the_variable() -> None:
    with pytest.raises(db.DatabaseConfigError, match="DATABASE_HOST, DATABASE_NAME"):
        db.DatabaseEndpoint.from_env({})
    with pytest.raises(db.DatabaseConfigError, match="DATABASE_PORT"):
        db.DatabaseEndpoint.from_env({"DATABASE_HOST": "h", "DATABASE_NAME": "n", "DATABASE_PORT": "54x"})
    with pytest.raises(db.DatabaseConfigError, match="DATABASE_SECRET_ARN"):
        db.secret_arn_from_env({"DATABASE_SECRET_ARN": "my-password"})
    endpoint = db.DatabaseEndpoint.from_env({"DATABASE_HOST": "db.internal", "DATABASE_NAME": "shop"})
    assert (endpoint.port, endpoint.ca_file) == (5432, None)
    with pytest.raises(db.DatabaseConfigError, match="sslmode"):
        db.parse_database_url("postgresql://u:p@h/db?sslmode=prefer")
    with pytest.raises(db.DatabaseConfigError, match="sslrootcert"):
        db.parse_database_url("postgresql://u:p@h/db?sslmode=verify-full")
    with pytest.raises(db.DatabaseConfigError, match="database name"):
        db.parse_database_url("postgresql://u:p@h")
    endpoint, credentials, tls = db.parse_database_url("postgresql://u%40x:p%2Fw@h:6432/shop")
    assert (
        endpoint.host,
        endpoint.port,
        endpoint.database,
        credentials.username,
        credentials.password,
        tls,
    ) == ("h", 6432, "shop", "u@x", "p/w", True)

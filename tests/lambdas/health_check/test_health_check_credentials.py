"""Fetching the RDS-managed secret from Secrets Manager (moto in server mode on 127.0.0.1)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lambdas.health_check.checks import CheckFailure, DbCredentials
from lambdas.health_check.credentials import (
    OncePerRun,
    fetch_db_credentials,
    parse_secret,
    secrets_manager_client,
)

from .support import closed_port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, moto_endpoint: str) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    return moto_endpoint


def make_secret(name: str, value: str) -> str:
    client = boto3.client("secretsmanager")
    return str(client.create_secret(Name=name, SecretString=value)["ARN"])


def test_fetches_the_rds_managed_secret(aws_env: str) -> None:
    arn = make_secret("rds!cluster-fetch", json.dumps({"username": "shipyard_admin", "password": "s3cr3t-pw"}))

    credentials = fetch_db_credentials(arn, secrets_manager_client())

    assert credentials == DbCredentials(username="shipyard_admin", password="s3cr3t-pw")
    assert "s3cr3t-pw" not in repr(credentials)


def test_missing_secret_is_a_credentials_failure(aws_env: str) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!nope-AbCdEf"

    with pytest.raises(CheckFailure) as caught:
        fetch_db_credentials(arn, secrets_manager_client())

    assert caught.value.reason == "credentials"
    assert caught.value.detail.startswith("GetSecretValue failed: ResourceNotFoundException")


def test_unreachable_endpoint_says_what_to_fix(monkeypatch: pytest.MonkeyPatch, aws_env: str) -> None:
    with closed_port() as port:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://127.0.0.1:{port}")
        with pytest.raises(CheckFailure) as caught:
            fetch_db_credentials("arn:aws:secretsmanager:us-east-1:1:secret:x", secrets_manager_client())

    assert caught.value.reason == "credentials"
    assert caught.value.detail == (
        "cannot reach Secrets Manager (EndpointConnectionError); from inside a VPC this needs a "
        "secretsmanager interface endpoint or a NAT gateway"
    )


@pytest.mark.parametrize(
    ("secret", "detail"),
    [
        ("hunter2", "the secret is not JSON"),
        ('["hunter2"]', "the secret is not a JSON object"),
        ('{"username": "admin"}', "the secret lacks a string password"),
        ('{"password": "hunter2"}', "the secret lacks a string username"),
        (None, "the secret has no SecretString (binary secrets are not supported)"),
    ],
)
def test_malformed_secret_is_named_without_its_content(secret: Any, detail: str) -> None:
    with pytest.raises(CheckFailure) as caught:
        parse_secret(secret)

    assert (caught.value.reason, caught.value.detail) == ("credentials", detail)
    assert "hunter2" not in str(caught.value)


def test_once_per_run_shares_success_and_failure() -> None:
    calls: list[int] = []

    def fetch() -> DbCredentials:
        calls.append(1)
        return DbCredentials("u", "p")

    once = OncePerRun(fetch)
    assert once() is once()
    assert len(calls) == 1

    def broken() -> DbCredentials:
        calls.append(2)
        raise RuntimeError("botocore blew up")

    failing = OncePerRun(broken)
    for _ in range(3):
        with pytest.raises(CheckFailure) as caught:
            failing()
        assert (caught.value.reason, caught.value.detail) == (
            "credentials",
            "GetSecretValue failed: RuntimeError",
        )
    assert calls.count(2) == 1

"""The Lambda handler end to end: secret from Secrets Manager (moto server), TLS, EMF metrics on stdout."""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from lambdas.auto_confirm import handler as handler_module
from lambdas.auto_confirm.core import NAMESPACE
from lambdas.shared.db import DatabaseUnavailable

from .auto_confirm_support import DEADLINE, NOW, Marketplace

pytestmark = pytest.mark.postgres


REGION = "us-east-1"
REPO_ROOT = Path(__file__).resolve().parents[3]


class LambdaContext:
    """The two things the handler reads from the runtime's context object."""

    function_name = "auto-confirm"

    def __init__(self, remaining_ms: int = 300_000) -> None:
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


def emf_documents(stdout: str) -> list[dict[str, Any]]:
    documents = []
    for line in stdout.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def value(document: dict[str, Any], name: str) -> float:
    """A metric's value in an EMF document (Powertools writes each as a one-element list)."""
    raw = document[name]
    if isinstance(raw, list):
        [single] = raw
        return float(single)
    return float(raw)


def log_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{") and '"_aws"' not in line]


@pytest.fixture
def secret_arn(moto_endpoint: str, pg_server: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_endpoint,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.client("secretsmanager", region_name=REGION, endpoint_url=moto_endpoint)
    name = f"rds-master-{dt.datetime.now(dt.UTC).timestamp()}"
    # the shape RDS writes for a managed master password
    created = client.create_secret(
        Name=name, SecretString=json.dumps({"username": pg_server.user, "password": pg_server.password})
    )
    return str(created["ARN"])


@pytest.fixture
def lambda_env(
    market: Marketplace, secret_arn: str, pg_tls_frontend: Any, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """The function's environment: no password anywhere, database reached over TLS with a verified cert."""
    database = market.url.rsplit("/", 1)[1].split("?", 1)[0]
    env = {
        "DATABASE_SECRET_ARN": secret_arn,
        "DATABASE_HOST": "127.0.0.1",
        "DATABASE_PORT": str(pg_tls_frontend.port),
        "DATABASE_NAME": database,
        "DATABASE_CA_FILE": str(pg_tls_frontend.ca_file),
        "STACK": "staging",
        "POWERTOOLS_SERVICE_NAME": "auto-confirm",  # must not become a dimension
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    return env


@pytest.fixture
def due_orders(market: Marketplace) -> tuple[int, int, int]:
    market.user("admin")
    client = market.user("client", blocked="300.00")
    provider = market.user("provider")
    market.order(client, provider, "100.00", completed_at=NOW - DEADLINE - dt.timedelta(hours=1))
    market.order(client, provider, "50.00")
    market.order(client, provider, "999.00", completed_at=NOW - DEADLINE)  # more than the escrow: skipped
    return client, provider, 3


def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler_module, "utc_now", lambda: NOW)


def test_handler_confirms_and_publishes_emf_metrics(
    lambda_env: dict[str, str],
    due_orders: tuple[int, int, int],
    market: Marketplace,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_now(monkeypatch)
    summary = handler_module.handler({}, LambdaContext())

    assert summary["confirmed"] == 2
    assert summary["amount_released"] == "150.00"
    assert summary["skipped"] == 1
    client, provider, _ = due_orders
    assert market.wallet(provider) == (Decimal("142.50"), Decimal("0.00"))
    assert market.wallet(client) == (Decimal("0.00"), Decimal("150.00"))

    stdout = capsys.readouterr().out
    [document] = emf_documents(stdout)
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE == "Shipyard/AutoConfirm"
    assert directive["Dimensions"] == [["Stack"]]
    assert document["Stack"] == "staging"
    units = {metric["Name"]: metric["Unit"] for metric in directive["Metrics"]}
    assert units == {
        "OrdersConfirmed": "Count",
        "AmountReleased": "None",
        "OldestOverdueSeconds": "Seconds",
        "OrdersSkipped": "Count",
        "RunDurationMs": "Milliseconds",
        "MaxBatchDurationMs": "Milliseconds",
        "RunFailed": "Count",
    }
    assert value(document, "OrdersConfirmed") == 2
    assert value(document, "AmountReleased") == 150.0
    assert value(document, "OrdersSkipped") == 1
    assert value(document, "OldestOverdueSeconds") == 3600.0
    assert value(document, "RunFailed") == 0
    assert value(document, "RunDurationMs") > 0

    lines = log_lines(stdout)
    assert [line["order_id"] for line in lines if line.get("event") == "balance_inconsistency"] == [3]
    [summary_line] = [line for line in lines if "summary" in line]
    assert summary_line["summary"]["confirmed"] == 2
    assert summary_line["level"] == "WARNING"  # a skipped order deserves attention
    secret_value = market.connection.run("SELECT 1")  # connection still usable; nothing leaked below
    assert secret_value == [[1]]
    assert lambda_env["DATABASE_SECRET_ARN"] not in json.dumps(document)


def test_handler_database_unreachable_fails_with_metric(
    lambda_env: dict[str, str],
    due_orders: tuple[int, int, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("DATABASE_PORT", str(closed_port))

    with pytest.raises(DatabaseUnavailable, match=rf"cannot reach PostgreSQL at 127\.0\.0\.1:{closed_port}/"):
        handler_module.handler({}, LambdaContext())

    stdout = capsys.readouterr().out
    [document] = emf_documents(stdout)
    assert value(document, "RunFailed") == 1
    assert value(document, "OrdersConfirmed") == 0
    assert "OldestOverdueSeconds" not in document  # unknown, not "zero backlog"
    [error] = [line for line in log_lines(stdout) if line.get("event") == "database_error"]
    assert error["level"] == "ERROR"
    assert str(closed_port) in error["message"]


def test_handler_requires_tls(
    lambda_env: dict[str, str],
    due_orders: tuple[int, int, int],
    pg_server: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    market: Marketplace,
) -> None:
    monkeypatch.setenv("DATABASE_PORT", str(pg_server.port))  # the server itself speaks no TLS

    with pytest.raises(DatabaseUnavailable, match="server does not offer TLS, and TLS is required"):
        handler_module.handler({}, LambdaContext())

    assert value(emf_documents(capsys.readouterr().out)[0], "RunFailed") == 1
    assert market.status(1)[0] == "awaiting_confirmation"


def test_handler_verifies_the_certificate_when_a_ca_is_configured(
    lambda_env: dict[str, str],
    due_orders: tuple[int, int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import certifi

    # public CAs did not sign the test server's certificate: verification must refuse it
    monkeypatch.setenv("DATABASE_CA_FILE", certifi.where())
    with pytest.raises(DatabaseUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        handler_module.handler({}, LambdaContext())


def test_handler_rejects_bad_events_naming_the_field(
    lambda_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(handler_module.EventError, match="batch_size"):
        handler_module.handler({"batch_size": "lots"}, LambdaContext())
    with pytest.raises(handler_module.EventError, match=r"unknown event field\(s\) \['batchSize'\]"):
        handler_module.handler({"batchSize": 10}, LambdaContext())
    with pytest.raises(handler_module.EventError, match="dry_run"):
        handler_module.handler({"dry_run": "yes"}, LambdaContext())
    assert all(value(document, "RunFailed") == 1 for document in emf_documents(capsys.readouterr().out))


def test_handler_accepts_a_scheduler_envelope_and_dry_run(
    lambda_env: dict[str, str],
    due_orders: tuple[int, int, int],
    market: Marketplace,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_now(monkeypatch)
    event = {
        "version": "0",
        "id": "x",
        "detail-type": "Scheduled Event",
        "source": "aws.scheduler",
        "time": "2026-03-01T12:00:00Z",
        "detail": {},
        "dry_run": True,
    }
    summary = handler_module.handler(event, LambdaContext())

    assert summary["dry_run"] is True
    assert summary["confirmed"] == 2
    assert market.status(1)[0] == "awaiting_confirmation"
    assert emf_documents(capsys.readouterr().out) == []  # dry runs do not feed dashboards or alarms


def test_metrics_disabled_suppresses_emf_but_not_the_result(
    lambda_env: dict[str, str],
    due_orders: tuple[int, int, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_now(monkeypatch)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    summary = handler_module.handler({}, LambdaContext())
    assert summary["confirmed"] == 2
    assert emf_documents(capsys.readouterr().out) == []


def test_handler_module_load_stays_light() -> None:
    """Cold start: importing the handler must not import boto3, pg8000 or Powertools."""
    code = (
        "import sys, lambdas.auto_confirm.handler\n"
        "heavy = [m for m in ('boto3', 'botocore', 'pg8000', 'aws_lambda_powertools') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60, cwd=REPO_ROOT
    )
    assert done.stdout.strip() == ""

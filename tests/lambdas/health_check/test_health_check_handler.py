"""The Lambda handler end to end (environment in, stdout and return value out) and the command-line tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lambdas.health_check import handler as handler_module
from lambdas.health_check.config import ConfigError

from .conftest import MakeServer, TlsPostgres
from .support import closed_port, hanging_port

REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class FakeLambdaContext:
    """The two things the handler reads from the runtime's context object."""

    remaining_ms: int = 60_000
    function_name: str = "shipyard-staging-health-check"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("TARGETS", "RUN_DEADLINE_S", "DATABASE_SECRET_ARN", "POWERTOOLS_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STACK", "staging")
    return monkeypatch


def test_handler_prints_check_lines_metrics_and_summary(
    env: pytest.MonkeyPatch, make_server: MakeServer, capsys: pytest.CaptureFixture[str]
) -> None:
    server = make_server()
    server.route("/api/health", body='{"status": "ok"}', content_type="application/json")
    with closed_port() as port:
        env.setenv(
            "TARGETS",
            json.dumps(
                [
                    {
                        "name": "api",
                        "kind": "http",
                        "url": server.url("/api/health"),
                        "json_field": {"path": "status", "equals": "ok"},
                    },
                    {"name": "frontend", "kind": "http", "url": f"http://127.0.0.1:{port}/"},
                ]
            ),
        )
        returned = handler_module.handler({"source": "aws.scheduler"}, FakeLambdaContext())

    lines = printed(capsys)
    checks = [line for line in lines if line.get("event") == "check"]
    metrics = [line for line in lines if "_aws" in line]
    assert [(c["endpoint"], c["up"], c["reason"], c["level"]) for c in checks] == [
        ("api", True, None, "INFO"),
        ("frontend", False, "refused", "ERROR"),
    ]
    assert [(m.get("Endpoint"), m.get("Reason"), m.get("Up"), m.get("CheckFailed")) for m in metrics] == [
        ("api", None, [1.0], None),
        ("frontend", None, [0.0], None),
        ("frontend", "refused", None, [1.0]),
        (None, None, None, None),
    ]
    assert all(m["Stack"] == "staging" for m in metrics)
    assert lines[-1] == returned  # the summary line is the result event
    assert (returned["source"], returned["ok"], returned["up"], returned["down"]) == (
        "shipyard.health_check",
        False,
        1,
        1,
    )


def test_handler_never_runs_past_the_lambdas_remaining_time(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with hanging_port() as port:
        env.setenv(
            "TARGETS",
            json.dumps([{"name": "stuck", "kind": "http", "url": f"http://127.0.0.1:{port}/", "timeout_s": 60}]),
        )
        env.setenv("RUN_DEADLINE_S", "25")
        started = time.monotonic()
        # 1.6 s left in the invocation: the run must end about 1 s before that to print its results.
        returned = handler_module.handler({}, FakeLambdaContext(remaining_ms=1600))
        elapsed = time.monotonic() - started

    assert returned["deadline_s"] == pytest.approx(0.6)
    assert returned["results"][0]["reason"] == "timeout"
    assert returned["results"][0]["detail"] == "still running at the run deadline (0.6 s) during response"
    assert elapsed < 1.6


def test_bad_configuration_fails_the_invocation_with_the_problems(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    env.setenv("TARGETS", json.dumps([{"name": "api", "kind": "http", "url": "https://x/", "timeout_s": 0}]))

    with pytest.raises(ConfigError):
        handler_module.handler({}, FakeLambdaContext())

    (line,) = printed(capsys)
    assert (line["level"], line["source"], line["event"]) == (
        "ERROR",
        "shipyard.health_check",
        "config_error",
    )
    assert line["problems"] == ["TARGETS[0].timeout_s: must be > 0 (got 0)"]


@pytest.fixture
def moto_secrets(env: pytest.MonkeyPatch) -> Iterator[None]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env.setenv("AWS_ACCESS_KEY_ID", "testing")
    env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    env.setenv("AWS_DEFAULT_REGION", "us-east-1")
    env.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{host}:{port}")
    env.setattr(handler_module, "_secrets_client", None)  # a warm client from another test points elsewhere
    yield
    server.stop()


def test_handler_checks_the_database_with_the_secret_fetched_at_run_time(
    env: pytest.MonkeyPatch, moto_secrets: None, tls_postgres: TlsPostgres, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = json.dumps({"username": tls_postgres.user, "password": tls_postgres.password})
    arn = boto3.client("secretsmanager").create_secret(Name="rds!db-handler", SecretString=secret)["ARN"]
    env.setenv("DATABASE_SECRET_ARN", arn)
    env.setenv(
        "TARGETS",
        json.dumps(
            [
                {
                    "name": "database",
                    "kind": "postgres",
                    "host": tls_postgres.host,
                    "port": tls_postgres.port,
                    "dbname": tls_postgres.dbname,
                    "ca_file": str(tls_postgres.ca_file),
                }
            ]
        ),
    )

    returned = handler_module.handler({}, FakeLambdaContext())

    assert returned["results"][0]["up"], returned["results"][0]["detail"]
    assert returned["ok"]
    output = capsys.readouterr().out
    assert tls_postgres.password not in output  # the secret is used, never printed


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"TARGETS", "DATABASE_SECRET_ARN", "PGUSER", "PGPASSWORD"}
    }
    return subprocess.run(
        [sys.executable, "-m", "lambdas.health_check", *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_command_line_prints_a_table_and_exits_1_when_something_is_down(
    make_server: MakeServer, tmp_path: Path
) -> None:
    server = make_server()
    server.route("/", body="shop")
    with closed_port() as port:
        targets = tmp_path / "targets.json"
        targets.write_text(
            json.dumps(
                [
                    {"name": "frontend", "kind": "http", "url": server.url("/"), "body_contains": "shop"},
                    {"name": "api", "kind": "http", "url": f"http://127.0.0.1:{port}/api/health"},
                ]
            )
        )
        completed = run_cli("--targets", str(targets), "--deadline", "10")

    assert completed.returncode == 1, completed.stderr
    lines = completed.stdout.splitlines()
    assert lines[0].split()[:3] == ["ENDPOINT", "KIND", "UP"]
    assert lines[1].split()[:4] == ["frontend", "http", "yes", "-"]
    assert lines[2].split()[:4] == ["api", "http", "NO", "refused"]
    assert lines[3].startswith("1/2 up in ")


def test_command_line_takes_inline_json_and_exits_0_when_all_up(make_server: MakeServer) -> None:
    server = make_server()
    server.route("/")

    completed = run_cli(
        "--targets", json.dumps([{"name": "frontend", "kind": "http", "url": server.url("/")}]), "--json"
    )

    assert completed.returncode == 0, completed.stderr
    documents = [json.loads(line) for line in completed.stdout.splitlines()]
    assert documents[-1]["source"] == "shipyard.health_check"
    assert documents[-1]["ok"] is True


def test_command_line_rejects_bad_targets_with_exit_2() -> None:
    completed = run_cli("--targets", '[{"name": "x", "kind": "http"}]')

    assert completed.returncode == 2
    assert "--targets[0].url: is required for kind http (got None)" in completed.stderr

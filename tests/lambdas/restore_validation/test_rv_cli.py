"""python -m lambdas.restore_validation: what the restore runbook runs to verify a restored database."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lambdas.restore_validation.__main__ import main
from tests.conftest import EmbeddedPostgres, database_name

pytestmark = pytest.mark.postgres

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_a_seeded_database_passes_with_exit_0(
    pg_server: EmbeddedPostgres, seeded_database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", pg_server.url(seeded_database)]) == 0

    out = capsys.readouterr().out
    assert f"database 127.0.0.1:{pg_server.port}/{seeded_database}" in out
    assert "  ok    platform_wallet" in out
    assert "  rows  users: 1+" in out
    assert out.splitlines()[-1].startswith("SUCCESSFUL in ")


def test_an_empty_database_fails_with_exit_1_and_the_reason(
    pg_server: EmbeddedPostgres, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--database-url", database_url, "--json"]) == 1

    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "FAILED"
    assert result["failures"] == [
        {
            "check": "tables",
            "reason": "missing table(s) in schema public: audit_log, orders, system_config, "
            "transactions, users, wallets",
        }
    ]
    assert result["database"].endswith(database_name(database_url))


def test_the_password_can_come_from_pgpassword(
    pg_server: EmbeddedPostgres, seeded_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    url = f"postgresql://{pg_server.user}@127.0.0.1:{pg_server.port}/{seeded_database}?sslmode=disable"
    assert main(["--database-url", url, "--min-rows", '{"users": 3}']) == 0
    assert main(["--database-url", url, "--min-rows", '{"users": 4}']) == 1


def test_bad_arguments_exit_2_naming_them(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--database-url", "postgresql://u@127.0.0.1/app", "--min-rows", "[]"])
    assert exited.value.code == 2
    assert "--min-rows must be a JSON object" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--database-url", "mysql://u@127.0.0.1/app"])
    assert "--database-url must look like postgresql://" in capsys.readouterr().err


def test_as_a_module_an_unreachable_database_exits_1_quickly() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "lambdas.restore_validation",
            "--database-url",
            f"postgresql://u:p@127.0.0.1:{port}/app",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"FAIL  connect: cannot reach PostgreSQL at 127.0.0.1:{port}/app" in done.stdout

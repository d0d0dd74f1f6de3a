"""Issue 17: bad arguments exit 2 with a clear message, an un-migrated database says what to run, and a server
that accepts TCP and never answers is bounded by the connect timeout, naming the phase that stalled."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from lambdas.auto_confirm import core
from lambdas.auto_confirm.__main__ import main
from lambdas.shared import db
from tests.silent_server import SilentServer

BAD_URLS = [
    ("not a url", "must look like postgresql://user:password@host:port/dbname"),
    ("mysql://job:pw@127.0.0.1:3306/shop", "scheme 'mysql'"),
    ("postgresql://job:pw@127.0.0.1:5432/", "no database name"),
    ("postgresql://job:pw@127.0.0.1:5432/shop?sslmode=prefer", "sslmode must be disable, require or verify-full"),
    ("postgresql://job:pw@127.0.0.1:notaport/shop", "port must be a number from 1 to 65535, got 'notaport'"),
    ("postgresql://job:pw@127.0.0.1:5432/shop?sslmode=verify-full", "needs sslrootcert"),
    ("postgresql://job:pw@127.0.0.1:5432/shop?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "no such file"),
]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exit_:  # argparse's own errors
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("url", "said"), BAD_URLS, ids=[u for u, _ in BAD_URLS])
def test_a_malformed_database_url_exits_2_naming_the_flag(
    capsys: pytest.CaptureFixture[str], url: str, said: str
) -> None:
    code, output = run_main(capsys, "--database-url", url, "--dry-run")
    assert code == 2, output
    assert "--database-url" in output and said in output
    assert "Traceback" not in output and "pw@" not in output


@pytest.mark.postgres
def test_an_unmigrated_database_says_run_app_migrate_first(
    capsys: pytest.CaptureFixture[str], database_url: str
) -> None:
    code, output = run_main(capsys, "--database-url", database_url, "--dry-run")
    assert code == 1
    assert "run app.migrate first" in output and "42P01" in output
    assert "{" not in output.split("error:", 1)[1]  # not pg8000's raw error dict


@pytest.mark.parametrize(("sslmode", "phase"), [("require", "phase: TLS"), ("disable", "phase: auth")])
def test_a_server_that_never_answers_is_bounded_by_the_connect_timeout(sslmode: str, phase: str) -> None:
    endpoint = db.DatabaseEndpoint("127.0.0.1", 0, "shop")
    with SilentServer() as server:
        endpoint = db.DatabaseEndpoint("127.0.0.1", server.port, "shop")
        started = time.monotonic()
        with pytest.raises(db.DatabaseUnavailable) as caught:
            db.connect(endpoint, db.Credentials("job", "pw"), tls=sslmode == "require", connect_timeout_s=0.5)
        elapsed = time.monotonic() - started
    assert phase in str(caught.value)
    assert 0.4 < elapsed < 3  # one connect timeout, not the 30 s statement timeout


def test_the_cli_gives_up_after_the_documented_5_s(capsys: pytest.CaptureFixture[str]) -> None:
    # README (lambdas/auto_confirm): "Connect timeout 5 s"; before the fix the read waited 30 + 5 s.
    with SilentServer() as server:
        started = time.monotonic()
        code, output = run_main(capsys, "--database-url", f"postgresql://job:pw@127.0.0.1:{server.port}/shop")
        elapsed = time.monotonic() - started
    assert code == 1
    assert "did not answer within 5 s (phase: TLS)" in output
    assert db.DEFAULT_CONNECT_TIMEOUT_S - 0.5 < elapsed < db.DEFAULT_CONNECT_TIMEOUT_S + 3


def test_a_statement_that_never_gets_an_answer_names_the_statement_phase() -> None:
    with SilentServer(answer_login=True) as server:
        endpoint = db.DatabaseEndpoint("127.0.0.1", server.port, "shop")
        connection = db.connect(
            endpoint, db.Credentials("job", "pw"), tls=False, connect_timeout_s=0.3, statement_timeout_ms=200
        )
        started = time.monotonic()
        with pytest.raises(core.AutoConfirmError) as caught:
            core.run(connection, lambda: dt.datetime(2026, 3, 1, tzinfo=dt.UTC))
        elapsed = time.monotonic() - started
        connection._usock.close()  # the server would never answer a Terminate either
    assert "phase: statement" in str(caught.value)
    assert elapsed < 3


def test_a_ca_bundle_path_is_checked_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(db.DatabaseConfigError, match="no such file"):
        db.parse_database_url(f"postgresql://job:pw@127.0.0.1/shop?sslmode=verify-full&sslrootcert={tmp_path}/x.pem")

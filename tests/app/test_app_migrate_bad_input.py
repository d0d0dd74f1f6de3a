"""Issue 17: `python -m app.migrate` exits 2 for bad arguments with a clear message (no traceback), and a server
that accepts TCP and never answers is bounded by the connect timeout, naming the phase that stalled."""

from __future__ import annotations

import time

import pytest

from app import db
from app import migrate as migrations
from tests.silent_server import SilentServer

BAD_URLS = [
    ("not a url", "scheme must be postgresql://"),
    ("mysql://job:pw@127.0.0.1:3306/shop", "scheme must be postgresql://, got mysql"),
    ("postgresql://job:pw@127.0.0.1:5432/", "missing database name"),
    ("postgresql://job:pw@127.0.0.1:5432/shop?sslmode=prefer", "must be one of disable, require, verify-full"),
    ("postgresql://job:pw@127.0.0.1:notaport/shop", "port must be a number from 1 to 65535, got 'notaport'"),
    ("postgresql://job:pw@127.0.0.1:5432/shop?sslmode=verify-full", "needs a CA file"),
    ("postgresql://job:pw@127.0.0.1/shop?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem", "cannot load a CA"),
]


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = migrations.main(list(argv))
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize(("url", "said"), BAD_URLS, ids=[u for u, _ in BAD_URLS])
def test_a_malformed_url_exits_2(capsys: pytest.CaptureFixture[str], url: str, said: str) -> None:
    code, output = run_main(capsys, "--database-url", url)
    assert code == 2, output
    assert "--database-url" in output and said in output
    assert "Traceback" not in output


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "0"])
def test_a_bad_lock_timeout_exits_2(capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, output = run_main(capsys, "--database-url", "postgresql://job:pw@127.0.0.1/shop", "--lock-timeout", value)
    assert code == 2 and "--lock-timeout" in output


@pytest.mark.parametrize(("sslmode", "phase"), [("require", "phase: TLS"), ("disable", "phase: auth")])
def test_a_server_that_never_answers_is_bounded_by_the_connect_timeout(sslmode: str, phase: str) -> None:
    with SilentServer() as server:
        target = db.DatabaseTarget.from_url(f"postgresql://job:pw@127.0.0.1:{server.port}/shop?sslmode={sslmode}")
        started = time.monotonic()
        with pytest.raises(db.DatabaseUnavailable) as caught:
            # statement_timeout_ms=0 is migrate's own setting: before the fix the socket then waited forever
            db.connect(target, connect_timeout_s=0.5, statement_timeout_ms=0, application_name="test")
        elapsed = time.monotonic() - started
    assert phase in str(caught.value)
    assert 0.4 < elapsed < 3

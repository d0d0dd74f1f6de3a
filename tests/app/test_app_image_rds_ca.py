"""The API image carries the RDS CA bundle where the task definition says it is (issue #22 item 6).

No Docker engine here, so this reads what the build does: `make rds-ca` writes app/certs/rds-ca-bundle.pem
into the build context, app/Dockerfile copies the whole context to /srv/app in the build stage and /srv/app
into the runtime stage, and nothing on the way (.dockerignore, the clean-up RUN) drops it.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from app.db import DatabaseTarget, DatabaseUnavailable, connect
from infra import rds_ca

from .app_support import DOCKERFILE, REPO_ROOT


def _instructions() -> list[str]:
    logical, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    return [line for line in logical if line]


def test_the_bundle_in_the_build_context_reaches_the_image_path() -> None:
    assert rds_ca.APP_BUNDLE_PATH == REPO_ROOT / "app" / rds_ca.APP_BUNDLE_RELATIVE
    instructions = _instructions()
    assert "COPY . /srv/app" in instructions  # build stage: the whole context, certs/ included
    assert "COPY --from=build /srv/app /srv/app" in instructions  # runtime stage
    assert rds_ca.IMAGE_PATH == "/srv/app/" + rds_ca.APP_BUNDLE_RELATIVE
    cleanups = [line for line in instructions if line.startswith("RUN rm ")]
    assert cleanups and not any("certs" in line or "*.pem" in line for line in cleanups)
    ignored = [line.strip() for line in (REPO_ROOT / "app" / ".dockerignore").read_text().splitlines() if line.strip()]
    assert not [p for p in ignored if fnmatch.fnmatch(rds_ca.APP_BUNDLE_RELATIVE, p.lstrip("/"))]
    assert not [p for p in ignored if fnmatch.fnmatch("certs", p.strip("/"))]


def test_verify_full_with_a_missing_bundle_is_database_unavailable_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "rds-ca-bundle.pem"
    target = DatabaseTarget("127.0.0.1", 1, "shop", "api", "", sslmode="verify-full", ca_file=str(missing))
    with pytest.raises(DatabaseUnavailable) as raised:
        connect(target, connect_timeout_s=1, statement_timeout_ms=1000, application_name="t")
    assert str(missing) in raised.value.cause and "No such file or directory" in raised.value.cause
    assert "cannot load a CA bundle" in raised.value.cause

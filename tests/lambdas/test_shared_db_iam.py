"""lambdas.shared.db IAM auth: the environment contract, and the real SDK signer with fake credentials.

botocore's ``generate_db_auth_token`` signs locally (SigV4 presign), so this makes no network call.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from lambdas.shared import db

REGION = "ap-southeast-4"  # its own region: the module caches one boto3 client per region
HOST = "shop.abc123.ap-southeast-4.rds.amazonaws.com"


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_the_signer_signs_for_host_port_user_and_region(fake_aws_credentials: None) -> None:
    sign = db.rds_token_signer(REGION)
    credentials = db.iam_credentials(db.DatabaseEndpoint(HOST, 5432, "shop"), "auto_confirm", sign)
    parts = urlsplit("https://" + credentials.password)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}

    assert credentials.username == "auto_confirm"
    assert parts.netloc == f"{HOST}:5432"
    assert (query["Action"], query["DBUser"]) == ("connect", "auto_confirm")
    assert query["X-Amz-Credential"].split("/")[2:4] == [REGION, "rds-db"]
    assert query["X-Amz-Expires"] == "900"
    assert credentials.password not in repr(credentials)  # the token never shows in logs of the object


def test_a_signer_that_cannot_sign_is_database_unavailable() -> None:
    def no_credentials(host: str, port: int, user: str) -> str:
        raise RuntimeError("Unable to locate credentials")

    with pytest.raises(db.DatabaseUnavailable, match=r"cannot sign an IAM auth token for health_check@h:5432/shop"):
        db.iam_credentials(db.DatabaseEndpoint("h", 5432, "shop"), "health_check", no_credentials)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"DATABASE_AUTH": "secret", "DATABASE_USER": "x"}, None),
        ({"DATABASE_AUTH": "iam", "DATABASE_USER": "auto_confirm"}, "auto_confirm"),
    ],
)
def test_iam_user_from_env(env: dict[str, str], expected: str | None) -> None:
    assert db.iam_user_from_env(env) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DATABASE_AUTH": "iam"}, "DATABASE_USER must name the database role when DATABASE_AUTH=iam"),
        ({"DATABASE_AUTH": "kerberos"}, "DATABASE_AUTH must be iam or secret, got 'kerberos'"),
    ],
)
def test_iam_settings_mistakes_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(db.DatabaseConfigError, match=message):
        db.iam_user_from_env(env)

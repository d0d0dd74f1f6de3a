"""Settings.from_env: defaults, and errors that name the variable at fault."""

from __future__ import annotations

import re

import pytest

from app.config import DEFAULT_UPLOAD_MAX_BYTES, ConfigError, Settings

SECRETS = {"SECRET_KEY": "k" * 32, "JWT_SECRET_KEY": "j" * 32}
URL = "postgresql://app:p%40ss@db.internal:5432/shop"


def test_defaults_from_a_minimal_environment() -> None:
    settings = Settings.from_env({"DATABASE_URL": URL, **SECRETS})
    assert settings.database.host == "db.internal"
    assert settings.database.password == "p@ss"
    assert settings.database.sslmode == "require"  # TLS unless told otherwise
    assert settings.upload_max_bytes == DEFAULT_UPLOAD_MAX_BYTES == 10 * 1024 * 1024
    assert settings.upload_allowed_types == ("jpg", "jpeg", "png", "pdf", "mp4")
    assert settings.cors_origins == ()
    assert settings.sentry_dsn is None
    assert settings.uploads_bucket is None
    assert "p@ss" not in repr(settings)
    assert "k" * 32 not in repr(settings)


def test_database_from_parts_as_ecs_injects_the_rds_secret() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_HOST": "shop.cluster.rds.amazonaws.com",
            "DATABASE_NAME": "shop",
            "DATABASE_USER": "postgres",
            "DATABASE_PASSWORD": "from-secrets-manager",
            "DATABASE_SSLMODE": "verify-full",
            "DATABASE_CA_FILE": "/srv/rds-ca.pem",
            "UPLOADS_BUCKET": "shop-uploads",
            "CORS_ORIGINS": "https://shop.example.com",
            "SENTRY_DSN": "https://abc@o1.ingest.sentry.io/42",
            **SECRETS,
        }
    )
    assert (settings.database.port, settings.database.sslmode, settings.database.ca_file) == (
        5432,
        "verify-full",
        "/srv/rds-ca.pem",
    )
    assert settings.uploads_bucket == "shop-uploads"
    assert settings.cors_origins == ("https://shop.example.com",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_URL": None}, "missing: DATABASE_HOST, DATABASE_NAME, DATABASE_USER, DATABASE_PASSWORD"),
        ({"DATABASE_URL": "mysql://x@h/db"}, "DATABASE_URL: scheme must be postgresql"),
        ({"DATABASE_URL": "postgresql://u@h/db?sslmode=prefer"}, "sslmode: must be one of"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY must be set to at least 32 characters"),
        ({"JWT_SECRET_KEY": None}, "JWT_SECRET_KEY must be set"),
        ({"UPLOAD_MAX_BYTES": "ten"}, "UPLOAD_MAX_BYTES must be a whole number"),
        ({"UPLOAD_MAX_BYTES": "0"}, "UPLOAD_MAX_BYTES must be positive"),
        ({"UPLOAD_ALLOWED_TYPES": "png,../exe"}, "UPLOAD_ALLOWED_TYPES: not file extensions"),
        ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS: '*' is not an origin"),
        ({"CORS_ORIGINS": "https://x.example.com/path"}, "CORS_ORIGINS"),
        ({"SENTRY_DSN": "not-a-dsn"}, "SENTRY_DSN"),
        ({"READY_TIMEOUT_SECONDS": "-1"}, "READY_TIMEOUT_SECONDS must be positive"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of"),
        # Uploads (issue 15): every allowed extension needs the one content type it is signed with.
        ({"UPLOAD_ALLOWED_TYPES": "png,heic"}, "UPLOAD_ALLOWED_TYPES: no content type known for ['heic']"),
        ({"UPLOADS_PREFIX": "../"}, "UPLOADS_PREFIX must look like 'uploads/'"),
        ({"AWS_REGION": "moon"}, "AWS_REGION: not a region name"),
        ({"AWS_ENDPOINT_URL_S3": "fra1.digitaloceanspaces.com"}, "AWS_ENDPOINT_URL_S3: expected https://<host>"),
        ({"AWS_ACCESS_KEY_ID": "DO00ABC"}, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither"),
        ({"REDIS_HOST": "cache.internal", "REDIS_TLS": "yes"}, "REDIS_TLS must be true or false"),
        ({"REDIS_HOST": "cache.internal", "REDIS_PORT": "x"}, "REDIS_PORT must be a whole number"),
    ],
)
def test_bad_values_name_the_variable(change: dict[str, str | None], message: str) -> None:
    env: dict[str, str] = {"DATABASE_URL": URL, **SECRETS}
    for key, value in change.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_spaces_settings_as_the_digitalocean_app_passes_them() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": URL,
            **SECRETS,
            "UPLOADS_PREFIX": "files/",
            "AWS_REGION": "fra1",
            "AWS_ENDPOINT_URL_S3": "https://fra1.digitaloceanspaces.com/",
            "AWS_ACCESS_KEY_ID": "DO00KEY",
            "AWS_SECRET_ACCESS_KEY": "spaces-secret-value",
            "REDIS_HOST": "cache.internal",
            "REDIS_PORT": "6380",
            "REDIS_AUTH_TOKEN": "redis-token-value",
            "STACK": "staging-do",
        }
    )
    uploads = settings.uploads
    assert (uploads.prefix, uploads.region, uploads.endpoint_url) == (
        "files/",
        "fra1",
        "https://fra1.digitaloceanspaces.com",
    )
    assert settings.redis is not None and (settings.redis.port, settings.redis.tls) == (6380, True)
    assert settings.stack == "staging-do"
    for secret in ("spaces-secret-value", "redis-token-value"):
        assert secret not in repr(settings)

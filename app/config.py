"""Settings of the API container, read once from the environment at start-up.

A bad or missing value stops the container with a :class:`ConfigError` naming the variable, rather than
serving with a half-working configuration. See app/README.md for the full list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from app.db import SSL_MODES, DatabaseConfigError, DatabaseTarget, IamTokenSigner

DEFAULT_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_UPLOAD_ALLOWED_TYPES = ("jpg", "jpeg", "png", "pdf", "mp4")
MIN_SECRET_LENGTH = 32
_EXTENSION = re.compile(r"^[a-z0-9]{1,10}$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DATABASE_AUTH_MODES = ("password", "iam")
DEFAULT_POOL_SIZE = 4
"""gunicorn's default GUNICORN_THREADS: one connection per thread of a worker is the most it can use."""
DEFAULT_STATEMENT_TIMEOUT_MS = 10_000


class ConfigError(ValueError):
    """An environment variable is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    database: DatabaseTarget
    secret_key: str = field(repr=False)
    jwt_secret_key: str = field(repr=False)
    cors_origins: tuple[str, ...] = ()
    sentry_dsn: str | None = field(default=None, repr=False)
    upload_max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES
    upload_allowed_types: tuple[str, ...] = DEFAULT_UPLOAD_ALLOWED_TYPES
    uploads_bucket: str | None = None
    ready_timeout_s: float = 2.0
    log_level: str = "INFO"
    stack: str = ""
    """`STACK` (staging, prod...): added to every log line by app/wsgi.py."""
    # Uploads (issue 15): the rest of the S3 settings, see `UploadsSettings`.
    uploads: UploadsSettings = field(default_factory=lambda: UploadsSettings())
    redis: RedisTarget | None = None
    database_pool_size: int = DEFAULT_POOL_SIZE
    database_statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            database=database_target_from_env(env),
            secret_key=_secret(env, "SECRET_KEY"),
            jwt_secret_key=_secret(env, "JWT_SECRET_KEY"),
            cors_origins=_origins(env.get("CORS_ORIGINS", "")),
            sentry_dsn=_sentry_dsn(env.get("SENTRY_DSN", "").strip() or None),
            upload_max_bytes=_positive_int(env, "UPLOAD_MAX_BYTES", DEFAULT_UPLOAD_MAX_BYTES),
            upload_allowed_types=_extensions(env.get("UPLOAD_ALLOWED_TYPES")),
            uploads_bucket=env.get("UPLOADS_BUCKET", "").strip() or None,
            ready_timeout_s=_positive_float(env, "READY_TIMEOUT_SECONDS", 2.0),
            log_level=_choice(env, "LOG_LEVEL", "INFO", _LOG_LEVELS),
            stack=env.get("STACK", "").strip(),
            uploads=uploads_settings_from_env(env),
            redis=redis_target_from_env(env),
            database_pool_size=_positive_int(env, "DATABASE_POOL_SIZE", DEFAULT_POOL_SIZE),
            database_statement_timeout_ms=_positive_int(
                env, "DATABASE_STATEMENT_TIMEOUT_MS", DEFAULT_STATEMENT_TIMEOUT_MS
            ),
        )


# ------------------------------------------------------------------------------------------------ uploads
# Issue 15: the API presigns browser uploads to S3 (AWS) or Spaces (DigitalOcean, S3 API).

CONTENT_TYPES: dict[str, str] = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "mp4": "video/mp4",
    "mov": "video/quicktime",
    "webm": "video/webm",
    "txt": "text/plain",
    "csv": "text/csv",
}
"""The one Content-Type each allowed extension is uploaded (and later served) with. A fixed table rather than
`mimetypes`, whose answers depend on the host's /etc/mime.types; an extension missing here is a ConfigError."""
UPLOAD_METHODS = ("POST", "PUT")
_UPLOADS_PREFIX = re.compile(r"^[a-z0-9-]+/$")  # same rule as `uploads.prefix` in infra/config.py
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$|^[a-z]{3}\d$")  # us-east-1 (AWS) or fra1 (Spaces)


@dataclass(frozen=True)
class UploadsSettings:
    """Where and how the API signs uploads. `UPLOADS_BUCKET`, `UPLOAD_MAX_BYTES` and `UPLOAD_ALLOWED_TYPES`
    are the `Settings` fields of the same names; these are the rest."""

    prefix: str = "uploads/"
    """`UPLOADS_PREFIX`: every key starts with it (the task role may only touch keys under it)."""
    region: str | None = None
    """`AWS_REGION`: the bucket's region; a SigV4 signature for the wrong region is refused by S3."""
    endpoint_url: str | None = field(default=None, repr=False)
    """`AWS_ENDPOINT_URL_S3`: Spaces (`https://fra1.digitaloceanspaces.com`) or a local S3; None is AWS S3."""
    access_key_id: str | None = field(default=None, repr=False)
    """`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`: the Spaces key; on AWS unset (the ECS task role signs)."""
    secret_access_key: str | None = field(default=None, repr=False)
    method: str = "POST"
    """`UPLOAD_METHOD`: POST (a presigned POST policy: S3) or PUT (a presigned PUT with Content-Type and
    Content-Length signed: DigitalOcean Spaces, whose S3 compatibility list documents presigned URLs but not
    browser POST policies, https://docs.digitalocean.com/products/spaces/reference/s3-compatibility/)."""


def uploads_settings_from_env(env: Mapping[str, str]) -> UploadsSettings:
    prefix = env.get("UPLOADS_PREFIX", "").strip() or "uploads/"
    if not _UPLOADS_PREFIX.match(prefix):
        raise ConfigError(f"UPLOADS_PREFIX must look like 'uploads/' (lowercase, one trailing slash), got {prefix!r}")
    region = env.get("AWS_REGION", "").strip() or None
    if region is not None and not _REGION.match(region):
        raise ConfigError(f"AWS_REGION: not a region name: {region!r}")
    endpoint = env.get("AWS_ENDPOINT_URL_S3", "").strip().rstrip("/") or None
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path:
            raise ConfigError(f"AWS_ENDPOINT_URL_S3: expected https://<host>, got {endpoint!r}")
    access_key = env.get("AWS_ACCESS_KEY_ID", "").strip() or None
    secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip() or None
    if (access_key is None) != (secret is None):
        raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: set both or neither")
    return UploadsSettings(
        prefix=prefix,
        region=region,
        endpoint_url=endpoint,
        access_key_id=access_key,
        secret_access_key=secret,
        method=_choice(env, "UPLOAD_METHOD", "POST", UPLOAD_METHODS),
    )


# ------------------------------------------------------------------------------------------------ cache


@dataclass(frozen=True)
class RedisTarget:
    """The stack's Redis/Valkey (`cache.enabled` on AWS): host, port, TLS and the AUTH token (an ECS secret)."""

    host: str
    port: int
    tls: bool
    auth_token: str | None = field(repr=False)


def redis_target_from_env(env: Mapping[str, str]) -> RedisTarget | None:
    host = env.get("REDIS_HOST", "").strip()
    if not host:
        return None
    tls = env.get("REDIS_TLS", "true").strip().lower()
    if tls not in ("true", "false"):
        raise ConfigError(f"REDIS_TLS must be true or false, got {tls!r}")
    return RedisTarget(
        host=host,
        port=_positive_int(env, "REDIS_PORT", 6379),
        tls=tls == "true",
        auth_token=env.get("REDIS_AUTH_TOKEN") or None,
    )


def database_target_from_env(env: Mapping[str, str]) -> DatabaseTarget:
    """``DATABASE_URL``, or the parts: ``DATABASE_AUTH=iam`` (AWS: the API's own role, an IAM token per new
    connection) or ``password`` (the default: DATABASE_USER/PASSWORD, how the migrate task gets the master
    secret from ECS)."""
    try:
        auth = _choice(env, "DATABASE_AUTH", "password", DATABASE_AUTH_MODES)
        if env.get("DATABASE_URL"):
            if auth == "iam":
                raise ConfigError("DATABASE_AUTH=iam takes DATABASE_HOST/PORT/NAME/USER, not DATABASE_URL")
            return DatabaseTarget.from_url(env["DATABASE_URL"])
        needed = ("DATABASE_HOST", "DATABASE_NAME", "DATABASE_USER")
        missing = [name for name in (*needed, *(() if auth == "iam" else ("DATABASE_PASSWORD",))) if not env.get(name)]
        if missing:
            raise ConfigError(
                f"set DATABASE_URL, or all of DATABASE_HOST/NAME/USER/PASSWORD (missing: {', '.join(missing)})"
                if auth == "password"
                else f"DATABASE_AUTH=iam needs DATABASE_HOST/NAME/USER (missing: {', '.join(missing)})"
            )
        sslmode = _choice(env, "DATABASE_SSLMODE", "require", SSL_MODES)
        ca_file = env.get("DATABASE_CA_FILE") or None
        if sslmode == "verify-full" and not ca_file:
            raise ConfigError("DATABASE_SSLMODE=verify-full needs DATABASE_CA_FILE (the RDS CA bundle)")
        host, port, user = env["DATABASE_HOST"], _positive_int(env, "DATABASE_PORT", 5432), env["DATABASE_USER"]
        target = DatabaseTarget(
            host=host,
            port=port,
            database=env["DATABASE_NAME"],
            user=user,
            password=env.get("DATABASE_PASSWORD", ""),
            sslmode=sslmode,
            ca_file=ca_file,
        )
        if auth == "password":
            return target
        return _iam_target(env, target)
    except DatabaseConfigError as error:
        raise ConfigError(str(error)) from error


def _iam_target(env: Mapping[str, str], target: DatabaseTarget) -> DatabaseTarget:
    if env.get("DATABASE_PASSWORD"):
        # Two ways to log in is one too many: a leftover master password would hide a broken IAM setup.
        raise ConfigError("DATABASE_PASSWORD must not be set with DATABASE_AUTH=iam (the token is the password)")
    if target.sslmode == "disable":
        # RDS refuses IAM-authenticated logins without TLS (AWS docs, "IAM database authentication").
        raise ConfigError("DATABASE_AUTH=iam needs TLS: DATABASE_SSLMODE must be require or verify-full")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError("DATABASE_AUTH=iam needs AWS_REGION (the region the token is signed for)")
    signer = IamTokenSigner(target.host, target.port, target.user, region)
    return DatabaseTarget(
        host=target.host,
        port=target.port,
        database=target.database,
        user=target.user,
        password="",
        sslmode=target.sslmode,
        ca_file=target.ca_file,
        password_source=signer,
    )


def _secret(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{name} must be set to at least {MIN_SECRET_LENGTH} characters (got {len(value)})")
    return value


def _origins(raw: str) -> tuple[str, ...]:
    origins = []
    for origin in (item.strip().rstrip("/") for item in raw.split(",")):
        if not origin:
            continue
        parts = urlsplit(origin)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.path or parts.query:
            raise ConfigError(f"CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com")
        origins.append(origin)
    return tuple(origins)


def _sentry_dsn(value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.username or not parts.hostname:
        raise ConfigError("SENTRY_DSN: expected https://<key>@<host>/<project>")
    return value


def _extensions(raw: str | None) -> tuple[str, ...]:
    if raw is None or not raw.strip():
        return DEFAULT_UPLOAD_ALLOWED_TYPES
    extensions = tuple(item.strip().lower().lstrip(".") for item in raw.split(",") if item.strip())
    bad = [item for item in extensions if not _EXTENSION.match(item)]
    if bad:
        raise ConfigError(f"UPLOAD_ALLOWED_TYPES: not file extensions: {bad}")
    unknown = [item for item in extensions if item not in CONTENT_TYPES]
    if unknown:
        raise ConfigError(
            f"UPLOAD_ALLOWED_TYPES: no content type known for {unknown} (known: {', '.join(sorted(CONTENT_TYPES))})"
        )
    return extensions


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {raw}")
    return value


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, "").strip() or default
    if name in ("LOG_LEVEL", "UPLOAD_METHOD"):
        value = value.upper()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value

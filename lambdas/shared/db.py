"""PostgreSQL connections for Lambdas: credentials from the RDS-managed secret, TLS, timeouts.

Driver: pg8000. It is pure Python, and so are its dependencies (scramp, asn1crypto, python-dateutil), so
the same wheels run on Lambda's arm64 python3.13 without compiling anything or shipping libpq. psycopg
would need binary wheels built for exactly that platform and costs ~1.5x a bare boto3 import at cold
start (measured for the project notes), against ~1.15x for pg8000. The job sends a few set-based
statements per batch, so a C driver would not make it measurably faster.

Environment (read by :meth:`DatabaseEndpoint.from_env`):

- ``DATABASE_AUTH=iam`` and ``DATABASE_USER`` (how AWS deploys every function since issue #14): log in as
  the function's own role (migration 0004: ``auto_confirm``, ``health_check``) with an IAM auth token,
  signed locally by the SDK for each new connection (:func:`iam_credentials`; no Secrets Manager call, so a
  function without NAT needs no endpoint for it, and a rotation of the master password changes nothing).
- otherwise ``DATABASE_SECRET_ARN``: a Secrets Manager secret (JSON with ``username`` and ``password``),
  fetched at run time. The password is never in the function's environment or in logs.
- ``DATABASE_HOST``, ``DATABASE_PORT`` (default 5432), ``DATABASE_NAME``.
- ``DATABASE_CA_FILE`` (optional): path to the RDS CA bundle inside the code archive. When set, the
  server certificate and host name are verified; otherwise the connection is still TLS-only (libpq's
  ``sslmode=require``), just not authenticated.

TLS is required by default. Only an explicit ``tls=False`` argument (tests, a local database) turns
it off; there is deliberately no environment variable for that.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import pg8000.native

DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_STATEMENT_TIMEOUT_MS = 30_000
DEFAULT_LOCK_TIMEOUT_MS = 5_000


class DatabaseConfigError(ValueError):
    """A database setting is missing or malformed; the message names the variable."""


class DatabaseUnavailable(RuntimeError):
    """Connecting failed; the message says where (host:port/db, never the password) and why."""


@dataclass(frozen=True)
class DatabaseEndpoint:
    host: str
    port: int
    database: str
    ca_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> DatabaseEndpoint:
        missing = [name for name in ("DATABASE_HOST", "DATABASE_NAME") if not env.get(name)]
        if missing:
            raise DatabaseConfigError(f"missing environment variable(s): {', '.join(missing)}")
        raw_port = env.get("DATABASE_PORT", "5432")
        if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
            raise DatabaseConfigError(f"DATABASE_PORT must be a TCP port number, got {raw_port!r}")
        return cls(env["DATABASE_HOST"], int(raw_port), env["DATABASE_NAME"], env.get("DATABASE_CA_FILE") or None)

    def describe(self) -> str:
        return f"{self.host}:{self.port}/{self.database}"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


TokenSigner = Callable[[str, int, str], str]
"""(host, port, user) -> the password for one new connection: an RDS IAM auth token on AWS."""


def iam_user_from_env(env: Mapping[str, str]) -> str | None:
    """The role to log in as with an IAM token (``DATABASE_AUTH=iam``), or None for the secret's user."""
    auth = env.get("DATABASE_AUTH", "").strip() or "secret"
    if auth not in ("iam", "secret"):
        raise DatabaseConfigError(f"DATABASE_AUTH must be iam or secret, got {auth!r}")
    if auth == "secret":
        return None
    user = env.get("DATABASE_USER", "").strip()
    if not user:
        raise DatabaseConfigError("DATABASE_USER must name the database role when DATABASE_AUTH=iam")
    return user


def sign_iam_token(rds_client: Any, host: str, port: int, user: str) -> str:
    """A 15-minute RDS IAM auth token, signed locally with the function's credentials (no API call).

    RDS checks it only when the connection is opened, so it is asked for once per new connection.
    https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.Python.html
    """
    token: str = rds_client.generate_db_auth_token(
        DBHostname=host, Port=port, DBUsername=user, Region=rds_client.meta.region_name
    )
    return token


_rds_clients: dict[str | None, Any] = {}


def rds_token_signer(region: str | None = None) -> TokenSigner:
    """A :data:`TokenSigner` over a boto3 ``rds`` client built once per container (building makes no call)."""

    def sign(host: str, port: int, user: str) -> str:
        if region not in _rds_clients:
            import boto3

            _rds_clients[region] = boto3.client("rds", region_name=region)
        return sign_iam_token(_rds_clients[region], host, port, user)

    return sign


def iam_credentials(endpoint: DatabaseEndpoint, user: str, sign: TokenSigner) -> Credentials:
    """Credentials for one new connection as ``user``: a fresh token from ``sign``.

    A signer that cannot sign (no credentials in the environment) is a :class:`DatabaseUnavailable`.
    """
    try:
        return Credentials(username=user, password=sign(endpoint.host, endpoint.port, user))
    except Exception as error:
        raise DatabaseUnavailable(
            f"cannot sign an IAM auth token for {user}@{endpoint.describe()}: {describe_error(error)}"
        ) from error


def secret_arn_from_env(env: Mapping[str, str]) -> str:
    arn = env.get("DATABASE_SECRET_ARN", "")
    if not arn.startswith("arn:"):
        raise DatabaseConfigError(f"DATABASE_SECRET_ARN must be a Secrets Manager ARN, got {arn[:40]!r}")
    return arn


def fetch_credentials(secret_arn: str, secrets_client: Any) -> Credentials:
    """Read ``{"username", "password"}`` from the secret (the shape RDS writes for managed passwords).

    ``secrets_client`` is a boto3 ``secretsmanager`` client; the caller builds it, so tests can point it
    at a local endpoint. Fetched on every run: RDS rotates the password, and an hourly call costs nothing.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = secrets_client.get_secret_value(SecretId=secret_arn)
    except (ClientError, BotoCoreError) as error:
        raise DatabaseUnavailable(f"cannot read database secret {secret_arn}: {error}") from error
    try:
        payload = json.loads(response["SecretString"])
        return Credentials(username=str(payload["username"]), password=str(payload["password"]))
    except (KeyError, TypeError, ValueError) as error:
        # never echo the secret's content, only its shape
        raise DatabaseConfigError(
            f"secret {secret_arn} is not JSON with 'username' and 'password' (RDS-managed secret expected)"
        ) from error


def parse_database_url(url: str) -> tuple[DatabaseEndpoint, Credentials, bool]:
    """``postgresql://user:pw@host:port/db[?sslmode=disable|require|verify-full&sslrootcert=PATH]``.

    Returns (endpoint, credentials, tls). For people running the job by hand; sslmode defaults to require.
    """
    try:
        parts = urlsplit(url)
    except ValueError as error:  # e.g. an unclosed IPv6 bracket
        raise DatabaseConfigError(f"--database-url is not a URL ({error})") from None
    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not parts.username:
        raise DatabaseConfigError(
            f"--database-url must look like postgresql://user:password@host:port/dbname "
            f"(scheme {parts.scheme or '(none)'!r}, host {parts.hostname or '(none)'!r})"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise DatabaseConfigError("--database-url has no database name (the path after the host)")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    sslmode = query.get("sslmode", "require")
    if sslmode not in ("disable", "require", "verify-full"):
        raise DatabaseConfigError(f"--database-url sslmode must be disable, require or verify-full, got {sslmode!r}")
    ca_file = query.get("sslrootcert")
    if sslmode == "verify-full" and not ca_file:
        raise DatabaseConfigError("--database-url sslmode=verify-full needs sslrootcert=<CA bundle path>")
    try:
        port = parts.port or 5432
    except ValueError:
        raise DatabaseConfigError(
            f"--database-url port must be a number from 1 to 65535, got {parts.netloc.rpartition(':')[2]!r}"
        ) from None
    if sslmode == "verify-full" and ca_file and not os.path.isfile(ca_file):
        raise DatabaseConfigError(f"--database-url sslrootcert {ca_file!r}: no such file")
    endpoint = DatabaseEndpoint(parts.hostname, port, database, ca_file if sslmode == "verify-full" else None)
    credentials = Credentials(unquote(parts.username), unquote(parts.password or ""))
    return endpoint, credentials, sslmode != "disable"


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Verify chain and host name against ``ca_file`` when given; otherwise encrypt without verifying."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(
    endpoint: DatabaseEndpoint,
    credentials: Credentials,
    *,
    tls: bool = True,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    application_name: str = "shipyard-lambda",
) -> pg8000.native.Connection:
    """Open a connection, or raise :class:`DatabaseUnavailable` naming the server, the cause and the phase.

    With ``tls=True`` a server that does not speak TLS is refused (never a silent plaintext fallback).
    The timeouts are startup parameters, so they hold from the first statement. The TCP connect, the TLS
    handshake and the login each wait at most ``connect_timeout_s`` (a stall names its phase: connect, TLS,
    auth); after that, any answer is awaited at most the statement timeout plus that margin (phase: statement).
    """
    import pg8000.native

    context = tls_context(endpoint.ca_file) if tls else None
    # Every phase before the first statement (TCP, TLS, login) is bounded by the connect timeout: a server that
    # accepts TCP and then says nothing must not hold the job for the statement timeout.
    sock = open_socket(endpoint.host, endpoint.port, context, connect_timeout_s, endpoint.describe())
    try:
        connection = pg8000.native.Connection(
            credentials.username,
            host=endpoint.host,
            port=endpoint.port,
            database=endpoint.database,
            password=credentials.password,
            ssl_context=False,  # TLS, when asked for, is already up on `sock` (open_socket)
            sock=sock,
            application_name=application_name,
            startup_params={
                "statement_timeout": str(statement_timeout_ms),
                "lock_timeout": str(lock_timeout_ms),
                # a Lambda frozen mid-transaction must not keep its locks
                "idle_in_transaction_session_timeout": str(max(statement_timeout_ms, 60_000)),
            },
        )
    except Exception as error:
        sock.close()
        cause = describe_error(error)
        if cause == "timed out":
            cause = f"timed out: no answer within {connect_timeout_s:g} s while logging in (phase: auth)"
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {endpoint.describe()}: {cause}") from error
    sock.settimeout(statement_timeout_ms / 1000 + connect_timeout_s)
    return connection


_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
"""PostgreSQL's SSLRequest message: length 8, code 1234.5679 (protocol docs, "SSL Session Encryption")."""


def open_socket(host: str, port: int, context: ssl.SSLContext | None, timeout_s: float, where: str) -> socket.socket:
    """TCP connect, then (with `context`) the SSLRequest and the TLS handshake; each phase waits at most
    `timeout_s`, and a stall raises `DatabaseUnavailable` naming the phase (connect or TLS)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except TimeoutError as error:
        raise DatabaseUnavailable(
            f"cannot reach PostgreSQL at {where}: timed out: no TCP connection within {timeout_s:g} s (phase: connect)"
        ) from error
    except OSError as error:
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {where}: {describe_error(error)}") from error
    sock.settimeout(timeout_s)
    if context is None:
        return sock
    try:
        sock.sendall(_SSL_REQUEST)
        answer = sock.recv(1)
        if answer != b"S":
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {where}: server does not offer TLS, and TLS is required"
            )
        return context.wrap_socket(sock, server_hostname=host)
    except DatabaseUnavailable:
        sock.close()
        raise
    except TimeoutError as error:
        sock.close()
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {where}: timed out: the server accepted TCP but did not answer within "
            f"{timeout_s:g} s (phase: TLS)"
        ) from error
    except (OSError, ssl.SSLError) as error:
        sock.close()
        raise DatabaseUnavailable(
            f"cannot connect to PostgreSQL at {where}: TLS failed: {describe_error(error)}"
        ) from error


def describe_error(error: BaseException) -> str:
    """One line: SQLSTATE and server message for database errors, else the innermost cause."""
    import pg8000.exceptions

    if isinstance(error, pg8000.exceptions.DatabaseError) and error.args and isinstance(error.args[0], dict):
        detail: dict[str, Any] = error.args[0]
        return f"SQLSTATE {detail.get('C', '?')}: {detail.get('M', 'unknown error')}"
    innermost: BaseException = error
    while innermost.__cause__ is not None:
        innermost = innermost.__cause__
    if isinstance(innermost, TimeoutError):
        return "timed out"
    return str(innermost) or type(innermost).__name__


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a pg8000 database error, if it is one."""
    if error.args and isinstance(error.args[0], dict):
        code = error.args[0].get("C")
        return str(code) if code else None
    return None

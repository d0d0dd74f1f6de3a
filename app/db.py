"""PostgreSQL connections for the API and the migration runner (pg8000, pure Python).

pg8000 is already what the Lambdas use, needs no compiler or libpq in the image, and keeps the image
small; the API's database work is light (health checks, migrations), so a C driver buys nothing here.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import pg8000.native

SSL_MODES = ("disable", "require", "verify-full")


class DatabaseConfigError(ValueError):
    """The database settings are malformed; the message names the setting."""


class DatabaseUnavailable(RuntimeError):
    """The server could not be reached or refused us; the message says where and why (never the password).

    ``cause`` is the short reason alone (no host or user), safe to return to HTTP clients.
    """

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class DatabaseTarget:
    host: str
    port: int
    database: str
    user: str
    password: str = field(repr=False)
    sslmode: str = "require"
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, *, setting: str = "DATABASE_URL") -> DatabaseTarget:
        """``postgresql://user:password@host:port/db?sslmode=require&sslrootcert=/path``."""
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise DatabaseConfigError(f"{setting}: scheme must be postgresql://, got {parts.scheme or '(none)'}")
        if not parts.hostname:
            raise DatabaseConfigError(f"{setting}: missing host")
        database = unquote(parts.path.lstrip("/"))
        if not database:
            raise DatabaseConfigError(f"{setting}: missing database name (the path after the host)")
        if not parts.username:
            raise DatabaseConfigError(f"{setting}: missing user name")
        try:
            port = parts.port or 5432
        except ValueError as error:
            raise DatabaseConfigError(f"{setting}: invalid port") from error
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"sslmode", "sslrootcert"}
        if unknown:
            raise DatabaseConfigError(f"{setting}: unsupported query parameter(s) {sorted(unknown)}")
        return cls(
            host=parts.hostname,
            port=port,
            database=database,
            user=unquote(parts.username),
            password=unquote(parts.password or ""),
            sslmode=_check_sslmode(query.get("sslmode", "require"), f"{setting} sslmode"),
            ca_file=query.get("sslrootcert"),
        )

    def describe(self) -> str:
        """Where we connect, safe to log."""
        return f"{self.user}@{self.host}:{self.port}/{self.database} (sslmode={self.sslmode})"


def _check_sslmode(value: str, setting: str) -> str:
    if value not in SSL_MODES:
        raise DatabaseConfigError(f"{setting}: must be one of {', '.join(SSL_MODES)}, got {value!r}")
    return value


def ssl_context_for(target: DatabaseTarget) -> ssl.SSLContext | bool:
    """pg8000's ``ssl_context``: ``False`` = plain TCP; a context = TLS or fail (never a silent fallback).

    ``require`` encrypts without checking the certificate (libpq's meaning); ``verify-full`` checks the
    chain against ``ca_file`` (the RDS CA bundle) and the host name.
    """
    if target.sslmode == "disable":
        return False
    if target.sslmode == "verify-full":
        if not target.ca_file:
            raise DatabaseConfigError("sslmode=verify-full needs a CA file (sslrootcert / DATABASE_CA_FILE)")
        return ssl.create_default_context(cafile=target.ca_file)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def connect(
    target: DatabaseTarget,
    *,
    connect_timeout_s: float,
    statement_timeout_ms: int,
    application_name: str,
) -> pg8000.native.Connection:
    """Open a connection or raise :class:`DatabaseUnavailable` naming the server and the reason.

    ``connect_timeout_s`` bounds the TCP connect (the usual hang: a host that drops packets). Every later
    read waits at most the statement timeout plus that margin, so a server that vanishes mid-query cannot
    hang the caller either. The statement timeout is a startup parameter: it holds from the first statement.
    """
    import pg8000.native

    ssl_context = ssl_context_for(target)
    try:
        sock = socket.create_connection((target.host, target.port), timeout=connect_timeout_s)
    except OSError as error:
        cause = _reason(error)
        raise DatabaseUnavailable(f"cannot reach PostgreSQL at {target.describe()}: {cause}", cause) from error
    sock.settimeout(None if statement_timeout_ms == 0 else statement_timeout_ms / 1000 + connect_timeout_s)
    try:
        connection = pg8000.native.Connection(
            target.user,
            host=target.host,
            port=target.port,
            database=target.database,
            password=target.password,
            ssl_context=ssl_context,
            sock=sock,
            application_name=application_name,
            startup_params={"statement_timeout": str(statement_timeout_ms)},
        )
    except Exception as error:
        sock.close()
        cause = _reason(error)
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {target.describe()}: {cause}", cause) from error
    return connection


def _reason(error: BaseException) -> str:
    """A one-line cause: SQLSTATE + server message, or the innermost OS error."""
    import pg8000.exceptions

    if isinstance(error, pg8000.exceptions.DatabaseError) and error.args and isinstance(error.args[0], dict):
        detail: dict[str, Any] = error.args[0]
        return f"SQLSTATE {detail.get('C', '?')}: {detail.get('M', 'unknown error')}"
    innermost: BaseException = error
    while innermost.__cause__ is not None:
        innermost = innermost.__cause__
    if isinstance(innermost, TimeoutError | socket.timeout):
        return "timed out"
    return str(innermost) or type(innermost).__name__


def describe_error(error: BaseException) -> str:
    """Public form of the one-line cause, for logs and API responses."""
    return _reason(error)

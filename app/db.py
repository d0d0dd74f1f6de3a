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
        try:
            parts = urlsplit(url)
        except ValueError as error:  # e.g. an unclosed IPv6 bracket
            raise DatabaseConfigError(f"{setting}: not a URL ({error})") from None
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
        except ValueError:
            raise DatabaseConfigError(
                f"{setting}: port must be a number from 1 to 65535, got {parts.netloc.rpartition(':')[2]!r}"
            ) from None
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
        try:
            return ssl.create_default_context(cafile=target.ca_file)
        except (OSError, ssl.SSLError) as error:
            raise DatabaseConfigError(
                f"sslrootcert {target.ca_file!r}: cannot load a CA bundle from it ({error})"
            ) from None
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
    # TCP, TLS and login are each bounded by the connect timeout (a server that accepts TCP and then says
    # nothing must not hang a deploy's migrate step); a stall names its phase.
    sock = _open_socket(target, ssl_context if isinstance(ssl_context, ssl.SSLContext) else None, connect_timeout_s)
    try:
        connection = pg8000.native.Connection(
            target.user,
            host=target.host,
            port=target.port,
            database=target.database,
            password=target.password,
            ssl_context=False,  # TLS, when asked for, is already up on `sock`
            sock=sock,
            application_name=application_name,
            startup_params={"statement_timeout": str(statement_timeout_ms)},
        )
    except Exception as error:
        sock.close()
        cause = _reason(error)  # short, for HTTP answers ("timed out"); the message also names the phase
        said = (
            f"no answer within {connect_timeout_s:g} s while logging in (phase: auth)"
            if cause == "timed out"
            else cause
        )
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {target.describe()}: {said}", cause) from error
    sock.settimeout(None if statement_timeout_ms == 0 else statement_timeout_ms / 1000 + connect_timeout_s)
    return connection


_SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
"""PostgreSQL's SSLRequest message (protocol docs, "SSL Session Encryption")."""


def _open_socket(target: DatabaseTarget, context: ssl.SSLContext | None, timeout_s: float) -> socket.socket:
    """TCP connect, then (with `context`) SSLRequest + TLS handshake, each phase at most `timeout_s`."""
    where = target.describe()

    def unavailable(cause: str, reach: str = "connect to", short: str | None = None) -> DatabaseUnavailable:
        return DatabaseUnavailable(f"cannot {reach} PostgreSQL at {where}: {cause}", short or cause)

    try:
        sock = socket.create_connection((target.host, target.port), timeout=timeout_s)
    except TimeoutError as error:
        raise unavailable(f"no TCP connection within {timeout_s:g} s (phase: connect)", "reach", "timed out") from error
    except OSError as error:
        raise unavailable(_reason(error), "reach") from error
    sock.settimeout(timeout_s)
    if context is None:
        return sock
    try:
        sock.sendall(_SSL_REQUEST)
        if sock.recv(1) != b"S":
            raise unavailable("server does not offer TLS, and TLS is required")
        return context.wrap_socket(sock, server_hostname=target.host)
    except DatabaseUnavailable:
        sock.close()
        raise
    except TimeoutError as error:
        sock.close()
        raise unavailable(
            f"the server accepted TCP but did not answer within {timeout_s:g} s (phase: TLS)", short="timed out"
        ) from error
    except OSError as error:
        sock.close()
        raise unavailable(f"TLS failed: {_reason(error)}") from error


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

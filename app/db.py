"""PostgreSQL connections for the API and the migration runner (pg8000, pure Python).

pg8000 is already what the Lambdas use, needs no compiler or libpq in the image, and keeps the image
small; the API's database work is light (health checks, migrations), so a C driver buys nothing here.

How the API logs in (issue #14): on AWS as its own role ``api`` with an IAM database auth token
(:class:`IamTokenSigner`, signed locally by botocore, no network call), asked for on every NEW connection
— a token is valid 15 minutes and checked only at connect, so pooled connections outlive it safely. The
master password (rotated monthly by RDS) is read only by the migrate task. Connections come from a small
per-process :class:`ConnectionPool`, not one per request: IAM auth is meant for pooled connections (AWS
advises it below ~200 new connections a second), and a TLS + SCRAM handshake per request costs more than
most queries.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import pg8000.native

SSL_MODES = ("disable", "require", "verify-full")

T = TypeVar("T")
PasswordSource = Callable[[], str]
"""Gives the password for ONE new connection (an IAM token on AWS); called once per connection opened."""


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
    password_source: PasswordSource | None = field(default=None, repr=False, compare=False)
    """When set, asked for a fresh password on every new connection (and ``password`` is not used)."""

    def login_password(self) -> str:
        return self.password_source() if self.password_source is not None else self.password

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

    try:
        ssl_context = ssl_context_for(target)
    except DatabaseConfigError as error:  # e.g. the CA bundle named by DATABASE_CA_FILE is missing or unreadable
        # At run time no connection can be made: the API answers database_unavailable and logs this; CLIs check
        # the same earlier and exit 2 (app.migrate, lambdas.auto_confirm).
        cause = str(error)
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {target.describe()}: {cause}", cause) from error
    try:
        password = target.login_password()
    except Exception as error:  # e.g. botocore without credentials: no connection can be authenticated
        cause = f"cannot get a login token: {_reason(error)}"
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {target.describe()}: {cause}", cause) from error
    # TCP, TLS and login are each bounded by the connect timeout (a server that accepts TCP and then says
    # nothing must not hold a request or hang a deploy's migrate step); a stall names its phase.
    sock = _open_socket(target, ssl_context if isinstance(ssl_context, ssl.SSLContext) else None, connect_timeout_s)
    try:
        connection = pg8000.native.Connection(
            target.user,
            host=target.host,
            port=target.port,
            database=target.database,
            password=password,
            ssl_context=False,  # TLS, when asked for, is already up on `sock`
            sock=sock,
            application_name=application_name,
            startup_params={"statement_timeout": str(statement_timeout_ms)},
        )
    except Exception as error:
        sock.close()
        cause = _reason(error)  # short, for HTTP answers ("timed out"); the message also names the phase
        said = (
            f"no answer within {connect_timeout_s:g} s while logging in (phase: auth): timed out"
            if cause == "timed out"
            else cause
        )
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {target.describe()}: {said}", cause) from error
    # `sock` is the socket pg8000 talks on (the TLS wrapper when encrypted): after login every read waits up to
    # the statement timeout plus margin.
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
        raise unavailable(
            f"no TCP connection within {timeout_s:g} s (phase: connect): timed out", "reach", "timed out"
        ) from error
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
            f"the server accepted TCP but did not answer within {timeout_s:g} s (phase: TLS): timed out",
            short="timed out",
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


class IamTokenSigner:
    """A :data:`PasswordSource`: a fresh RDS IAM auth token for ``user`` at ``host:port`` on every call.

    ``rds.generate_db_auth_token`` builds a SigV4-presigned URL from the process's AWS credentials (the ECS
    task role) without any network call, valid 15 minutes; RDS checks it only when a connection is opened
    (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.Connecting.Python.html).
    IAM auth also requires TLS, which :func:`ssl_context_for` always gives outside ``disable``. The botocore
    client is built once, on first use (after gunicorn forked), and reused; it refreshes the task role's
    temporary credentials by itself.
    """

    def __init__(self, host: str, port: int, user: str, region: str, *, client: Any = None) -> None:
        self.host, self.port, self.user, self.region = host, port, user, region
        self._client = client
        self._lock = threading.Lock()

    def _rds(self) -> Any:
        with self._lock:
            if self._client is None:
                import botocore.session

                self._client = botocore.session.get_session().create_client("rds", region_name=self.region)
            return self._client

    def __call__(self) -> str:
        token: str = self._rds().generate_db_auth_token(
            DBHostname=self.host, Port=self.port, DBUsername=self.user, Region=self.region
        )
        return token


@dataclass
class _Pooled:
    connection: pg8000.native.Connection
    opened_at: float
    returned_at: float
    lent: int = 0


class ConnectionPool:
    """A small thread-safe pool of connections for one gunicorn worker process.

    - At most ``max_size`` connections exist (idle + lent); a caller waits up to ``acquire_timeout_s`` for
      one, then gets :class:`DatabaseUnavailable` (cause ``pool exhausted``) instead of piling up.
    - Connections are opened lazily by ``connect`` (which asks the target for a fresh password/token) and
      re-used. A connection idle longer than ``ping_after_s`` is checked with ``SELECT 1`` before it is lent
      (a failover or a restart kills idle connections silently); one older than ``max_lifetime_s`` is
      closed and replaced, so the pool follows DNS after a failover and never keeps a session for ever.
    - A connection whose use raised a connection-level error, or that comes back inside a transaction that
      cannot be rolled back, is discarded; a plain SQL error (constraint, permission) keeps it.
    - After a fork the child starts with an empty pool and never touches the parent's sockets.
    """

    def __init__(
        self,
        connect: Callable[[], pg8000.native.Connection],
        *,
        max_size: int = 4,
        acquire_timeout_s: float = 5.0,
        ping_after_s: float = 30.0,
        max_lifetime_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"pool max_size must be at least 1, got {max_size}")
        self._connect = connect
        self.max_size = max_size
        self.acquire_timeout_s = acquire_timeout_s
        self.ping_after_s = ping_after_s
        self.max_lifetime_s = max_lifetime_s
        self._clock = clock
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.max_size)
        self._idle: collections.deque[_Pooled] = collections.deque()
        self.opened = 0
        """Connections opened by this process so far (each one asked the target for a password)."""

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            # The parent's sockets are shared with it: forget them without sending anything on them.
            self._reset()

    @contextlib.contextmanager
    def connection(self, acquire_timeout_s: float | None = None) -> Iterator[pg8000.native.Connection]:
        """Lend a connection for the ``with`` block; it goes back to the pool afterwards (or is discarded)."""
        with self._lend(acquire_timeout_s) as pooled:
            yield pooled.connection

    def run(self, work: Callable[[pg8000.native.Connection], T], *, acquire_timeout_s: float | None = None) -> T:
        """``work(connection)``; when a RE-USED connection turns out dead (a restart, a failover, an idle
        timeout on the way), once more on a new one — so a dead idle connection costs no failed request."""
        for attempt in (1, 2):
            reused = False
            try:
                with self._lend(acquire_timeout_s) as pooled:
                    reused = pooled.lent > 1
                    return work(pooled.connection)
            except Exception as error:
                if attempt == 1 and reused and _connection_is_broken(error):
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @contextlib.contextmanager
    def _lend(self, acquire_timeout_s: float | None) -> Iterator[_Pooled]:
        self._check_fork()
        timeout = self.acquire_timeout_s if acquire_timeout_s is None else acquire_timeout_s
        if not self._slots.acquire(timeout=timeout):
            cause = "pool exhausted"
            raise DatabaseUnavailable(f"no free database connection within {timeout:g} s ({cause})", cause)
        try:
            pooled = self._checkout()
            keep = True
            pooled.lent += 1
            try:
                yield pooled
            except BaseException as error:
                keep = not _connection_is_broken(error)
                raise
            finally:
                self._checkin(pooled, keep)
        finally:
            self._slots.release()

    def _checkout(self) -> _Pooled:
        now = self._clock()
        while True:
            with self._lock:
                pooled = self._idle.pop() if self._idle else None  # LIFO: warm connections first
            if pooled is None:
                break
            if now - pooled.opened_at >= self.max_lifetime_s:
                _close_quietly(pooled.connection)
                continue
            if now - pooled.returned_at >= self.ping_after_s and not _answers(pooled.connection):
                _close_quietly(pooled.connection)
                continue
            return pooled
        connection = self._connect()
        with self._lock:
            self.opened += 1
        return _Pooled(connection, opened_at=now, returned_at=now)

    def _checkin(self, pooled: _Pooled, keep: bool) -> None:
        if keep and getattr(pooled.connection, "_transaction_status", b"I") != b"I":
            try:
                pooled.connection.run("ROLLBACK")
            except Exception:
                keep = False
        if not keep:
            _close_quietly(pooled.connection)
            return
        pooled.returned_at = self._clock()
        with self._lock:
            self._idle.append(pooled)

    def idle_count(self) -> int:
        self._check_fork()
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Close every idle connection (lent ones are closed when they come back and find no pool)."""
        self._check_fork()
        with self._lock:
            idle, self._idle = list(self._idle), collections.deque()
        for pooled in idle:
            _close_quietly(pooled.connection)


def _answers(connection: pg8000.native.Connection) -> bool:
    try:
        return bool(connection.run("SELECT 1") == [[1]])
    except Exception:
        return False


def _connection_is_broken(error: BaseException) -> bool:
    """True unless the server answered with an ordinary SQL error (the session itself is still fine)."""
    import pg8000.exceptions

    if isinstance(error, pg8000.exceptions.DatabaseError) and error.args and isinstance(error.args[0], dict):
        code = str(error.args[0].get("C", ""))
        # 08: connection exception; 57P: operator intervention (admin shutdown, terminated); 53: resources
        return code.startswith(("08", "57P", "53"))
    return True


def _close_quietly(connection: pg8000.native.Connection) -> None:
    with contextlib.suppress(Exception):
        connection.close()

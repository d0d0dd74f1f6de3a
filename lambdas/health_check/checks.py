"""One check of one target, with every phase timed and every failure put in one of a few classes.

Uses the standard library's socket/ssl/http.client directly (not urllib or requests) so that each phase
(dns, connect, tls, request, response, body) has its own deadline and timing, and the peer certificate's
notAfter is readable after the handshake. The database check does the PostgreSQL TLS upgrade itself for the
same reasons, then hands the encrypted socket to pg8000 for login and `SELECT 1`.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdas.health_check.config import HttpTarget, PostgresTarget, Target

# Failure classes. They become the `Reason` metric dimension, so the set is closed: any new kind of error
# must be mapped onto one of these, never passed through as free text.
TIMEOUT = "timeout"  # no answer before the check's timeout or the run deadline
REFUSED = "refused"  # nothing listens on the port (TCP RST)
DNS = "dns"  # the host name does not resolve
TLS = "tls"  # handshake failed: untrusted/self-signed/expired certificate, wrong host name, no TLS
CONNECTION = "connection"  # network trouble after resolution: unreachable, reset, closed mid-answer
STATUS = "status"  # HTTP status differs from expected_status
BODY = "body"  # body lacks body_contains, or json_field is missing/different, or is not JSON
LATENCY = "latency"  # answered correctly but slower than latency_budget_ms
DATABASE = "database"  # the server answered but refused the login or `SELECT 1` failed
CREDENTIALS = "credentials"  # the database secret could not be fetched or is malformed
INTERNAL = "internal"  # a bug in the checker itself
REASONS: tuple[str, ...] = (
    TIMEOUT,
    REFUSED,
    DNS,
    TLS,
    CONNECTION,
    STATUS,
    BODY,
    LATENCY,
    DATABASE,
    CREDENTIALS,
    INTERNAL,
)
CERT_EXPIRING = "cert_expiring"  # a warning, not a failure: the endpoint stays Up

# Route 53 looks at 5,120 bytes; health documents are small. The bound keeps a misbehaving endpoint from
# streaming forever into the checker's memory.
MAX_BODY_BYTES = 1 << 20
USER_AGENT = "shipyard-health-check/1"
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


class CheckFailure(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DbCredentials:
    username: str
    password: str = field(repr=False)


@dataclass
class CheckResult:
    name: str
    kind: str
    target: str
    up: bool = False
    reason: str | None = None
    detail: str | None = None
    phase: str | None = None  # the phase a failure happened in
    latency_ms: float | None = None
    status: int | None = None
    location: str | None = None
    """Where a redirect (3xx) pointed, without its query string (`redirect_target`); None otherwise."""
    cert_days_left: float | None = None
    cert_not_after: str | None = None
    warnings: list[str] = field(default_factory=list)
    phases_ms: dict[str, float] = field(default_factory=dict)

    @classmethod
    def for_target(cls, target: Target) -> CheckResult:
        return cls(name=target.name, kind=target.kind, target=target.display)

    def fail(self, reason: str, detail: str, phase: str | None) -> CheckResult:
        self.up = False
        self.reason = reason
        self.detail = detail
        self.phase = phase
        return self

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "kind": self.kind,
            "target": self.target,
            "up": self.up,
            "reason": self.reason,
            "detail": self.detail,
            "phase": self.phase,
            "latency_ms": self.latency_ms,
            "status": self.status,
            "location": self.location,
            "cert_days_left": self.cert_days_left,
            "cert_not_after": self.cert_not_after,
            "warnings": list(self.warnings),
            "phases_ms": dict(self.phases_ms),
        }


class CheckContext:
    """A check's deadline and progress, shared with the runner so it can give up on the check.

    The check registers every socket it opens; `cancel()` shuts them down, which wakes a thread blocked in
    recv/connect at once, so an abandoned check ends instead of lingering until its socket timeout.
    """

    def __init__(self, deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.deadline = deadline
        self.clock = clock
        self.phase = "start"
        self.phases_ms: dict[str, float] = {}
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def op_timeout(self) -> float:
        """Seconds left for the next blocking operation; raises a timeout failure when none are left."""
        left = self.deadline - self.clock()
        if self._cancelled or left <= 0:
            raise CheckFailure(TIMEOUT, f"no time left for {self.phase}")
        return left

    def track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self._cancelled:
                _shutdown(sock)

    def close(self, sock: socket.socket | None) -> None:
        # Untrack before closing so cancel() never touches a descriptor number the OS may have reused.
        if sock is None:
            return
        with self._lock:
            if sock in self._sockets:
                self._sockets.remove(sock)
        sock.close()

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            for sock in self._sockets:
                _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    # OSError: already closed or never connected.
    with contextlib.suppress(OSError):
        # The base-class method: SSLSocket.shutdown would also tear down its SSL object under the other
        # thread's feet. A plain TCP shutdown makes that thread's blocked read return at once.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


Resolver = Callable[[str, int], list[tuple[Any, ...]]]
SslContextFactory = Callable[[str | None], ssl.SSLContext]
CredentialSource = Callable[[], DbCredentials]
DbSession = Callable[[socket.socket, DbCredentials, str, CheckContext], None]


def resolve_tcp(host: str, port: int) -> list[tuple[Any, ...]]:
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


def utc_now() -> datetime:
    return datetime.now(UTC)


class CachedSslContexts:
    """One verifying client context per CA bundle (None = the system trust store), built on first use.

    Loading a trust store costs milliseconds; twenty targets need not pay it twenty times.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[str | None, ssl.SSLContext] = {}

    def __call__(self, ca_file: str | None) -> ssl.SSLContext:
        with self._lock:
            context = self._contexts.get(ca_file)
            if context is None:
                context = ssl.create_default_context(cafile=ca_file)
                self._contexts[ca_file] = context
            return context


def _no_credentials() -> DbCredentials:
    raise CheckFailure(CREDENTIALS, "no database credential source configured")


@dataclass(frozen=True)
class CheckDeps:
    """Everything a check touches outside itself. Defaults are the real thing."""

    resolve: Resolver = resolve_tcp
    ssl_context: SslContextFactory = field(default_factory=CachedSslContexts)
    now: Callable[[], datetime] = utc_now
    credentials: CredentialSource = _no_credentials
    db_session: DbSession | None = None  # None: pg8000, imported only when a database is checked


def run_check(target: Target, ctx: CheckContext, deps: CheckDeps) -> CheckResult:
    result = CheckResult.for_target(target)
    try:
        if isinstance(target, HttpTarget):
            _check_http(target, ctx, deps, result)
        else:
            _check_postgres(target, ctx, deps, result)
    except CheckFailure as failure:
        result.fail(failure.reason, failure.detail, ctx.phase)
    except Exception as error:
        reason, detail = classify_error(error, ctx.phase, ctx)
        result.fail(reason, detail, ctx.phase)
    result.phases_ms = dict(ctx.phases_ms)
    return result


def classify_error(error: BaseException, phase: str, ctx: CheckContext | None = None) -> tuple[str, str]:
    """Map a network/TLS/HTTP exception raised during `phase` onto one failure class and a short detail."""
    if ctx is not None and ctx.cancelled:
        return TIMEOUT, f"abandoned at the deadline during {phase}"
    if isinstance(error, CheckFailure):
        return error.reason, error.detail
    if isinstance(error, TimeoutError):
        return TIMEOUT, f"timed out during {phase}"
    if isinstance(error, socket.gaierror):
        return DNS, f"cannot resolve host name: {error.strerror or error}"
    if isinstance(error, ConnectionRefusedError):
        return REFUSED, "connection refused"
    if isinstance(error, ssl.SSLCertVerificationError):
        return TLS, f"certificate verification failed: {error.verify_message or error.reason}"
    if isinstance(error, ssl.SSLError):
        if phase == "tls":
            return TLS, f"TLS handshake failed: {error.reason or error}"
        return CONNECTION, f"TLS connection broken during {phase}: {error.reason or error}"
    if isinstance(error, http.client.HTTPException | OSError):
        if phase == "tls":
            # Dropping the connection during the handshake is how many servers reject a TLS mismatch.
            return TLS, f"connection lost during TLS handshake: {_describe(error)}"
        return CONNECTION, f"{_describe(error)} during {phase}"
    return INTERNAL, f"unexpected {type(error).__name__} during {phase}: {error}"


def _describe(error: BaseException) -> str:
    if isinstance(error, http.client.RemoteDisconnected):
        return "server closed the connection without answering"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class _Stopwatch:
    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.started = ctx.clock()
        self._last = self.started

    def enter(self, phase: str) -> None:
        self.ctx.phase = phase

    def lap(self, phase: str) -> None:
        now = self.ctx.clock()
        self.ctx.phases_ms[phase] = round((now - self._last) * 1000, 3)
        self._last = now

    def total_ms(self) -> float:
        return round((self.ctx.clock() - self.started) * 1000, 3)


def _open_tcp(host: str, port: int, ctx: CheckContext, deps: CheckDeps, watch: _Stopwatch) -> socket.socket:
    watch.enter("dns")
    addresses = deps.resolve(host, port)
    if not addresses:
        raise CheckFailure(DNS, f"no addresses for {host}")
    watch.lap("dns")

    watch.enter("connect")
    last_error: OSError | None = None
    refused = 0
    for family, sock_type, proto, _canonical, address in addresses:
        sock = socket.socket(family, sock_type, proto)
        ctx.track(sock)
        try:
            sock.settimeout(ctx.op_timeout())
            sock.connect(address)
        except ConnectionRefusedError as error:
            refused += 1
            last_error = error
            ctx.close(sock)
        except OSError as error:
            last_error = error
            ctx.close(sock)
        except BaseException:
            ctx.close(sock)
            raise
        else:
            watch.lap("connect")
            return sock
    if refused == len(addresses):
        raise CheckFailure(REFUSED, f"connection refused on {len(addresses)} address(es) of {host}:{port}")
    assert last_error is not None
    raise last_error


def _handshake(
    sock: socket.socket, host: str, ca_file: str | None, ctx: CheckContext, deps: CheckDeps, watch: _Stopwatch
) -> ssl.SSLSocket:
    watch.enter("tls")
    # No handshake inside wrap_socket: the wrapped socket must be tracked before it blocks, so a cancel can
    # interrupt the handshake too.
    tls_sock = deps.ssl_context(ca_file).wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    ctx.close(sock)  # detached by wrap_socket; the descriptor now belongs to tls_sock
    ctx.track(tls_sock)
    tls_sock.settimeout(ctx.op_timeout())
    tls_sock.do_handshake()
    watch.lap("tls")
    return tls_sock


def _record_certificate(
    tls_sock: ssl.SSLSocket, warn_days: int, deps: CheckDeps, result: CheckResult, watch: _Stopwatch
) -> None:
    certificate = tls_sock.getpeercert()
    not_after = certificate.get("notAfter") if certificate else None
    if not isinstance(not_after, str):
        raise CheckFailure(TLS, "the peer presented no certificate expiry date")
    expires_at = ssl.cert_time_to_seconds(not_after)
    days_left = (expires_at - deps.now().timestamp()) / 86400
    result.cert_days_left = round(days_left, 2)
    result.cert_not_after = datetime.fromtimestamp(expires_at, UTC).isoformat()
    if days_left <= 0:
        raise CheckFailure(TLS, f"certificate expired on {result.cert_not_after}")
    if days_left < warn_days:
        result.warnings.append(CERT_EXPIRING)


class _HttpsOverSocket(http.client.HTTPConnection):
    """HTTPConnection on an already-encrypted socket; default port 443 keeps `Host:` free of `:443`."""

    default_port = http.client.HTTPS_PORT


def _check_http(target: HttpTarget, ctx: CheckContext, deps: CheckDeps, result: CheckResult) -> None:
    watch = _Stopwatch(ctx)
    sock: socket.socket | None = None
    try:
        sock = _open_tcp(target.host, target.port, ctx, deps, watch)
        if target.uses_tls:
            sock = _handshake(sock, target.host, target.ca_file, ctx, deps, watch)
            assert isinstance(sock, ssl.SSLSocket)
            _record_certificate(sock, target.cert_warn_days, deps, result, watch)

        watch.enter("request")
        connection_class = _HttpsOverSocket if target.uses_tls else http.client.HTTPConnection
        connection = connection_class(target.host, target.port)
        connection.sock = sock  # http.client uses a preset socket instead of dialling again
        sock.settimeout(ctx.op_timeout())
        connection.request(
            "GET",
            target.request_path,
            headers={"User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"},
        )
        watch.lap("request")

        watch.enter("response")
        sock.settimeout(ctx.op_timeout())
        response = connection.getresponse()
        result.status = response.status
        if 300 <= response.status < 400:
            result.location = redirect_target(response.getheader("Location"))
        watch.lap("response")

        watch.enter("body")
        body, truncated = _read_body(response, sock, ctx)
        watch.lap("body")
        result.latency_ms = watch.total_ms()
        response.close()
    finally:
        ctx.close(sock)

    problems = _assert_http(target, result, body, truncated)
    if problems:
        reason, _ = problems[0]
        result.fail(reason, "; ".join(detail for _, detail in problems), "assert")
    else:
        result.up = True


MAX_LOCATION_CHARS = 200
"""A Location longer than this is cut (with an ellipsis) before it reaches a log line or an alert."""


def redirect_target(location: str | None) -> str:
    """A redirect's Location as it may appear in a report: without query string or fragment (they can carry
    session ids or tokens, and reports never contain secrets), printable characters only, at most
    `MAX_LOCATION_CHARS`. A 3xx without Location says so."""
    if not location:
        return "(no Location header)"
    kept = location.split("#", 1)[0]
    if "?" in kept:
        kept = kept.split("?", 1)[0] + "?…"
    printable = "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in kept)
    if len(printable) > MAX_LOCATION_CHARS:
        return printable[: MAX_LOCATION_CHARS - 1] + "…"
    return printable


def _read_body(response: http.client.HTTPResponse, sock: socket.socket, ctx: CheckContext) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while size < MAX_BODY_BYTES:
        sock.settimeout(ctx.op_timeout())
        chunk = response.read1(min(65536, MAX_BODY_BYTES - size))
        if not chunk:
            return b"".join(chunks), False
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks), True


def _assert_http(target: HttpTarget, result: CheckResult, body: bytes, truncated: bool) -> list[tuple[str, str]]:
    """Every assertion that fails, most fundamental first (the first one becomes the reason)."""
    problems: list[tuple[str, str]] = []
    if result.status != target.expected_status:
        # A redirect says where it was sent: "302 to https://app.example.com/login" tells a moved route or an
        # expired session apart from an HTTP->HTTPS hop at a glance.
        sent_to = f" to {result.location}" if result.location is not None else ""
        problems.append((STATUS, f"status {result.status}{sent_to}, expected {target.expected_status}"))
    read_note = f" (first {MAX_BODY_BYTES} bytes read)" if truncated else ""
    if target.body_contains is not None:
        text = body.decode("utf-8", errors="replace")
        if target.body_contains not in text:
            problems.append((BODY, f"body does not contain {target.body_contains!r}{read_note}"))
    if target.json_field is not None:
        message = _json_field_problem(body, target.json_field.steps, target.json_field.equals)
        if message is not None:
            problems.append((BODY, f"{message}{read_note}"))
    budget = target.latency_budget_ms
    if budget is not None and result.latency_ms is not None and result.latency_ms > budget:
        problems.append((LATENCY, f"took {result.latency_ms:.0f} ms, budget {budget:g} ms"))
    return problems


def _json_field_problem(body: bytes, steps: list[str], expected: Any) -> str | None:
    try:
        value: Any = json.loads(body)
    except ValueError:
        return "body is not JSON"
    walked: list[str] = []
    for step in steps:
        walked.append(step)
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return f"JSON field {'.'.join(walked)} is missing"
    if not _json_equal(value, expected):
        return f"JSON field {'.'.join(steps)} is {json.dumps(value)[:200]}, expected {json.dumps(expected)}"
    return None


def _json_equal(actual: Any, expected: Any) -> bool:
    # Python says True == 1 == 1.0; JSON health documents do not: "up": true is not "up": 1.
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, int | float) and isinstance(expected, int | float):
        return actual == expected
    return type(actual) is type(expected) and actual == expected


def _check_postgres(target: PostgresTarget, ctx: CheckContext, deps: CheckDeps, result: CheckResult) -> None:
    ctx.phase = "credentials"
    fetched_at = ctx.clock()
    credentials = deps.credentials()
    ctx.phases_ms["credentials"] = round((ctx.clock() - fetched_at) * 1000, 3)

    # Latency is the database's, from resolution to the answer of SELECT 1; fetching the secret is not.
    watch = _Stopwatch(ctx)
    sock: socket.socket | None = None
    try:
        sock = _open_tcp(target.host, target.port, ctx, deps, watch)
        watch.enter("tls")
        sock.settimeout(ctx.op_timeout())
        sock.sendall(_PG_SSL_REQUEST)
        answer = sock.recv(1)
        if answer == b"N":
            raise CheckFailure(TLS, "the server does not accept TLS connections")
        if answer != b"S":
            raise CheckFailure(TLS, f"unexpected answer {answer!r} to the TLS request (not PostgreSQL?)")
        sock = _handshake(sock, target.host, target.ca_file, ctx, deps, watch)
        assert isinstance(sock, ssl.SSLSocket)
        _record_certificate(sock, target.cert_warn_days, deps, result, watch)

        watch.enter("query")
        session = deps.db_session or pg8000_select_one
        session(sock, credentials, target.dbname, ctx)
        watch.lap("query")
        latency_ms = result.latency_ms = watch.total_ms()
    finally:
        ctx.close(sock)

    budget = target.latency_budget_ms
    if budget is not None and latency_ms > budget:
        result.fail(LATENCY, f"took {latency_ms:.0f} ms, budget {budget:g} ms", "assert")
    else:
        result.up = True


def pg8000_select_one(sock: socket.socket, credentials: DbCredentials, dbname: str, ctx: CheckContext) -> None:
    """Log in on an open (already encrypted) socket and run `SELECT 1`."""
    import pg8000.native
    from pg8000.exceptions import DatabaseError, InterfaceError

    sock.settimeout(ctx.op_timeout())
    try:
        # ssl_context=False: the socket is already TLS; pg8000 must not ask the server to upgrade again.
        connection = pg8000.native.Connection(
            credentials.username,
            password=credentials.password,
            database=dbname,
            sock=sock,
            ssl_context=False,
            application_name="shipyard-health-check",
        )
        try:
            rows = connection.run("SELECT 1")
        finally:
            connection.close()
    except DatabaseError as error:
        fields = error.args[0] if error.args and isinstance(error.args[0], dict) else {}
        code, message = fields.get("C", "?"), fields.get("M", str(error))
        raise CheckFailure(DATABASE, f"{code} {message}") from None
    except InterfaceError as error:
        cause = error.__cause__
        if isinstance(cause, BaseException):
            reason, detail = classify_error(cause, "query", ctx)
            raise CheckFailure(reason, detail) from None
        raise CheckFailure(CONNECTION, f"database protocol error: {error}") from None
    if rows != [[1]]:
        raise CheckFailure(DATABASE, f"SELECT 1 returned {rows!r}")

"""The Flask application: health endpoints, CORS, security headers, body limits, JSON errors and request logs.

Flask rather than FastAPI: the container is synchronous work against PostgreSQL behind gunicorn, Flask
and gunicorn are already pinned, and it needs no pydantic/ASGI stack (smaller image, faster start).

What a public caller can learn from any answer is deliberately little: fixed error codes, never a
database message, a host name or an exception class (those go to the logs).
"""

from __future__ import annotations

import importlib
import io
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import jsonlog, uploads
from app.config import Settings
from app.db import ConnectionPool, DatabaseUnavailable, connect, describe_error

log = logging.getLogger("app.web")
_QUIET_PATHS = frozenset({"/api/health", "/api/health/ready"})  # polled by health checkers

UPLOADS_PATH_PREFIX: Final = "/api/uploads"
"""Where uploads happen: the only routes whose bodies may reach `UPLOAD_MAX_BYTES`, and the only place a
too-large body is an `upload_failed` event (the alarm counts those). infra/aws/waf.py exempts the same prefix
from the WAF's 8 KB body rule; tests/app/test_app_hardening.py checks the two agree."""

BODY_MAX_BYTES: Final = 8 * 1024
"""Every other route takes small JSON bodies. 8 KiB is what the ALB's WAF can inspect (and blocks above,
SizeRestrictions_BODY), so staging and DigitalOcean, which have no WAF, refuse the same bodies prod does."""

READY_CACHE_SECONDS: Final = 2.0
"""One readiness round trip per process per this many seconds, however many callers: /api/health/ready is
public (the external health checker and DO's uptime check call it), so it must not be a way to open
database connections at will."""

SECURITY_HEADERS: Final = {
    # Browsers ignore HSTS over plain HTTP (staging without a domain), so it is safe to send everywhere.
    "Strict-Transport-Security": "max-age=63072000; includeSubDomains",
    # The API serves JSON only: nothing may load from it as a document, a frame or a script source.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-site",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
CORS_ALLOWED_HEADERS: Final = "Authorization, Content-Type"
CORS_MAX_AGE_SECONDS: Final = 600


class ReadinessProbe:
    """The readiness answer, cached for ``ttl_s`` and computed by one caller at a time.

    While a check runs (it can take up to ``READY_TIMEOUT_SECONDS`` against a hung server), other callers
    get the previous answer at once instead of queueing up gunicorn's threads behind it; only the very
    first callers, with no answer yet, wait for the running check.
    """

    def __init__(self, check: Callable[[], None], ttl_s: float, clock: Callable[[], float] = time.monotonic):
        self._check = check
        self._ttl_s = ttl_s
        self._clock = clock
        self._running = threading.Lock()
        self._answer: tuple[float, bool] | None = None

    def ready(self) -> bool:
        answer = self._answer
        if answer is not None and self._clock() - answer[0] < self._ttl_s:
            return answer[1]
        if not self._running.acquire(blocking=answer is None):
            assert answer is not None  # a blocking acquire always succeeds
            return answer[1]
        try:
            answer = self._answer
            if answer is None or self._clock() - answer[0] >= self._ttl_s:
                answer = (self._clock(), self._run_check())
                self._answer = answer
            return answer[1]
        finally:
            self._running.release()

    def _run_check(self) -> bool:
        try:
            self._check()
        except Exception as error:
            # The log gets where and why (host, user, server message); the public answer a fixed code.
            detail = str(error) if isinstance(error, DatabaseUnavailable) else describe_error(error)
            jsonlog.log_event(log, jsonlog.DATABASE_ERROR, "readiness check failed", reason=detail, check="ready")
            return False
        return True


def create_app(settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> Flask:
    """The app; ``clock`` times the readiness cache (tests advance it instead of sleeping)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        JWT_SECRET_KEY=settings.jwt_secret_key,
        MAX_CONTENT_LENGTH=BODY_MAX_BYTES,  # per request: see _limit_body
    )
    app.extensions["shipyard.settings"] = settings
    pool = app.extensions["shipyard.db_pool"] = database_pool(settings)
    _init_sentry(settings)
    uploads.register(app, settings)  # POST /api/uploads, GET /api/uploads/<key> (app/uploads.py)
    readiness = ReadinessProbe(lambda: _database_round_trip(pool, settings), READY_CACHE_SECONDS, clock)
    app.extensions["shipyard.readiness"] = readiness

    @app.get("/api/health")
    def health() -> tuple[Response, int]:
        """Liveness: the process answers. Touches nothing else, so a database outage never restarts tasks."""
        return jsonify(status="ok"), 200

    @app.get("/api/health/ready")
    def ready() -> tuple[Response, int]:
        """Readiness: can this process reach PostgreSQL (cached ``READY_CACHE_SECONDS``). Fixed answers only."""
        if readiness.ready():
            return jsonify(status="ok"), 200
        response = jsonify(status="unavailable", error="database_unavailable")
        response.headers["Retry-After"] = str(int(READY_CACHE_SECONDS) or 1)
        return response, 503

    @app.get("/api/config/uploads")
    def upload_limits() -> tuple[Response, int]:
        """What the frontend validates before uploading (S3 enforces the same limits on the upload itself)."""
        return jsonify(max_bytes=settings.upload_max_bytes, allowed_types=list(settings.upload_allowed_types)), 200

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        limit = request.max_content_length
        fields = {"limit_bytes": limit, "content_length": request.content_length, "path": request.path}
        if _is_upload_path(request.path):
            jsonlog.log_event(
                log,
                jsonlog.UPLOAD_FAILED,
                "upload over the size limit",
                level=logging.WARNING,
                reason="too_large",
                **fields,
            )
        else:
            # Not an upload: a client (or a scanner) sent a big body where none belongs. Logged, not alarmed.
            log.warning("request body over the limit", extra=fields)
        return jsonify(error="too_large", limit_bytes=limit), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        return _json_error(error)

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal_error"), 500

    @app.before_request
    def start() -> None:
        g.started = time.monotonic()
        _limit_body(settings)

    @app.after_request
    def finish(response: Response) -> Response:
        _apply_cors(app, settings, response)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.path not in _QUIET_PATHS or response.status_code >= 500:
            log.info(
                "%s %s %s",
                request.method,
                request.path,
                response.status_code,
                extra=_request_fields(response),
            )
        return response

    return app


def database_pool(settings: Settings) -> ConnectionPool:
    """The worker's connection pool; connections open lazily, each asking for a fresh password/IAM token."""

    def open_connection() -> Any:
        return connect(
            settings.database,
            connect_timeout_s=settings.ready_timeout_s,
            statement_timeout_ms=settings.database_statement_timeout_ms,
            application_name="shipyard-api",
        )

    return ConnectionPool(
        open_connection, max_size=settings.database_pool_size, acquire_timeout_s=settings.ready_timeout_s
    )


def _database_round_trip(pool: ConnectionPool, settings: Settings) -> None:
    """One ``SELECT 1`` on a pooled connection (a dead one is replaced once), waiting at most
    ``READY_TIMEOUT_SECONDS`` for a free connection; a new one connects within the same budget."""
    pool.run(lambda connection: connection.run("SELECT 1"), acquire_timeout_s=settings.ready_timeout_s)


def _is_upload_path(path: str) -> bool:
    return path == UPLOADS_PATH_PREFIX or path.startswith(UPLOADS_PATH_PREFIX + "/")


def _limit_body(settings: Settings) -> None:
    """`UPLOAD_MAX_BYTES` under /api/uploads, `BODY_MAX_BYTES` elsewhere.

    Refused up front from Content-Length, whatever the route: Werkzeug alone only notices when a view reads
    the body. A chunked body (no Content-Length) is read here, up to one byte over the limit: Werkzeug would
    silently cut it at the limit and hand the view a truncated body.
    """
    limit = settings.upload_max_bytes if _is_upload_path(request.path) else BODY_MAX_BYTES
    request.max_content_length = limit
    if request.content_length is not None:
        if request.content_length > limit:
            raise RequestEntityTooLarge()
    elif request.environ.get("wsgi.input_terminated"):
        _buffer_unsized_body(limit)


def _buffer_unsized_body(limit: int) -> None:
    """Read a body of unknown length (at most ``limit`` bytes) and present it to the view as a sized one."""
    environ = request.environ
    stream = environ["wsgi.input"]
    body = bytearray()
    while len(body) <= limit:
        chunk = stream.read(min(64 * 1024, limit + 1 - len(body)))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise RequestEntityTooLarge()
    environ["wsgi.input"] = io.BytesIO(bytes(body))
    environ["CONTENT_LENGTH"] = str(len(body))


def _json_error(error: HTTPException) -> Response:
    """The error as ``{"error": "<name>"}`` with the headers Werkzeug gives it (a 405's ``Allow``...)."""
    response = jsonify(error=(error.name or "error").lower().replace(" ", "_"))
    response.status_code = error.code or 500
    for name, value in error.get_headers(request.environ):
        if name.lower() != "content-type":
            response.headers.add(name, value)
    return response


def _request_fields(response: Response) -> dict[str, Any]:
    started = g.get("started")
    return {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": None if started is None else round((time.monotonic() - started) * 1000, 1),
    }


def _apply_cors(app: Flask, settings: Settings, response: Response) -> None:
    """CORS for the configured origins: no credentials (the API takes bearer tokens, not cookies)."""
    if not settings.cors_origins:
        return  # no answer depends on Origin
    # Every answer depends on Origin (allowed or not), so caches must key on it.
    response.vary.add("Origin")
    origin = request.headers.get("Origin")
    if not origin or origin.rstrip("/") not in settings.cors_origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
        methods = _route_methods(app)
        if methods:
            response.headers["Access-Control-Allow-Methods"] = ", ".join(methods)
            response.headers["Access-Control-Allow-Headers"] = CORS_ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_SECONDS)


def _route_methods(app: Flask) -> list[str]:
    """The methods the route at this path answers (what a preflight may be told), sorted."""
    adapter = app.url_map.bind_to_environ(request.environ)
    return sorted(set(adapter.allowed_methods(request.path)))


def _init_sentry(settings: Settings) -> None:
    if not settings.sentry_dsn:
        return
    try:
        sentry_sdk = importlib.import_module("sentry_sdk")
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed in this image; errors are not sent to Sentry")
        return
    sentry_sdk.init(dsn=settings.sentry_dsn, send_default_pii=False)

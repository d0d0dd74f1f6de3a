"""The Flask application: health endpoints, CORS, upload size limit, JSON errors and request logs.

Flask rather than FastAPI: the container is synchronous work against PostgreSQL behind gunicorn, Flask
and gunicorn are already pinned, and it needs no pydantic/ASGI stack (smaller image, faster start).
"""

from __future__ import annotations

import importlib
import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app import jsonlog
from app.config import Settings
from app.db import ConnectionPool, DatabaseUnavailable, connect, describe_error

log = logging.getLogger("app.web")
_QUIET_PATHS = frozenset({"/api/health", "/api/health/ready"})  # polled by the load balancer


def create_app(settings: Settings) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        JWT_SECRET_KEY=settings.jwt_secret_key,
        MAX_CONTENT_LENGTH=settings.upload_max_bytes,
    )
    app.extensions["shipyard.settings"] = settings
    pool = app.extensions["shipyard.db_pool"] = database_pool(settings)
    _init_sentry(settings)

    @app.get("/api/health")
    def health() -> tuple[Response, int]:
        """Liveness: the process answers. Touches nothing else, so a database outage never restarts tasks."""
        return jsonify(status="ok"), 200

    @app.get("/api/health/ready")
    def ready() -> tuple[Response, int]:
        """Readiness: one round trip to PostgreSQL within ``READY_TIMEOUT_SECONDS``."""
        started = time.monotonic()
        try:
            # A pooled connection (a dead one is replaced once), waiting at most READY_TIMEOUT_SECONDS for one.
            pool.run(lambda connection: connection.run("SELECT 1"), acquire_timeout_s=settings.ready_timeout_s)
        except Exception as error:
            # The log gets where and why; the public answer only why (no host names or users).
            if isinstance(error, DatabaseUnavailable):
                detail, reason = str(error), f"database unavailable: {error.cause}"
            else:
                detail = reason = f"database query failed: {describe_error(error)}"
            jsonlog.log_event(log, jsonlog.DATABASE_ERROR, "readiness check failed", reason=detail, check="ready")
            return jsonify(status="unavailable", reason=reason), 503
        return jsonify(status="ok", database_ms=round((time.monotonic() - started) * 1000, 1)), 200

    @app.get("/api/config/uploads")
    def upload_limits() -> tuple[Response, int]:
        """What the frontend validates before uploading (the API enforces the size on every request)."""
        return jsonify(max_bytes=settings.upload_max_bytes, allowed_types=list(settings.upload_allowed_types)), 200

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge) -> tuple[Response, int]:
        jsonlog.log_event(
            log,
            jsonlog.UPLOAD_FAILED,
            "request body over the upload limit",
            level=logging.WARNING,
            reason="too_large",
            limit_bytes=settings.upload_max_bytes,
            content_length=request.content_length,
            path=request.path,
        )
        return jsonify(error="too_large", limit_bytes=settings.upload_max_bytes), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[Response, int]:
        code = error.code or 500
        return jsonify(error=(error.name or "error").lower().replace(" ", "_")), code

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal_error"), 500

    @app.before_request
    def start_timer() -> None:
        g.started = time.monotonic()
        # Refuse oversized bodies up front, whatever the route: Werkzeug alone only notices when a view
        # reads the body. Chunked bodies (no Content-Length) still hit MAX_CONTENT_LENGTH on read.
        if request.content_length is not None and request.content_length > settings.upload_max_bytes:
            raise RequestEntityTooLarge()

    @app.after_request
    def finish(response: Response) -> Response:
        _apply_cors(settings, response)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Cache-Control", "no-store")
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


def _request_fields(response: Response) -> dict[str, Any]:
    started = g.get("started")
    return {
        "method": request.method,
        "path": request.path,
        "status": response.status_code,
        "duration_ms": None if started is None else round((time.monotonic() - started) * 1000, 1),
    }


def _apply_cors(settings: Settings, response: Response) -> None:
    origin = request.headers.get("Origin")
    if not origin or origin.rstrip("/") not in settings.cors_origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers.add("Vary", "Origin")
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"


def _init_sentry(settings: Settings) -> None:
    if not settings.sentry_dsn:
        return
    try:
        sentry_sdk = importlib.import_module("sentry_sdk")
    except ImportError:
        log.warning("SENTRY_DSN is set but sentry-sdk is not installed in this image; errors are not sent to Sentry")
        return
    sentry_sdk.init(dsn=settings.sentry_dsn, send_default_pii=False)

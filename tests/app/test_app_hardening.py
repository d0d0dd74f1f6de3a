"""Issue 22 through the WSGI app (Flask test client): what a public caller can see and send.

Readiness answers a fixed code for every database failure the tests can provoke (wrong password, missing
database, refused port, hung server, a server that wants TLS) and keeps the detail in the logs; security
headers and CORS on every answer; errors keep their headers; body limits per route; `upload_failed` only
where uploads happen. gunicorn's own behaviour is in test_app_gunicorn.py.
"""

from __future__ import annotations

import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask, request
from flask.testing import FlaskClient
from werkzeug.test import TestResponse, create_environ, run_wsgi_app

from app import jsonlog
from app.config import Settings
from app.web import BODY_MAX_BYTES, READY_CACHE_SECONDS, SECURITY_HEADERS, UPLOADS_PATH_PREFIX, create_app
from tests.conftest import EmbeddedPostgres, PgTlsFrontend

from .app_support import base_env, free_port

pytestmark = pytest.mark.postgres

READY_TIMEOUT = "0.5"
FIXED_503 = {"status": "unavailable", "error": "database_unavailable"}
# Words of database messages, exception classes and network errors that must never reach a body or header.
LEAKY_WORDS = (
    "password",
    "authentication",
    "does not exist",
    "SQLSTATE",
    "refused",
    "timed out",
    "Errno",
    "Error",  # InterfaceError, DatabaseError, ConnectionRefusedError, TimeoutError... (error codes are lowercase)
    "Exception",
    "DatabaseUnavailable",
    "pg8000",
    "Traceback",
    "127.0.0.1",
    "localhost",
    "ssl",
    "SSL",
)


def make_app(database_url: str, **env: str) -> Flask:
    settings = Settings.from_env(base_env(database_url) | {"READY_TIMEOUT_SECONDS": READY_TIMEOUT} | env)
    app = create_app(settings)
    app.testing = False  # errors go through the app's handlers, as in production
    return app


def leaks(response: TestResponse, *secrets: str) -> list[str]:
    """What of LEAKY_WORDS and ``secrets`` (host, user, database names...) shows in the body or headers."""
    text = response.get_data(as_text=True) + "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
    return [word for word in (*LEAKY_WORDS, *secrets) if word and word in text]


def get_routes(app: Flask) -> list[str]:
    return sorted(
        rule.rule for rule in app.url_map.iter_rules() if "GET" in (rule.methods or ()) and not rule.arguments
    )


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A TCP port that accepts connections and never answers (a hung database); yields (port, accepted)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=32)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1], accepted
    stop.set()
    thread.join(timeout=5)
    listener.close()
    for connection in accepted:
        connection.close()


def _wrong_password(pg: EmbeddedPostgres, *_: Any) -> tuple[str, str]:
    return (
        f"postgresql://{pg.user}:not-{quote(pg.password, safe='')}@127.0.0.1:{pg.port}/postgres?sslmode=disable",
        "password authentication failed",
    )


def _missing_database(pg: EmbeddedPostgres, *_: Any) -> tuple[str, str]:
    return pg.url("orders_prod_missing"), 'database "orders_prod_missing" does not exist'


def _refused(*_: Any) -> tuple[str, str]:
    return f"postgresql://shipyard_app:pw@127.0.0.1:{free_port()}/orders?sslmode=disable", "refused"


def _hung(_: EmbeddedPostgres, silent_port: int, __: PgTlsFrontend) -> tuple[str, str]:
    return f"postgresql://shipyard_app:pw@127.0.0.1:{silent_port}/orders?sslmode=disable", "timed out"


def _tls_required(pg: EmbeddedPostgres, _: int, tls: PgTlsFrontend) -> tuple[str, str]:
    # The frontend drops clients that do not ask for TLS (like rds.force_ssl = 1).
    url = f"postgresql://{pg.user}:{quote(pg.password, safe='')}@127.0.0.1:{tls.port}/postgres?sslmode=disable"
    return url, "127.0.0.1"


FAILURES: dict[str, Callable[[EmbeddedPostgres, int, PgTlsFrontend], tuple[str, str]]] = {
    "wrong password": _wrong_password,
    "missing database": _missing_database,
    "refused port": _refused,
    "hung server": _hung,
    "server wants TLS": _tls_required,
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
def test_no_endpoint_leaks_a_database_failure(
    failure: str,
    pg_server: EmbeddedPostgres,
    pg_tls_frontend: PgTlsFrontend,
    silent_server: tuple[int, list[socket.socket]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Item 1: readiness says `database_unavailable`, nothing more, on every route; the log says why."""
    url, logged_cause = FAILURES[failure](pg_server, silent_server[0], pg_tls_frontend)
    app = make_app(url)
    client = app.test_client()
    caplog.set_level(logging.INFO, logger="app.web")

    answers = {path: client.get(path) for path in get_routes(app)}

    assert "/api/health/ready" in answers and len(answers) >= 3
    ready = answers["/api/health/ready"]
    assert (ready.status_code, ready.get_json()) == (503, FIXED_503)
    host_user_db = ("shipyard_app", "orders", pg_server.user, pg_server.password, str(pg_server.port))
    for path, answer in answers.items():
        assert leaks(answer, *host_user_db) == [], f"{failure}: {path} answered {answer.get_data(as_text=True)}"
    [logged] = [r for r in caplog.records if getattr(r, "shipyard_fields", {}).get("event") == jsonlog.DATABASE_ERROR]
    assert logged_cause in getattr(logged, "shipyard_fields")["reason"]  # noqa: B009 - set by log_event


def test_an_unexpected_database_error_answers_a_fixed_500(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """A query that fails inside a view: the body is `internal_error`; the relation and class are logged."""
    app = make_app(database_url)

    @app.get("/api/test/broken-query")
    def broken_query() -> str:
        from app.db import connect

        connection = connect(
            app.extensions["shipyard.settings"].database,
            connect_timeout_s=5,
            statement_timeout_ms=5000,
            application_name="test",
        )
        try:
            connection.run("SELECT * FROM secret_orders_table")
        finally:
            connection.close()
        return "unreachable"

    answer = app.test_client().get("/api/test/broken-query")

    assert (answer.status_code, answer.get_json()) == (500, {"error": "internal_error"})
    assert leaks(answer, "secret_orders_table") == []
    assert "secret_orders_table" in caplog.text


def test_readiness_opens_one_connection_per_cache_period_however_many_ask(
    silent_server: tuple[int, list[socket.socket]],
) -> None:
    """Item 1: a public readiness endpoint is no way to open database connections at will."""
    port, accepted = silent_server
    app = make_app(f"postgresql://app:pw@127.0.0.1:{port}/shop?sslmode=disable")
    answers: list[int] = []

    def ask() -> None:
        answers.append(app.test_client().get("/api/health/ready").status_code)

    callers = [threading.Thread(target=ask) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=30)

    assert answers == [503] * 8
    assert len(accepted) == 1
    # Within the cache period: the same answer, no new connection.
    assert app.test_client().get("/api/health/ready").status_code == 503
    assert len(accepted) == 1
    time.sleep(READY_CACHE_SECONDS)
    assert app.test_client().get("/api/health/ready").status_code == 503
    assert len(accepted) == 2


def test_readiness_is_ok_with_a_fixed_body(database_url: str) -> None:
    answer = make_app(database_url).test_client().get("/api/health/ready")
    assert (answer.status_code, answer.get_json()) == (200, {"status": "ok"})


# -- item 3: security headers --------------------------------------------------------------------------------


def _answers_of_every_kind(client: FlaskClient) -> dict[str, TestResponse]:
    return {
        "200": client.get("/api/health"),
        "404": client.get("/api/nope"),
        "405": client.post("/api/health"),
        "413": client.post("/api/orders", data=b"x" * (BODY_MAX_BYTES + 1)),
        "503": client.get("/api/health/ready"),
        "OPTIONS": client.options("/api/health"),
    }


def test_every_answer_carries_the_security_headers(silent_server: tuple[int, list[socket.socket]]) -> None:
    app = make_app(f"postgresql://app:pw@127.0.0.1:{silent_server[0]}/shop?sslmode=disable")
    for kind, answer in _answers_of_every_kind(app.test_client()).items():
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers.get(name) == value, f"{kind}: {name}"
        assert "Server" not in answer.headers
    assert SECURITY_HEADERS["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert SECURITY_HEADERS["X-Frame-Options"] == "DENY"
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"
    assert SECURITY_HEADERS["Cross-Origin-Resource-Policy"] == "same-site"
    assert SECURITY_HEADERS["Strict-Transport-Security"].startswith("max-age=63072000")


# -- item 4: CORS, errors, body limits -------------------------------------------------------------------------

ORIGIN = "https://app.example.com"


def _cors_app(database_url: str) -> Flask:
    app = make_app(database_url, CORS_ORIGINS=ORIGIN)

    @app.route("/api/test/things", methods=["POST", "PUT"])
    def things() -> dict[str, int]:
        return {"read": len(request.get_data())}

    return app


def test_vary_origin_on_every_answer_when_cors_is_configured(database_url: str) -> None:
    client = _cors_app(database_url).test_client()
    for headers in ({"Origin": ORIGIN}, {"Origin": "https://evil.example.com"}, {}):
        for answer in (client.get("/api/health", headers=headers), client.get("/api/nope", headers=headers)):
            assert "Origin" in answer.vary, (headers, answer.status_code)
            assert "Access-Control-Allow-Credentials" not in answer.headers
    assert client.get("/api/health", headers={"Origin": ORIGIN}).headers["Access-Control-Allow-Origin"] == ORIGIN
    # Without CORS configured nothing depends on Origin.
    plain = make_app(database_url).test_client().get("/api/health", headers={"Origin": ORIGIN})
    assert "Origin" not in plain.vary and "Access-Control-Allow-Origin" not in plain.headers


def test_preflight_advertises_the_methods_of_the_route_asked_about(database_url: str) -> None:
    client = _cors_app(database_url).test_client()

    def preflight(path: str, method: str) -> TestResponse:
        return client.options(path, headers={"Origin": ORIGIN, "Access-Control-Request-Method": method})

    assert preflight("/api/health", "GET").headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    things = preflight("/api/test/things", "PUT")
    assert things.headers["Access-Control-Allow-Methods"] == "OPTIONS, POST, PUT"
    assert things.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert "Access-Control-Allow-Credentials" not in things.headers
    unknown = preflight("/api/nope", "DELETE")
    assert unknown.status_code == 404
    assert "Access-Control-Allow-Methods" not in unknown.headers


def test_json_errors_keep_the_original_headers(database_url: str) -> None:
    answer = make_app(database_url).test_client().delete("/api/health")
    assert answer.status_code == 405
    assert answer.get_json() == {"error": "method_not_allowed"}
    assert answer.headers["Content-Type"] == "application/json"
    assert sorted(method.strip() for method in answer.headers["Allow"].split(",")) == ["GET", "HEAD", "OPTIONS"]


def test_body_limits_are_large_under_uploads_and_small_elsewhere(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = _cors_app(database_url)
    client = app.test_client()
    just_over = b"x" * (BODY_MAX_BYTES + 1)

    small = client.post("/api/test/things", data=b"x" * BODY_MAX_BYTES)
    assert (small.status_code, small.get_json()) == (200, {"read": BODY_MAX_BYTES})
    refused = client.post("/api/test/things", data=just_over)
    assert (refused.status_code, refused.get_json()) == (413, {"error": "too_large", "limit_bytes": BODY_MAX_BYTES})
    # A body without Content-Length hits the same limit when the view reads it.
    environ = create_environ("/api/test/things", method="POST", input_stream=io.BytesIO(just_over))
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True  # what gunicorn says for a chunked body
    _, status, _ = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("413 ")
    # Under /api/uploads the limit is UPLOAD_MAX_BYTES (10 MiB): 8 KiB + 1 reaches the upload route, which
    # then wants a bearer token.
    assert client.post(UPLOADS_PATH_PREFIX, data=just_over).status_code == 401


# -- item 5: upload_failed only where uploads happen --------------------------------------------------------


def test_large_bodies_elsewhere_do_not_count_as_failed_uploads(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = make_app(database_url, UPLOAD_MAX_BYTES="1000").test_client()
    caplog.set_level(logging.INFO, logger="app.web")
    huge = str(50 * 1024 * 1024)

    for path in ("/api/health", "/api/orders", "/api/uploadsX", "/", "/api/health/ready"):
        answer = client.post(path, environ_overrides={"CONTENT_LENGTH": huge})
        assert answer.status_code == 413, path
    upload = client.post(f"{UPLOADS_PATH_PREFIX}/abc", data=b"x" * 1001)
    assert (upload.status_code, upload.get_json()) == (413, {"error": "too_large", "limit_bytes": 1000})

    events = [getattr(r, "shipyard_fields", {}) for r in caplog.records]
    failed = [fields for fields in events if fields.get("event") == jsonlog.UPLOAD_FAILED]
    assert [(f["path"], f["content_length"]) for f in failed] == [(f"{UPLOADS_PATH_PREFIX}/abc", 1001)]
    assert sum("request body over the limit" in r.getMessage() for r in caplog.records) == 5


def test_a_chunked_body_within_the_limit_reaches_the_view_whole(database_url: str) -> None:
    app = _cors_app(database_url)
    environ = create_environ("/api/test/things", method="POST", input_stream=io.BytesIO(b"y" * BODY_MAX_BYTES))
    del environ["CONTENT_LENGTH"]
    environ["wsgi.input_terminated"] = True
    body, status, _ = run_wsgi_app(app, environ, buffered=True)
    assert (status, b"".join(body)) == ("200 OK", b'{"read":%d}\n' % BODY_MAX_BYTES)

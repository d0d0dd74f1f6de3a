"""The API served by gunicorn on 127.0.0.1 against a real PostgreSQL."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.web import READY_CACHE_SECONDS

from .app_support import REPO_ROOT, RunningApi, base_env

pytestmark = pytest.mark.postgres


def test_health_and_ready_answer_200(start_api: Callable[..., RunningApi], migrated_database_url: str) -> None:
    api = start_api(base_env(migrated_database_url))

    health = api.request("/api/health")
    assert (health.status, health.body) == (200, {"status": "ok"})
    ready = api.request("/api/health/ready")
    assert (ready.status, ready.body) == (200, {"status": "ok"})
    assert health.headers["X-Content-Type-Options"] == "nosniff"


def test_ready_503_while_the_database_is_stopped_then_recovers(
    start_api: Callable[..., RunningApi], make_pg_server: Callable[..., Any]
) -> None:
    server = make_pg_server()
    api = start_api(base_env(server.create_database("shop")))
    assert api.request("/api/health/ready").status == 200

    server.stop()
    time.sleep(READY_CACHE_SECONDS)  # the 200 above is the answer until then
    ready = api.request("/api/health/ready")
    health = api.request("/api/health")

    # A fixed code: why and where the database failed stay in the logs.
    assert (ready.status, ready.body) == (503, {"status": "unavailable", "error": "database_unavailable"})
    assert (health.status, health.body) == (200, {"status": "ok"})  # liveness does no I/O
    [logged] = [line for line in api.log_lines() if line.get("event") == "database_error"]
    assert logged["level"] == "ERROR"
    assert f"127.0.0.1:{server.port}/shop" in logged["reason"]
    assert "refused" in logged["reason"].lower()
    assert server.password not in api.log_path.read_text()

    server.start()
    time.sleep(READY_CACHE_SECONDS)
    assert api.request("/api/health/ready").status == 200


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung database)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    yield listener.getsockname()[1]
    listener.close()


def test_ready_gives_up_within_its_timeout(start_api: Callable[..., RunningApi], silent_listener: int) -> None:
    env = base_env(f"postgresql://app:pw@127.0.0.1:{silent_listener}/shop?sslmode=disable")
    api = start_api(env | {"READY_TIMEOUT_SECONDS": "0.5"})

    started = time.monotonic()
    ready = api.request("/api/health/ready", timeout=10)
    elapsed = time.monotonic() - started

    assert (ready.status, ready.body) == (503, {"status": "unavailable", "error": "database_unavailable"})
    assert elapsed < 5
    [logged] = [line for line in api.log_lines() if line.get("event") == "database_error"]
    assert logged["reason"].endswith("timed out")


def test_oversized_request_is_refused_and_logged_as_upload_failed(
    start_api: Callable[..., RunningApi], migrated_database_url: str
) -> None:
    api = start_api(base_env(migrated_database_url) | {"UPLOAD_MAX_BYTES": "1000", "UPLOAD_ALLOWED_TYPES": "png,pdf"})

    limits = api.request("/api/config/uploads")
    assert limits.body == {"max_bytes": 1000, "allowed_types": ["png", "pdf"]}
    refused = api.request(
        "/api/uploads", method="POST", data=b"x" * 2000, headers={"Content-Type": "application/octet-stream"}
    )
    assert refused.status == 413
    assert refused.body == {"error": "too_large", "limit_bytes": 1000}
    [logged] = [line for line in api.log_lines() if line.get("event") == "upload_failed"]
    assert (logged["level"], logged["reason"], logged["content_length"]) == ("WARNING", "too_large", 2000)


def test_cors_answers_only_configured_origins(start_api: Callable[..., RunningApi], migrated_database_url: str) -> None:
    api = start_api(
        base_env(migrated_database_url) | {"CORS_ORIGINS": "https://app.example.com, https://admin.example.com/"}
    )

    allowed = api.request("/api/health", headers={"Origin": "https://admin.example.com"})
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://admin.example.com"
    assert "Access-Control-Allow-Credentials" not in allowed.headers  # bearer tokens, not cookies
    preflight = api.request(
        "/api/health",
        method="OPTIONS",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status == 200
    assert preflight.headers["Access-Control-Allow-Methods"] == "GET, HEAD, OPTIONS"
    other = api.request("/api/health", headers={"Origin": "https://evil.example.com"})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.headers["Vary"] == "Origin"


def test_every_log_line_is_json(start_api: Callable[..., RunningApi], migrated_database_url: str) -> None:
    api = start_api(base_env(migrated_database_url))
    api.request("/api/nope")
    api.process.terminate()
    api.process.wait(timeout=15)
    raw = [line for line in api.log_path.read_text().splitlines() if line.strip()]
    parsed = api.log_lines()
    assert len(parsed) == len(raw) > 0
    assert all({"timestamp", "level", "logger", "message"} <= line.keys() for line in parsed)
    [request_line] = [line for line in parsed if line.get("path") == "/api/nope"]
    assert (request_line["status"], request_line["method"]) == (404, "GET")


def test_misconfiguration_stops_the_container_naming_the_variable(
    start_api: Callable[..., RunningApi], migrated_database_url: str
) -> None:
    env = base_env(migrated_database_url)
    del env["JWT_SECRET_KEY"]
    api = start_api(env, wait=False)
    assert api.process.wait(timeout=30) != 0
    assert "JWT_SECRET_KEY must be set" in api.log_path.read_text()


def test_container_healthcheck_probe(start_api: Callable[..., RunningApi], migrated_database_url: str) -> None:
    api = start_api(base_env(migrated_database_url))

    def probe(port: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app.healthcheck"],
            env={"PORT": str(port), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
            cwd=Path("/"),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    assert probe(api.port).returncode == 0
    api.process.terminate()
    api.process.wait(timeout=15)
    down = probe(api.port)
    assert down.returncode == 1
    assert "unhealthy" in down.stderr

"""Issue 22, gunicorn's part, through a real gunicorn on 127.0.0.1 started with the image's CMD and config.

No Server banner; forwarded headers trusted only from FORWARDED_ALLOW_IPS and only for the scheme; a slow
request cut at GUNICORN_REQUEST_DEADLINE; workers recycled after max_requests with jitter; requests gunicorn
refuses itself logged with an event name.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
from collections.abc import Callable

import pytest

from .app_support import RunningApi, base_env, load_gunicorn_conf, wait_until_up

pytestmark = pytest.mark.postgres

PROBE_APP = "tests.app.probe_wsgi:application"
StartApi = Callable[..., RunningApi]


def raw_request(port: int, payload: bytes, timeout: float = 10) -> bytes:
    """Send ``payload`` as is and read the whole answer (the server closes: ``Connection: close``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(payload)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def head_of(answer: bytes) -> dict[str, str]:
    """Status line under ``status`` and the header fields, names lower-cased."""
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    fields = dict(line.split(":", 1) for line in head[1:])
    return {"status": head[0]} | {name.strip().lower(): value.strip() for name, value in fields.items()}


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: api.example.com", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_no_server_banner_on_any_answer(start_api: StartApi, database_url: str) -> None:
    api = start_api(base_env(database_url))
    answers = {
        "200": raw_request(api.port, get("/api/health")),
        "404": raw_request(api.port, get("/api/nope")),
        "400 from gunicorn": raw_request(api.port, b"GARBAGE\r\n\r\n"),
    }
    assert head_of(answers["200"])["status"] == "HTTP/1.1 200 OK"
    assert head_of(answers["400 from gunicorn"])["status"] == "HTTP/1.1 400 Bad Request"
    for kind, answer in answers.items():
        fields = head_of(answer)
        assert "server" not in fields, kind
        assert b"gunicorn" not in answer.lower(), kind
    for kind in ("200", "404"):
        fields = head_of(answers[kind])
        assert fields["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert fields["strict-transport-security"].startswith("max-age=")
        assert (fields["x-frame-options"], fields["referrer-policy"]) == ("DENY", "no-referrer")
        assert fields["cross-origin-resource-policy"] == "same-site"


def _body(answer: bytes) -> dict[str, str]:
    parsed = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert isinstance(parsed, dict)
    return parsed


def test_the_image_defaults_do_not_let_a_client_re_root_the_app(start_api: StartApi, database_url: str) -> None:
    """The issue's reproduction: `GET /zzz/api/...` with `SCRIPT_NAME: /zzz` reached a route (200)."""
    api = start_api(base_env(database_url))
    assert "FORWARDED_ALLOW_IPS" not in base_env(database_url)

    rerooted = raw_request(api.port, get("/zzz/api/health", "SCRIPT_NAME: /zzz"))
    assert head_of(rerooted)["status"].startswith("HTTP/1.1 404")


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(start_api: StartApi, database_url: str) -> None:
    """gunicorn #2650: with `*` and the default forwarder_headers, SCRIPT_NAME re-rooted the app."""
    api = start_api(base_env(database_url) | {"FORWARDED_ALLOW_IPS": "10.0.0.0/8"}, app_module=PROBE_APP)

    rerooted = raw_request(api.port, get("/zzz/api/health", "SCRIPT_NAME: /zzz"))
    assert head_of(rerooted)["status"].startswith("HTTP/1.1 404")
    spoofed = raw_request(api.port, get("/test/scheme", "X-Forwarded-Proto: https", "PATH_INFO: /api/health"))
    assert _body(spoofed) == {"scheme": "http", "script_root": "", "path": "/test/scheme"}


def test_the_proxy_may_set_the_scheme_and_nothing_else(start_api: StartApi, database_url: str) -> None:
    api = start_api(base_env(database_url) | {"FORWARDED_ALLOW_IPS": "127.0.0.1"}, app_module=PROBE_APP)

    forwarded = raw_request(api.port, get("/test/scheme", "X-Forwarded-Proto: https"))
    assert _body(forwarded)["scheme"] == "https"
    # Only X-Forwarded-Proto counts: the other secure-scheme headers gunicorn knows are not consulted.
    other = raw_request(api.port, get("/test/scheme", "X-Forwarded-Ssl: on", "X-Forwarded-Protocol: ssl"))
    assert _body(other)["scheme"] == "http"
    rerooted = raw_request(api.port, get("/zzz/api/health", "SCRIPT_NAME: /zzz"))
    assert head_of(rerooted)["status"].startswith("HTTP/1.1 404")


@pytest.mark.parametrize(("value", "message"), [("*", "not '*'"), ("10.0.0.0/8,proxy", "'proxy' is not")])
def test_forwarded_allow_ips_must_name_addresses(value: str, message: str) -> None:
    loaded = load_gunicorn_conf({"FORWARDED_ALLOW_IPS": value})
    assert loaded.returncode != 0
    assert "FORWARDED_ALLOW_IPS" in loaded.stderr and message in loaded.stderr


def test_a_slow_request_is_cut_at_the_deadline(start_api: StartApi, database_url: str) -> None:
    """With gthread, `timeout` never fires for a slow request; GUNICORN_REQUEST_DEADLINE does."""
    api = start_api(base_env(database_url) | {"GUNICORN_REQUEST_DEADLINE": "2"}, app_module=PROBE_APP)

    started = time.monotonic()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError, urllib.error.URLError)):
        api.request("/test/sleep?seconds=30", timeout=25)
    elapsed = time.monotonic() - started

    assert 2 <= elapsed < 10
    [cut] = [line for line in api.log_lines() if line.get("event") == "request_deadline_exceeded"]
    assert (cut["level"], cut["path"], cut["method"], cut["deadline_s"]) == ("ERROR", "/test/sleep", "GET", 2)
    wait_until_up(api)
    assert api.request("/api/health").status == 200  # a fresh worker took over


def test_workers_are_recycled_after_max_requests_with_jitter(start_api: StartApi, database_url: str) -> None:
    api = start_api(base_env(database_url) | {"GUNICORN_MAX_REQUESTS": "3", "GUNICORN_MAX_REQUESTS_JITTER": "2"})

    for _ in range(12):
        assert api.request("/api/health", timeout=20).status == 200

    restarts = [line for line in api.log_lines() if line["message"].startswith("Autorestarting worker")]
    # Each worker serves between 3 and 3 + 2 requests, so 12 requests restart it 2 to 4 times.
    assert 2 <= len(restarts) <= 4


def test_default_recycling_and_deadline_settings() -> None:
    loaded = load_gunicorn_conf(
        {}, show=("max_requests", "max_requests_jitter", "request_deadline", "timeout", "forwarder_headers")
    )
    assert loaded.returncode == 0, loaded.stderr
    settings = json.loads(loaded.stdout)
    assert settings == {
        "max_requests": 2000,
        "max_requests_jitter": 200,
        "request_deadline": 30,
        "timeout": 30,
        "forwarder_headers": "",
    }


def test_requests_gunicorn_refuses_are_logged(start_api: StartApi, database_url: str) -> None:
    api = start_api(base_env(database_url))

    assert head_of(raw_request(api.port, b"GARBAGE\r\n\r\n"))["status"] == "HTTP/1.1 400 Bad Request"
    too_long = raw_request(api.port, get("/api/" + "x" * 5000))
    assert head_of(too_long)["status"].startswith("HTTP/1.1 414")
    time.sleep(0.2)  # the worker logs after writing the answer

    refused = [line for line in api.log_lines() if line.get("event") == "http_bad_request"]
    assert len(refused) == 2
    assert all(line["level"] == "WARNING" and line["client"] == "127.0.0.1" for line in refused)
    assert "Invalid HTTP request line" in refused[0]["message"]

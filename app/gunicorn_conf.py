"""gunicorn settings for the container; every knob comes from the environment.

PORT (8000), HOST (0.0.0.0), WEB_CONCURRENCY workers (2), GUNICORN_THREADS (4), GUNICORN_TIMEOUT (30 s, the
worker heartbeat), GUNICORN_REQUEST_DEADLINE (30 s, per request), GUNICORN_MAX_REQUESTS (2000) and
GUNICORN_MAX_REQUESTS_JITTER (200), FORWARDED_ALLOW_IPS (the proxy's addresses; loopback by default).

Logs: gunicorn's own lines go through the same JSON formatter as the app; the access log is off because
the app logs each request itself (as JSON, with its duration). Requests gunicorn refuses before the app
sees them (a malformed request line or header: 400/414/431...) are logged with `event: "http_bad_request"`.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
import threading
import time
from typing import Any

from gunicorn.http import wsgi as gunicorn_wsgi

# The ALB's idle timeout: a request still running after it has already been answered 504 by the ALB.
ALB_IDLE_TIMEOUT_S = 60
DEADLINE_EXIT_CODE = 70  # EX_SOFTWARE; not 3 or 4, which make gunicorn's arbiter halt the whole server


def _int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SystemExit(f"{name} must be at least {minimum}, got {value}")
    return value


def _forwarded_allow_ips(raw: str) -> str:
    """Only the proxy's own addresses may set X-Forwarded-Proto; `*` would let any client claim HTTPS."""
    entries = [entry.strip() for entry in raw.split(",") if entry.strip()]
    if not entries or "*" in entries:
        raise SystemExit("FORWARDED_ALLOW_IPS must list the load balancer's addresses or networks (not '*')")
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SystemExit(f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address or network") from None
    return ",".join(entries)


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_int('PORT', 8000)}"  # noqa: S104 - a container listens on its interface
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread"
# With gthread, `timeout` only catches a worker whose main loop stops (the loop heartbeats while requests
# run in threads): it never cuts a slow request. `request_deadline` below does.
timeout = _int("GUNICORN_TIMEOUT", 30)
request_deadline = _int("GUNICORN_REQUEST_DEADLINE", 30)
if request_deadline >= ALB_IDLE_TIMEOUT_S:
    raise SystemExit(f"GUNICORN_REQUEST_DEADLINE must be under the ALB idle timeout ({ALB_IDLE_TIMEOUT_S} s)")
# Recycle workers now and then (a slow leak cannot grow forever); the jitter keeps them from all restarting
# at once, so a task never has every worker booting at the same moment.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = _int("GUNICORN_MAX_REQUESTS_JITTER", max(1, max_requests // 10))
graceful_timeout = 20  # ECS sends SIGTERM and waits stopTimeout (30 s by default) before SIGKILL
keepalive = 75  # longer than the ALB idle timeout (60 s), so the ALB closes idle connections first
# Heartbeat files and the control socket need writable places; the root filesystem is read-only.
_SHM = "/dev/shm"  # noqa: S108 - a tmpfs, the one writable place on a read-only root filesystem
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
control_socket_disable = True
accesslog = None

# Proxy headers: trusted only from the load balancer's addresses, and only the scheme. gunicorn's default
# forwarder_headers (SCRIPT_NAME, PATH_INFO) let a client re-root the app (gunicorn issue #2650): no proxy of
# ours sets them, so none are taken from any peer. (On AWS the ALB also drops header names with "_"
# — drop_invalid_header_fields, names must match [-A-Za-z0-9]+: https://docs.aws.amazon.com/elasticloadbalancing/
# latest/application/application-load-balancers.html — but App Platform and a direct peer do not.)
forwarded_allow_ips = _forwarded_allow_ips(os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1"))
forwarder_headers = ""
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}  # the one the ALB and App Platform set


class BadRequestFields(logging.Filter):
    """Give gunicorn's "Invalid request from ip=..." warnings an event name and the client's address."""

    _PATTERN = re.compile(r"^Invalid request from ip=(?P<client>[^:]*(?::[^:\s]*)*?): ")

    def filter(self, record: logging.LogRecord) -> bool:
        match = self._PATTERN.match(record.getMessage())
        if match:
            record.event = "http_bad_request"
            record.client = match.group("client")
        return True


logconfig_dict: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.jsonlog.JsonFormatter"}},
    "filters": {"bad_request": {"()": BadRequestFields}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
            "filters": ["bad_request"],
        }
    },
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["stdout"], "propagate": False},
    },
}


# -- no Server banner --------------------------------------------------------------------------------------
# gunicorn has no setting for it: every response starts with "Server: gunicorn". The config file is loaded
# in the master before workers fork, so this wrapper is what every worker runs.
_gunicorn_default_headers = gunicorn_wsgi.Response.default_headers


def _default_headers_without_server(self: gunicorn_wsgi.Response) -> list[str]:
    return [line for line in _gunicorn_default_headers(self) if not line.lower().startswith("server:")]


gunicorn_wsgi.Response.default_headers = _default_headers_without_server


# -- request deadline --------------------------------------------------------------------------------------
# A request still running after `request_deadline` seconds (the ALB has long given up on it, or soon will)
# ends its worker: Python cannot stop one thread, so the worker exits and the arbiter starts a fresh one,
# as gunicorn's sync workers do on `timeout`. Requests sharing that worker are cut too; that is the price of
# never letting a stuck request (or a few of them) hold the worker's threads for good.
_in_flight: dict[int, tuple[float, str, str]] = {}


def pre_request(worker: Any, req: Any) -> None:
    _in_flight[threading.get_ident()] = (time.monotonic(), req.method, req.path)


def post_request(worker: Any, req: Any, environ: Any, resp: Any) -> None:
    _in_flight.pop(threading.get_ident(), None)


def post_worker_init(worker: Any) -> None:
    watchdog = threading.Thread(target=_watch_deadline, args=(worker,), name="request-deadline", daemon=True)
    watchdog.start()


def _watch_deadline(worker: Any) -> None:
    interval = min(1.0, request_deadline / 4)
    while True:
        time.sleep(interval)
        now = time.monotonic()
        late = [(now - started, method, path) for started, method, path in list(_in_flight.values())]
        late = [entry for entry in late if entry[0] >= request_deadline]
        if late:
            elapsed, method, path = max(late)
            worker.log.error(
                "request over the %s s deadline: %s %s after %.1f s; restarting the worker",
                request_deadline,
                method,
                path,
                elapsed,
                extra={
                    "event": "request_deadline_exceeded",
                    "method": method,
                    "path": path,
                    "elapsed_s": round(elapsed, 1),
                    "deadline_s": request_deadline,
                    "in_flight": len(_in_flight),
                },
            )
            _flush_logs()
            os._exit(DEADLINE_EXIT_CODE)  # sys.exit would wait for the stuck thread


def _flush_logs() -> None:
    for handler in logging.getLogger("gunicorn.error").handlers + logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()

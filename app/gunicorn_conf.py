"""gunicorn settings for the container; every knob comes from the environment.

PORT (8000), HOST (0.0.0.0), WEB_CONCURRENCY workers (2), GUNICORN_THREADS (4), GUNICORN_TIMEOUT (30 s).
Logs: gunicorn's own lines go through the same JSON formatter as the app; the access log is off because
the app logs each request itself (as JSON, with its duration).
"""

import os


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {value}")
    return value


bind = f"{os.environ.get('HOST', '0.0.0.0')}:{_int('PORT', 8000)}"  # noqa: S104 - a container listens on its interface
workers = _int("WEB_CONCURRENCY", 2)
threads = _int("GUNICORN_THREADS", 4)
worker_class = "gthread"
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 20  # ECS sends SIGTERM and waits stopTimeout (30 s by default) before SIGKILL
keepalive = 75  # longer than the ALB idle timeout (60 s), so the ALB closes idle connections first
# Heartbeat files and the control socket need writable places; the root filesystem is read-only.
_SHM = "/dev/shm"  # noqa: S108 - a tmpfs, the one writable place on a read-only root filesystem
worker_tmp_dir = _SHM if os.path.isdir(_SHM) else None
control_socket_disable = True
accesslog = None
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")  # only the ALB can reach the task
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "app.jsonlog.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"level": os.environ.get("LOG_LEVEL", "INFO").upper(), "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["stdout"], "propagate": False},
    },
}

"""Helpers for the API tests: run app/Dockerfile's CMD (gunicorn) on 127.0.0.1 and talk to it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "app" / "Dockerfile"
BOOT_TIMEOUT_S = 20


def dockerfile_instruction(name: str) -> str:
    """The last ``NAME ...`` instruction of app/Dockerfile (continuation lines joined)."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") and not pending:
            continue
        pending += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    matches = [line[len(name) + 1 :] for line in logical if line.startswith(name + " ")]
    assert matches, f"no {name} in {DOCKERFILE}"
    return matches[-1]


def dockerfile_cmd() -> list[str]:
    command = json.loads(dockerfile_instruction("CMD"))
    assert isinstance(command, list)
    return [str(part) for part in command]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class RunningApi:
    base_url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def request(
        self,
        path: str,
        *,
        method: str = "GET",
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10,
    ) -> Response:
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return Response(answer.status, _json(answer.read()), dict(answer.headers))
        except urllib.error.HTTPError as error:
            return Response(error.code, _json(error.read()), dict(error.headers))

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines


def _json(raw: bytes) -> dict[str, Any]:
    if not raw:
        return {}
    parsed = json.loads(raw)
    assert isinstance(parsed, dict)
    return parsed


def base_env(database_url: str) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "s" * 40,
        "JWT_SECRET_KEY": "j" * 40,
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": "1",
        "GUNICORN_THREADS": "2",
        "PYTHONPATH": str(REPO_ROOT),
    }


def wait_until_up(api: RunningApi) -> None:
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        if api.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {api.process.returncode}:\n{api.log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", api.port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"gunicorn did not listen within {BOOT_TIMEOUT_S} s:\n{api.log_path.read_text()}")


def db_name(url: str) -> str:
    """The database part of a postgresql:// URL."""
    return url.rsplit("/", 1)[1].split("?", 1)[0]


def load_gunicorn_conf(env: dict[str, str], show: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Evaluate app/gunicorn_conf.py in a fresh interpreter with ``env``: exit 0 (printing the settings named
    in ``show`` as a JSON object), or gunicorn_conf's SystemExit message on stderr."""
    program = (
        "import json, runpy, sys; names = sys.argv[1:]; settings = runpy.run_path('app/gunicorn_conf.py'); "
        "names and print(json.dumps({name: settings[name] for name in names}))"
    )
    return subprocess.run(
        [sys.executable, "-c", program, *show],
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO_ROOT)} | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

"""Fixtures for the API tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .app_support import REPO_ROOT, RunningApi, dockerfile_cmd, free_port, wait_until_up


@pytest.fixture
def start_api(tmp_path: Path) -> Iterator[Callable[..., RunningApi]]:
    """``start_api(env) -> RunningApi``: the Dockerfile's CMD on a free port; stopped after the test."""
    started: list[RunningApi] = []

    def start(env: dict[str, str], *, wait: bool = True, app_module: str | None = None) -> RunningApi:
        """``app_module`` replaces the CMD's WSGI app (e.g. tests.app.probe_wsgi:application)."""
        port = free_port()
        log_path = tmp_path / f"api-{port}.log"
        command = dockerfile_cmd()
        assert command[0] == "gunicorn"
        if app_module is not None:
            assert command[-1] == "app.wsgi:application"
            command[-1] = app_module
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [sys.executable, "-m", *command],
                cwd=REPO_ROOT,  # the image's WORKDIR holds app/ the same way
                env=env | {"PORT": str(port)},
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        api = RunningApi(f"http://127.0.0.1:{port}", port, process, log_path)
        started.append(api)
        if wait:
            wait_until_up(api)
        return api

    yield start
    for api in started:
        if api.process.poll() is None:
            api.process.terminate()
            try:
                api.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api.process.kill()
                api.process.wait(timeout=5)

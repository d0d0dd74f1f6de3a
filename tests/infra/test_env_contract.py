"""The environment contract between the infra and the code it runs (issue 15), for every stack file.

Both sides are derived, never listed here:
- what the infra passes: the API container of each AWS stack's task definition (`environment` and `secrets`),
  the `api` service of each DigitalOcean App spec, and each Lambda function's `environment.variables`;
- what the code reads: every key the code's own settings readers look up, recorded by running them on a
  recording mapping (app/config.py's `Settings.from_env` and app/gunicorn_conf.py for the API; for a Lambda,
  the settings code its handler runs before its first AWS call, `LAMBDA_SETTINGS` below).

A name passed but never read is a half-used contract (the issue's UPLOADS_BUCKET / UPLOAD_MAX_BYTES that the API
ignored); a name required but not passed stops the code at start. The second shows up as the reader raising on
the infra's environment, with a message naming the variable. Keys an operator puts in `service.environment` of
a stack file are their own contract with their own image and are left out (listed in the stack file itself).
"""

from __future__ import annotations

import json
import os
import runpy
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

from infra.harness import PROJECT_ROOT, Resource, StackRun, run_stack
from tests.infra.conftest import ALERT_SECRETS

STACK_FILES = sorted([*PROJECT_ROOT.glob("Pulumi.*.yaml"), *(PROJECT_ROOT / "examples").glob("*/Pulumi.*.yaml")])
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
APP = "digitalocean:index/app:App"
FUNCTION = "aws:lambda/function:Function"
API_TASK = "api-api-task"
SECRET_STAND_IN = "https://stand-in-for-a-secret-value-0123456789@secret.example.invalid/1"
"""What a secret resolves to at run time is not in the program; this one string is a valid value for every
secret the API takes (>= 32 characters for the keys, DSN-shaped for SENTRY_DSN, any password or token)."""


class RecordingEnv(Mapping[str, str]):
    """A read-only environment that remembers every key looked up (`get`, `[]` and `in` all go through here)."""

    def __init__(self, values: Mapping[str, str]):
        self._values = dict(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


# ------------------------------------------------------------------------------------------------ the API
def api_reads(env: Mapping[str, str]) -> tuple[set[str], str | None]:
    """(keys the API container reads given `env`, the settings error it stops with or None)."""
    from app.config import ConfigError, Settings

    recording = RecordingEnv(env)
    error = None
    try:
        Settings.from_env(recording)
    except ConfigError as problem:
        error = str(problem)
    gunicorn = RecordingEnv(env)
    try:
        # gunicorn_conf reads os.environ at import: run it with the recording mapping in its place.
        with mock.patch.object(os, "environ", gunicorn):
            runpy.run_path(str(PROJECT_ROOT / "app" / "gunicorn_conf.py"))
    except SystemExit as problem:
        error = error or str(problem)
    return recording.read | gunicorn.read, error


def contract_problems(passed: Mapping[str, str], read: set[str], error: str | None, own: set[str]) -> list[str]:
    problems = [f"passed but never read: {name}" for name in sorted(set(passed) - read - own)]
    if error is not None:
        problems.append(f"refuses the environment it is given: {error}")
    return problems


@cache
def evaluated(path: Path) -> StackRun:
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    return run_stack(stack, config_file=path, secret_overrides=ALERT_SECRETS)


def operator_environment(path: Path) -> set[str]:
    document = yaml.safe_load(path.read_text()) or {}
    service = (document.get("config") or {}).get("shipyard:service") or {}
    return set(service.get("environment") or {})


def api_environment(run: StackRun) -> dict[str, str]:
    """Env var -> value the API gets at run time (secrets as SECRET_STAND_IN), from either cloud's resources."""
    if run.of_type(APP):
        (api,) = [s for s in run.one(APP).inputs["spec"]["services"] if s["name"] == "api"]
        return {
            env["key"]: env["value"] if env["type"] == "GENERAL" else _secret_value(env["key"], env.get("value"))
            for env in api.get("envs", [])
        }
    (container,) = json.loads(run.one(TASK_DEFINITION, API_TASK).inputs["containerDefinitions"])
    env = {item["name"]: item["value"] for item in container.get("environment", [])}
    return env | {item["name"]: SECRET_STAND_IN for item in container.get("secrets", [])}


def _secret_value(key: str, value: Any) -> str:
    # DATABASE_URL must stay a URL to be parsed; the mocks give the real (fake-host) URL for it.
    return value if key == "DATABASE_URL" and isinstance(value, str) else SECRET_STAND_IN


def _label(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


@pytest.mark.parametrize("path", STACK_FILES, ids=_label)
def test_api_reads_everything_the_infra_passes_and_gets_everything_it_requires(path: Path) -> None:
    passed = api_environment(evaluated(path))
    read, error = api_reads(passed)
    problems = contract_problems(passed, read, error, operator_environment(path))
    assert not problems, f"{_label(path)}, API container:\n  " + "\n  ".join(problems)


def test_the_api_check_fails_on_a_difference_either_way() -> None:
    """The comparison itself can fail: an unread extra variable, and a missing required one, are both named."""
    passed = {"DATABASE_URL": "postgresql://u:p@h/db", "SECRET_KEY": "k" * 40, "JWT_SECRET_KEY": "j" * 40}
    read, error = api_reads(passed | {"UPLOADS_BUCKETS": "typo"})
    assert contract_problems(passed | {"UPLOADS_BUCKETS": "typo"}, read, error, set()) == [
        "passed but never read: UPLOADS_BUCKETS"
    ]
    without_jwt = {k: v for k, v in passed.items() if k != "JWT_SECRET_KEY"}
    read, error = api_reads(without_jwt)
    (problem,) = contract_problems(without_jwt, read, error, set())
    assert "JWT_SECRET_KEY" in problem
    # The upload settings the issue found unused are read now.
    read, _ = api_reads(passed)
    assert {"UPLOADS_BUCKET", "UPLOAD_MAX_BYTES", "UPLOAD_ALLOWED_TYPES", "UPLOADS_PREFIX"} <= read


# ------------------------------------------------------------------------------------------------ Lambdas
class ReachedAws(Exception):
    """Raised by the stand-in AWS clients: the handler got past its settings to its first AWS call."""


def _no_aws(*_args: Any, **_kwargs: Any) -> Any:
    raise ReachedAws


def _auto_confirm(env: Mapping[str, str]) -> None:
    from lambdas.auto_confirm.handler import database_credentials
    from lambdas.shared import db, metrics

    metrics.stack_from_env(env)
    # An IAM token is signed locally (no AWS call); a secret would be fetched (the stand-in raises ReachedAws).
    database_credentials(env, db.DatabaseEndpoint.from_env(env), _Unreachable(), lambda host, port, user: "token")


def _alert_forwarder(env: Mapping[str, str]) -> None:
    from lambdas.alert_forwarder.handler import _Runtime

    _Runtime(env)  # type: ignore[arg-type]  # reads with get/[] only


def _health_check(env: Mapping[str, str]) -> None:
    from lambdas.health_check.config import load_settings

    load_settings(env)


def _restore_test_age(env: Mapping[str, str]) -> None:
    from lambdas.restore_test_age.handler import handle

    handle(env, backup=_Unreachable(), clock=_no_aws)


def _restore_validation(env: Mapping[str, str]) -> None:
    from lambdas.restore_validation.handler import handle

    handle({"validate_db_instance": "restored-db"}, env, client=_no_aws)
    raise AssertionError("the validator stopped before its first AWS call (see its settings)")


def _restore_probe(env: Mapping[str, str]) -> None:
    from lambdas.restore_validation.probe import Settings

    Settings.from_env(env)


class _Unreachable:
    def __getattr__(self, name: str) -> Callable[..., Any]:
        return _no_aws


LAMBDA_SETTINGS: dict[str, Callable[[Mapping[str, str]], None]] = {
    "lambdas.auto_confirm.handler": _auto_confirm,
    "lambdas.alert_forwarder.handler": _alert_forwarder,
    "lambdas.health_check.handler": _health_check,
    "lambdas.restore_test_age.handler": _restore_test_age,
    "lambdas.restore_validation.handler": _restore_validation,
    "lambdas.restore_validation.probe": _restore_probe,
}
"""Handler module -> the settings code that handler runs first, on the env it is given (entry points only: the
names read are recorded, not listed)."""


def lambda_reads(module: str, env: Mapping[str, str]) -> tuple[set[str], str | None]:
    recording = RecordingEnv(env)
    error = None
    try:
        LAMBDA_SETTINGS[module](recording)
    except ReachedAws:
        pass
    except Exception as problem:  # each handler has its own settings error type; all name the variable
        error = f"{type(problem).__name__}: {problem}"
    return recording.read, error


def _functions(run: StackRun) -> list[Resource]:
    return sorted(run.of_type(FUNCTION), key=lambda f: f.name)


@pytest.mark.parametrize("path", STACK_FILES, ids=_label)
def test_each_lambda_reads_everything_it_is_passed_and_gets_what_it_requires(path: Path) -> None:
    problems = []
    for function in _functions(evaluated(path)):
        module = function.inputs["handler"].rsplit(".", 1)[0]
        assert module in LAMBDA_SETTINGS, f"{function.name}: add the settings entry point of {module}"
        passed = dict((function.inputs.get("environment") or {}).get("variables") or {})
        read, error = lambda_reads(module, passed)
        problems += [f"{function.name} ({module}): {p}" for p in contract_problems(passed, read, error, set())]
    assert not problems, f"{_label(path)}:\n  " + "\n  ".join(problems)


def test_the_lambda_check_fails_on_a_difference_either_way() -> None:
    env = {"STACK": "staging", "PROBE_FUNCTION": "probe", "EXTRA": "x"}
    read, error = lambda_reads("lambdas.restore_validation.handler", env)
    assert contract_problems(env, read, error, set()) == ["passed but never read: EXTRA"]
    read, error = lambda_reads("lambdas.restore_validation.handler", {"STACK": "staging"})
    assert error is not None and "stopped before its first AWS call" in error

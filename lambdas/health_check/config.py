"""What to check, read from the environment and validated up front.

Every problem is reported with the exact place it sits (`TARGETS[2].timeout_s: must be > 0 (got -1)`),
and all problems are reported at once, so a broken stack config is fixed in one deploy, not five.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_EXPECTED_STATUS = 200
DEFAULT_CERT_WARN_DAYS = 14
DEFAULT_POSTGRES_PORT = 5432
DEFAULT_RUN_DEADLINE_S = 25.0
MAX_TIMEOUT_S = 300.0
MAX_RUN_DEADLINE_S = 900.0  # the Lambda maximum; anything above is a typo
# Each target gets its own thread and its own CloudWatch metrics: a bound keeps both predictable.
MAX_TARGETS = 50

# Names become the `Endpoint` metric dimension: short, printable, stable.
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """The configuration is unusable; `problems` lists every reason, each naming its field."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid health-check configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class JsonFieldAssertion:
    """The response body is JSON and the value at `path` (dotted; list indexes as numbers) equals `equals`."""

    path: str
    equals: Any

    @property
    def steps(self) -> list[str]:
        return self.path.split(".")


@dataclass(frozen=True)
class HttpTarget:
    name: str
    url: str
    scheme: Literal["http", "https"]
    host: str
    port: int
    request_path: str
    expected_status: int = DEFAULT_EXPECTED_STATUS
    body_contains: str | None = None
    json_field: JsonFieldAssertion | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    latency_budget_ms: float | None = None
    cert_warn_days: int = DEFAULT_CERT_WARN_DAYS
    ca_file: str | None = None

    kind: Literal["http"] = "http"

    @property
    def uses_tls(self) -> bool:
        return self.scheme == "https"

    @property
    def display(self) -> str:
        return self.url


@dataclass(frozen=True)
class PostgresTarget:
    """A database reached over TCP, always with TLS and full certificate verification (host name included)."""

    name: str
    host: str
    dbname: str
    port: int = DEFAULT_POSTGRES_PORT
    timeout_s: float = DEFAULT_TIMEOUT_S
    latency_budget_ms: float | None = None
    cert_warn_days: int = DEFAULT_CERT_WARN_DAYS
    ca_file: str | None = None

    kind: Literal["postgres"] = "postgres"

    @property
    def uses_tls(self) -> bool:
        return True

    @property
    def display(self) -> str:
        return f"postgres://{self.host}:{self.port}/{self.dbname}"


Target = HttpTarget | PostgresTarget


@dataclass(frozen=True)
class Settings:
    stack: str
    targets: tuple[Target, ...]
    run_deadline_s: float
    database_secret_arn: str | None
    database_iam_user: str | None = None
    """DATABASE_AUTH=iam + DATABASE_USER: log in to every postgres target as this role with an IAM token."""

    @property
    def needs_database_credentials(self) -> bool:
        return any(isinstance(t, PostgresTarget) for t in self.targets)


_COMMON_FIELDS = {"name", "kind", "timeout_s", "latency_budget_ms", "cert_warn_days", "ca_file"}
_HTTP_FIELDS = _COMMON_FIELDS | {"url", "expected_status", "body_contains", "json_field"}
_POSTGRES_FIELDS = _COMMON_FIELDS | {"host", "port", "dbname"}


def _is_number(value: object) -> bool:
    # bool is an int in Python, but `"timeout_s": true` is a mistake, not 1 second.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Collector:
    def __init__(self, base_dir: str | None = None) -> None:
        self.problems: list[str] = []
        self.base_dir = base_dir

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")


def _parse_common(item: Mapping[str, Any], where: str, out: _Collector) -> dict[str, Any]:
    common: dict[str, Any] = {}

    timeout_s = item.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not _is_number(timeout_s):
        out.add(f"{where}.timeout_s", f"must be a number of seconds (got {timeout_s!r})")
    elif timeout_s <= 0:
        out.add(f"{where}.timeout_s", f"must be > 0 (got {timeout_s!r})")
    elif timeout_s > MAX_TIMEOUT_S:
        out.add(f"{where}.timeout_s", f"must be <= {MAX_TIMEOUT_S:g} (got {timeout_s!r})")
    else:
        common["timeout_s"] = float(timeout_s)

    budget = item.get("latency_budget_ms")
    if budget is not None:
        if not _is_number(budget):
            out.add(f"{where}.latency_budget_ms", f"must be a number of milliseconds (got {budget!r})")
        elif budget <= 0:
            out.add(f"{where}.latency_budget_ms", f"must be > 0 (got {budget!r})")
        elif "timeout_s" in common and budget > common["timeout_s"] * 1000:
            # A budget above the timeout can never be the reason a check fails: surely not what was meant.
            out.add(
                f"{where}.latency_budget_ms",
                f"must not exceed timeout_s × 1000 = {common['timeout_s'] * 1000:g} (got {budget!r})",
            )
        else:
            common["latency_budget_ms"] = float(budget)

    warn_days = item.get("cert_warn_days", DEFAULT_CERT_WARN_DAYS)
    if not _is_int(warn_days) or not 0 <= warn_days <= 365:
        out.add(f"{where}.cert_warn_days", f"must be a whole number of days from 0 to 365 (got {warn_days!r})")
    else:
        common["cert_warn_days"] = warn_days

    ca_file = item.get("ca_file")
    if ca_file is not None:
        if not isinstance(ca_file, str) or not ca_file:
            out.add(f"{where}.ca_file", f"must be a path to a PEM bundle (got {ca_file!r})")
        else:
            # Relative to the code, not to wherever the process happens to run (in Lambda: /var/task).
            path = os.path.join(out.base_dir or os.getcwd(), ca_file)
            if os.path.isfile(path):
                common["ca_file"] = path
            else:
                out.add(f"{where}.ca_file", f"no such file: {path}")
    return common


def _parse_json_field(value: object, where: str, out: _Collector) -> JsonFieldAssertion | None:
    if not isinstance(value, dict):
        out.add(where, f'must be an object {{"path": "a.b", "equals": value}} (got {value!r})')
        return None
    unknown = sorted(set(value) - {"path", "equals"})
    if unknown:
        out.add(where, f"unknown field(s) {', '.join(unknown)}; expected path and equals")
    path = value.get("path")
    if not isinstance(path, str) or not path or any(not step for step in path.split(".")):
        out.add(f"{where}.path", f'must be a dotted path such as "checks.database" (got {path!r})')
        return None
    if "equals" not in value:
        out.add(f"{where}.equals", "is required (the JSON value the field must have)")
        return None
    return JsonFieldAssertion(path=path, equals=value["equals"])


def _parse_http(item: Mapping[str, Any], where: str, name: str, out: _Collector) -> HttpTarget | None:
    common = _parse_common(item, where, out)
    url = item.get("url")
    parts = None
    port: int | None = None
    if not isinstance(url, str) or not url:
        out.add(f"{where}.url", f"is required for kind http (got {url!r})")
    else:
        try:
            parts = urlsplit(url)
            port = parts.port  # raises ValueError on a port out of range
        except ValueError as error:
            out.add(f"{where}.url", f"is not a valid URL ({error})")
            parts = None
        else:
            if parts.scheme not in ("http", "https"):
                out.add(f"{where}.url", f"scheme must be http or https (got {parts.scheme!r})")
                parts = None
            elif not parts.hostname:
                out.add(f"{where}.url", "has no host name")
                parts = None
            elif parts.username is not None or parts.password is not None:
                # It would be written to every log line and metric.
                out.add(f"{where}.url", "must not contain credentials")
                parts = None

    expected_status = item.get("expected_status", DEFAULT_EXPECTED_STATUS)
    if not _is_int(expected_status) or not 100 <= expected_status <= 599:
        out.add(f"{where}.expected_status", f"must be an HTTP status code 100-599 (got {expected_status!r})")

    body_contains = item.get("body_contains")
    if body_contains is not None and (not isinstance(body_contains, str) or not body_contains):
        out.add(f"{where}.body_contains", f"must be a non-empty string (got {body_contains!r})")

    json_field = None
    if item.get("json_field") is not None:
        json_field = _parse_json_field(item["json_field"], f"{where}.json_field", out)

    if parts is not None and parts.scheme == "http" and "ca_file" in item:
        out.add(f"{where}.ca_file", "applies only to https URLs")

    if parts is None or out.problems:
        return None
    assert isinstance(url, str)
    assert parts.hostname is not None
    request_path = parts.path or "/"
    if parts.query:
        request_path += "?" + parts.query
    scheme: Literal["http", "https"] = "https" if parts.scheme == "https" else "http"
    return HttpTarget(
        name=name,
        url=url,
        scheme=scheme,
        host=parts.hostname,
        port=port or (443 if scheme == "https" else 80),
        request_path=request_path,
        expected_status=expected_status,
        body_contains=body_contains,
        json_field=json_field,
        **common,
    )


def _parse_postgres(item: Mapping[str, Any], where: str, name: str, out: _Collector) -> PostgresTarget | None:
    common = _parse_common(item, where, out)
    host = item.get("host")
    if not isinstance(host, str) or not host:
        out.add(f"{where}.host", f"is required for kind postgres (got {host!r})")
    port = item.get("port", DEFAULT_POSTGRES_PORT)
    if not _is_int(port) or not 1 <= port <= 65535:
        out.add(f"{where}.port", f"must be a TCP port 1-65535 (got {port!r})")
    dbname = item.get("dbname")
    if not isinstance(dbname, str) or not dbname:
        out.add(f"{where}.dbname", f"is required for kind postgres (got {dbname!r})")
    if out.problems:
        return None
    assert isinstance(host, str)
    assert isinstance(dbname, str)
    return PostgresTarget(name=name, host=host, port=port, dbname=dbname, **common)


def parse_targets(raw: str | object, where: str = "TARGETS", base_dir: str | None = None) -> tuple[Target, ...]:
    """Validate a JSON text (or already-decoded list) of targets; raise ConfigError naming every bad field.

    Relative `ca_file` paths resolve against `base_dir` (default: the working directory).
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ConfigError([f"{where}: not valid JSON ({error})"]) from None
    if not isinstance(raw, list) or not raw:
        raise ConfigError([f"{where}: must be a non-empty JSON list of targets (got {type(raw).__name__})"])
    if len(raw) > MAX_TARGETS:
        raise ConfigError([f"{where}: at most {MAX_TARGETS} targets (got {len(raw)})"])

    problems: list[str] = []
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        out = _Collector(base_dir)
        if not isinstance(item, dict):
            problems.append(f"{at}: must be an object (got {type(item).__name__})")
            continue
        name = item.get("name")
        if not isinstance(name, str) or not _NAME_PATTERN.match(name):
            out.add(f"{at}.name", f"must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter/digit (got {name!r})")
            name = None
        elif name in seen:
            out.add(f"{at}.name", f"duplicate of {where}[{seen[name]}].name ({name!r})")
        else:
            seen[name] = index

        kind = item.get("kind")
        target: Target | None = None
        if kind == "http":
            unknown = sorted(set(item) - _HTTP_FIELDS)
            target = _parse_http(item, at, name or "", out)
        elif kind == "postgres":
            unknown = sorted(set(item) - _POSTGRES_FIELDS)
            target = _parse_postgres(item, at, name or "", out)
        else:
            unknown = []
            out.add(f"{at}.kind", f"must be 'http' or 'postgres' (got {kind!r})")
        for field in unknown:
            out.add(f"{at}.{field}", f"unknown field for kind {kind}")
        if out.problems or target is None:
            problems.extend(out.problems)
        else:
            targets.append(target)
    if problems:
        raise ConfigError(problems)
    return tuple(targets)


def parse_deadline(raw: str | None, where: str = "RUN_DEADLINE_S") -> float:
    if raw is None or raw == "":
        return DEFAULT_RUN_DEADLINE_S
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError([f"{where}: must be a number of seconds (got {raw!r})"]) from None
    if not math.isfinite(value) or value <= 0 or value > MAX_RUN_DEADLINE_S:
        raise ConfigError([f"{where}: must be > 0 and <= {MAX_RUN_DEADLINE_S:g} (got {raw!r})"])
    return value


def load_settings(env: Mapping[str, str], *, default_stack: str | None = None) -> Settings:
    """Read STACK, TARGETS, RUN_DEADLINE_S and DATABASE_AUTH/USER or DATABASE_SECRET_ARN; report every problem.

    Relative `ca_file` paths resolve against LAMBDA_TASK_ROOT (where Lambda unpacks the code) when set.
    """
    problems: list[str] = []
    stack = env.get("STACK") or default_stack
    if not stack:
        problems.append("STACK: not set (the stack name is the `Stack` metric dimension)")
    elif not _NAME_PATTERN.match(stack):
        problems.append(f"STACK: must be 1-64 of A-Z a-z 0-9 . _ - (got {stack!r})")

    targets: tuple[Target, ...] = ()
    raw_targets = env.get("TARGETS")
    if not raw_targets:
        problems.append("TARGETS: not set (a JSON list of targets)")
    else:
        try:
            targets = parse_targets(raw_targets, base_dir=env.get("LAMBDA_TASK_ROOT"))
        except ConfigError as error:
            problems.extend(error.problems)

    deadline = DEFAULT_RUN_DEADLINE_S
    try:
        deadline = parse_deadline(env.get("RUN_DEADLINE_S"))
    except ConfigError as error:
        problems.extend(error.problems)

    secret_arn = env.get("DATABASE_SECRET_ARN") or None
    iam_user = _iam_user(env, problems)
    postgres_at = [i for i, t in enumerate(targets) if isinstance(t, PostgresTarget)]
    if postgres_at and secret_arn is None and iam_user is None:
        problems.append(
            f"DATABASE_AUTH=iam with DATABASE_USER (or DATABASE_SECRET_ARN): required because "
            f"TARGETS[{postgres_at[0]}] is a postgres target"
        )
    elif secret_arn is not None and not secret_arn.startswith("arn:"):
        # Only the ARN belongs in the environment, never the secret itself.
        problems.append("DATABASE_SECRET_ARN: must be a Secrets Manager ARN (arn:aws:secretsmanager:...)")

    if problems:
        raise ConfigError(problems)
    assert stack is not None
    return Settings(
        stack=stack,
        targets=targets,
        run_deadline_s=deadline,
        database_secret_arn=secret_arn,
        database_iam_user=iam_user,
    )


def _iam_user(env: Mapping[str, str], problems: list[str]) -> str | None:
    auth = env.get("DATABASE_AUTH") or "secret"
    if auth not in ("iam", "secret"):
        problems.append(f"DATABASE_AUTH: must be iam or secret (got {auth!r})")
        return None
    if auth == "secret":
        return None
    user = env.get("DATABASE_USER") or ""
    if not _NAME_PATTERN.match(user):
        problems.append(f"DATABASE_USER: the database role to log in as with DATABASE_AUTH=iam (got {user!r})")
        return None
    return user

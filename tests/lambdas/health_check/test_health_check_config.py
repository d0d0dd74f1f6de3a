"""TARGETS and the rest of the environment: defaults, and a message naming the field for each mistake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambdas.health_check.config import (
    DEFAULT_RUN_DEADLINE_S,
    ConfigError,
    HttpTarget,
    JsonFieldAssertion,
    PostgresTarget,
    load_settings,
    parse_targets,
)

GOOD_HTTP = {"name": "api", "kind": "http", "url": "https://shop.example.com/api/health?deep=1"}
GOOD_PG = {"name": "db", "kind": "postgres", "host": "db.internal", "dbname": "shop"}
ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1234"


def problems_for(targets: Any) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_targets(targets)
    return caught.value.problems


def test_defaults_fill_in_what_is_left_out() -> None:
    http, pg = parse_targets(json.dumps([GOOD_HTTP, GOOD_PG]))

    assert http == HttpTarget(
        name="api",
        url=GOOD_HTTP["url"],
        scheme="https",
        host="shop.example.com",
        port=443,
        request_path="/api/health?deep=1",
        expected_status=200,
        timeout_s=5.0,
        latency_budget_ms=None,
        cert_warn_days=14,
    )
    assert pg == PostgresTarget(name="db", host="db.internal", dbname="shop", port=5432, timeout_s=5.0)


def test_every_field_is_read(tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    (target,) = parse_targets(
        [
            {
                "name": "ready",
                "kind": "http",
                "url": "https://10.0.0.5:8443/api/health/ready",
                "expected_status": 204,
                "body_contains": "ok",
                "json_field": {"path": "checks.db", "equals": True},
                "timeout_s": 3,
                "latency_budget_ms": 800,
                "cert_warn_days": 30,
                "ca_file": str(bundle),
            }
        ]
    )

    assert isinstance(target, HttpTarget)
    assert (target.scheme, target.host, target.port, target.request_path) == (
        "https",
        "10.0.0.5",
        8443,
        "/api/health/ready",
    )
    assert (target.expected_status, target.body_contains, target.timeout_s, target.latency_budget_ms) == (
        204,
        "ok",
        3.0,
        800.0,
    )
    assert target.json_field == JsonFieldAssertion(path="checks.db", equals=True)
    assert (target.cert_warn_days, target.ca_file) == (30, str(bundle))


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"timeout_s": -1}, "TARGETS[2].timeout_s: must be > 0 (got -1)"),
        ({"timeout_s": 0}, "TARGETS[2].timeout_s: must be > 0 (got 0)"),
        ({"timeout_s": "5"}, "TARGETS[2].timeout_s: must be a number of seconds (got '5')"),
        ({"timeout_s": True}, "TARGETS[2].timeout_s: must be a number of seconds (got True)"),
        ({"timeout_s": 301}, "TARGETS[2].timeout_s: must be <= 300 (got 301)"),
        ({"latency_budget_ms": 0}, "TARGETS[2].latency_budget_ms: must be > 0 (got 0)"),
        (
            {"timeout_s": 2, "latency_budget_ms": 2500},
            "TARGETS[2].latency_budget_ms: must not exceed timeout_s × 1000 = 2000 (got 2500)",
        ),
        (
            {"cert_warn_days": 14.5},
            "TARGETS[2].cert_warn_days: must be a whole number of days from 0 to 365 (got 14.5)",
        ),
        ({"expected_status": 99}, "TARGETS[2].expected_status: must be an HTTP status code 100-599 (got 99)"),
        (
            {"expected_status": "200"},
            "TARGETS[2].expected_status: must be an HTTP status code 100-599 (got '200')",
        ),
        ({"body_contains": ""}, "TARGETS[2].body_contains: must be a non-empty string (got '')"),
        ({"url": "ftp://x/"}, "TARGETS[2].url: scheme must be http or https (got 'ftp')"),
        ({"url": "https:///nohost"}, "TARGETS[2].url: has no host name"),
        ({"url": "https://x:99999/"}, "TARGETS[2].url: is not a valid URL (Port out of range 0-65535)"),
        ({"url": "https://user:pw@x/"}, "TARGETS[2].url: must not contain credentials"),
        ({"url": None}, "TARGETS[2].url: is required for kind http (got None)"),
        (
            {"json_field": {"path": "a"}},
            "TARGETS[2].json_field.equals: is required (the JSON value the field must have)",
        ),
        (
            {"json_field": {"path": "a..b", "equals": 1}},
            "TARGETS[2].json_field.path: must be a dotted path such as \"checks.database\" (got 'a..b')",
        ),
        (
            {"json_field": "status=ok"},
            'TARGETS[2].json_field: must be an object {"path": "a.b", "equals": value} (got \'status=ok\')',
        ),
        ({"ca_file": "/nonexistent/bundle.pem"}, "TARGETS[2].ca_file: no such file: /nonexistent/bundle.pem"),
        ({"url": "http://x/", "ca_file": __file__}, "TARGETS[2].ca_file: applies only to https URLs"),
        ({"expected_satus": 200}, "TARGETS[2].expected_satus: unknown field for kind http"),
        ({"host": "db"}, "TARGETS[2].host: unknown field for kind http"),
        (
            {"name": "has space"},
            "TARGETS[2].name: must be 1-64 of A-Z a-z 0-9 . _ - starting with a letter/digit (got 'has space')",
        ),
        ({"name": "api"}, "TARGETS[2].name: duplicate of TARGETS[0].name ('api')"),
        ({"kind": "tcp"}, "TARGETS[2].kind: must be 'http' or 'postgres' (got 'tcp')"),
    ],
)
def test_each_mistake_is_named_with_its_place(change: dict[str, Any], problem: str) -> None:
    third = {"name": "third", "kind": "http", "url": "https://x.example/", **change}

    assert problems_for([GOOD_HTTP, GOOD_PG, third]) == [problem]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"port": 0}, "TARGETS[0].port: must be a TCP port 1-65535 (got 0)"),
        ({"dbname": ""}, "TARGETS[0].dbname: is required for kind postgres (got '')"),
        ({"host": None}, "TARGETS[0].host: is required for kind postgres (got None)"),
        ({"url": "https://x/"}, "TARGETS[0].url: unknown field for kind postgres"),
    ],
)
def test_postgres_mistakes_are_named(change: dict[str, Any], problem: str) -> None:
    assert problems_for([{**GOOD_PG, **change}]) == [problem]


def test_all_mistakes_are_reported_at_once() -> None:
    problems = problems_for(
        [{"name": "a", "kind": "http", "url": "https://a/", "timeout_s": -1, "cert_warn_days": -2}, "oops"]
    )

    assert problems == [
        "TARGETS[0].timeout_s: must be > 0 (got -1)",
        "TARGETS[0].cert_warn_days: must be a whole number of days from 0 to 365 (got -2)",
        "TARGETS[1]: must be an object (got str)",
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("[", "TARGETS: not valid JSON (Expecting value: line 1 column 2 (char 1))"),
        ("[]", "TARGETS: must be a non-empty JSON list of targets (got list)"),
        ('{"name": "api"}', "TARGETS: must be a non-empty JSON list of targets (got dict)"),
        (
            json.dumps([{**GOOD_HTTP, "name": f"t{i}"} for i in range(51)]),
            "TARGETS: at most 50 targets (got 51)",
        ),
    ],
)
def test_the_list_itself_is_checked(raw: str, problem: str) -> None:
    assert problems_for(raw) == [problem]


def test_settings_from_the_environment() -> None:
    settings = load_settings(
        {
            "STACK": "prod",
            "TARGETS": json.dumps([GOOD_HTTP, GOOD_PG]),
            "RUN_DEADLINE_S": "12.5",
            "DATABASE_SECRET_ARN": ARN,
        }
    )

    assert (settings.stack, settings.run_deadline_s, settings.database_secret_arn) == ("prod", 12.5, ARN)
    assert [t.name for t in settings.targets] == ["api", "db"]
    assert settings.needs_database_credentials


def test_relative_ca_file_resolves_against_the_lambda_task_root(tmp_path: Path) -> None:
    bundle_dir = tmp_path / "lambdas" / "health_check"
    bundle_dir.mkdir(parents=True)
    (bundle_dir / "rds-global-bundle.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    target = {**GOOD_PG, "ca_file": "lambdas/health_check/rds-global-bundle.pem"}
    env = {"STACK": "prod", "TARGETS": json.dumps([target]), "DATABASE_SECRET_ARN": ARN}

    settings = load_settings({**env, "LAMBDA_TASK_ROOT": str(tmp_path)})

    assert settings.targets[0].ca_file == str(bundle_dir / "rds-global-bundle.pem")
    with pytest.raises(ConfigError) as caught:
        load_settings({**env, "LAMBDA_TASK_ROOT": str(tmp_path / "elsewhere")})
    assert caught.value.problems == [
        f"TARGETS[0].ca_file: no such file: {tmp_path / 'elsewhere' / 'lambdas/health_check/rds-global-bundle.pem'}"
    ]


def test_deadline_defaults_and_secret_is_optional_without_a_database() -> None:
    settings = load_settings({"STACK": "staging", "TARGETS": json.dumps([GOOD_HTTP])})

    assert settings.run_deadline_s == DEFAULT_RUN_DEADLINE_S
    assert settings.database_secret_arn is None
    assert not settings.needs_database_credentials


def test_environment_problems_are_all_reported() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"TARGETS": json.dumps([GOOD_HTTP, GOOD_PG]), "RUN_DEADLINE_S": "soon"})

    assert caught.value.problems == [
        "STACK: not set (the stack name is the `Stack` metric dimension)",
        "RUN_DEADLINE_S: must be a number of seconds (got 'soon')",
        "DATABASE_AUTH=iam with DATABASE_USER (or DATABASE_SECRET_ARN): required because "
        "TARGETS[1] is a postgres target",
    ]
    assert str(caught.value).startswith("invalid health-check configuration:\n  STACK: not set")


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        ({"STACK": "prod"}, "TARGETS: not set (a JSON list of targets)"),
        (
            {"STACK": "prod", "TARGETS": json.dumps([GOOD_HTTP]), "RUN_DEADLINE_S": "0"},
            "RUN_DEADLINE_S: must be > 0 and <= 900 (got '0')",
        ),
        (
            {"STACK": "prod", "TARGETS": json.dumps([GOOD_HTTP]), "RUN_DEADLINE_S": "nan"},
            "RUN_DEADLINE_S: must be > 0 and <= 900 (got 'nan')",
        ),
        (
            {
                "STACK": "prod",
                "TARGETS": json.dumps([GOOD_PG]),
                "DATABASE_SECRET_ARN": '{"password": "hunter2"}',
            },
            "DATABASE_SECRET_ARN: must be a Secrets Manager ARN (arn:aws:secretsmanager:...)",
        ),
    ],
)
def test_environment_mistakes(env: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)

    assert caught.value.problems == [problem]
    assert "hunter2" not in str(caught.value)  # a secret pasted by mistake is not echoed back


def test_iam_auth_settings() -> None:
    base = {"STACK": "staging", "TARGETS": json.dumps([GOOD_PG])}
    settings = load_settings(base | {"DATABASE_AUTH": "iam", "DATABASE_USER": "health_check"})
    assert (settings.database_iam_user, settings.database_secret_arn) == ("health_check", None)

    with pytest.raises(ConfigError) as caught:
        load_settings(base | {"DATABASE_AUTH": "iam"})
    assert caught.value.problems[0] == ("DATABASE_USER: the database role to log in as with DATABASE_AUTH=iam (got '')")
    with pytest.raises(ConfigError) as caught:
        load_settings(base | {"DATABASE_AUTH": "kerberos"})
    assert caught.value.problems[0] == "DATABASE_AUTH: must be iam or secret (got 'kerberos')"

"""App secrets: generated or taken from secret config, stored as one JSON secret, referenced by ARN only."""

from __future__ import annotations

import json
from pathlib import Path

from infra.harness import StackRun
from tests.infra.component_program import run_program
from tests.infra.conftest import ALERT_SECRETS, evaluate

SECRET = "aws:secretsmanager/secret:Secret"
VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
PASSWORD = "random:index/randomPassword:RandomPassword"


def _stored(run: StackRun) -> dict[str, str]:
    version = run.one(VERSION, "app-secrets-value")
    # The value reaches the engine only as a secret: encrypted in state, masked in previews.
    assert "secretString" in version.secret_inputs
    stored: dict[str, str] = json.loads(version.inputs["secretString"])
    return stored


def test_keys_are_generated_when_not_configured(any_stack: StackRun) -> None:
    stored = _stored(any_stack)
    assert sorted(stored) == ["JWT_SECRET_KEY", "SECRET_KEY"]  # no Sentry DSN configured
    passwords = {p.name: p for p in any_stack.of_type(PASSWORD)}
    assert sorted(passwords) == ["app-secrets-appSecretKey", "app-secrets-jwtSecretKey"]
    for name, env_name in (("app-secrets-appSecretKey", "SECRET_KEY"), ("app-secrets-jwtSecretKey", "JWT_SECRET_KEY")):
        password = passwords[name]
        assert password.inputs["length"] == 64 and password.inputs["special"] is False
        assert stored[env_name] == password.outputs["result"]
        assert any_stack.component_of(password) == any_stack.one("shipyard:aws:AppSecrets")
    assert stored["SECRET_KEY"] != stored["JWT_SECRET_KEY"]


def test_configured_secrets_are_used_and_sentry_added() -> None:
    given = {
        "shipyard:appSecretKey": "configured-flask-secret-key-value",
        "shipyard:jwtSecretKey": "configured-jwt-secret-key-value",
        "shipyard:sentryDsn": "https://abc@o1.ingest.sentry.io/2",
    }
    run = evaluate("staging", secret_overrides={**ALERT_SECRETS, **given})
    assert _stored(run) == {
        "SECRET_KEY": given["shipyard:appSecretKey"],
        "JWT_SECRET_KEY": given["shipyard:jwtSecretKey"],
        "SENTRY_DSN": given["shipyard:sentryDsn"],
    }
    assert run.of_type(PASSWORD) == []
    # No configured value appears in any resource input outside a secret.
    for resource in run.resources:
        plain = json.dumps({k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs}, default=str)
        for value in given.values():
            assert value not in plain, f"{resource.name} carries a secret in plain inputs"


def test_secret_value_never_in_plain_inputs(any_stack: StackRun) -> None:
    stored = _stored(any_stack)
    for resource in any_stack.resources:
        if resource.type == PASSWORD:
            continue
        plain = json.dumps({k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs}, default=str)
        for value in stored.values():
            assert value not in plain, f"{resource.name} carries a secret in plain inputs"


def test_secret_is_named_and_recoverable(any_stack: StackRun) -> None:
    secret = any_stack.one(SECRET, "app-secrets-secret")
    # Autonamed: a destroyed stack's secret keeps its name for the recovery window, which must not block a
    # re-create. Prod keeps the maximum window; staging the minimum non-zero one.
    assert "name" not in secret.inputs
    assert secret.inputs["namePrefix"] == f"shipyard-{any_stack.stack}-app-"
    assert secret.inputs["recoveryWindowInDays"] == (30 if any_stack.stack == "prod" else 7)
    assert any_stack.outputs["appSecretArn"] == secret.outputs["arn"]


def test_prod_uses_a_rotating_customer_key_staging_the_aws_managed_one(staging: StackRun, prod: StackRun) -> None:
    assert "kmsKeyId" not in staging.one(SECRET, "app-secrets-secret").inputs
    key = prod.one("aws:kms/key:Key", "app-secrets-key")
    assert key.inputs["enableKeyRotation"] is True
    assert prod.one(SECRET, "app-secrets-secret").inputs["kmsKeyId"] == key.outputs["arn"]
    statements = json.loads(key.inputs["policy"])["Statement"]
    decrypt = statements[1]
    assert decrypt["Action"] == ["kms:Decrypt", "kms:DescribeKey"]
    assert decrypt["Condition"]["StringEquals"] == {
        "kms:CallerAccount": "123456789012",
        "kms:ViaService": ["secretsmanager.us-east-1.amazonaws.com"],
    }


def test_env_secrets_are_ecs_value_from_references(tmp_path: Path) -> None:
    """`env_secrets` is what the API's task definition puts under `secrets`: ARN + JSON key, no values."""
    run = run_program(
        tmp_path,
        "staging",
        """
        from infra.aws.secrets import AppSecrets, AppSecretsArgs
        app = AppSecrets("app-secrets", AppSecretsArgs(config=config), naming, with_provider)
        pulumi.export("arn", app.secret_arn)
        pulumi.export("env", app.env_secrets)
        """,
    )
    arn = run.outputs["arn"]
    assert arn.startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:shipyard-staging-app-")
    assert run.outputs["env"] == {"JWT_SECRET_KEY": f"{arn}:JWT_SECRET_KEY::", "SECRET_KEY": f"{arn}:SECRET_KEY::"}
    assert "env" not in run.secret_outputs

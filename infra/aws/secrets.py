"""App secrets: one Secrets Manager secret (JSON) with the API's signing keys and optional Sentry DSN.

Values come from secret config when set (`pulumi config set --secret shipyard:appSecretKey ...`) and are
otherwise generated once by pulumi-random and kept in state (encrypted by the state backend), so a stack is
usable without anyone inventing keys, and keys stay stable across deploys.

The API service never sees values at deploy time: it maps `env_secrets` (env var -> ECS `valueFrom`) into
its task definition's `secrets`, and ECS fetches them when a task starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.aws.kms import customer_key
from infra.component import Component
from infra.config import AwsStack
from infra.naming import Naming

GENERATED_KEY_LENGTH = 64
"""Characters of a generated key: 64 alphanumerics ~ 380 bits, beyond any HMAC-SHA256 need."""
PROD_RECOVERY_WINDOW_DAYS = 30
"""Prod: a deleted secret can be restored for this long (the maximum)."""
STAGING_RECOVERY_WINDOW_DAYS = 7
"""Staging: the minimum non-zero window. A window never blocks a re-create here, because every secret is
autonamed from a prefix (a deleted secret keeps its *name* for the window:
https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html), so staging need not
force-delete (window 0), which would make a stray destroy unrecoverable."""


def recovery_window_days(tier: str) -> int:
    """How long a deleted secret of this tier can be restored."""
    return PROD_RECOVERY_WINDOW_DAYS if tier == "prod" else STAGING_RECOVERY_WINDOW_DAYS


# env var name in the container -> secret config key it is taken from (generated when unset).
GENERATED: dict[str, str] = {"SECRET_KEY": "appSecretKey", "JWT_SECRET_KEY": "jwtSecretKey"}
# env var name -> secret config key; included only when set.
OPTIONAL: dict[str, str] = {"SENTRY_DSN": "sentryDsn"}


@dataclass(frozen=True)
class AppSecretsArgs:
    config: AwsStack
    """The whole stack config: `secret(key)` gives the secret config values; `tier` picks the KMS key."""


def value_from(secret_arn: pulumi.Input[str], json_key: str) -> pulumi.Output[str]:
    """ECS `valueFrom` for one JSON key of a secret: `<arn>:<json-key>:<version-stage>:<version-id>`."""
    return pulumi.Output.concat(secret_arn, ":", json_key, "::")


class AppSecrets(Component):
    secret: aws.secretsmanager.Secret
    secret_arn: pulumi.Output[str]
    env_secrets: dict[str, pulumi.Output[str]]
    kms_key_arn: pulumi.Output[str] | None

    def __init__(self, name: str, args: AppSecretsArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "AppSecrets", name, naming, opts)
        config = args.config

        values: dict[str, pulumi.Output[str]] = {}
        for env_name, config_key in GENERATED.items():
            given = config.secret(config_key)
            if given is not None:
                values[env_name] = pulumi.Output.secret(given)
            else:
                values[env_name] = random.RandomPassword(
                    self.child_name(config_key),
                    length=GENERATED_KEY_LENGTH,
                    # Alphanumerics only: the value travels through env vars and shells unquoted.
                    special=False,
                    opts=self.opts(),
                ).result
        for env_name, config_key in OPTIONAL.items():
            given = config.secret(config_key)
            if given is not None:
                values[env_name] = pulumi.Output.secret(given)

        # Staging: the AWS-managed aws/secretsmanager key (free, nothing to manage). Prod: a customer key
        # with rotation, whose policy still lets account principals decrypt through Secrets Manager only,
        # so readers need just secretsmanager:GetSecretValue (see kms.py).
        self.kms_key_arn = None
        kms_key_id: pulumi.Output[str] | None = None
        if config.tier == "prod":
            key = customer_key(
                self,
                "key",
                description=f"{naming.physical('app')}: application secrets",
                alias=naming.physical("app-secrets"),
            )
            self.kms_key_arn = key.arn
            kms_key_id = key.arn

        self.secret = aws.secretsmanager.Secret(
            self.child_name("secret"),
            # A prefix, not a fixed name: a destroyed stack's secret keeps its name for the recovery window,
            # which would block re-creating the stack that long.
            name_prefix=naming.name_prefix("app"),
            description="API settings injected into the task through ECS secrets: " + ", ".join(sorted(values)),
            kms_key_id=kms_key_id,
            recovery_window_in_days=recovery_window_days(config.tier),
            opts=self.opts(),
        )
        aws.secretsmanager.SecretVersion(
            self.child_name("value"),
            secret_id=self.secret.id,
            # Every value is a secret Output (generated, or Output.secret above), so the JSON is secret too.
            secret_string=pulumi.Output.json_dumps(values),
            opts=self.opts(),
        )
        self.secret_arn = self.secret.arn
        self.env_secrets = {env_name: value_from(self.secret.arn, env_name) for env_name in sorted(values)}
        self.register_outputs({"secretArn": self.secret_arn})

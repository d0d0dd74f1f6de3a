"""Lambda entry point ``lambdas.restore_validation.probe.handler``: the in-VPC half of the restore validator.

The validator is two functions so that neither needs a NAT gateway or interface endpoints:

- ``handler.py`` (outside the VPC) takes the restore-job event, asks RDS where the restored copy is, invokes
  this function synchronously, and reports the verdict to AWS Backup and CloudWatch;
- this function (in the VPC, behind a security group that reaches only restore-test copies) logs in to the
  copy and runs :func:`lambdas.restore_validation.core.validate`. It calls no AWS API: the IAM auth token is
  signed locally with the function's own credentials, so the isolated subnets' lack of a route out is fine.

Request (from the validator): ``{"identifier": str, "address": str, "port": int, "iam_auth": bool}``.
Response: :meth:`core.ValidationResult.summary`. Every problem on the way (a setting of this function,
IAM auth off on the copy, no connection) is a failed result with its reason; only a request that is not
one raises (:class:`core.EventError`, naming the field).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdas.restore_validation import core

CONNECT_TIMEOUT_S = 5.0
STATEMENT_TIMEOUT_MS = 20_000
"""Every check is a catalogue lookup or a bounded aggregate; 20 s means the restored copy is unwell."""

ClientFactory = Callable[[str], Any]
Connect = Callable[..., Any]

_clients: dict[str, Any] = {}


def aws_client(service: str) -> Any:
    """A boto3 client per service, built once per container (building one makes no network call)."""
    if service not in _clients:
        import boto3
        from botocore.config import Config

        config = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})
        _clients[service] = boto3.client(service, config=config)
    return _clients[service]


class SettingsError(ValueError):
    """An environment variable of this function is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Settings:
    db_name: str
    db_user: str
    secret_arn: str | None = None
    ca_file: str | None = None
    expectations: core.Expectations = field(default_factory=core.Expectations)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        missing = [name for name in ("DB_NAME", "DB_USER") if not env.get(name, "").strip()]
        secret_arn = env.get("DB_SECRET_ARN", "").strip() or None
        if secret_arn:
            missing = [name for name in missing if name != "DB_USER"]  # the secret names its user
        if missing:
            raise SettingsError(f"missing environment variable(s): {', '.join(missing)}")
        if secret_arn and not secret_arn.startswith("arn:"):
            raise SettingsError(f"DB_SECRET_ARN must be a Secrets Manager ARN, got {secret_arn[:40]!r}")
        try:
            expectations = core.Expectations.from_json(env.get("MIN_ROWS_JSON"))
        except core.ExpectationsError as error:
            raise SettingsError(str(error)) from None
        return cls(
            db_name=env["DB_NAME"].strip(),
            db_user=env.get("DB_USER", "").strip(),
            secret_arn=secret_arn,
            ca_file=env.get("DB_CA_FILE", "").strip() or None,
            expectations=expectations,
        )


@dataclass(frozen=True)
class Target:
    """The restored instance, as the validator found it with rds:DescribeDBInstances."""

    identifier: str
    address: str
    port: int
    iam_auth: bool

    @classmethod
    def from_request(cls, request: Any) -> Target:
        if not isinstance(request, Mapping):
            raise core.EventError(f"probe request must be a JSON object, got {type(request).__name__}")
        unknown = sorted(set(request) - {"identifier", "address", "port", "iam_auth"})
        if unknown:
            raise core.EventError(f"unknown probe request field(s) {unknown}")
        identifier, address, port, iam_auth = (request.get(k) for k in ("identifier", "address", "port", "iam_auth"))
        if not isinstance(identifier, str) or not re.fullmatch(core.DB_INSTANCE_IDENTIFIER, identifier):
            raise core.EventError(
                f"probe request field identifier must be a DB instance identifier, got {identifier!r}"
            )
        if not isinstance(address, str) or not re.fullmatch(r"[a-zA-Z0-9.-]{1,253}", address):
            raise core.EventError(f"probe request field address must be a host name, got {address!r}")
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise core.EventError(f"probe request field port must be a TCP port, got {port!r}")
        if not isinstance(iam_auth, bool):
            raise core.EventError(f"probe request field iam_auth must be true or false, got {iam_auth!r}")
        return cls(identifier=identifier, address=address, port=port, iam_auth=iam_auth)

    def request(self) -> dict[str, Any]:
        return {"identifier": self.identifier, "address": self.address, "port": self.port, "iam_auth": self.iam_auth}


def handler(event: Any, context: Any) -> dict[str, Any]:
    return probe(event, os.environ)


def probe(
    request: Any, env: Mapping[str, str], *, client: ClientFactory = aws_client, connect: Connect | None = None
) -> dict[str, Any]:
    """Validate the restored copy ``request`` names; the result's summary (failed results included)."""
    target = Target.from_request(request)
    return validate_target(target, env, client=client, connect=connect).summary()


def validate_target(
    target: Target, env: Mapping[str, str], *, client: ClientFactory, connect: Connect | None = None
) -> core.ValidationResult:
    """Authenticate, connect, validate. ``connect`` is ``lambdas.shared.db.connect`` unless a caller passes another."""
    from lambdas.shared import db

    started = time.monotonic()

    try:
        settings = Settings.from_env(env)
    except SettingsError as error:
        return core.ValidationResult.stopped("settings", f"validator probe misconfigured: {error}", started=started)
    try:
        if settings.secret_arn:
            credentials = db.fetch_credentials(settings.secret_arn, client("secretsmanager"))
        else:
            if not target.iam_auth:
                return core.ValidationResult.stopped(
                    "iam_auth",
                    f"IAM database authentication is off on restored instance {target.identifier}: set the "
                    "restore testing selection's override enableIamDatabaseAuthentication=true, or DB_SECRET_ARN",
                    started=started,
                )
            credentials = iam_credentials(client("rds"), target, settings.db_user)
    except (db.DatabaseUnavailable, db.DatabaseConfigError) as error:
        return core.ValidationResult.stopped("credentials", str(error), started=started)

    endpoint = db.DatabaseEndpoint(target.address, target.port, settings.db_name, settings.ca_file)
    open_connection = connect or db.connect

    def connect_to_restored() -> Any:
        return open_connection(
            endpoint,
            credentials,
            tls=True,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            statement_timeout_ms=STATEMENT_TIMEOUT_MS,
            application_name="shipyard-restore-validation",
        )

    result = core.validate_database(connect_to_restored, settings.expectations)
    result.duration_s = time.monotonic() - started
    return result


def iam_credentials(rds: Any, target: Target, user: str) -> Any:
    """A 15-minute IAM auth token as the password (signed locally by the SDK; no API call, no stored secret)."""
    from lambdas.shared import db

    return db.Credentials(username=user, password=db.sign_iam_token(rds, target.address, target.port, user))

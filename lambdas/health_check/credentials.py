"""Database credentials: an IAM auth token as the `health_check` role (AWS, issue #14), or a Secrets Manager
secret fetched when a run needs it (the command-line tool, other deployments).

IAM: the token is signed locally for each connection (no AWS call, so the in-VPC function needs no NAT or
endpoint for it) and the role can only connect and `SELECT 1` (migration 0004).

Secret:

Fetched once per run (never cached across runs): RDS rotates the managed master password, and a cached
stale password would turn a rotation into a false "database down". At one run a minute this is about
43,000 GetSecretValue calls a month (≈ 0.22 USD). Nothing here ever logs or returns the secret's text.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from lambdas.health_check.checks import CREDENTIALS, CheckFailure, DbCredentials, TargetCredentialSource

TokenSigner = Callable[[str, int, str], str]
"""(host, port, user) -> an IAM auth token (lambdas.shared.db.TokenSigner)."""


def iam_credentials(user: str, sign: TokenSigner) -> TargetCredentialSource:
    """Per connection: `user` with a fresh token for that host; a signer that fails is a `credentials` failure."""

    def credentials(host: str, port: int) -> DbCredentials:
        try:
            return DbCredentials(username=user, password=sign(host, port, user))
        except Exception as error:
            raise CheckFailure(CREDENTIALS, f"cannot sign an IAM auth token: {type(error).__name__}") from None

    return credentials


def rds_token_signer() -> TokenSigner:
    """The shared signer (a boto3 rds client built once per container, region from AWS_REGION)."""
    from lambdas.shared.db import rds_token_signer as shared_signer

    return shared_signer()


def parse_secret(secret_string: object) -> DbCredentials:
    """Read the `username`/`password` JSON that RDS stores for a managed master user."""
    if not isinstance(secret_string, str):
        raise CheckFailure(CREDENTIALS, "the secret has no SecretString (binary secrets are not supported)")
    try:
        document = json.loads(secret_string)
    except ValueError:
        raise CheckFailure(CREDENTIALS, "the secret is not JSON") from None
    if not isinstance(document, dict):
        raise CheckFailure(CREDENTIALS, "the secret is not a JSON object")
    missing = [key for key in ("username", "password") if not isinstance(document.get(key), str)]
    if missing:
        raise CheckFailure(CREDENTIALS, f"the secret lacks a string {' and '.join(missing)}")
    return DbCredentials(username=document["username"], password=document["password"])


def fetch_db_credentials(secret_id: str, client: Any) -> DbCredentials:
    """GetSecretValue through `client` (a boto3 secretsmanager client) and parse it."""
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except Exception as error:
        raise CheckFailure(CREDENTIALS, describe_aws_error(error)) from None
    return parse_secret(response.get("SecretString"))


def describe_aws_error(error: Exception) -> str:
    # Matched by class name so botocore is not imported just to name its exceptions.
    response = getattr(error, "response", None)
    if isinstance(response, dict) and isinstance(response.get("Error"), dict):
        code = response["Error"].get("Code", "?")
        message = str(response["Error"].get("Message", ""))[:300]
        return f"GetSecretValue failed: {code} {message}".rstrip()
    name = type(error).__name__
    if name in {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
        "ReadTimeoutError",
    }:
        return (
            f"cannot reach Secrets Manager ({name}); from inside a VPC this needs a secretsmanager "
            "interface endpoint or a NAT gateway"
        )
    if name in {"NoCredentialsError", "PartialCredentialsError"}:
        return f"no AWS credentials to call Secrets Manager ({name})"
    return f"GetSecretValue failed: {name}"


def secrets_manager_client(region: str | None = None) -> Any:
    """A boto3 client with short timeouts, so a missing VPC endpoint costs seconds, not the whole run."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 2, "mode": "standard"})
    return boto3.client("secretsmanager", region_name=region, config=config)


class OncePerRun:
    """Call `fetch` at most once, from whichever check asks first; later callers share its outcome.

    A failure is shared too: every database target then reports the same `credentials` failure instead of
    each one hammering Secrets Manager.
    """

    def __init__(self, fetch: Callable[[], DbCredentials]) -> None:
        self._fetch = fetch
        self._lock = threading.Lock()
        self._value: DbCredentials | None = None
        self._failure: CheckFailure | None = None

    def __call__(self) -> DbCredentials:
        with self._lock:
            if self._value is None and self._failure is None:
                try:
                    self._value = self._fetch()
                except CheckFailure as failure:
                    self._failure = failure
                except Exception as error:
                    self._failure = CheckFailure(CREDENTIALS, describe_aws_error(error))
            if self._failure is not None:
                raise CheckFailure(self._failure.reason, self._failure.detail)
            assert self._value is not None
            return self._value

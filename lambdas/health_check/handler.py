"""Lambda entry point (`lambdas.health_check.handler.handler`), run every minute by EventBridge Scheduler.

Reads its configuration from the environment on every invocation, runs all checks once, prints one JSON
log line per check, the EMF metrics and a summary line, and returns the summary (the result event).
"""

from __future__ import annotations

import json
import os
from typing import Any

from lambdas.health_check.app import effective_deadline, execute
from lambdas.health_check.checks import CheckDeps
from lambdas.health_check.config import ConfigError, Settings, load_settings
from lambdas.health_check.credentials import (
    OncePerRun,
    fetch_db_credentials,
    iam_credentials,
    rds_token_signer,
    secrets_manager_client,
)
from lambdas.health_check.report import SOURCE

_secrets_client: Any = None  # built on the first run that checks a database, reused while warm


def emit(document: dict[str, Any]) -> None:
    # stdout is the function's log stream; CloudWatch turns the EMF documents in it into metrics.
    print(json.dumps(document, default=str, separators=(",", ":")), flush=True)


def _deps(settings: Settings) -> CheckDeps:
    if settings.database_iam_user is not None:
        return CheckDeps(target_credentials=iam_credentials(settings.database_iam_user, rds_token_signer()))
    secret_arn = settings.database_secret_arn
    if secret_arn is None:
        return CheckDeps()

    def fetch() -> Any:
        global _secrets_client
        if _secrets_client is None:
            _secrets_client = secrets_manager_client()
        return fetch_db_credentials(secret_arn, _secrets_client)

    return CheckDeps(credentials=OncePerRun(fetch))


def handler(event: Any, context: Any) -> dict[str, Any]:
    try:
        settings = load_settings(os.environ)
    except ConfigError as error:
        emit(
            {
                "level": "ERROR",
                "source": SOURCE,
                "event": "config_error",
                "message": str(error),
                "problems": error.problems,
            }
        )
        raise  # a failed invocation: the function's Errors alarm fires, and the message says what to fix
    remaining = context.get_remaining_time_in_millis() if context is not None else None
    deadline = effective_deadline(settings.run_deadline_s, remaining)
    return execute(settings, _deps(settings), deadline_s=deadline, emit=emit)

"""Run every check once from a terminal and print a table.

    python -m lambdas.health_check --targets targets.json
    python -m lambdas.health_check --targets '[{"name": "api", "kind": "http", "url": "https://example.com/"}]'

Database targets take their credentials from DATABASE_SECRET_ARN (Secrets Manager, as in Lambda) or, for
a local database, from PGUSER and PGPASSWORD. Exit status: 0 all up, 1 something down, 2 bad configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lambdas.health_check.app import check_all, publish
from lambdas.health_check.checks import CREDENTIALS, CheckDeps, CheckFailure, DbCredentials
from lambdas.health_check.config import ConfigError, Settings, parse_deadline, parse_targets
from lambdas.health_check.credentials import OncePerRun, fetch_db_credentials, secrets_manager_client
from lambdas.health_check.report import format_table


def _read_targets(value: str) -> str:
    if value.lstrip().startswith("["):
        return value
    path = Path(value)
    if not path.is_file():
        raise ConfigError([f"--targets: {value!r} is neither a JSON list nor an existing file"])
    return path.read_text(encoding="utf-8")


def _local_credentials() -> DbCredentials:
    secret_arn = os.environ.get("DATABASE_SECRET_ARN")
    if secret_arn:
        return fetch_db_credentials(secret_arn, secrets_manager_client())
    user = os.environ.get("PGUSER")
    if not user:
        raise CheckFailure(CREDENTIALS, "set DATABASE_SECRET_ARN, or PGUSER and PGPASSWORD, to check a database")
    return DbCredentials(username=user, password=os.environ.get("PGPASSWORD", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdas.health_check", description=__doc__.split("\n")[0])
    parser.add_argument("--targets", required=True, help="a JSON list of targets, or a file holding one")
    parser.add_argument("--deadline", default=None, help="seconds for the whole run (default: RUN_DEADLINE_S or 25)")
    parser.add_argument("--stack", default=os.environ.get("STACK", "local"), help="Stack name for the output")
    parser.add_argument("--json", action="store_true", help="print the log lines and metrics as Lambda would")
    args = parser.parse_args(argv)

    try:
        targets = parse_targets(_read_targets(args.targets), where="--targets")
        deadline = parse_deadline(args.deadline or os.environ.get("RUN_DEADLINE_S"), where="--deadline")
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 2
    settings = Settings(stack=args.stack, targets=targets, run_deadline_s=deadline, database_secret_arn=None)

    report = check_all(settings, CheckDeps(credentials=OncePerRun(_local_credentials)), deadline_s=deadline)
    if args.json:
        publish(report, settings.stack, lambda document: print(json.dumps(document, default=str)))
    else:
        print(format_table(report))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

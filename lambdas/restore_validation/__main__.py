"""Validate a restored database by hand (the restore runbook's "verify" step).

    python -m lambdas.restore_validation --database-url URL [--min-rows JSON] [--json]

Runs the same checks as the restore-test Lambda and prints one line per check, then the verdict. Exit
status: 0 every check passed, 1 a check failed or the database could not be reached, 2 bad arguments.
The URL takes ``?sslmode=disable|require|verify-full`` (default require) and ``sslrootcert=PATH``. Leave
the password out of the URL to read it from ``PGPASSWORD`` (keeps it out of shell history and ``ps``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

from lambdas.restore_validation import core

CONNECT_TIMEOUT_S = 10.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambdas.restore_validation", description=__doc__.split("\n")[1])
    parser.add_argument("--database-url", required=True, help="postgresql://user[:password]@host:port/db[?sslmode=...]")
    parser.add_argument(
        "--min-rows",
        default=None,
        help='JSON table -> minimum rows, replacing the defaults it names (default {"users": 1, "wallets": 1, '
        '"system_config": 4})',
    )
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)

    from lambdas.shared import db

    try:
        expectations = core.Expectations.from_json(args.min_rows, setting="--min-rows")
        endpoint, credentials, tls = db.parse_database_url(args.database_url)
    except (core.ExpectationsError, db.DatabaseConfigError) as error:
        parser.error(str(error))
    if not credentials.password and os.environ.get("PGPASSWORD"):
        credentials = replace(credentials, password=os.environ["PGPASSWORD"])

    result = core.validate_database(
        lambda: db.connect(
            endpoint,
            credentials,
            tls=tls,
            connect_timeout_s=CONNECT_TIMEOUT_S,
            application_name="shipyard-restore-validation-cli",
        ),
        expectations,
    )
    if args.json:
        print(json.dumps({"database": endpoint.describe(), **result.summary()}, sort_keys=True))
    else:
        print(f"database {endpoint.describe()}")
        for check in result.checks_passed:
            print(f"  ok    {check}")
        for failure in result.failures:
            print(f"  FAIL  {failure.check}: {failure.reason}")
        for table, count in sorted(result.row_counts.items()):
            print(f"  rows  {table}: {count}{'+' if count >= expectations.min_rows.get(table, 0) else ''}")
        print(f"{result.status} in {result.duration_s:.2f} s: {result.message()}")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())

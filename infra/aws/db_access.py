"""Who logs in to the RDS database, and the IAM permission that lets each one in as its own role only.

The roles are created by the migrations (app/migrations/0004_consumer_roles.sql; 0003 for the restore
validator) and log in with IAM database authentication: the process signs a 15-minute token locally with
its own IAM credentials for every new connection, and RDS checks the token (and TLS) at connect time. No
running process holds a database password; the master secret is read only by the migrate task.

`rds-db:connect` is granted per database user, on
`arn:<partition>:rds-db:<region>:<account>:dbuser:<DbiResourceId>/<user>` — the instance's resource id
(`db-ABCDEFGHIJKL01234`, `aws.rds.Instance.resource_id`), not its identifier
(https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/UsingWithRDS.IAMDBAuth.IAMPolicy.html; resource type
`db-user` = `arn:${Partition}:rds-db:${Region}:${Account}:dbuser:${DbiResourceId}/${DbUserName}` in the Service
Authorization Reference, https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonrdsiamauthentication.html).
Tokens live 15 minutes and IAM auth requires SSL (AWS knowledge center "rds-postgresql-connect-using-iam").
"""

from __future__ import annotations

from typing import Any

import pulumi

API_DB_USER = "api"
"""The API, and the app image's workers and scheduled jobs (the same code base)."""
AUTO_CONFIRM_DB_USER = "auto_confirm"
HEALTH_CHECK_DB_USER = "health_check"
CONSUMER_DB_USERS = (API_DB_USER, AUTO_CONFIRM_DB_USER, HEALTH_CHECK_DB_USER)
"""The roles migration 0004 creates (tests/app/test_app_roles.py checks the two lists agree)."""

IAM_AUTH_ENV = "iam"
"""`DATABASE_AUTH` value that makes the API and the Lambdas sign an IAM token per connection."""


def dbuser_arn(instance_arn: str, resource_id: str, user: str) -> str:
    """`rds-db:connect` resource for `user` on the instance whose ARN is `instance_arn`.

    Partition, region and account come from the instance's own ARN (`arn:aws:rds:<region>:<account>:db:<id>`),
    so no provider call is needed and a GovCloud or China partition comes out right.
    """
    parts = instance_arn.split(":")
    if len(parts) < 7 or parts[2] != "rds" or parts[5] != "db":
        raise ValueError(f"not an RDS DB instance ARN: {instance_arn!r}")
    if not resource_id.startswith("db-"):
        raise ValueError(f"not a DbiResourceId (db-...): {resource_id!r}")
    partition, region, account = parts[1], parts[3], parts[4]
    return f"arn:{partition}:rds-db:{region}:{account}:dbuser:{resource_id}/{user}"


def connect_statements(
    instance_arn: pulumi.Input[str], resource_id: pulumi.Input[str], user: str
) -> pulumi.Output[list[dict[str, Any]]]:
    """The one IAM statement a consumer needs to log in as `user`, and nothing else."""
    return pulumi.Output.all(instance_arn, resource_id).apply(
        lambda values: [
            {
                "Sid": "DatabaseLogin",
                "Effect": "Allow",
                "Action": "rds-db:connect",
                "Resource": dbuser_arn(str(values[0]), str(values[1]), user),
            }
        ]
    )

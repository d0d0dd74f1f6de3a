"""The `rds-db:connect` resource of a database user (infra/aws/db_access.py)."""

from __future__ import annotations

import pytest

from infra.aws import db_access

INSTANCE = "arn:aws:rds:eu-west-1:123456789012:db:shipyard-prod-db"


def test_dbuser_arn_uses_the_resource_id_and_the_instance_partition_region_account() -> None:
    # Format from the AWS docs ("Creating and using an IAM policy for IAM database access").
    assert db_access.dbuser_arn(INSTANCE, "db-ABCDEFGHIJKL01234", "api") == (
        "arn:aws:rds-db:eu-west-1:123456789012:dbuser:db-ABCDEFGHIJKL01234/api"
    )
    china = "arn:aws-cn:rds:cn-north-1:123456789012:db:x"
    assert db_access.dbuser_arn(china, "db-X", "health_check").startswith("arn:aws-cn:rds-db:cn-north-1:")


@pytest.mark.parametrize(
    ("instance_arn", "resource_id", "message"),
    [
        ("arn:aws:rds:eu-west-1:123456789012:cluster:c", "db-X", "not an RDS DB instance ARN"),
        ("shipyard-prod-db", "db-X", "not an RDS DB instance ARN"),
        # the identifier is a common mistake: the policy would silently match nothing
        (INSTANCE, "shipyard-prod-db", "not a DbiResourceId"),
    ],
)
def test_dbuser_arn_refuses_what_would_grant_nothing(instance_arn: str, resource_id: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        db_access.dbuser_arn(instance_arn, resource_id, "api")

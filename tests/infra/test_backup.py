"""AWS Backup (infra/aws/backup.py) on both stacks, read from the inputs the real program registers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra import rds_ca
from infra.aws.backup import MANAGED_POLICY_ARNS, VALIDATION_DB_USER
from infra.aws.database import backup_selection_tag
from infra.aws.function import VPC_DESCRIBE_ACTIONS, VPC_NETWORK_INTERFACE_ACTIONS
from infra.harness import Resource, StackRun
from lambdas.restore_validation.handler import PROBE_READ_TIMEOUT_S
from tests.infra.conftest import evaluate

VAULT = "aws:backup/vault:Vault"
LOCK = "aws:backup/vaultLockConfiguration:VaultLockConfiguration"
PLAN = "aws:backup/plan:Plan"
SELECTION = "aws:backup/selection:Selection"
NOTIFICATIONS = "aws:backup/vaultNotifications:VaultNotifications"
RESTORE_PLAN = "aws:backup/restoreTestingPlan:RestoreTestingPlan"
RESTORE_SELECTION = "aws:backup/restoreTestingSelection:RestoreTestingSelection"
KEY = "aws:kms/key:Key"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
FUNCTION = "aws:lambda/function:Function"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
PROVIDER = "pulumi:providers:aws"

RETENTION = {"staging": 7, "prod": 30}
"""backups.retentionDays of the shipped stack files."""
OFFSITE_RETENTION = {"staging": 35, "prod": 365}
"""backups.offsite.retentionDays of the shipped stack files (staging keeps each monthly copy until the next)."""


def _id_of(reference: str | None) -> str:
    """A provider reference is `<urn>::<id>`."""
    return (reference or "").rpartition("::")[2]


def _provider(run: StackRun, resource: Resource) -> Resource:
    (provider,) = [p for p in run.of_type(PROVIDER) if p.id == _id_of(resource.provider)]
    return provider


def _component(run: StackRun, resource: Resource) -> str:
    component = run.component_of(resource)
    assert component is not None
    return component.type


def _alarms(run: StackRun, alarm_id: str) -> list[Resource]:
    return [a for a in run.of_type(ALARM) if a.inputs["tags"]["alarm-id"] == alarm_id]


def _rule(plan: Resource, name: str) -> dict[str, Any]:
    (rule,) = [r for r in plan.inputs["rules"] if r["ruleName"] == name]
    return rule


# ------------------------------------------------------------------------------------------------ vault


def test_vault_is_encrypted_with_its_own_rotating_customer_key(any_stack: StackRun) -> None:
    vault = any_stack.one(VAULT, "backup-vault")
    key = any_stack.one(KEY, "backup-key")
    assert vault.inputs["name"] == f"shipyard-{any_stack.stack}-backup"
    assert vault.inputs["kmsKeyArn"] == key.outputs["arn"]
    assert key.inputs["enableKeyRotation"] is True
    statements = json.loads(key.inputs["policy"])["Statement"]
    via = [s["Condition"]["StringEquals"]["kms:ViaService"] for s in statements if "Condition" in s]
    assert via == [["backup.us-east-1.amazonaws.com"]]
    assert _component(any_stack, vault) == _component(any_stack, key) == "shipyard:aws:Backup"
    # Prod keeps recovery points on `pulumi destroy`; staging may be torn down with them.
    assert vault.inputs["forceDestroy"] is (any_stack.stack != "prod")


def test_prod_vaults_are_locked_in_governance_mode_and_staging_is_not(prod: StackRun, staging: StackRun) -> None:
    locks = {lock.inputs["backupVaultName"]: lock for lock in prod.of_type(LOCK)}
    assert set(locks) == {"shipyard-prod-backup", "shipyard-prod-us-east-1-backup-offsite"}
    for lock in locks.values():
        assert lock.inputs["minRetentionDays"] == 7 and lock.inputs["maxRetentionDays"] == 400
        assert "changeableForDays" not in lock.inputs  # governance: no grace period after which it is final
    assert _provider(prod, locks["shipyard-prod-us-east-1-backup-offsite"]).inputs["region"] == "us-west-2"
    assert staging.of_type(LOCK) == []


def test_compliance_mode_sets_the_grace_period() -> None:
    run = evaluate(
        "prod",
        config_overrides={
            "shipyard:backups": {
                "retentionDays": 30,
                "vaultLock": {"minRetentionDays": 7, "maxRetentionDays": 400, "mode": "compliance"},
            }
        },
    )
    (lock,) = run.of_type(LOCK)  # no offsite in this variant
    assert lock.inputs["changeableForDays"] == 3


# ------------------------------------------------------------------------------------------------ plan


def test_daily_rule_runs_at_two_in_the_configured_time_zone_with_continuous_backup(any_stack: StackRun) -> None:
    plan = any_stack.one(PLAN)
    daily = _rule(plan, "daily")
    assert daily["schedule"] == "cron(0 2 * * ? *)"
    assert daily["scheduleExpressionTimezone"] == "America/Sao_Paulo"
    assert daily["lifecycle"] == {"deleteAfter": RETENTION[any_stack.stack]}
    assert daily["enableContinuousBackup"] is True
    assert daily["targetVaultName"] == any_stack.one(VAULT, "backup-vault").outputs["name"]
    assert "copyActions" not in daily


def test_rules_follow_the_config() -> None:
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:backups": {
                "schedule": "cron(30 1 * * ? *)",
                "timezone": "Europe/Lisbon",
                "retentionDays": 14,
                "continuous": False,
            }
        },
    )
    daily = _rule(run.one(PLAN), "daily")
    assert daily["schedule"] == "cron(30 1 * * ? *)"
    assert daily["scheduleExpressionTimezone"] == "Europe/Lisbon"
    assert daily["lifecycle"] == {"deleteAfter": 14}
    assert daily["enableContinuousBackup"] is False


def test_a_monthly_recovery_point_is_copied_to_the_offsite_region(any_stack: StackRun) -> None:
    run = any_stack
    offsite_vault = run.one(VAULT, "backup-offsite-vault")
    assert _provider(run, offsite_vault).inputs["region"] == "us-west-2"
    arn = offsite_vault.outputs["arn"]
    assert arn.split(":")[3] == "us-west-2"
    monthly = _rule(run.one(PLAN), "monthly-offsite")
    assert monthly["schedule"] == "cron(0 3 1 * ? *)"
    assert monthly["scheduleExpressionTimezone"] == "America/Sao_Paulo"
    (copy,) = monthly["copyActions"]
    assert copy == {"destinationVaultArn": arn, "lifecycle": {"deleteAfter": OFFSITE_RETENTION[run.stack]}}
    # KMS keys are regional: the offsite vault has its own key, in its region, usable through AWS Backup there.
    key = run.one(KEY, "backup-offsite-key")
    assert offsite_vault.inputs["kmsKeyArn"] == key.outputs["arn"]
    assert key.outputs["arn"].split(":")[3] == "us-west-2"
    assert _provider(run, key).inputs["region"] == "us-west-2"
    statements = json.loads(key.inputs["policy"])["Statement"]
    assert statements[1]["Condition"]["StringEquals"]["kms:ViaService"] == ["backup.us-west-2.amazonaws.com"]
    assert run.outputs["backupOffsiteVaultArn"] == arn


def test_without_offsite_there_is_no_copy_and_no_second_region() -> None:
    run = evaluate("staging", config_overrides={"shipyard:backups": {"retentionDays": 7, "offsite": None}})
    assert [r["ruleName"] for r in run.one(PLAN).inputs["rules"]] == ["daily"]
    assert len(run.of_type(VAULT)) == 1
    assert [p.name for p in run.of_type(PROVIDER) if p.inputs.get("region") == "us-west-2"] == []


# ------------------------------------------------------------------------------------------------ selection


def test_selection_by_tag_covers_the_database_and_the_versioned_uploads_bucket(any_stack: StackRun) -> None:
    key, value = backup_selection_tag
    selection = any_stack.one(SELECTION)
    assert selection.inputs["resources"] == ["arn:aws:rds:*:*:db:*", "arn:aws:s3:::*"]
    assert selection.inputs["conditions"] == [
        {
            "stringEquals": [
                {"key": f"aws:ResourceTag/{key}", "value": value},
                {"key": "aws:ResourceTag/stack", "value": any_stack.stack},
            ]
        }
    ]
    assert "selectionTags" not in selection.inputs  # OR-ed, and its combination with conditions is undocumented
    assert selection.inputs["planId"] == any_stack.one(PLAN).id
    assert selection.inputs["iamRoleArn"] == any_stack.one("aws:iam/role:Role", "backup-role").outputs["arn"]

    database = any_stack.one("aws:rds/instance:Instance", "database-instance")
    bucket = any_stack.one("aws:s3/bucket:Bucket", "uploads-bucket")
    assert database.inputs["tags"][key] == value
    assert bucket.inputs["tags"][key] == value
    # AWS Backup for S3 requires versioning on the bucket it backs up.
    versioning = any_stack.one("aws:s3/bucketVersioning:BucketVersioning", "uploads-versioning")
    assert versioning.inputs["bucket"] == bucket.id
    assert versioning.inputs["versioningConfiguration"]["status"] == "Enabled"
    # The `stack` condition matches because the provider tags every resource with it.
    provider = _provider(any_stack, database)
    assert json.loads(provider.inputs["defaultTags"])["tags"]["stack"] == any_stack.stack
    assert _provider(any_stack, bucket).urn == provider.urn


def test_backup_role_is_assumed_by_aws_backup_with_the_managed_policies(any_stack: StackRun) -> None:
    role = any_stack.one("aws:iam/role:Role", "backup-role")
    (statement,) = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert statement["Principal"] == {"Service": "backup.amazonaws.com"}
    attached = {
        a.inputs["policyArn"]
        for a in any_stack.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == role.outputs["name"]
    }
    assert attached == set(MANAGED_POLICY_ARNS)
    assert {arn.rsplit("/", 1)[-1] for arn in attached} == {
        "AWSBackupServiceRolePolicyForBackup",
        "AWSBackupServiceRolePolicyForRestores",
        "AWSBackupServiceRolePolicyForS3Backup",
        "AWSBackupServiceRolePolicyForS3Restore",
    }


# ------------------------------------------------------------------------------------------------ notifications


def test_failures_reach_the_critical_alert_topic(any_stack: StackRun) -> None:
    critical = any_stack.outputs["alertTopicArns"]["critical"]
    notifications = any_stack.one(NOTIFICATIONS)
    assert notifications.inputs["snsTopicArn"] == critical
    assert notifications.inputs["backupVaultName"] == f"shipyard-{any_stack.stack}-backup"
    assert set(notifications.inputs["backupVaultEvents"]) == {
        "COPY_JOB_FAILED",
        "S3_BACKUP_OBJECT_FAILED",
        "S3_RESTORE_OBJECT_FAILED",
        "CONTINUOUS_BACKUP_INTERRUPTED",
    }
    # Failed backup jobs come through EventBridge (the BACKUP_JOB_FAILED vault event is no longer sent).
    rule = any_stack.one(RULE, "backup-job-failed")
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["aws.backup"],
        "detail-type": ["Backup Job State Change"],
        "detail": {
            "state": ["FAILED", "ABORTED", "EXPIRED"],
            "backupVaultName": [f"shipyard-{any_stack.stack}-backup"],
        },
    }
    target = any_stack.one(TARGET, "backup-job-failed-target")
    assert target.inputs["rule"] == rule.outputs["name"] and target.inputs["arn"] == critical
    # The topic lets AWS Backup and EventBridge of this account publish.
    (topic_policy,) = [p for p in any_stack.of_type("aws:sns/topicPolicy:TopicPolicy") if p.inputs["arn"] == critical]
    publish = [s for s in json.loads(topic_policy.inputs["policy"])["Statement"] if s["Action"] == "sns:Publish"]
    services = {service for s in publish for service in s["Principal"]["Service"]}
    assert {"backup.amazonaws.com", "events.amazonaws.com"} <= services


def test_backup_job_alarm_watches_the_vault(any_stack: StackRun) -> None:
    (alarm,) = _alarms(any_stack, "backup-job-failed")
    assert alarm.inputs["namespace"] == "AWS/Backup"
    assert alarm.inputs["dimensions"] == {"BackupVaultName": f"shipyard-{any_stack.stack}-backup"}


# ------------------------------------------------------------------------------------------------ restore testing


def test_restore_test_is_monthly_and_restores_the_database_into_a_closed_room(any_stack: StackRun) -> None:
    run = any_stack
    plan = run.one(RESTORE_PLAN)
    assert plan.inputs["name"] == f"shipyard_{run.stack}_restore_test"
    assert plan.inputs["scheduleExpression"] == "cron(0 9 ? * TUE#1 *)"
    assert plan.inputs["scheduleExpressionTimezone"] == "America/Sao_Paulo"
    selection_of_points = plan.inputs["recoveryPointSelection"]
    assert selection_of_points["includeVaults"] == [run.one(VAULT, "backup-vault").outputs["arn"]]
    assert selection_of_points["algorithm"] == "LATEST_WITHIN_WINDOW"

    selection = run.one(RESTORE_SELECTION)
    database = run.one("aws:rds/instance:Instance", "database-instance")
    assert selection.inputs["restoreTestingPlanName"] == plan.outputs["name"]
    assert selection.inputs["protectedResourceType"] == "RDS"
    assert selection.inputs["protectedResourceArns"] == [database.outputs["arn"]]
    assert selection.inputs["validationWindowHours"] == 6
    restored_sg = run.one(SG, "backup-restored-db-sg")
    overrides = selection.inputs["restoreMetadataOverrides"]
    assert overrides == {
        "dbInstanceClass": "db.t4g.micro",
        "dbSubnetGroupName": database.inputs["dbSubnetGroupName"],
        "vpcSecurityGroupIds": json.dumps([restored_sg.id]),
        "multiAZ": "false",
        "publiclyAccessible": "false",
        "enableIAMDatabaseAuthentication": "true",
    }
    # The copy admits the probe only, on PostgreSQL; the live database's group does not admit the probe, and the
    # probe reaches the copy and nothing else (no route to the internet or an AWS API is needed).
    probe_sg = run.one(SG, "backup-probe-sg")
    (ingress,) = [r for r in run.of_type(INGRESS) if r.inputs["securityGroupId"] == restored_sg.id]
    assert ingress.inputs["referencedSecurityGroupId"] == probe_sg.id
    assert (ingress.inputs["fromPort"], ingress.inputs["toPort"]) == (5432, 5432)
    db_sg = run.one(SG, "database-sg")
    admitted = {
        r.inputs.get("referencedSecurityGroupId")
        for r in run.of_type(INGRESS)
        if r.inputs["securityGroupId"] == db_sg.id
    }
    assert probe_sg.id not in admitted
    egress = {
        (r.inputs.get("referencedSecurityGroupId") or r.inputs.get("cidrIpv4"), r.inputs["fromPort"])
        for r in run.of_type(EGRESS)
        if r.inputs["securityGroupId"] == probe_sg.id
    }
    assert egress == {(restored_sg.id, 5432)}
    assert database.inputs["iamDatabaseAuthenticationEnabled"] is True
    assert run.outputs["restoreTestingPlanName"] == f"shipyard_{run.stack}_restore_test"


def _granted(run: StackRun, policy_name: str) -> dict[str, list[str]]:
    policy = json.loads(run.one("aws:iam/rolePolicy:RolePolicy", policy_name).inputs["policy"])
    return {action: s["Resource"] for s in policy["Statement"] for action in s["Action"]}


def test_the_validator_runs_outside_the_vpc_and_its_probe_inside_each_with_least_privilege(any_stack: StackRun) -> None:
    run = any_stack
    validator = run.one(FUNCTION, "backup-validator-function")
    probe = run.one(FUNCTION, "backup-probe-function")
    assert validator.inputs["handler"] == "lambdas.restore_validation.handler.handler"
    assert probe.inputs["handler"] == "lambdas.restore_validation.probe.handler"
    assert validator.inputs["code"].path == probe.inputs["code"].path  # one archive, two entry points
    assert (validator.inputs["name"], probe.inputs["name"]) == (
        f"shipyard-{run.stack}-restore-validation",
        f"shipyard-{run.stack}-restore-validation-probe",
    )

    # The validator: AWS APIs only, so no VPC (and no NAT or endpoints) — it finds the copy and runs the probe.
    assert "vpcConfig" not in validator.inputs
    assert validator.inputs["environment"]["variables"]["PROBE_FUNCTION"] == probe.outputs["name"]
    granted = _granted(run, "backup-validator-policy")
    assert granted["backup:PutRestoreValidationResult"] == ["*"]
    assert granted["rds:DescribeDBInstances"] == ["arn:aws:rds:us-east-1:123456789012:db:*"]
    assert granted["lambda:InvokeFunction"] == [probe.outputs["arn"]]
    assert "rds-db:connect" not in granted

    # The probe: in the private subnets behind its own group, allowed to log in as the read-only role, no more.
    environment = probe.inputs["environment"]["variables"]
    assert environment["DB_NAME"] == "app" and environment["DB_USER"] == VALIDATION_DB_USER
    assert "STACK" not in environment  # publishes no metrics, reads no STACK (tests/infra/test_env_contract.py)
    assert not any("PASSWORD" in k or "SECRET" in k for k in environment)
    # The CA bundle is set exactly when `make rds-ca` has fetched it (the plan warns otherwise).
    assert environment.get("DB_CA_FILE") == (rds_ca.ARCHIVE_PATH if rds_ca.BUNDLE_PATH.exists() else None)
    vpc = probe.inputs["vpcConfig"]
    private = [s.id for s in run.of_type("aws:ec2/subnet:Subnet") if s.inputs["tags"]["tier"] == "private"]
    assert private and sorted(vpc["subnetIds"]) == sorted(private)
    assert vpc["securityGroupIds"] == [run.one(SG, "backup-probe-sg").id]
    probe_grants = _granted(run, "backup-probe-policy")
    assert probe_grants.pop("rds-db:connect") == [
        f"arn:aws:rds-db:us-east-1:123456789012:dbuser:*/{VALIDATION_DB_USER}"
    ]
    # In the VPC: the ENI actions inline (infra/aws/function.py), no AWSLambdaVPCAccessExecutionRole (issue 16).
    eni = {action: probe_grants.pop(action) for action in (*VPC_NETWORK_INTERFACE_ACTIONS, *VPC_DESCRIBE_ACTIONS)}
    assert eni == {
        **{action: ["arn:aws:ec2:us-east-1:123456789012:*/*"] for action in VPC_NETWORK_INTERFACE_ACTIONS},
        **{action: ["*"] for action in VPC_DESCRIBE_ACTIONS},
    }
    assert sorted(probe_grants) == ["logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"]  # every function's


def test_the_validator_waits_for_the_probe_longer_than_the_probe_may_run(any_stack: StackRun) -> None:
    # Otherwise a slow probe would read as "cannot invoke" instead of Lambda's own "Task timed out" verdict,
    # and a validator that times out first would never report at all.
    probe_timeout = any_stack.one(FUNCTION, "backup-probe-function").inputs["timeout"]
    validator_timeout = any_stack.one(FUNCTION, "backup-validator-function").inputs["timeout"]
    assert probe_timeout < PROBE_READ_TIMEOUT_S < validator_timeout - 10


def test_restore_job_events_of_the_plan_invoke_the_validator(any_stack: StackRun) -> None:
    prod = any_stack
    plan_arn = prod.one(RESTORE_PLAN).outputs["arn"]
    rule = prod.one(RULE, "backup-restore-test-events")
    assert json.loads(rule.inputs["eventPattern"]) == {
        "source": ["aws.backup"],
        "detail-type": ["Restore Job State Change"],
        "detail": {"status": ["COMPLETED", "FAILED", "ABORTED"], "restoreTestingPlanArn": [plan_arn]},
    }
    function = prod.one(FUNCTION, "backup-validator-function")
    target = prod.one(TARGET, "backup-restore-test-target")
    assert target.inputs["rule"] == rule.outputs["name"]
    assert target.inputs["arn"] == function.outputs["arn"]
    dlq = prod.one("aws:sqs/queue:Queue", "backup-validator-dlq")
    assert target.inputs["deadLetterConfig"] == {"arn": dlq.outputs["arn"]}
    queue_policy = json.loads(
        prod.one("aws:sqs/queuePolicy:QueuePolicy", "backup-validator-dlq-policy").inputs["policy"]
    )
    assert queue_policy["Statement"][0]["Principal"] == {"Service": "events.amazonaws.com"}
    assert queue_policy["Statement"][0]["Condition"] == {"ArnEquals": {"aws:SourceArn": rule.outputs["arn"]}}
    permission = prod.one("aws:lambda/permission:Permission", "backup-validator-invoke")
    assert permission.inputs["principal"] == "events.amazonaws.com"
    assert permission.inputs["sourceArn"] == rule.outputs["arn"]
    assert permission.inputs["function"] == function.outputs["name"]


def test_daily_age_check_feeds_the_overdue_alarm(prod: StackRun) -> None:
    plan = prod.one(RESTORE_PLAN)
    function = prod.one(FUNCTION, "backup-test-age-function")
    assert function.inputs["handler"] == "lambdas.restore_test_age.handler.handler"
    assert function.inputs["environment"]["variables"]["RESTORE_TESTING_PLAN_NAME"] == plan.outputs["name"]
    assert "vpcConfig" not in function.inputs  # it only calls the AWS Backup API
    schedule = prod.one("aws:scheduler/schedule:Schedule", "backup-test-age-daily-schedule")
    assert schedule.inputs["scheduleExpression"] == "cron(0 10 * * ? *)"
    assert schedule.inputs["scheduleExpressionTimezone"] == "America/Sao_Paulo"
    assert schedule.inputs["target"]["arn"] == function.outputs["arn"]
    policy = json.loads(prod.one("aws:iam/rolePolicy:RolePolicy", "backup-test-age-policy").inputs["policy"])
    granted = {action: s["Resource"] for s in policy["Statement"] for action in s["Action"]}
    assert granted["backup:GetRestoreTestingPlan"] == [plan.outputs["arn"]]
    assert granted["backup:ListRestoreJobs"] == ["*"]
    (alarm,) = _alarms(prod, "restore-test-overdue")
    assert (alarm.inputs["namespace"], alarm.inputs["metricName"]) == ("Shipyard/Backup", "DaysSinceLastRestoreTest")
    assert alarm.inputs["dimensions"] == {"Stack": "prod"}
    assert alarm.inputs["threshold"] == 35 and alarm.inputs["comparisonOperator"] == "GreaterThanThreshold"
    # Two daily periods: inside CloudWatch's 7-day evaluation limit; a silent check counts as overdue.
    assert alarm.inputs["period"] * alarm.inputs["evaluationPeriods"] == 2 * 86_400
    assert alarm.inputs["treatMissingData"] == "breaching"
    assert alarm.inputs["alarmActions"] == [prod.outputs["alertTopicArns"]["critical"]]


def test_restore_alarms_page_critical_with_the_stack_dimension(prod: StackRun) -> None:
    critical = prod.outputs["alertTopicArns"]["critical"]
    for alarm_id, metric, statistic in (
        ("restore-validation-failed", "RestoreValidationSucceeded", "Minimum"),
        ("restore-job-failed", "RestoreJobFailed", "Sum"),
    ):
        (alarm,) = _alarms(prod, alarm_id)
        assert alarm.inputs["namespace"] == "Shipyard/Backup"
        assert alarm.inputs["metricName"] == metric and alarm.inputs["statistic"] == statistic
        assert alarm.inputs["dimensions"] == {"Stack": "prod"}
        assert alarm.inputs["alarmActions"] == [critical]
        assert alarm.inputs["alarmDescription"].endswith(f"/{alarm_id}.md")
    assert [a.name for a in _alarms(prod, "lambda-errors") if "restore-validation" in a.name]
    assert [a.name for a in _alarms(prod, "dlq-depth") if "restore-validation" in a.name]


def test_staging_tests_its_restores_without_nat(staging: StackRun) -> None:
    # The reason the validator is two functions: staging has no NAT gateway and no Backup/RDS/Lambda endpoints.
    assert len(staging.of_type(RESTORE_PLAN)) == 1
    assert staging.of_type("aws:ec2/natGateway:NatGateway") == []
    endpoints = {r.inputs["serviceName"].rsplit(".", 1)[1] for r in staging.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")}
    assert not endpoints & {"backup", "rds", "lambda"}


def test_without_restore_testing_there_is_no_restore_test() -> None:
    run = evaluate("staging", config_overrides={"shipyard:backups": {"retentionDays": 7, "restoreTesting": False}})
    assert run.of_type(RESTORE_PLAN) == [] and run.of_type(RESTORE_SELECTION) == []
    assert [f for f in run.of_type(FUNCTION) if f.name.startswith("backup-")] == []
    assert _alarms(run, "restore-validation-failed") == [] and _alarms(run, "restore-test-overdue") == []
    assert "restoreTestingPlanName" not in run.outputs


# ------------------------------------------------------------------------------------------------ outputs, off


def test_outputs_name_vault_and_plan(any_stack: StackRun) -> None:
    assert any_stack.outputs["backupVaultName"] == f"shipyard-{any_stack.stack}-backup"
    assert any_stack.outputs["backupPlanId"] == any_stack.one(PLAN).id
    assert any_stack.outputs["backupRoleArn"] == any_stack.one("aws:iam/role:Role", "backup-role").outputs["arn"]


def test_prod_outputs_what_a_manual_restore_needs(prod: StackRun) -> None:
    assert prod.outputs["backupOffsiteVaultName"] == "shipyard-prod-us-east-1-backup-offsite"
    assert prod.outputs["restoredDbSecurityGroupId"] == prod.one(SG, "backup-restored-db-sg").id
    assert prod.outputs["restoreValidatorFunction"] == "shipyard-prod-restore-validation"


def test_dashboard_has_a_backups_section(any_stack: StackRun) -> None:
    body = json.loads(any_stack.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    titles = [w["properties"].get("title") for w in body["widgets"] if w["type"] == "metric"]
    assert "Backup jobs completed / failed" in titles
    assert "Days since last validated restore test" in titles


def test_backups_disabled_creates_nothing_backup_related() -> None:
    run = evaluate("staging", config_overrides={"shipyard:backups": {"enabled": False}})
    assert [r.type for r in run.resources if r.type.startswith("aws:backup/")] == []
    assert [r for r in run.resources if r.type == "shipyard:aws:Backup" or r.name.startswith("backup-")] == []
    assert _alarms(run, "backup-job-failed") == []
    assert not {k for k in run.outputs if "backup" in k.lower() or "restore" in k.lower()}


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_every_backup_resource_is_parented_to_the_component(stack: str, stack_runs: dict[str, StackRun]) -> None:
    run = stack_runs[stack]
    component = run.one("shipyard:aws:Backup")
    mine = run.descendants(component)
    assert {r.type for r in run.resources if r.type.startswith("aws:backup/")} <= {r.type for r in mine}
    assert all(r.parent is not None for r in mine)

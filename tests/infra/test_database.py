"""Database properties for both stacks, read from what the real program registers under the offline cloud."""

from __future__ import annotations

import json
import re
from pathlib import Path

from infra.aws.database import backup_selection_tag, master_password_rotation_schedule, parameter_group_family
from infra.harness import Resource, StackRun
from tests.infra.component_program import run_program
from tests.infra.conftest import evaluate

INSTANCE = "aws:rds/instance:Instance"
PARAMS = "aws:rds/parameterGroup:ParameterGroup"
SUBNET_GROUP = "aws:rds/subnetGroup:SubnetGroup"
SG = "aws:ec2/securityGroup:SecurityGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
KMS_KEY = "aws:kms/key:Key"


def _instance(run: StackRun) -> Resource:
    return run.one(INSTANCE, "database-instance")


def _parameters(run: StackRun) -> dict[str, tuple[str, str]]:
    params = run.one(PARAMS, "database-params").inputs["parameters"]
    return {p["name"]: (p["value"], p["applyMethod"]) for p in params}


def test_every_database_resource_belongs_to_the_database_component(any_stack: StackRun) -> None:
    component = any_stack.one("shipyard:aws:Database")
    for resource in (
        _instance(any_stack),
        any_stack.one(PARAMS),
        any_stack.one(SUBNET_GROUP),
        any_stack.one(SG, "database-sg"),
    ):
        assert any_stack.component_of(resource) == component
        assert resource.provider is not None and "pulumi:providers:aws::aws" in resource.provider


def test_current_postgres_on_encrypted_autoscaling_gp3(any_stack: StackRun) -> None:
    db = _instance(any_stack).inputs
    assert db["engine"] == "postgres"
    assert db["engineVersion"] == "17"
    assert db["storageType"] == "gp3"
    assert db["storageEncrypted"] is True
    assert db["maxAllocatedStorage"] > db["allocatedStorage"]
    assert db["autoMinorVersionUpgrade"] is True
    assert db["engineLifecycleSupport"] == "open-source-rds-extended-support-disabled"
    assert any_stack.one(PARAMS).inputs["family"] == "postgres17"


def test_engine_version_drives_the_parameter_group_family() -> None:
    assert parameter_group_family("16") == "postgres16"
    assert parameter_group_family("17.4") == "postgres17"
    run = evaluate("staging", config_overrides={"shipyard:database": {"engineVersion": "16"}})
    assert _instance(run).inputs["engineVersion"] == "16"
    params = run.one(PARAMS).inputs
    assert params["family"] == "postgres16"
    assert params["name"] == "shipyard-staging-db-postgres16"


def test_password_is_managed_by_rds_and_never_an_input(any_stack: StackRun) -> None:
    db = _instance(any_stack)
    assert db.inputs["manageMasterUserPassword"] is True
    assert "password" not in db.inputs and "passwordWo" not in db.inputs
    secret_arn = any_stack.outputs["databaseSecretArn"]
    assert secret_arn.startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-")
    assert secret_arn == db.outputs["masterUserSecrets"][0]["secretArn"]


def test_private_in_isolated_subnets(any_stack: StackRun) -> None:
    db = _instance(any_stack).inputs
    assert db["publiclyAccessible"] is False
    group = any_stack.one(SUBNET_GROUP)
    assert db["dbSubnetGroupName"] == group.inputs["name"]
    isolated = sorted(any_stack.outputs["isolatedSubnetIds"])
    assert sorted(group.inputs["subnetIds"]) == isolated
    assert set(isolated).isdisjoint(any_stack.outputs["privateSubnetIds"] + any_stack.outputs["publicSubnetIds"])


def test_security_group_admits_nothing_but_allow_from_rules(any_stack: StackRun) -> None:
    sg = any_stack.one(SG, "database-sg")
    assert _instance(any_stack).inputs["vpcSecurityGroupIds"] == [sg.id]
    assert not sg.inputs.get("ingress") and not sg.inputs.get("egress")
    component = any_stack.one("shipyard:aws:Database")
    rules = [r for r in any_stack.of_type(INGRESS) if r.inputs["securityGroupId"] == sg.id]
    assert rules, "the stack admits its consumers (at least the in-VPC health checker) through allow_from"
    groups = {g.id: g for g in any_stack.of_type(SG)}
    for rule in rules:  # whatever consumers the stack admits, each is one other SG on 5432 added by allow_from
        assert any_stack.component_of(rule) == component
        assert rule.name.startswith("database-from-")
        assert rule.inputs["fromPort"] == rule.inputs["toPort"] == 5432
        source = groups[rule.inputs["referencedSecurityGroupId"]]
        assert any_stack.component_of(source) != component
        assert "cidrIpv4" not in rule.inputs and "cidrIpv6" not in rule.inputs


def test_allow_from_adds_one_rule_from_that_security_group(tmp_path: Path) -> None:
    run = run_program(
        tmp_path,
        "staging",
        """
        from infra.aws.database import Database, DatabaseArgs
        from infra.aws.network import Network, NetworkArgs
        network = Network("network", NetworkArgs(settings=config.network, region=config.region), naming, with_provider)
        db = Database("database", DatabaseArgs(settings=config.database, tier=config.tier, vpc_id=network.vpc.id,
                      subnet_ids=network.isolated_subnet_ids), naming, with_provider)
        api = aws.ec2.SecurityGroup("api-sg", vpc_id=network.vpc.id, description="api", opts=with_provider)
        db.allow_from("api", api.id, "API tasks")
        pulumi.export("apiSg", api.id)
        pulumi.export("dbSg", db.security_group.id)
        """,
    )
    (rule,) = run.of_type(INGRESS)
    assert rule.name == "database-from-api"
    assert run.component_of(rule) == run.one("shipyard:aws:Database")
    assert rule.inputs["securityGroupId"] == run.outputs["dbSg"]
    assert rule.inputs["referencedSecurityGroupId"] == run.outputs["apiSg"]
    assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("tcp", 5432, 5432)
    assert rule.inputs["description"] == "API tasks"


def test_parameter_group_forces_tls_and_logs_slow_statements_and_connections(any_stack: StackRun) -> None:
    params = _parameters(any_stack)
    assert params["rds.force_ssl"] == ("1", "pending-reboot")
    assert params["shared_preload_libraries"] == ("pg_stat_statements", "pending-reboot")
    assert params["log_min_duration_statement"] == ("500", "immediate")
    assert params["log_connections"][0] == "1"
    assert params["log_disconnections"][0] == "1"
    assert "max_connections" not in params
    assert _instance(any_stack).inputs["parameterGroupName"] == any_stack.one(PARAMS).inputs["name"]


def test_slow_statement_threshold_and_max_connections_come_from_config() -> None:
    run = evaluate("staging", config_overrides={"shipyard:database": {"slowStatementMs": 250, "maxConnections": 80}})
    params = _parameters(run)
    assert params["log_min_duration_statement"][0] == "250"
    assert params["max_connections"] == ("80", "pending-reboot")


def test_logs_exported_into_pre_created_groups_with_retention(any_stack: StackRun) -> None:
    db = _instance(any_stack)
    assert db.inputs["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    retention = {"staging": 30, "prod": 90}[any_stack.stack]
    for export in ("postgresql", "upgrade"):
        group = any_stack.one(LOG_GROUP, f"database-logs-{export}")
        assert group.inputs["name"] == f"/aws/rds/instance/shipyard-{any_stack.stack}-db/{export}"
        assert group.inputs["retentionInDays"] == retention
        assert group.urn in db.depends_on
    assert any_stack.outputs["databaseLogGroup"] == f"/aws/rds/instance/shipyard-{any_stack.stack}-db/postgresql"


def test_aws_backup_owns_the_backup_window_and_retention(any_stack: StackRun) -> None:
    """Both stacks back up continuously with AWS Backup, which then manages the instance's backup window and
    retention (terraform-provider-aws #33465, CloudFormation roadmap #2167): the program sets them at create
    (the retention equal to the rule's) and ignores both afterwards, so a preview after a backup is clean."""
    db = _instance(any_stack)
    assert db.inputs["backupRetentionPeriod"] == {"staging": 7, "prod": 30}[any_stack.stack]
    rule = next(r for r in any_stack.one("aws:backup/plan:Plan").inputs["rules"] if r.get("enableContinuousBackup"))
    assert rule["lifecycle"]["deleteAfter"] == db.inputs["backupRetentionPeriod"]
    assert db.inputs["backupWindow"] == "03:00-04:00"
    assert sorted(db.ignore_changes) == ["backupRetentionPeriod", "backupWindow"]
    assert db.inputs["maintenanceWindow"] == "sun:05:00-sun:06:00"


def test_without_continuous_backup_the_program_owns_window_and_retention() -> None:
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:backups": {"continuous": False},
            "shipyard:database": {"backupWindow": "05:00-06:00", "maintenanceWindow": "sat:07:00-sat:08:00"},
        },
    )
    db = _instance(run)
    assert (db.inputs["backupWindow"], db.inputs["maintenanceWindow"]) == ("05:00-06:00", "sat:07:00-sat:08:00")
    assert db.inputs["backupRetentionPeriod"] == 7
    assert db.ignore_changes == ()


def test_prod_keeps_a_final_snapshot_whose_name_cannot_collide(prod: StackRun) -> None:
    """`<id>-final` made the second destroy (after a re-create) fail on the first destroy's snapshot: the name
    carries a suffix drawn once per stack (pulumi_random, kept in state)."""
    db = _instance(prod).inputs
    suffix = prod.one("random:index/randomId:RandomId", "database-final-snapshot-suffix")
    assert suffix.inputs["byteLength"] == 4
    assert db["skipFinalSnapshot"] is False
    assert db["finalSnapshotIdentifier"] == f"shipyard-prod-db-final-{suffix.outputs['hex']}"
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", db["finalSnapshotIdentifier"])
    assert db["deleteAutomatedBackups"] is False
    assert db["copyTagsToSnapshot"] is True
    assert db["tags"][backup_selection_tag[0]] == backup_selection_tag[1]


def test_staging_skips_the_final_snapshot_so_it_can_be_re_created(staging: StackRun) -> None:
    db = _instance(staging).inputs
    assert db["skipFinalSnapshot"] is True
    assert "finalSnapshotIdentifier" not in db
    assert staging.of_type("random:index/randomId:RandomId") == []


def test_prod_is_multi_az_protected_and_customer_key_encrypted(prod: StackRun) -> None:
    db = _instance(prod)
    assert db.protect is True
    assert db.inputs["multiAz"] is True
    assert db.inputs["deletionProtection"] is True
    key = prod.one(KMS_KEY, "database-key")
    assert prod.component_of(key) == prod.one("shipyard:aws:Database")
    assert key.inputs["enableKeyRotation"] is True
    for field in ("kmsKeyId", "performanceInsightsKmsKeyId", "masterUserSecretKmsKeyId"):
        assert db.inputs[field] == key.outputs["arn"]
    policy = json.loads(key.inputs["policy"])
    via = policy["Statement"][1]["Condition"]["StringEquals"]["kms:ViaService"]
    assert sorted(via) == ["rds.us-east-1.amazonaws.com", "secretsmanager.us-east-1.amazonaws.com"]


def test_staging_is_single_az_unprotected_on_aws_managed_keys(staging: StackRun) -> None:
    db = _instance(staging)
    assert db.protect is False
    assert db.inputs["multiAz"] is False
    assert db.inputs["deletionProtection"] is False
    assert db.inputs["storageEncrypted"] is True  # still encrypted, with the aws/rds key
    assert "kmsKeyId" not in db.inputs
    assert [k for k in staging.of_type(KMS_KEY) if k.name.startswith("database")] == []


def test_customer_key_is_a_config_choice_in_staging_too() -> None:
    run = evaluate("staging", config_overrides={"shipyard:database": {"customerManagedKey": True}})
    assert _instance(run).inputs["kmsKeyId"] == run.one(KMS_KEY, "database-key").outputs["arn"]
    assert _instance(run).protect is False  # protect follows the tier, not the key


def test_performance_insights_everywhere_enhanced_monitoring_in_prod(staging: StackRun, prod: StackRun) -> None:
    for run in (staging, prod):
        db = _instance(run).inputs
        assert db["performanceInsightsEnabled"] is True
        assert db["performanceInsightsRetentionPeriod"] == 7
    assert _instance(staging).inputs["monitoringInterval"] == 0
    assert "monitoringRoleArn" not in _instance(staging).inputs
    prod_db = _instance(prod).inputs
    assert prod_db["monitoringInterval"] == 60
    role = prod.one("aws:iam/role:Role", "database-monitoring-role")
    assert prod_db["monitoringRoleArn"] == role.outputs["arn"]
    principal = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]["Principal"]
    assert principal == {"Service": "monitoring.rds.amazonaws.com"}
    attachment = prod.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "database-monitoring-policy")
    assert attachment.inputs["policyArn"].endswith("service-role/AmazonRDSEnhancedMonitoringRole")


def test_endpoint_output_is_host_and_port_without_credentials(any_stack: StackRun) -> None:
    run, stack = any_stack, any_stack.stack
    endpoint = run.outputs["databaseEndpoint"]
    host, port = endpoint.rsplit(":", 1)
    assert host.startswith(f"shipyard-{stack}-db.") and host.endswith(".rds.amazonaws.com")
    assert port == "5432"
    assert "databaseEndpoint" not in run.secret_outputs


def test_master_password_rotates_monthly_in_the_maintenance_window(any_stack: StackRun) -> None:
    rotation = any_stack.one("aws:secretsmanager/secretRotation:SecretRotation", "database-password-rotation")
    assert any_stack.component_of(rotation) == any_stack.one("shipyard:aws:Database")
    assert rotation.inputs["secretId"] == any_stack.outputs["databaseSecretArn"]
    assert "rotationLambdaArn" not in rotation.inputs  # RDS rotates its own secret
    assert rotation.inputs["rotationRules"] == {"scheduleExpression": "cron(0 5 ? * SUN#1 *)", "duration": "1h"}


def test_rotation_schedule_follows_the_maintenance_window() -> None:
    assert master_password_rotation_schedule("sat:07:30-sat:08:30") == "cron(30 7 ? * SAT#1 *)"
    assert master_password_rotation_schedule("02:15-03:15") == "cron(15 2 1 * ? *)"

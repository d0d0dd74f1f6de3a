"""Database: PostgreSQL on RDS, private, encrypted, TLS-only, observable, and hard to lose.

What is on by default (and why, where the well-known modules differ):
- `rds.force_ssl=1`: clients that do not negotiate TLS are refused (SST ships "0");
- the master password is created and rotated by RDS in Secrets Manager (`manage_master_user_password`):
  nothing sensitive in config, state or the task definition — consumers read `master_secret_arn`;
- in prod a final snapshot on delete (named uniquely per life of the stack), deletion protection, multi-AZ, and
  Pulumi's `protect` on the instance, so neither `pulumi destroy` nor a replace-by-accident can drop the data;
  staging skips the final snapshot, so it can be destroyed and re-created the same day;
- logs exported to CloudWatch into log groups created here first, so they get a retention (RDS would create
  them with "never expire");
- its own security group with no ingress at all until a consumer is admitted with `allow_from`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.aws.kms import customer_key
from infra.aws.trust import rds_monitoring_trust_policy
from infra.component import Component
from infra.config import DatabaseConfig, Tier
from infra.naming import Naming

if TYPE_CHECKING:
    from infra.aws.network import Network

PORT = 5432
DB_NAME = "app"
"""Name of the application database created with the instance (the app's DATABASE_URL path)."""
MASTER_USERNAME = "app_admin"
"""Master user; its password lives only in the RDS-managed secret (`master_secret_arn`)."""
LOG_EXPORTS = ("postgresql", "upgrade")
"""CloudWatch log exports; each gets a pre-created group `/aws/rds/instance/<identifier>/<export>`."""
PERFORMANCE_INSIGHTS_RETENTION_DAYS = 7
"""The free tier of Performance Insights; longer retention is billed per vCPU."""

backup_selection_tag: tuple[str, str] = ("backup", "daily")
"""(key, value) tag on the instance that the AWS Backup plan selects resources by."""

ROTATION_WINDOW_HOURS = 1
"""How long Secrets Manager may take to rotate, starting at the scheduled time."""

ENHANCED_MONITORING_POLICY_ARN = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


def parameter_group_family(engine_version: str) -> str:
    """`17` or `17.4` -> `postgres17` (the family follows the major version only)."""
    return f"postgres{engine_version.split('.')[0]}"


def master_password_rotation_schedule(maintenance_window: str) -> str:
    """Monthly, at the start of the maintenance window: `sun:05:00-...` -> `cron(0 5 ? * SUN#1 *)`.

    RDS would rotate the managed password every 7 days at a time of its choosing. ECS injects the password
    when a task starts, so after a rotation the task's *new* connections fail until it re-reads the secret
    (or is replaced); rotating monthly in the announced maintenance hour makes that a planned event.
    """
    start = maintenance_window.split("-")[0]
    *day, hour, minute = start.split(":")
    if day:
        return f"cron({int(minute)} {int(hour)} ? * {day[0].upper()}#1 *)"
    return f"cron({int(minute)} {int(hour)} 1 * ? *)"


@dataclass(frozen=True)
class DatabaseArgs:
    settings: DatabaseConfig
    """The `shipyard:database` block: engine version, size, windows, retention, monitoring (infra/config.py)."""
    tier: Tier
    """prod adds the Pulumi `protect` option on the instance (tier, not config: it must not be waivable)."""
    vpc_id: pulumi.Input[str]
    """VPC of the security group."""
    subnet_ids: list[pulumi.Output[str]]
    """The network's isolated subnets (no route out of the VPC); one per AZ, so multi-AZ has a standby home."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`) for the pre-created log-export groups; None = default encryption."""
    continuous_backup: bool = False
    """True when AWS Backup backs the instance up continuously (`backups.enabled` and `backups.continuous`).
    AWS Backup then owns the automated-backup window and retention: it sets them on the instance itself
    (https://docs.aws.amazon.com/aws-backup/latest/devguide/point-in-time-recovery.html), and a program that sets
    them too shows drift on every preview and can fail an apply while the two disagree (terraform-provider-aws
    #33465; CloudFormation coverage roadmap #2167). So the program sets both at create only — the retention equal
    to the rule's (infra/config.py checks it), so automated backups exist before the first AWS Backup job, and
    the configured window as the first one — and ignores changes to both afterwards (`ignore_changes`): a
    `pulumi preview` after AWS Backup has taken over shows no change. The backup's time is then
    `backups.schedule`."""


AWS_BACKUP_OWNED_INPUTS = ("backupRetentionPeriod", "backupWindow")
"""Instance inputs AWS Backup's continuous backup manages (see `DatabaseArgs.continuous_backup`)."""


def final_snapshot_identifier(identifier: str, suffix: str) -> str:
    """`<identifier>-final-<suffix>`: unique per life of the stack, so a second destroy (after a re-create) does
    not fail on the snapshot the first one left ("DBSnapshotAlreadyExists"). Snapshot identifiers: 1-255
    letters, digits and hyphens, starting with a letter, no double or trailing hyphen."""
    return f"{identifier}-final-{suffix}"


class Database(Component):
    instance: aws.rds.Instance
    security_group: aws.ec2.SecurityGroup
    address: pulumi.Output[str]
    port: pulumi.Output[int]
    db_name: str
    identifier: pulumi.Output[str]
    arn: pulumi.Output[str]
    master_secret_arn: pulumi.Output[str]
    kms_key_arn: pulumi.Output[str] | None
    log_group_name: pulumi.Output[str]
    subnet_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: DatabaseArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Database", name, naming, opts)
        settings = args.settings
        self.settings = settings
        identifier = naming.physical("db")
        family = parameter_group_family(settings.engine_version)

        self.kms_key: aws.kms.Key | None = None
        self.kms_key_arn = None
        if settings.customer_managed_key:
            # Through RDS (storage, Performance Insights) and Secrets Manager (the master secret); see kms.py.
            self.kms_key = customer_key(
                self,
                "key",
                description=f"{identifier}: storage, Performance Insights and master secret",
                alias=naming.physical("db"),
                via_services=("rds", "secretsmanager"),
            )
            self.kms_key_arn = self.kms_key.arn

        self.security_group = aws.ec2.SecurityGroup(
            self.child_name("sg"),
            vpc_id=args.vpc_id,
            description=f"PostgreSQL {identifier}: ingress only from consumers admitted by allow_from",
            # No inline ingress/egress: the provider then leaves rules alone, so the standalone rules added by
            # allow_from are the only ones, and RDS needs no egress (it never opens connections).
            tags={"Name": naming.physical("db")},
            opts=self.opts(),
        )
        subnet_group = aws.rds.SubnetGroup(
            self.child_name("subnets"),
            name=naming.physical("db"),
            description=f"Isolated subnets of {identifier}",
            subnet_ids=args.subnet_ids,
            opts=self.opts(),
        )
        parameter_group = aws.rds.ParameterGroup(
            self.child_name("params"),
            # The family is in the name: a major upgrade creates the new group before the old one goes.
            name=naming.physical("db", family),
            family=family,
            description=f"{identifier}: TLS only, pg_stat_statements, slow and connection logging",
            parameters=self._parameters(settings),
            opts=self.opts(),
        )

        log_groups = [
            aws.cloudwatch.LogGroup(
                self.child_name("logs", export),
                name=f"/aws/rds/instance/{identifier}/{export}",
                retention_in_days=settings.log_retention_days,
                # Pre-created here, so the stack's key applies: RDS itself would create them unencrypted.
                kms_key_id=args.log_kms_key_arn,
                opts=self.opts(),
            )
            for export in LOG_EXPORTS
        ]
        self.log_group_name = log_groups[0].name

        monitoring_role = None
        if settings.enhanced_monitoring_interval:
            monitoring_role = aws.iam.Role(
                self.child_name("monitoring-role"),
                name=naming.account_wide("db-monitoring", max_length=64),  # IAM: account-global
                # Only for this instance of this account (infra/aws/trust.py).
                assume_role_policy=pulumi.Output.all(
                    aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id,
                    aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region,
                ).apply(lambda values: rds_monitoring_trust_policy(values[0], values[1], identifier)),
                opts=self.opts(),
            )
            aws.iam.RolePolicyAttachment(
                self.child_name("monitoring-policy"),
                role=monitoring_role.name,
                policy_arn=ENHANCED_MONITORING_POLICY_ARN,
                opts=self.opts(),
            )

        key_arn = self.kms_key.arn if self.kms_key else None
        final_snapshot = self._final_snapshot_identifier(identifier, args.tier)
        owned_by_backup = list(AWS_BACKUP_OWNED_INPUTS) if args.continuous_backup else []
        self.instance = aws.rds.Instance(
            self.child_name("instance"),
            identifier=identifier,
            engine="postgres",
            engine_version=settings.engine_version,
            # Minor upgrades in the maintenance window keep security fixes flowing without a deploy.
            auto_minor_version_upgrade=True,
            allow_major_version_upgrade=False,
            # Past a major's end of standard support RDS would silently bill Extended Support; refuse it so
            # the upgrade is planned instead.
            engine_lifecycle_support="open-source-rds-extended-support-disabled",
            instance_class=settings.instance_class,
            db_name=DB_NAME,
            username=MASTER_USERNAME,
            manage_master_user_password=True,
            master_user_secret_kms_key_id=key_arn,
            port=PORT,
            storage_type="gp3",
            allocated_storage=settings.allocated_storage_gb,
            max_allocated_storage=settings.max_allocated_storage_gb,
            storage_encrypted=True,
            kms_key_id=key_arn,
            publicly_accessible=False,
            # IAM tokens instead of stored passwords for read-only roles such as the restore validator's
            # (app/migrations/0003); restore-test copies get the same setting from infra/aws/backup.py.
            iam_database_authentication_enabled=True,
            db_subnet_group_name=subnet_group.name,
            vpc_security_group_ids=[self.security_group.id],
            parameter_group_name=parameter_group.name,
            multi_az=settings.multi_az,
            deletion_protection=settings.deletion_protection,
            backup_retention_period=settings.backup_retention_days,
            # With continuous backup these two are set at create only; then AWS Backup owns them
            # (DatabaseArgs.continuous_backup, ignore_changes below).
            backup_window=settings.backup_window,
            maintenance_window=settings.maintenance_window,
            copy_tags_to_snapshot=True,
            # Prod always leaves a final snapshot; staging is destroyed and re-created routinely and skips it.
            skip_final_snapshot=final_snapshot is None,
            final_snapshot_identifier=final_snapshot,
            # Keep automated backups after a delete: with the final snapshot they are the way back.
            delete_automated_backups=False,
            enabled_cloudwatch_logs_exports=list(LOG_EXPORTS),
            performance_insights_enabled=settings.performance_insights,
            performance_insights_retention_period=(
                PERFORMANCE_INSIGHTS_RETENTION_DAYS if settings.performance_insights else None
            ),
            performance_insights_kms_key_id=key_arn if settings.performance_insights else None,
            monitoring_interval=settings.enhanced_monitoring_interval,
            monitoring_role_arn=monitoring_role.arn if monitoring_role else None,
            # Parameter changes wait for the maintenance window (or a reboot) instead of restarting prod now.
            apply_immediately=False,
            tags={backup_selection_tag[0]: backup_selection_tag[1], "Name": identifier},
            opts=self.opts(
                protect=args.tier == "prod",
                # RDS must find the groups existing, or it creates them without retention.
                depends_on=list(log_groups),
                ignore_changes=owned_by_backup,
            ),
        )

        self.db_name = DB_NAME
        self.subnet_group_name = subnet_group.name
        self.address = self.instance.address
        self.port = self.instance.port
        self.identifier = self.instance.identifier
        self.arn = self.instance.arn
        self.master_secret_arn = self.instance.master_user_secrets.apply(lambda secrets: secrets[0].secret_arn)
        # Adjusts the schedule of the secret RDS manages (no rotation Lambda: RDS rotates it itself).
        aws.secretsmanager.SecretRotation(
            self.child_name("password-rotation"),
            secret_id=self.master_secret_arn,
            rotation_rules=aws.secretsmanager.SecretRotationRotationRulesArgs(
                schedule_expression=master_password_rotation_schedule(settings.maintenance_window),
                duration=f"{ROTATION_WINDOW_HOURS}h",
            ),
            opts=self.opts(),
        )
        self.endpoint = pulumi.Output.concat(self.address, ":", self.port.apply(str))
        self.register_outputs(
            {
                "address": self.address,
                "port": self.port,
                "identifier": self.identifier,
                "masterSecretArn": self.master_secret_arn,
                "logGroupName": self.log_group_name,
            }
        )

    @staticmethod
    def _parameters(settings: DatabaseConfig) -> list[aws.rds.ParameterGroupParameterArgs]:
        parameters = [
            # Static parameters: RDS refuses "immediate" for them; they apply at the next reboot. A fresh
            # instance starts with them already, so only later edits wait for a reboot.
            aws.rds.ParameterGroupParameterArgs(name="rds.force_ssl", value="1", apply_method="pending-reboot"),
            aws.rds.ParameterGroupParameterArgs(
                name="shared_preload_libraries", value="pg_stat_statements", apply_method="pending-reboot"
            ),
            aws.rds.ParameterGroupParameterArgs(
                name="log_min_duration_statement", value=str(settings.slow_statement_ms), apply_method="immediate"
            ),
            aws.rds.ParameterGroupParameterArgs(name="log_connections", value="1", apply_method="immediate"),
            aws.rds.ParameterGroupParameterArgs(name="log_disconnections", value="1", apply_method="immediate"),
        ]
        if settings.max_connections is not None:
            parameters.append(
                aws.rds.ParameterGroupParameterArgs(
                    name="max_connections", value=str(settings.max_connections), apply_method="pending-reboot"
                )
            )
        return parameters

    def _final_snapshot_identifier(self, identifier: str, tier: Tier) -> pulumi.Output[str] | None:
        """Prod: a name with a random suffix drawn once per stack (kept in state, stable across updates), so the
        snapshot of an earlier life of the stack never collides with this one's. Staging: no final snapshot."""
        if tier != "prod":
            return None
        suffix = random.RandomId(
            self.child_name("final-snapshot-suffix"),
            byte_length=4,
            opts=self.opts(),
        )
        return suffix.hex.apply(lambda hex_suffix: final_snapshot_identifier(identifier, hex_suffix))

    def allow_from(self, name: str, source_security_group_id: pulumi.Input[str], description: str) -> None:
        """Admit connections on the PostgreSQL port from one security group (the API tasks, a Lambda...)."""
        aws.vpc.SecurityGroupIngressRule(
            self.child_name("from", name),
            security_group_id=self.security_group.id,
            referenced_security_group_id=source_security_group_id,
            ip_protocol="tcp",
            from_port=PORT,
            to_port=PORT,
            description=description,
            tags={"Name": self.naming.physical("db-from", name)},
            opts=self.opts(),
        )

    def secret_read_statements(self) -> pulumi.Output[list[dict[str, Any]]]:
        """IAM statements a client needs to read the master secret at run time (and decrypt it when the
        database uses a customer KMS key) — nothing else."""
        key_arn: pulumi.Input[str | None] = self.kms_key_arn

        def statements(arns: list[Any]) -> list[dict[str, Any]]:
            secret_arn, kms_arn = arns
            found: list[dict[str, Any]] = [
                {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": [secret_arn]}
            ]
            if kms_arn:
                found.append(
                    {
                        "Effect": "Allow",
                        "Action": ["kms:Decrypt"],
                        "Resource": [kms_arn],
                        "Condition": {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}},
                    }
                )
            return found

        return pulumi.Output.all(self.master_secret_arn, key_arn).apply(statements)

    def client_security_group(
        self, owner: Component, network: Network, name: str, description: str
    ) -> aws.ec2.SecurityGroup:
        """A security group for a client Lambda of this database, created under `owner` and admitted here.

        Egress is PostgreSQL inside the VPC and HTTPS for Secrets Manager: through NAT when there is one,
        else only to the VPC (the Secrets Manager interface endpoint).
        """
        cidr = network.settings.cidr
        group = aws.ec2.SecurityGroup(
            owner.child_name("sg"),
            vpc_id=network.vpc.id,
            description=description,
            egress=[
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp", from_port=PORT, to_port=PORT, cidr_blocks=[cidr], description="PostgreSQL"
                ),
                aws.ec2.SecurityGroupEgressArgs(
                    protocol="tcp",
                    from_port=443,
                    to_port=443,
                    cidr_blocks=["0.0.0.0/0"] if network.settings.nat != "none" else [cidr],
                    description="Secrets Manager (endpoint or NAT)",
                ),
            ],
            tags={"Name": self.naming.physical(name)},
            opts=owner.opts(),
        )
        self.allow_from(name, group.id, description)
        return group

"""Backups and disaster recovery with AWS Backup: the database and the uploads bucket, copied offsite, restore-tested.

What this component creates (each piece is driven by `shipyard:backups`, infra/config.py):
- a vault encrypted with its own customer KMS key, and in prod a Vault Lock (see `BackupArgs.settings`);
- a plan: a daily rule at `schedule` in `timezone` kept `retentionDays`, with continuous backup
  (point-in-time restore, RPO of minutes) for RDS and S3 when `continuous`; and, with `offsite`, a monthly
  rule whose recovery point is copied to a vault in the second region (own key there) and kept a year;
- a selection by the `backup=daily` tag (`infra.aws.database.backup_selection_tag`) that the database and the
  uploads bucket carry, narrowed to RDS instances and S3 buckets of this stack (the `stack` tag the provider
  puts on everything: two stacks in one account must not back up each other's resources into their vaults);
- the IAM role AWS Backup works with: AWS's managed policies for backup, restore, and S3 backup/restore;
- failure notifications to the critical alert topic: vault notifications for the events AWS Backup still
  sends (copy job failed, S3 object backup/restore failed, continuous backup interrupted) and an EventBridge
  rule for failed/aborted/expired backup jobs of our vaults. BACKUP_JOB_FAILED and RESTORE_JOB_FAILED are
  accepted by PutBackupVaultNotifications but deprecated — AWS no longer sends them (API reference, "The list
  below includes ... deprecated events") — so they are not relied on;
- with `restoreTesting`: a monthly restore testing plan + a selection for the database whose restored copy lands
  in the isolated DB subnets behind a security group that admits only the validator's probe, and the validator
  (lambdas/restore_validation) in two halves, so that neither needs NAT or interface endpoints: the validator
  outside the VPC, invoked by an EventBridge rule on the plan's restore-job events (`rds:DescribeDBInstances`,
  `lambda:InvokeFunction` on the probe, `backup:PutRestoreValidationResult`), and the probe in the VPC
  (`rds-db:connect` as the read-only validation role, and a network path to restore-test copies only); plus a
  small daily Lambda
  (lambdas/restore_test_age) publishing the age of the newest validated restore, because a CloudWatch alarm
  cannot look back the 35 days that "no restore test this month" needs.

Nothing here when `backups.enabled` is false (the stack does not create this component).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import rds_ca
from infra.aws.database import PORT, Database, backup_selection_tag
from infra.aws.function import PythonFunction, PythonFunctionArgs, VpcPlacement
from infra.aws.kms import DELETION_WINDOW_DAYS, customer_key, key_policy
from infra.aws.monitoring import BackupWatch, FunctionWatch, QueueWatch
from infra.aws.network import Network
from infra.component import Component
from infra.config import BackupsConfig, Tier
from infra.naming import Naming

MANAGED_POLICY_ARNS: tuple[str, ...] = (
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup",
    "arn:aws:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForRestores",
    "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Backup",
    "arn:aws:iam::aws:policy/AWSBackupServiceRolePolicyForS3Restore",
)
"""What AWS Backup needs to back up and restore RDS and S3 (AWS maintains these as services change)."""

VAULT_NOTIFICATION_EVENTS: tuple[str, ...] = (
    "COPY_JOB_FAILED",
    "S3_BACKUP_OBJECT_FAILED",
    "S3_RESTORE_OBJECT_FAILED",
    "CONTINUOUS_BACKUP_INTERRUPTED",
)
"""Failure events AWS Backup still delivers to a vault's SNS topic. Backup-job failures come through
EventBridge instead (`FAILED_JOB_STATES`): the BACKUP_JOB_FAILED/RESTORE_JOB_FAILED vault events are deprecated
and never sent, and BACKUP_JOB_COMPLETED would page the on-call for every successful backup as well."""

SELECTED_RESOURCE_TYPES: tuple[str, ...] = ("arn:aws:rds:*:*:db:*", "arn:aws:s3:::*")
"""What the plan may back up at all: RDS instances and S3 buckets (then only those with both tags)."""

FAILED_JOB_STATES: tuple[str, ...] = ("FAILED", "ABORTED", "EXPIRED")
"""`detail.state` of a `Backup Job State Change` event that means no recovery point was made."""

RESTORE_EVENT_STATUSES: tuple[str, ...] = ("COMPLETED", "FAILED", "ABORTED")
"""`detail.status` of the restore-test jobs the validator acts on (contract: validate COMPLETED, count the rest)."""

COMPLIANCE_GRACE_DAYS = 3
"""Compliance-mode lock: days the lock can still be removed after it is set (AWS's minimum)."""

PROBE_TIMEOUT_SECONDS = 90
"""Connect (5 s) plus six read-only checks with a 20 s statement timeout each, in practice well under a second."""
VALIDATOR_TIMEOUT_SECONDS = 150
"""Describe + the probe's whole timeout (the validator waits 100 s for its answer) + the report, with room."""
VALIDATION_DB_USER = "restore_validator"
"""The read-only LOGIN role app/migrations/0003_restore_validator_role.sql creates (IAM auth via rds_iam)."""

AGE_CHECK_SCHEDULE = "cron(0 10 * * ? *)"
"""The restore-test age is measured daily at 10:00 (backups.timezone), after the restore test's morning start."""

RESTORE_TEST_SELECTION_WINDOW_DAYS = 7
"""The restore test takes the latest recovery point of the last week: older means backups stopped, which the
test should then fail on rather than quietly restore a stale one."""


@dataclass(frozen=True)
class RestoreTestingArgs:
    network: Network
    """VPC and private subnets of the validator's probe (it reaches the restored copy and nothing else)."""
    layer_arn: pulumi.Input[str]
    """`LambdaDependencies.arn` (pg8000, Powertools)."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`) for the functions' log groups; None keeps the default encryption."""


@dataclass(frozen=True)
class BackupArgs:
    settings: BackupsConfig
    """The `shipyard:backups` block. Its `vaultLock` is applied in governance mode unless it says compliance:
    governance still lets an IAM principal with backup:DeleteBackupVaultLockConfiguration lift the lock, which is
    the only way out of a wrong min/max or of a legal obligation to erase data; compliance mode becomes
    irrevocable after 3 days (not even the account root or AWS Support can shorten it), so a typo would pin
    every recovery point, and its bill, for up to `maxRetentionDays`. Governance already stops what we guard
    against — a compromised app or CI role deleting recovery points — as long as that permission is not
    granted to them."""
    tier: Tier
    """prod keeps the vaults on `pulumi destroy` (force_destroy off); staging may drop its recovery points."""
    region: str
    """The stack's region (the offsite vault must be elsewhere: infra/config.py checks it)."""
    database: Database
    """Its instance carries the selection tag; restore tests restore it; IAM auth is what the validator uses."""
    alert_topic_arn: pulumi.Input[str]
    """The critical alert topic (`alerts.topic_arns["critical"]`); its policy admits backup and events."""
    offsite_provider: aws.Provider | None = None
    """Provider in `settings.offsite.region` (required when `offsite` is set), like the edge provider."""
    restore_testing: RestoreTestingArgs | None = None
    """Required when `settings.restore_testing`; ignored otherwise."""


class Backup(Component):
    key: aws.kms.Key
    vault: aws.backup.Vault
    vault_name: pulumi.Output[str]
    vault_arn: pulumi.Output[str]
    plan: aws.backup.Plan
    plan_id: pulumi.Output[str]
    role: aws.iam.Role
    offsite_vault: aws.backup.Vault | None
    offsite_vault_arn: pulumi.Output[str] | None
    restore_testing_plan: aws.backup.RestoreTestingPlan | None
    restore_testing_plan_name: pulumi.Output[str] | None
    validator: PythonFunction | None
    probe: PythonFunction | None
    age_check: PythonFunction | None
    restored_db_security_group: aws.ec2.SecurityGroup | None

    def __init__(self, name: str, args: BackupArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Backup", name, naming, opts)
        settings = args.settings
        self.settings = settings
        self.tier = args.tier
        vault_name = naming.physical("backup", max_length=50)

        self.key = customer_key(
            self,
            "key",
            description=f"{vault_name}: AWS Backup recovery points",
            alias=naming.physical("backup"),
            via_services=("backup",),
        )
        self.vault = aws.backup.Vault(
            self.child_name("vault"),
            name=vault_name,
            kms_key_arn=self.key.arn,
            force_destroy=args.tier != "prod",
            opts=self.opts(),
        )
        self.vault_name = self.vault.name
        self.vault_arn = self.vault.arn
        self._lock(self.vault, "vault-lock", self.opts())

        self.offsite_vault = None
        self.offsite_vault_arn = None
        if settings.offsite is not None:
            if args.offsite_provider is None:
                raise ValueError("backups.offsite is set but no offsite provider was given")
            self.offsite_vault = self._offsite_vault(settings.offsite.region, args.offsite_provider)
            self.offsite_vault_arn = self.offsite_vault.arn

        self.role = aws.iam.Role(
            self.child_name("role"),
            name=naming.account_wide("backup", max_length=64),  # IAM role names are account-global
            description="AWS Backup: backs up and restores (also for restore tests) the stack's tagged resources",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "backup.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            opts=self.opts(),
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                self.child_name("role", arn.rsplit("/", 1)[-1].removeprefix("AWSBackupServiceRolePolicyFor").lower()),
                role=self.role.name,
                policy_arn=arn,
                opts=self.opts(),
            )
            for arn in MANAGED_POLICY_ARNS
        ]

        self.plan = aws.backup.Plan(
            self.child_name("plan"),
            name=naming.physical("backup-plan"),
            rules=self._rules(),
            opts=self.opts(),
        )
        self.plan_id = self.plan.id
        tag_key, tag_value = backup_selection_tag
        aws.backup.Selection(
            self.child_name("selection"),
            name=naming.physical("tagged", max_length=50),
            plan_id=self.plan.id,
            iam_role_arn=self.role.arn,
            # Resource types AND every condition (AWS documents both as AND; ListOfTags would be OR-ed, and how it
            # combines with conditions is not documented). The stack tag comes from the provider's default tags
            # (infra/aws/stack.py): every resource of this stack has it, no resource of another stack in the same
            # account does.
            resources=list(SELECTED_RESOURCE_TYPES),
            conditions=[
                aws.backup.SelectionConditionArgs(
                    string_equals=[
                        aws.backup.SelectionConditionStringEqualArgs(key=f"aws:ResourceTag/{tag_key}", value=tag_value),
                        aws.backup.SelectionConditionStringEqualArgs(key="aws:ResourceTag/stack", value=naming.stack),
                    ]
                )
            ],
            # The role must be able to act before the first scheduled job looks for it.
            opts=self.opts(depends_on=attachments),
        )

        aws.backup.VaultNotifications(
            self.child_name("notifications"),
            backup_vault_name=self.vault.name,
            sns_topic_arn=args.alert_topic_arn,
            backup_vault_events=list(VAULT_NOTIFICATION_EVENTS),
            opts=self.opts(),
        )
        failed_jobs = aws.cloudwatch.EventRule(
            self.child_name("job-failed"),
            name=naming.physical("backup-job-failed"),
            description=f"AWS Backup jobs of {vault_name} that made no recovery point → critical alert topic",
            event_pattern=self.vault.name.apply(
                lambda vault: json.dumps(
                    {
                        "source": ["aws.backup"],
                        "detail-type": ["Backup Job State Change"],
                        "detail": {"state": list(FAILED_JOB_STATES), "backupVaultName": [vault]},
                    }
                )
            ),
            opts=self.opts(),
        )
        aws.cloudwatch.EventTarget(
            self.child_name("job-failed-target"),
            rule=failed_jobs.name,
            arn=args.alert_topic_arn,
            opts=self.opts(),
        )

        self.restore_testing_plan = None
        self.restore_testing_plan_name = None
        self.validator = None
        self.probe = None
        self.age_check = None
        self.restored_db_security_group = None
        if settings.restore_testing:
            if args.restore_testing is None:
                raise ValueError("backups.restoreTesting is on but no RestoreTestingArgs were given")
            self._restore_testing(args.database, args.restore_testing, attachments)

        self.register_outputs(
            {
                "vaultName": self.vault_name,
                "vaultArn": self.vault_arn,
                "planId": self.plan_id,
                "offsiteVaultArn": self.offsite_vault_arn,
                "restoreTestingPlanName": self.restore_testing_plan_name,
            }
        )

    # ------------------------------------------------------------------------------------------ vaults
    def _lock(self, vault: aws.backup.Vault, part: str, opts: pulumi.ResourceOptions) -> None:
        lock = self.settings.vault_lock
        if lock is None:
            return
        aws.backup.VaultLockConfiguration(
            self.child_name(part),
            backup_vault_name=vault.name,
            min_retention_days=lock.min_retention_days,
            max_retention_days=lock.max_retention_days,
            # Without changeable_for_days the lock is in governance mode; with it, compliance mode.
            changeable_for_days=COMPLIANCE_GRACE_DAYS if lock.mode == "compliance" else None,
            opts=opts,
        )

    def _offsite_vault(self, region: str, provider: aws.Provider) -> aws.backup.Vault:
        """The copy vault in the second region, with a key of its own there (KMS keys never leave their region)."""
        offsite = self.opts(provider=provider)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        # In another region than the stack's: two stacks of the same name (one per region) that copy to the
        # same offsite region would clash, so the name carries the stack's region (infra/naming.py).
        name = self.naming.account_wide("backup-offsite", max_length=50)
        key = aws.kms.Key(
            self.child_name("offsite-key"),
            description=f"{name}: AWS Backup offsite copies in {region}",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            # The offsite region is explicit: copies are decrypted there through AWS Backup only.
            policy=account_id.apply(lambda account: key_policy(account, region, ("backup",))),
            opts=offsite,
        )
        aws.kms.Alias(
            self.child_name("offsite-key-alias"),
            name=f"alias/{self.naming.account_wide('backup-offsite')}",
            target_key_id=key.key_id,
            opts=offsite,
        )
        vault = aws.backup.Vault(
            self.child_name("offsite-vault"),
            name=name,
            kms_key_arn=key.arn,
            force_destroy=self.tier != "prod",
            opts=offsite,
        )
        # Locked like the local vault: the offsite copy is what survives a compromised account's clean-up too.
        self._lock(vault, "offsite-vault-lock", offsite)
        return vault

    # ------------------------------------------------------------------------------------------ plan
    def _rules(self) -> list[aws.backup.PlanRuleArgs]:
        settings = self.settings
        daily = aws.backup.PlanRuleArgs(
            rule_name="daily",
            target_vault_name=self.vault.name,
            schedule=settings.schedule,
            schedule_expression_timezone=settings.timezone,
            # Start within an hour, finish within a day: a job that cannot start by 03:00 is reported failed
            # (EXPIRED) instead of silently running into business hours.
            start_window=60,
            completion_window=24 * 60,
            enable_continuous_backup=settings.continuous,
            lifecycle=aws.backup.PlanRuleLifecycleArgs(delete_after=settings.retention_days),
            recovery_point_tags={"rule": "daily"},
        )
        rules = [daily]
        if settings.offsite is not None and self.offsite_vault is not None:
            offsite = settings.offsite
            rules.append(
                aws.backup.PlanRuleArgs(
                    rule_name="monthly-offsite",
                    target_vault_name=self.vault.name,
                    schedule=offsite.schedule,
                    schedule_expression_timezone=settings.timezone,
                    start_window=60,
                    completion_window=24 * 60,
                    # A snapshot recovery point: a continuous one could not be kept beyond 35 days offsite.
                    enable_continuous_backup=False,
                    lifecycle=aws.backup.PlanRuleLifecycleArgs(delete_after=settings.retention_days),
                    copy_actions=[
                        aws.backup.PlanRuleCopyActionArgs(
                            destination_vault_arn=self.offsite_vault.arn,
                            lifecycle=aws.backup.PlanRuleCopyActionLifecycleArgs(delete_after=offsite.retention_days),
                        )
                    ],
                    recovery_point_tags={"rule": "monthly-offsite"},
                )
            )
        return rules

    # ------------------------------------------------------------------------------------------ restore testing
    def _restore_testing(
        self, database: Database, args: RestoreTestingArgs, attachments: list[aws.iam.RolePolicyAttachment]
    ) -> None:
        settings = self.settings
        naming = self.naming
        network = args.network
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        region = aws.get_region_output(opts=invoke).region

        # Two groups of our own: the restored copy admits only the probe, and the probe reaches only the restored
        # copy (it calls no AWS API: its IAM token is signed locally). The live database's group is not touched.
        restored_sg = aws.ec2.SecurityGroup(
            self.child_name("restored-db-sg"),
            vpc_id=network.vpc.id,
            description="Restore-test copies of the database: PostgreSQL from the restore validator's probe only",
            tags={"Name": naming.physical("restored-db")},
            opts=self.opts(),
        )
        self.restored_db_security_group = restored_sg
        probe_sg = aws.ec2.SecurityGroup(
            self.child_name("probe-sg"),
            vpc_id=network.vpc.id,
            description="Restore validator probe Lambda: PostgreSQL to restore-test copies, nothing else",
            tags={"Name": naming.physical("restore-probe")},
            opts=self.opts(),
        )
        aws.vpc.SecurityGroupIngressRule(
            self.child_name("restored-db-from-probe"),
            security_group_id=restored_sg.id,
            referenced_security_group_id=probe_sg.id,
            ip_protocol="tcp",
            from_port=PORT,
            to_port=PORT,
            description="Restore validator probe Lambda",
            opts=self.opts(),
        )
        aws.vpc.SecurityGroupEgressRule(
            self.child_name("probe-to-restored-db"),
            security_group_id=probe_sg.id,
            referenced_security_group_id=restored_sg.id,
            ip_protocol="tcp",
            from_port=PORT,
            to_port=PORT,
            description="PostgreSQL on the restored copy",
            opts=self.opts(),
        )

        plan_name = naming.physical("restore-test").replace("-", "_")  # names: letters, digits, underscores
        self.restore_testing_plan = aws.backup.RestoreTestingPlan(
            self.child_name("restore-testing-plan"),
            name=plan_name,
            schedule_expression=settings.restore_testing_schedule,
            schedule_expression_timezone=settings.timezone,
            start_window_hours=4,
            recovery_point_selection=aws.backup.RestoreTestingPlanRecoveryPointSelectionArgs(
                algorithm="LATEST_WITHIN_WINDOW",
                include_vaults=[self.vault.arn],
                recovery_point_types=["SNAPSHOT", "CONTINUOUS"] if settings.continuous else ["SNAPSHOT"],
                selection_window_days=min(RESTORE_TEST_SELECTION_WINDOW_DAYS, settings.retention_days),
            ),
            opts=self.opts(),
        )
        self.restore_testing_plan_name = self.restore_testing_plan.name
        self.restore_metadata_overrides = pulumi.Output.all(database.subnet_group_name, restored_sg.id).apply(
            lambda values: restore_metadata_overrides(
                instance_class=settings.restore_test_instance_class,
                subnet_group_name=values[0],
                security_group_id=values[1],
            )
        )
        aws.backup.RestoreTestingSelection(
            self.child_name("restore-testing-selection"),
            name=naming.physical("database").replace("-", "_"),
            restore_testing_plan_name=self.restore_testing_plan.name,
            protected_resource_type="RDS",
            protected_resource_arns=[database.arn],
            iam_role_arn=self.role.arn,
            restore_metadata_overrides=self.restore_metadata_overrides,
            validation_window_hours=settings.restore_validation_window_hours,
            opts=self.opts(depends_on=attachments),
        )

        # With the RDS CA bundle the probe knows it talks to the restored copy, not whatever answers there.
        ca_file = rds_ca.archive_path_or_warn("the restore validator")
        ca_environment = {"DB_CA_FILE": ca_file} if ca_file is not None else {}
        self.probe = PythonFunction(
            self.child_name("probe"),
            PythonFunctionArgs(
                package="restore_validation",
                module="probe",
                layer_arn=args.layer_arn,
                log_kms_key_arn=args.log_kms_key_arn,
                description="Logs in to a restore-test copy of the database and checks it (for the restore validator)",
                # lambdas/restore_validation/handler.py PROBE_READ_TIMEOUT_S waits longer than this.
                timeout_seconds=PROBE_TIMEOUT_SECONDS,
                environment={"DB_NAME": database.db_name, "DB_USER": VALIDATION_DB_USER, **ca_environment},
                policy_statements=pulumi.Output.all(account_id, region).apply(
                    lambda values: probe_statements(account_id=values[0], region=values[1])
                ),
                vpc=VpcPlacement(subnet_ids=network.private_subnet_ids, security_group_ids=[probe_sg.id]),
                stack_env=False,  # publishes no metrics (the validator does); reads no STACK
                # Invoked synchronously by the validator, which reports its failures; never asynchronously.
                maximum_retry_attempts=0,
            ),
            self.naming,
            self.opts(),
        )
        self.validator = PythonFunction(
            self.child_name("validator"),
            PythonFunctionArgs(
                package="restore_validation",
                layer_arn=args.layer_arn,
                log_kms_key_arn=args.log_kms_key_arn,
                description="Validates AWS Backup restore-test copies of the database (through its probe) and reports",
                timeout_seconds=VALIDATOR_TIMEOUT_SECONDS,
                environment={"PROBE_FUNCTION": self.probe.function_name},
                policy_statements=pulumi.Output.all(account_id, region, self.probe.arn).apply(
                    lambda values: validator_statements(account_id=values[0], region=values[1], probe_arn=values[2])
                ),
            ),
            self.naming,
            self.opts(),
        )
        rule = aws.cloudwatch.EventRule(
            self.child_name("restore-test-events"),
            name=naming.physical("restore-test-events"),
            description=f"Restore jobs of the restore testing plan {plan_name} → restore validator Lambda",
            event_pattern=self.restore_testing_plan.arn.apply(restore_event_pattern),
            opts=self.opts(),
        )
        dlq = self.validator.dead_letter_queue
        # EventBridge's own delivery failures land in the function's DLQ too; SQS must admit the rule.
        aws.sqs.QueuePolicy(
            self.child_name("validator-dlq-policy"),
            queue_url=dlq.url,
            policy=pulumi.Output.all(dlq.arn, rule.arn).apply(
                lambda arns: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "RestoreTestRuleDeadLetters",
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Action": "sqs:SendMessage",
                                "Resource": arns[0],
                                "Condition": {"ArnEquals": {"aws:SourceArn": arns[1]}},
                            }
                        ],
                    }
                )
            ),
            opts=self.opts(),
        )
        aws.lambda_.Permission(
            self.child_name("validator-invoke"),
            action="lambda:InvokeFunction",
            function=self.validator.function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=self.opts(),
        )
        aws.cloudwatch.EventTarget(
            self.child_name("restore-test-target"),
            rule=rule.name,
            arn=self.validator.arn,
            retry_policy=aws.cloudwatch.EventTargetRetryPolicyArgs(
                maximum_event_age_in_seconds=6 * 3600, maximum_retry_attempts=10
            ),
            dead_letter_config=aws.cloudwatch.EventTargetDeadLetterConfigArgs(arn=dlq.arn),
            opts=self.opts(),
        )

        # Daily age of the newest validated restore: the alarm for "no restore test in 35 days" (alarms.py
        # restore-test-overdue says why it cannot watch the monthly metrics directly). Outside the VPC: it only
        # calls the AWS Backup API.
        self.age_check = PythonFunction(
            self.child_name("test-age"),
            PythonFunctionArgs(
                package="restore_test_age",
                layer_arn=args.layer_arn,
                log_kms_key_arn=args.log_kms_key_arn,
                description="Publishes the days since the last validated restore test (Shipyard/Backup)",
                memory_mb=128,
                timeout_seconds=30,
                environment={"RESTORE_TESTING_PLAN_NAME": self.restore_testing_plan.name},
                policy_statements=self.restore_testing_plan.arn.apply(age_check_statements),
                # The next day's run measures again; retrying today's adds nothing.
                maximum_retry_attempts=0,
            ),
            self.naming,
            self.opts(),
        )
        self.age_check.add_schedule(
            "daily",
            AGE_CHECK_SCHEDULE,
            settings.timezone,
            payload={"source": "shipyard.scheduler", "job": "restore-test-age"},
            maximum_event_age_seconds=6 * 3600,
        )

    # ------------------------------------------------------------------------------------------ monitoring
    def watch(self) -> BackupWatch:
        return BackupWatch(vault_name=self.vault_name, restore_testing=self.validator is not None)

    def _functions(self) -> dict[str, PythonFunction]:
        if self.validator is None or self.probe is None or self.age_check is None:
            return {}
        return {
            "restore-validation": self.validator,
            "restore-validation-probe": self.probe,
            "restore-test-age": self.age_check,
        }

    def function_watches(self) -> list[FunctionWatch]:
        return [
            FunctionWatch(label=label, function_name=function.function_name, timeout_seconds=function.timeout_seconds)
            for label, function in self._functions().items()
        ]

    def queue_watches(self) -> list[QueueWatch]:
        return [
            QueueWatch(label=label, queue_name=function.dead_letter_queue.name)
            for label, function in self._functions().items()
        ]


def restore_metadata_overrides(
    *, instance_class: str, subnet_group_name: str, security_group_id: str
) -> dict[str, str]:
    """How AWS Backup restores the test copy (keys are case-insensitive; values are strings, lists as JSON).

    Into the database's own subnet group (isolated subnets: no route out), behind the restore-only security
    group, small and single-AZ, never public, and with IAM database authentication on: the validator logs in
    with an IAM token as `restore_validator`, so no password is stored anywhere. It is set here rather than
    trusted to be inferred from the snapshot, because RDS restores default it to off.
    """
    return {
        "dbInstanceClass": instance_class,
        "dbSubnetGroupName": subnet_group_name,
        "vpcSecurityGroupIds": json.dumps([security_group_id]),
        "multiAZ": "false",
        "publiclyAccessible": "false",
        "enableIAMDatabaseAuthentication": "true",
    }


def restore_event_pattern(restore_testing_plan_arn: str) -> str:
    """Restore jobs of our restore testing plan only (manual restores and other stacks' tests are not ours)."""
    return json.dumps(
        {
            "source": ["aws.backup"],
            "detail-type": ["Restore Job State Change"],
            "detail": {
                "status": list(RESTORE_EVENT_STATUSES),
                "restoreTestingPlanArn": [restore_testing_plan_arn],
            },
        }
    )


def age_check_statements(restore_testing_plan_arn: str) -> list[dict[str, Any]]:
    """Read the plan (its ARN and creation time) and list restore jobs (a list call takes no resource scope)."""
    return [
        {
            "Sid": "ReadRestoreTestingPlan",
            "Effect": "Allow",
            "Action": ["backup:GetRestoreTestingPlan"],
            "Resource": [restore_testing_plan_arn],
        },
        {"Sid": "ListRestoreJobs", "Effect": "Allow", "Action": ["backup:ListRestoreJobs"], "Resource": ["*"]},
    ]


def validator_statements(*, account_id: str, region: str, probe_arn: str) -> list[dict[str, Any]]:
    """Least privilege of the validator: describe the restored instance, run the probe, report the verdict."""
    return [
        {
            # The restored instance's identifier is chosen by AWS Backup at restore time.
            "Sid": "FindRestoredInstance",
            "Effect": "Allow",
            "Action": ["rds:DescribeDBInstances"],
            "Resource": [f"arn:aws:rds:{region}:{account_id}:db:*"],
        },
        {"Sid": "RunTheProbe", "Effect": "Allow", "Action": ["lambda:InvokeFunction"], "Resource": [probe_arn]},
        {
            # Restore jobs have no ARN of their own to scope this action to.
            "Sid": "ReportValidationResult",
            "Effect": "Allow",
            "Action": ["backup:PutRestoreValidationResult"],
            "Resource": ["*"],
        },
    ]


def probe_statements(*, account_id: str, region: str) -> list[dict[str, Any]]:
    """Least privilege of the probe: log in as the read-only validation role, and nothing else."""
    return [
        {
            # Any instance's resource id, one database user: the read-only validation role. The probe's security
            # group reaches only restore-test copies, so the live database stays out of reach.
            "Sid": "IamAuthAsValidationRole",
            "Effect": "Allow",
            "Action": ["rds-db:connect"],
            "Resource": [f"arn:aws:rds-db:{region}:{account_id}:dbuser:*/{VALIDATION_DB_USER}"],
        },
    ]

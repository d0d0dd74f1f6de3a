"""The auto-confirm job: lambdas/auto_confirm run hourly by EventBridge Scheduler, inside the VPC.

Contract (lambdas/auto_confirm/README.md): DATABASE_SECRET_ARN (the RDS-managed secret's ARN, read at run
time — never the password), DATABASE_HOST/PORT/NAME, STACK; TLS always. The function runs in the private
subnets with its own security group, the only one besides the API's and the health checker's that the
database admits. Its alarms (failed two hours running, did not run, overdue backlog) live in the monitoring
catalogue (infra/aws/alarms.py), fed by `watch()`, so every alarm is declared once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import rds_ca
from infra.aws.database import Database
from infra.aws.function import PythonFunction, PythonFunctionArgs, VpcPlacement
from infra.aws.monitoring import AutoConfirmWatch, FunctionWatch, QueueWatch
from infra.aws.network import Network
from infra.component import Component
from infra.config import AutoConfirmJobConfig
from infra.naming import Naming

PACKAGE = "auto_confirm"


@dataclass(frozen=True)
class AutoConfirmArgs:
    settings: AutoConfirmJobConfig
    """`shipyard:jobs.autoConfirm`: schedule (hourly), batch size, timeout, memory."""
    timezone: str
    """`shipyard:jobs.timezone`: the schedule is evaluated there (America/Sao_Paulo by default)."""
    layer_arn: pulumi.Input[str]
    """`LambdaDependencies.arn` (pg8000, Powertools)."""
    network: Network
    database: Database
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`) for the functions' log groups; None keeps the default encryption."""


class AutoConfirmJob(Component):
    function: PythonFunction
    security_group: aws.ec2.SecurityGroup
    schedule: aws.scheduler.Schedule

    def __init__(self, name: str, args: AutoConfirmArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "AutoConfirmJob", name, naming, opts)
        settings = args.settings
        self.security_group = args.database.client_security_group(
            self, args.network, "auto-confirm", "Auto-confirm Lambda: out to the database and Secrets Manager only"
        )
        # With the RDS CA bundle the job verifies the server's certificate and name; without it the
        # connection is still TLS-only (force_ssl), just not authenticated.
        ca_file = rds_ca.archive_path_or_warn("the auto-confirm job")
        ca_environment = {"DATABASE_CA_FILE": ca_file} if ca_file is not None else {}
        self.function = PythonFunction(
            self.child_name("function"),
            PythonFunctionArgs(
                package=PACKAGE,
                layer_arn=args.layer_arn,
                log_kms_key_arn=args.log_kms_key_arn,
                description="Confirms orders past the client's confirmation deadline and releases escrow, hourly",
                memory_mb=settings.memory_mb,
                timeout_seconds=settings.timeout_seconds,
                environment={
                    "DATABASE_SECRET_ARN": args.database.master_secret_arn,
                    "DATABASE_HOST": args.database.address,
                    "DATABASE_PORT": args.database.port.apply(str),
                    "DATABASE_NAME": args.database.db_name,
                    **ca_environment,
                },
                policy_statements=args.database.secret_read_statements(),
                # Private subnets: the database is in the isolated tier, Secrets Manager via NAT or endpoint.
                vpc=VpcPlacement(
                    subnet_ids=args.network.private_subnet_ids, security_group_ids=[self.security_group.id]
                ),
                # No reserved concurrency: overlapping runs are safe (BATCH_SQL in lambdas/auto_confirm/core.py
                # locks due orders `FOR NO KEY UPDATE OF o SKIP LOCKED`, so two runs share the work and never
                # confirm an order twice), and any reservation fails to create on accounts whose concurrency
                # quota is below 101 — Lambda keeps 100 unreserved ("decreases account's
                # UnreservedConcurrentExecution below its minimum value"); new accounts start at 10 or 50.
                # A failed run is retried by the next hourly run (it picks up everything still due); an
                # immediate async retry would just hit the same broken database.
                maximum_retry_attempts=0,
            ),
            naming,
            self.opts(),
        )
        self.schedule = self.function.add_schedule(
            "hourly",
            settings.schedule,
            args.timezone,
            payload={"batch_size": settings.batch_size},
            retry_attempts=2,
            # Older than an hour the next scheduled run has started anyway.
            maximum_event_age_seconds=3600,
        )
        self.function_name = self.function.function_name
        self.register_outputs({"functionName": self.function_name})

    def watch(self) -> AutoConfirmWatch:
        return AutoConfirmWatch(log_group_name=self.function.log_group_name)

    def function_watch(self) -> FunctionWatch:
        return FunctionWatch(
            label="auto-confirm",
            function_name=self.function.function_name,
            timeout_seconds=self.function.timeout_seconds,
        )

    def queue_watch(self) -> QueueWatch:
        return QueueWatch(label="auto-confirm", queue_name=self.function.dead_letter_queue.name)

"""The health checker (lambdas/health_check) deployed as two functions from the same code, every minute.

- `public`: outside the VPC, checks the public URLs (the frontend, the API's /api/health and
  /api/health/ready) over the internet, the way users reach them.
- `vpc`: inside the VPC (private subnets), checks the database (TCP + TLS + login + `SELECT 1`); it reads the
  RDS-managed secret through the Secrets Manager endpoint (staging) or NAT (prod).

Why always two, even with NAT: the public checks then never depend on our own NAT gateway or VPC routing,
so a NAT failure shows up as what it is instead of paging "frontend down"; the VPC function needs no
internet; both stacks run the same topology (staging exercises what prod runs); and the second function
costs nothing measurable (43,200 short invocations a month each).

Contract (lambdas/health_check/README.md): TARGETS as compact JSON, RUN_DEADLINE_S, DATABASE_SECRET_ARN (an
ARN, never the secret), timeout ≥ deadline + 2 s, no async retries, schedule retries 0 with a 60-s event age.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra import rds_ca
from infra.aws.database import Database
from infra.aws.function import PythonFunction, PythonFunctionArgs, VpcPlacement
from infra.aws.monitoring import FunctionWatch, HealthEndpointWatch, HealthWatch, QueueWatch
from infra.aws.network import Network
from infra.component import Component
from infra.config import HealthChecksConfig
from infra.naming import Naming

PACKAGE = "health_check"
RUN_DEADLINE_S = 25
"""The whole run's deadline: well inside the one-minute schedule, so runs never overlap."""
TIMEOUT_S = RUN_DEADLINE_S + 5
"""Lambda timeout: the deadline plus room for start-up and the summary (the README asks for ≥ 2 s)."""
DATABASE_ENDPOINT = "database"
DATABASE_TIMEOUT_S = 5.0
DATABASE_LATENCY_BUDGET_MS = 1000


@dataclass(frozen=True)
class VariantNaming(Naming):
    """Physical names of one variant of a function: `shipyard-prod-health-check-vpc(-dlq)`.

    PythonFunction names everything after its package; two functions from one package need the variant
    after that segment, or their function, log group and DLQ names would collide. `stack` stays the real
    stack, so the functions' `STACK` (the metric dimension) is unchanged.
    """

    segment: str = ""
    variant: str = ""

    def physical(self, *parts: str, max_length: int = 63) -> str:
        if parts and parts[0] == self.segment:
            parts = (self.segment, self.variant, *parts[1:])
        return super().physical(*parts, max_length=max_length)


@dataclass(frozen=True)
class PublicUrl:
    url: pulumi.Input[str]
    """Base URL without a trailing path (`https://app.example.com`)."""
    https: bool
    """Known at plan time (CloudFront and a custom domain are HTTPS): decides the certificate alarms."""


@dataclass(frozen=True)
class HealthCheckArgs:
    settings: HealthChecksConfig
    """`shipyard:healthChecks`: endpoints (name, target, path, assertions), schedule, database check."""
    layer_arn: pulumi.Input[str]
    """`LambdaDependencies.arn` (pg8000 for the database check)."""
    timezone: str
    """Schedules' time zone (`jobs.timezone`; irrelevant for rate() but required by the scheduler)."""
    network: Network
    frontend: PublicUrl | None = None
    """The frontend component's URL; endpoints with target `frontend` are skipped without it."""
    api: PublicUrl | None = None
    """The service component's public URL; endpoints with target `api` are skipped without it."""
    database: Database | None = None
    """Checked from inside the VPC when given and `healthChecks.database` is on."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`) for the functions' log groups; None keeps the default encryption."""


def http_targets(settings: HealthChecksConfig, bases: dict[str, str]) -> list[dict[str, Any]]:
    """TARGETS entries for the configured endpoints whose base URL is known."""
    targets = []
    for endpoint in settings.endpoints:
        base = bases.get(endpoint.target)
        if base is None:
            continue
        target: dict[str, Any] = {
            "name": endpoint.name,
            "kind": "http",
            "url": base.rstrip("/") + endpoint.path,
            "expected_status": endpoint.expected_status,
            "timeout_s": endpoint.timeout_seconds,
            "latency_budget_ms": endpoint.latency_budget_ms,
            "cert_warn_days": settings.cert_warn_days,
        }
        if endpoint.body_contains is not None:
            target["body_contains"] = endpoint.body_contains
        targets.append(target)
    return targets


def compact(targets: Sequence[dict[str, Any]]) -> str:
    """Lambda allows 4 KB for all environment variables together: no spaces."""
    return json.dumps(list(targets), separators=(",", ":"), sort_keys=True)


class HealthCheck(Component):
    functions: list[PythonFunction]
    endpoints: list[HealthEndpointWatch]

    def __init__(self, name: str, args: HealthCheckArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "HealthCheck", name, naming, opts)
        settings = args.settings
        self.functions = []
        self.endpoints = []
        self.public: PythonFunction | None = None
        self.vpc: PythonFunction | None = None
        self.security_group: aws.ec2.SecurityGroup | None = None

        urls = {target: url for target, url in (("frontend", args.frontend), ("api", args.api)) if url is not None}
        public_endpoints = [e for e in settings.endpoints if e.target in urls]
        if public_endpoints:
            names = sorted(urls)
            targets = pulumi.Output.all(*[urls[t].url for t in names]).apply(
                lambda values: compact(http_targets(settings, dict(zip(names, values, strict=True))))
            )
            self.public = self._function("public", "public URLs (frontend, API)", targets, args)
            for endpoint in public_endpoints:
                self.endpoints.append(
                    HealthEndpointWatch(
                        name=endpoint.name,
                        target=endpoint.target,
                        tls=urls[endpoint.target].https,
                        latency_budget_ms=endpoint.latency_budget_ms,
                    )
                )

        if args.database is not None and settings.database:
            self._vpc_function(args, args.database)

        self.checker_count = len(self.functions)
        self.function_names = [f.function_name for f in self.functions]
        self.register_outputs({"functionNames": self.function_names})

    def _function(
        self,
        variant: str,
        what: str,
        targets: pulumi.Input[str],
        args: HealthCheckArgs,
        environment: dict[str, pulumi.Input[str]] | None = None,
        policy_statements: pulumi.Input[Sequence[dict[str, Any]]] | None = None,
        vpc: VpcPlacement | None = None,
    ) -> PythonFunction:
        function = PythonFunction(
            self.child_name(variant),
            PythonFunctionArgs(
                package=PACKAGE,
                layer_arn=args.layer_arn,
                log_kms_key_arn=args.log_kms_key_arn,
                description=f"Health check of {what}, every minute",
                timeout_seconds=TIMEOUT_S,
                environment={"TARGETS": targets, "RUN_DEADLINE_S": str(RUN_DEADLINE_S), **(environment or {})},
                policy_statements=policy_statements or [],
                vpc=vpc,
                # A retried, minute-old check only overlaps the next run (README: retries off).
                maximum_retry_attempts=0,
            ),
            VariantNaming(
                self.naming.project,
                self.naming.stack,
                self.naming.region,
                segment=PACKAGE.replace("_", "-"),
                variant=variant,
            ),
            self.opts(),
        )
        function.add_schedule(
            "every-minute",
            args.settings.schedule,
            args.timezone,
            payload={"source": "shipyard.scheduler", "job": "health-check", "variant": variant},
            retry_attempts=0,
            maximum_event_age_seconds=60,
        )
        self.functions.append(function)
        return function

    def _vpc_function(self, args: HealthCheckArgs, database: Database) -> None:
        self.security_group = database.client_security_group(
            self, args.network, "health-check", "Health checker Lambda (SELECT 1 over TLS)"
        )

        ca_file = rds_ca.archive_path_or_warn("the database health check (it will report reason 'tls')")

        def database_target(host: str) -> str:
            target: dict[str, Any] = {
                "name": DATABASE_ENDPOINT,
                "kind": "postgres",
                "host": host,
                "port": 5432,
                "dbname": database.db_name,
                "timeout_s": DATABASE_TIMEOUT_S,
                "latency_budget_ms": DATABASE_LATENCY_BUDGET_MS,
                "cert_warn_days": args.settings.cert_warn_days,
            }
            if ca_file is not None:
                target["ca_file"] = ca_file
            return compact([target])

        statements = database.secret_read_statements()
        self.vpc = self._function(
            "vpc",
            "the database from inside the VPC",
            database.address.apply(database_target),
            args,
            environment={"DATABASE_SECRET_ARN": database.master_secret_arn},
            policy_statements=statements,
            vpc=VpcPlacement(subnet_ids=args.network.private_subnet_ids, security_group_ids=[self.security_group.id]),
        )
        self.endpoints.append(
            HealthEndpointWatch(
                name=DATABASE_ENDPOINT, target="database", tls=True, latency_budget_ms=DATABASE_LATENCY_BUDGET_MS
            )
        )

    # ------------------------------------------------------------------------------------------ for monitoring
    def function_watches(self) -> list[FunctionWatch]:
        return [
            FunctionWatch(label=f"health-check-{variant}", function_name=f.function_name, timeout_seconds=TIMEOUT_S)
            for variant, f in self._variants()
        ]

    def queue_watches(self) -> list[QueueWatch]:
        return [
            QueueWatch(label=f"health-check-{variant}", queue_name=f.dead_letter_queue.name)
            for variant, f in self._variants()
        ]

    def watch(self) -> HealthWatch:
        return HealthWatch(endpoints=list(self.endpoints), checker_count=self.checker_count)

    def _variants(self) -> list[tuple[str, PythonFunction]]:
        return [(variant, f) for variant, f in (("public", self.public), ("vpc", self.vpc)) if f is not None]

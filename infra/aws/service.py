"""Service: the app image on ECS Fargate — the API behind the load balancer, workers, the migrate task and
the task definitions of scheduled jobs.

- ECR repository: scan on push, IMMUTABLE tags (a tag can never be re-pointed at other code), KMS
  encryption, a lifecycle policy keeping the last `service.imageRetentionCount` images; `force_delete` only
  outside prod.
- The image is built from `app/` by pulumi-docker for `service.architecture`, tagged with a hash of the
  build context (immutable tags need a new tag per change; an unchanged app/ is neither rebuilt nor pushed),
  and every task definition pins its digest. Or, with `service.image` (an ECR image by digest, set by
  `scripts/deploy.py --image`), nothing is built: the stack deploys the image CI built once for the commit,
  so prod runs the very digest staging ran, and the execution role may pull from that image's repository.
- One cluster (Container Insights, enhanced observability); task definitions come from the shared
  `TaskDefinitionFactory` (non-root, read-only root + /tmp volume, awslogs with retention, secrets by ARN).
- The API service: desired count by tier across the given subnets (one per AZ; rebalanced across AZs),
  circuit breaker with rollback, 100 %/200 % rolling deploys, health-check grace, ECS Exec per config,
  autoscaling by target tracking on CPU and ALB requests per target.
- Workers: the same task pattern with their own command and no load balancer.
- Migrations: a `migrate` task definition (same image, `python -m app.migrate`) that the deploy pipeline runs
  as a one-off task before rolling the service (docs/deploy.md, infra/deploy.py).
- Database logins (issue #14): the migrate task is the ONLY consumer of the RDS-managed master secret (ECS
  injects it when the task starts, and the task lives for one run, so a rotation never strands it). The API,
  workers and jobs log in as the `api` role with an IAM auth token signed per new connection
  (`DATABASE_AUTH=iam`, app/db.py), so a master password rotation does not touch them. TLS is verify-full
  against the RDS CA bundle the image carries (app/certs/, written by `make rds-ca`).

IAM, least privilege:
- execution role (the ECS agent): pull from this repository only, write to this stack's ECS log groups only,
  read exactly the secrets injected (their customer KMS keys already let account principals decrypt
  through Secrets Manager, see infra/aws/kms.py, so no KMS statement is needed);
- task role (the app): the uploads statements for its bucket prefix; `rds-db:connect` as the `api` database
  user only; SSM messages only with ECS Exec.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from infra import rds_ca
from infra.aws import db_access
from infra.aws.http_api import DiscoveryTarget
from infra.aws.load_balancer import LoadBalancerTarget
from infra.aws.security_groups import allow_tcp_egress
from infra.aws.task_definition import (
    ContainerRuntime,
    TaskDefinitionBundle,
    TaskDefinitionFactory,
    TaskSpec,
    docker_platform,
)
from infra.component import Component
from infra.config import ScheduledTaskConfig, ServiceConfig, Tier
from infra.naming import Naming

APP_DIR = Path(__file__).resolve().parents[2] / "app"
"""Build context of the API image (from this file, not `pulumi.get_root_directory()`, which mocks fake)."""

MIGRATE_COMMAND = ("python", "-m", "app.migrate")
API_HEALTH_CHECK = ("python", "-m", "app.healthcheck")
_CONTEXT_IGNORED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "node_modules"})

ECS_EXEC_ACTIONS = (
    "ssmmessages:CreateControlChannel",
    "ssmmessages:CreateDataChannel",
    "ssmmessages:OpenControlChannel",
    "ssmmessages:OpenDataChannel",
)


def context_hash(directory: Path) -> str:
    """sha256 over the build context's relative paths and bytes (caches and bytecode left out).

    The image tag: the same app/ gives the same tag (no rebuild, no push into an IMMUTABLE repository);
    any change gives a new one.
    """
    digest = hashlib.sha256()
    if directory.is_dir():
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory)
            if not path.is_file() or _CONTEXT_IGNORED_DIRS & set(relative.parts) or path.suffix == ".pyc":
                continue
            digest.update(relative.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def image_repository_arns(image: str | None) -> list[str]:
    """The ECR repository ARN of a prebuilt image (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:...`).

    Prod runs the image staging's repository holds, so its execution role must pull from there. Another account's
    repository also needs a repository policy allowing this role (ECR docs, "Private repository policies").
    """
    if image is None:
        return []
    registry, _, rest = image.partition("/")
    account, _, _, region = registry.split(".")[:4]
    return [f"arn:aws:ecr:{region}:{account}:repository/{rest.split('@', 1)[0]}"]


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def secret_arn_of(value_from: str) -> str:
    """The secret's ARN in an ECS `valueFrom` (`arn:aws:secretsmanager:r:a:secret:name-XyZ[:key:stage:version]`)."""
    parts = value_from.split(":")
    if len(parts) < 7 or parts[2] != "secretsmanager":
        raise ValueError(f"not a Secrets Manager valueFrom: {value_from!r}")
    return ":".join(parts[:7])


@dataclass(frozen=True)
class DatabaseAccess:
    """How the app reaches PostgreSQL (from the Database component; typed as inputs so this file does not
    depend on it)."""

    address: pulumi.Input[str]
    port: pulumi.Input[int]
    name: pulumi.Input[str]
    master_secret_arn: pulumi.Input[str]
    """RDS-managed master secret (JSON with `username` and `password`): the migrate task's, nobody else's."""
    security_group_id: pulumi.Input[str]
    """The database's security group: tasks get egress to it on `port`."""
    instance_arn: pulumi.Input[str]
    """The DB instance's ARN (partition, region and account of the `rds-db:connect` resource)."""
    resource_id: pulumi.Input[str]
    """The instance's DbiResourceId (`db-...`): `rds-db:connect` resources name it, not the identifier."""


@dataclass(frozen=True)
class UploadsAccess:
    bucket_name: pulumi.Input[str]
    prefix: str
    max_size_bytes: int
    allowed_types: Sequence[str]
    policy_statements: pulumi.Input[Sequence[Mapping[str, Any]]]
    """IAM statements limiting the app to its prefix (Uploads.app_policy_statements())."""


@dataclass(frozen=True)
class ServiceArgs:
    settings: ServiceConfig
    """The `shipyard:service` block (sizes, counts, autoscaling, health check, workers...)."""
    tier: Tier
    region: str
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    """Where tasks run: private subnets, or public ones when the network has no NAT/endpoints."""
    assign_public_ip: bool
    """True only with public subnets (image pulls and logs need a route out); ingress stays ALB-only."""
    front_door: LoadBalancerTarget | DiscoveryTarget
    """The ALB's target group, or the Cloud Map service the HTTP API reads (`service.frontDoor`)."""
    database: DatabaseAccess | None
    app_secrets: Mapping[str, pulumi.Input[str]]
    """Env var → Secrets Manager valueFrom (AppSecrets.env_secrets: SECRET_KEY, JWT_SECRET_KEY, ...)."""
    uploads: UploadsAccess | None
    cors_origins: Sequence[pulumi.Input[str]]
    """Browser origins allowed to call the API: the frontend's URL plus `service.corsOrigins`."""
    extra_environment: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """More plain settings from other components (e.g. the cache's REDIS_HOST/REDIS_PORT)."""
    proxy_cidrs: Sequence[str] = ()
    """Where the load balancer's nodes live (its subnets' CIDR blocks): gunicorn takes X-Forwarded-Proto
    from these peers only (FORWARDED_ALLOW_IPS). () leaves gunicorn's default, loopback only."""
    scheduled_tasks: Sequence[ScheduledTaskConfig] = ()
    """`jobs.scheduledTasks`: a task definition each (the schedules live in ScheduledTasks)."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`) for every task family's log group; None = default encryption."""
    app_dir: Path = field(default=APP_DIR)


class Service(Component):
    repository: aws.ecr.Repository
    image: docker.Image | None
    """The image built from app/; None when `service.image` names a prebuilt one."""
    image_ref: pulumi.Output[str]
    """`<repo>@sha256:<digest>` every task definition runs (built here or given by config)."""
    cluster: aws.ecs.Cluster
    execution_role: aws.iam.Role
    task_role: aws.iam.Role
    security_group: aws.ec2.SecurityGroup
    """The API tasks' group (ingress from the ALB only)."""
    tasks_security_group: aws.ec2.SecurityGroup
    """Workers, the migrate task and scheduled jobs (no ingress at all)."""
    api: TaskDefinitionBundle
    migrate: TaskDefinitionBundle
    workers: dict[str, aws.ecs.Service]
    scheduled_task_definitions: dict[str, TaskDefinitionBundle]
    ecs_service: aws.ecs.Service
    cluster_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    desired_count: int
    alb_arn_suffix: pulumi.Input[str] | None
    """None behind the HTTP API front door (no load balancer)."""
    target_group_arn_suffix: pulumi.Input[str] | None

    def __init__(self, name: str, args: ServiceArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Service", name, naming, opts)
        self.args = args
        settings = args.settings
        self.desired_count = settings.desired_count
        front_door = args.front_door
        alb = front_door if isinstance(front_door, LoadBalancerTarget) else None
        self.alb_arn_suffix = alb.arn_suffix if alb is not None else None
        self.target_group_arn_suffix = alb.target_group_arn_suffix if alb is not None else None
        log_group_prefix = f"/ecs/{naming.prefix}"

        self._build_image(naming)
        self.cluster = aws.ecs.Cluster(
            self.child_name("cluster"),
            name=naming.physical(name),
            # Enhanced: per-task and per-container metrics, not only service totals.
            settings=[{"name": "containerInsights", "value": "enhanced"}],
            opts=self.opts(),
        )
        self.capacity_providers: aws.ecs.ClusterCapacityProviders | None = None
        if settings.spot:
            # A service can only name capacity providers its cluster has; the default stays on-demand FARGATE so
            # the migrate task and scheduled jobs (run with launchType FARGATE) are unaffected.
            self.capacity_providers = aws.ecs.ClusterCapacityProviders(
                self.child_name("capacity-providers"),
                cluster_name=self.cluster.name,
                capacity_providers=["FARGATE", "FARGATE_SPOT"],
                default_capacity_provider_strategies=[{"capacity_provider": "FARGATE", "weight": 1, "base": 0}],
                opts=self.opts(),
            )
        self._security_groups(naming)
        secrets = self._secrets()
        migrate_secrets = self._migrate_secrets()
        self.execution_role = self._execution_role(naming, secrets | migrate_secrets, log_group_prefix)
        self.task_role = self._task_role(naming)

        factory = TaskDefinitionFactory(
            ContainerRuntime(
                image=self.image_ref,
                architecture=settings.architecture,
                execution_role_arn=self.execution_role.arn,
                task_role_arn=self.task_role.arn,
                region=args.region,
                environment=self._environment(naming),
                secrets=secrets,
                log_retention_days=settings.log_retention_days,
                execute_command=settings.execute_command,
                log_group_prefix=log_group_prefix,
                log_kms_key_arn=args.log_kms_key_arn,
            ),
            naming,
        )
        self.api = factory.create(
            self,
            TaskSpec(
                name="api",
                cpu=settings.cpu,
                memory=settings.memory,
                port=settings.port,
                health_check=API_HEALTH_CHECK,
                extra_environment=self._app_login_environment(),
            ),
        )
        # Migrations are short and single-threaded: the smallest Fargate size is plenty.
        self.migrate = factory.create(
            self,
            TaskSpec(name="migrate", cpu=256, memory=512, command=MIGRATE_COMMAND, extra_secrets=migrate_secrets),
        )
        self.scheduled_task_definitions = {
            task.name: factory.create(
                self,
                TaskSpec(
                    name=f"job-{task.name}",
                    cpu=task.cpu,
                    memory=task.memory,
                    command=task.command,
                    extra_environment=self._app_login_environment(),
                ),
            )
            for task in args.scheduled_tasks
        }

        self.ecs_service = self._ecs_service(
            "api",
            self.api,
            desired_count=settings.desired_count,
            security_group=self.security_group,
            front_door=args.front_door,
            spot=settings.spot,
        )
        self._autoscaling(alb)
        self.workers = {}
        for worker in settings.workers:
            bundle = factory.create(
                self,
                TaskSpec(
                    name=f"worker-{worker.name}",
                    cpu=worker.cpu,
                    memory=worker.memory,
                    command=worker.command,
                    extra_environment=self._app_login_environment(),
                ),
            )
            self.workers[worker.name] = self._ecs_service(
                f"worker-{worker.name}",
                bundle,
                desired_count=worker.desired_count,
                security_group=self.tasks_security_group,
                front_door=None,
            )

        self.cluster_name = self.cluster.name
        self.service_name = self.ecs_service.name
        self.log_group_name = self.api.log_group.name
        self.register_outputs(
            {
                "repositoryUrl": self.repository.repository_url,
                "imageDigest": self.image_ref,
                "clusterName": self.cluster_name,
                "serviceName": self.service_name,
                "logGroupName": self.log_group_name,
                "migrateTaskDefinitionArn": self.migrate.task_definition.arn,
            }
        )

    # ------------------------------------------------------------------------------------------------ image
    def _build_image(self, naming: Naming) -> None:
        args = self.args
        self.repository = aws.ecr.Repository(
            self.child_name("repo"),
            name=naming.physical(self.component_name),
            image_tag_mutability="IMMUTABLE",
            image_scanning_configuration={"scan_on_push": True},
            encryption_configurations=[{"encryption_type": "KMS"}],  # the AWS-managed aws/ecr key
            # Prod keeps its images (rollback targets, forensics) even when the stack is destroyed.
            force_delete=args.tier != "prod",
            opts=self.opts(),
        )
        keep = args.settings.image_retention_count
        aws.ecr.LifecyclePolicy(
            self.child_name("repo-lifecycle"),
            repository=self.repository.name,
            policy=json.dumps(
                {
                    "rules": [
                        {
                            "rulePriority": 1,
                            "description": f"keep the {keep} most recent images (the running one is among them)",
                            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
                            "action": {"type": "expire"},
                        }
                    ]
                }
            ),
            opts=self.opts(),
        )
        if args.settings.image is not None:
            # Built once per commit by CI and promoted by digest (docs/deploy.md): building again here would
            # give prod an image staging never ran.
            self.image = None
            self.image_ref = pulumi.Output.from_input(args.settings.image)
            return
        self.image = self._build_app_image()
        self.image_ref = self.image.repo_digest

    def _build_app_image(self) -> docker.Image:
        args = self.args
        token = aws.ecr.get_authorization_token_output(
            registry_id=self.repository.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
        )
        tag = context_hash(args.app_dir)[:16]
        # An explicit provider: no resource of this stack falls back to an implicitly configured default.
        docker_provider = docker.Provider(self.child_name("docker"), opts=self.opts())
        # Relative to the program's working directory (infra/ under the CLI): absolute paths would differ
        # between a laptop and CI and show as a diff on every run.
        context = os.path.relpath(args.app_dir, Path.cwd())
        return docker.Image(
            self.child_name("image"),
            image_name=self.repository.repository_url.apply(lambda url: f"{url}:{tag}"),
            build={
                "context": context,
                "dockerfile": os.path.join(context, "Dockerfile"),
                "platform": docker_platform(args.settings.architecture),
            },
            registry={
                "server": self.repository.repository_url,
                "username": token.user_name,
                "password": pulumi.Output.secret(token.password),
            },
            opts=self.opts(provider=docker_provider),
        )

    # ------------------------------------------------------------------------------------------------ network
    def _security_groups(self, naming: Naming) -> None:
        args = self.args
        self.security_group = aws.ec2.SecurityGroup(
            self.child_name("sg"),
            name=naming.physical(self.component_name),
            vpc_id=args.vpc_id,
            description="API tasks: in from the load balancer only; out to HTTPS and the database",
            tags={"Name": naming.physical(self.component_name)},
            opts=self.opts(),
        )
        aws.vpc.SecurityGroupIngressRule(
            self.child_name("in-alb"),
            security_group_id=self.security_group.id,
            referenced_security_group_id=args.front_door.security_group_id,
            ip_protocol="tcp",
            from_port=args.settings.port,
            to_port=args.settings.port,
            description="API port from the front door (load balancer or HTTP API VPC link)",
            opts=self.opts(),
        )
        self.tasks_security_group = aws.ec2.SecurityGroup(
            self.child_name("tasks-sg"),
            name=naming.physical(self.component_name, "tasks"),
            vpc_id=args.vpc_id,
            description="Workers, migrations and scheduled jobs: no ingress; out to HTTPS and the database",
            tags={"Name": naming.physical(self.component_name, "tasks")},
            opts=self.opts(),
        )
        for group, label in ((self.security_group, "api"), (self.tasks_security_group, "tasks")):
            # AWS APIs (ECR, Secrets Manager, CloudWatch, S3) and HTTPS services such as Sentry.
            aws.vpc.SecurityGroupEgressRule(
                self.child_name(label, "out-https"),
                security_group_id=group.id,
                cidr_ipv4="0.0.0.0/0",
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                description="HTTPS to AWS APIs and external services",
                opts=self.opts(),
            )
        if args.database is not None:
            self.allow_egress_to("db", args.database.security_group_id, args.database.port, "PostgreSQL")

    def allow_egress_to(
        self, name: str, security_group_id: pulumi.Input[str], port: pulumi.Input[int], description: str
    ) -> None:
        """Let every task of the app (API, workers, jobs, migrations) reach `security_group_id` on `port`."""
        for group, label in ((self.security_group, "api"), (self.tasks_security_group, "tasks")):
            allow_tcp_egress(
                self,
                self.child_name(label, "out", name),
                source_group=group.id,
                target_group=security_group_id,
                port=port,
                description=description,
            )

    # ------------------------------------------------------------------------------------------------ settings
    def _environment(self, naming: Naming) -> dict[str, pulumi.Input[str]]:
        """Plain settings the app reads (app/config.py); nothing secret (see `_secrets`)."""
        args = self.args
        settings = args.settings
        env: dict[str, pulumi.Input[str]] = dict(settings.environment) | dict(args.extra_environment)
        env |= {
            "STACK": naming.stack,
            "PORT": str(settings.port),
            "WEB_CONCURRENCY": str(settings.gunicorn_workers),  # gunicorn workers (app/gunicorn_conf.py)
            "CORS_ORIGINS": pulumi.Output.all(*args.cors_origins).apply(
                lambda origins: ",".join(dict.fromkeys(str(o).rstrip("/") for o in origins))
            ),
        }
        if args.proxy_cidrs:
            # ALB nodes connect from addresses in its subnets; anything else asking for HTTPS is not believed.
            env["FORWARDED_ALLOW_IPS"] = ",".join(args.proxy_cidrs)
        if args.database is not None:
            env |= {
                "DATABASE_HOST": args.database.address,
                "DATABASE_PORT": pulumi.Output.from_input(args.database.port).apply(str),
                "DATABASE_NAME": args.database.name,
                # The region IAM auth tokens are signed for (botocore reads AWS_REGION).
                "AWS_REGION": args.region,
            } | self._tls_environment()
        if args.uploads is not None:
            env |= {
                "UPLOADS_BUCKET": args.uploads.bucket_name,
                "UPLOADS_PREFIX": args.uploads.prefix,
                "UPLOAD_MAX_BYTES": str(args.uploads.max_size_bytes),
                "UPLOAD_ALLOWED_TYPES": ",".join(args.uploads.allowed_types),
            }
        return env

    def _tls_environment(self) -> dict[str, pulumi.Input[str]]:
        """verify-full against the RDS CA bundle in the image; `require` (encrypted, unverified) without it.

        `require` checks nothing about the server (CERT_NONE): anyone on the path could answer. The bundle is
        in the build context after `make rds-ca` (app/certs/), so the image carries it at IMAGE_PATH.
        """
        image_path = rds_ca.image_path_or_warn("the API and the migrate task", self.args.app_dir)
        if image_path is None:
            return {"DATABASE_SSLMODE": "require"}
        return {"DATABASE_SSLMODE": "verify-full", "DATABASE_CA_FILE": image_path}

    def _app_login_environment(self) -> dict[str, str]:
        """The API, workers and jobs: the `api` database role with an IAM token per new connection."""
        if self.args.database is None:
            return {}
        return {"DATABASE_AUTH": db_access.IAM_AUTH_ENV, "DATABASE_USER": db_access.API_DB_USER}

    def _secrets(self) -> dict[str, pulumi.Input[str]]:
        """Env var → valueFrom for every task: the ECS agent resolves these at start; the task definition holds
        only ARNs. No database password: the running API must survive the master secret's rotation."""
        return dict(self.args.app_secrets)

    def _migrate_secrets(self) -> dict[str, pulumi.Input[str]]:
        """The master user, for the migrate task only (it reads the current password each time it runs)."""
        database = self.args.database
        if database is None:
            return {}
        master = pulumi.Output.from_input(database.master_secret_arn)
        return {
            "DATABASE_USER": master.apply(lambda arn: f"{arn}:username::"),
            "DATABASE_PASSWORD": master.apply(lambda arn: f"{arn}:password::"),
        }

    # ------------------------------------------------------------------------------------------------ IAM
    def _execution_role(
        self, naming: Naming, secrets: Mapping[str, pulumi.Input[str]], log_group_prefix: str
    ) -> aws.iam.Role:
        args = self.args
        role = aws.iam.Role(
            self.child_name("execution-role"),
            name=naming.account_wide(self.component_name, "execution", max_length=64),  # IAM: account-global
            description="ECS agent for the app's tasks: pull the image, write logs, read the injected secrets",
            assume_role_policy=_assume_role("ecs-tasks.amazonaws.com"),
            opts=self.opts(),
        )
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        value_froms = [secrets[name] for name in sorted(secrets)]
        region = args.region

        def policy(values: list[Any]) -> str:
            repository_arn, account_id = values[0], values[1]
            secret_arns = sorted({secret_arn_of(str(v)) for v in values[2:]})
            statements: list[dict[str, Any]] = [
                # GetAuthorizationToken has no resource-level permissions.
                {"Sid": "EcrLogin", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
                {
                    "Sid": "EcrPull",
                    "Effect": "Allow",
                    "Action": ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"],
                    "Resource": _one_or_many(sorted({repository_arn, *image_repository_arns(args.settings.image)})),
                },
                {
                    "Sid": "Logs",
                    "Effect": "Allow",
                    "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                    "Resource": f"arn:aws:logs:{region}:{account_id}:log-group:{log_group_prefix}/*:*",
                },
            ]
            if secret_arns:
                statements.append(
                    {
                        "Sid": "InjectedSecrets",
                        "Effect": "Allow",
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": secret_arns,
                    }
                )
            return json.dumps({"Version": "2012-10-17", "Statement": statements})

        aws.iam.RolePolicy(
            self.child_name("execution-policy"),
            role=role.id,
            policy=pulumi.Output.all(self.repository.arn, account, *value_froms).apply(policy),
            opts=self.opts(),
        )
        return role

    def _task_role(self, naming: Naming) -> aws.iam.Role:
        args = self.args
        role = aws.iam.Role(
            self.child_name("task-role"),
            name=naming.account_wide(self.component_name, "task", max_length=64),  # IAM: account-global
            description="The app's own AWS calls: its uploads prefix, database login as api; ECS Exec when enabled",
            assume_role_policy=_assume_role("ecs-tasks.amazonaws.com"),
            opts=self.opts(),
        )
        uploads: pulumi.Input[Sequence[Mapping[str, Any]]] = args.uploads.policy_statements if args.uploads else []
        database: pulumi.Input[Sequence[Mapping[str, Any]]] = (
            db_access.connect_statements(args.database.instance_arn, args.database.resource_id, db_access.API_DB_USER)
            if args.database
            else []
        )
        execute_command = args.settings.execute_command
        if args.uploads is None and args.database is None and not execute_command:
            return role

        def policy(parts: list[Sequence[Mapping[str, Any]]]) -> str:
            statements = [dict(s) for s in [*parts[0], *parts[1]]]
            if execute_command:
                # ssmmessages has no resource-level permissions; only granted while ECS Exec is on.
                statements.append(
                    {"Sid": "EcsExec", "Effect": "Allow", "Action": list(ECS_EXEC_ACTIONS), "Resource": "*"}
                )
            return json.dumps({"Version": "2012-10-17", "Statement": statements})

        aws.iam.RolePolicy(
            self.child_name("task-policy"),
            role=role.id,
            policy=pulumi.Output.all(uploads, database).apply(policy),
            opts=self.opts(),
        )
        return role

    # ------------------------------------------------------------------------------------------------ services
    def _ecs_service(
        self,
        name: str,
        bundle: TaskDefinitionBundle,
        *,
        desired_count: int,
        security_group: aws.ec2.SecurityGroup,
        front_door: LoadBalancerTarget | DiscoveryTarget | None,
        spot: bool = False,
    ) -> aws.ecs.Service:
        args = self.args
        settings = args.settings
        extra: dict[str, Any] = {}
        depends_on: list[pulumi.Resource] = []
        if isinstance(front_door, LoadBalancerTarget):
            extra = {
                "load_balancers": [
                    {
                        "target_group_arn": front_door.target_group_arn,
                        "container_name": bundle.container_name,
                        "container_port": settings.port,
                    }
                ],
                "health_check_grace_period_seconds": settings.health_check_grace_seconds,
            }
            depends_on = list(front_door.listeners)
        elif isinstance(front_door, DiscoveryTarget):
            # SRV records carry the port API Gateway needs; ECS registers a task once its health check passes.
            extra = {
                "service_registries": {
                    "registry_arn": front_door.registry_arn,
                    "container_name": bundle.container_name,
                    "container_port": settings.port,
                }
            }
        extra |= self._placement(spot)
        if spot and self.capacity_providers is not None:
            depends_on.append(self.capacity_providers)
        return aws.ecs.Service(
            self.child_name(name),
            name=self.naming.physical(name),
            cluster=self.cluster.arn,
            task_definition=bundle.task_definition.arn,
            desired_count=desired_count,
            platform_version="LATEST",
            network_configuration={
                "subnets": list(args.subnet_ids),
                "security_groups": [security_group.id],
                "assign_public_ip": args.assign_public_ip,
            },
            # Fargate places tasks across the subnets' AZs; rebalancing moves them back after an AZ recovers.
            availability_zone_rebalancing="ENABLED",
            deployment_circuit_breaker={"enable": True, "rollback": True},
            # New tasks start before old ones stop: capacity never dips during a deploy.
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            enable_execute_command=settings.execute_command,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            # `pulumi up` fails (and the circuit breaker has rolled back) when the new tasks never get healthy.
            wait_for_steady_state=True,
            opts=self.opts(
                depends_on=depends_on,
                # Autoscaling owns the API's running count after creation; re-applying it would undo a
                # scale-out. Workers are not autoscaled, so their count follows the config.
                ignore_changes=["desiredCount"] if front_door is not None else None,
                # Moving a stack between front doors or onto Spot replaces the service (a capacity provider
                # strategy where a launch type was, and new service registries, force a new one: see
                # terraform-provider-aws internal/service/ecs/service.go capacityProviderStrategyCustomizeDiff).
                # Its name is fixed, so create-before-delete would clash; outside prod, delete first and take
                # the minutes of downtime. Prod keeps the default: such a replace fails loudly instead.
                delete_before_replace=args.tier != "prod",
            ),
            **extra,
        )

    def _placement(self, spot: bool) -> dict[str, Any]:
        """Fargate, or Fargate Spot (`service.spot`): a capacity provider strategy instead of a launch type.

        FARGATE_SPOT runs ARM64 tasks on platform 1.4.0+ (docs.aws.amazon.com/AmazonECS/latest/APIReference/
        API_CapacityProviderStrategyItem.html); a reclaimed task gets SIGTERM two minutes ahead and the
        service starts a replacement. There is no automatic fallback to on-demand when Spot has no capacity."""
        if not spot:
            return {"launch_type": "FARGATE"}
        return {"capacity_provider_strategies": [{"capacity_provider": "FARGATE_SPOT", "weight": 1, "base": 0}]}

    def _autoscaling(self, load_balancer: LoadBalancerTarget | None) -> None:
        settings = self.args.settings
        target = aws.appautoscaling.Target(
            self.child_name("scaling-target"),
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", self.cluster.name, "/", self.ecs_service.name),
            min_capacity=settings.min_count,
            max_capacity=settings.max_count,
            opts=self.opts(),
        )
        policies: list[tuple[str, dict[str, Any], int]] = [
            ("cpu", {"predefined_metric_type": "ECSServiceAverageCPUUtilization"}, settings.cpu_target_percent),
        ]
        # Requests per target exist only behind the ALB; behind the HTTP API the service scales on CPU.
        if load_balancer is not None:
            policies.append(
                (
                    "requests",
                    {
                        "predefined_metric_type": "ALBRequestCountPerTarget",
                        "resource_label": pulumi.Output.concat(
                            load_balancer.arn_suffix, "/", load_balancer.target_group_arn_suffix
                        ),
                    },
                    settings.requests_per_target,
                )
            )
        for label, metric, value in policies:
            aws.appautoscaling.Policy(
                self.child_name("scale", label),
                name=self.naming.physical(self.component_name, "scale", label),
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                scalable_dimension=target.scalable_dimension,
                resource_id=target.resource_id,
                target_tracking_scaling_policy_configuration={
                    "target_value": value,
                    "predefined_metric_specification": metric,
                    "scale_out_cooldown": 60,  # react to a spike within a minute or two
                    "scale_in_cooldown": 300,  # shrink slowly: flapping costs more than a spare task
                },
                opts=self.opts(),
            )


def _assume_role(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )

"""The AWS stack model (`cloud: aws`, the default) and its cross-field checks."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from infra.config.common import CommonStack, UploadsConfig
from infra.config.validators import (
    PROJECT,
    AwsRegion,
    Cidr,
    LogRetentionDays,
    RdsWindow,
    Schedule,
    TagValue,
    TimeZone,
    _Model,
    aws_regions,
    priced_classes,
    reject_secret_like_env,
)

# --------------------------------------------------------------------------------------------------------
# AWS
# --------------------------------------------------------------------------------------------------------


def validate_rds_instance_class(value: str) -> str:
    """An RDS class the cost estimate can price: an unknown one (db.t9.huge) fails `pulumi up`, and an unpriced
    real one would make the estimate look cheaper than the bill. Add a row to infra/prices.json to use another."""
    known = priced_classes("rds.instance.")
    if value not in known:
        raise ValueError(
            f"{value!r} is not an RDS instance class with a list price in infra/prices.json; known: "
            f"{', '.join(known)} (to use another real class, add its price row there first)"
        )
    return value


RdsInstanceClass = Annotated[str, AfterValidator(validate_rds_instance_class)]


class NetworkConfig(_Model):
    cidr: Cidr = Field("10.20.0.0/16", description="VPC CIDR; split into public, private and isolated subnets.")
    az_count: Literal[2, 3] = Field(2, description="Availability zones used (2 is enough for multi-AZ RDS).")
    nat: Literal["none", "single", "per_az"] = Field(
        "none",
        description="Egress for private subnets. none: services run in public subnets with public IPs, "
        "ingress only from the load balancer (cheap staging). single: one NAT gateway (~33 USD/month). "
        "per_az: one per AZ, survives an AZ outage.",
    )
    vpc_endpoints: bool = Field(
        False,
        description="Interface endpoints (ECR, CloudWatch Logs, Secrets Manager) so private workloads reach "
        "AWS APIs without NAT. The S3 gateway endpoint is always created (it is free).",
    )
    flow_logs: bool = Field(False, description="VPC flow logs to CloudWatch Logs (FSBP EC2.6).")
    flow_log_retention_days: LogRetentionDays = 90


class DatabaseConfig(_Model):
    engine_version: str = Field("17", pattern=r"^\d{2}(\.\d+)?$", description="PostgreSQL major (or major.minor).")
    instance_class: RdsInstanceClass = Field("db.t4g.micro", description="RDS instance class (priced ones only).")
    allocated_storage_gb: int = Field(20, ge=20, le=65_536)
    max_allocated_storage_gb: int = Field(100, ge=20, le=65_536, description="Storage autoscaling ceiling.")
    multi_az: bool = False
    deletion_protection: bool = False
    backup_retention_days: int = Field(7, ge=1, le=35)
    backup_window: RdsWindow = Field(
        "03:00-04:00",
        description="UTC; the seed's nightly quiet hour. With backups.continuous (the default) it applies at create "
        "only: AWS Backup then manages the instance's backup window and retention (set backups.schedule instead).",
    )
    maintenance_window: RdsWindow = Field("sun:05:00-sun:06:00", description="UTC; must not overlap the backup window.")
    customer_managed_key: bool = Field(False, description="Encrypt with a customer KMS key (rotation on).")
    performance_insights: bool = True
    enhanced_monitoring_interval: Literal[0, 1, 5, 10, 15, 30, 60] = Field(0, description="Seconds; 0 = off.")
    log_retention_days: LogRetentionDays = 30
    slow_statement_ms: int = Field(500, ge=0, description="log_min_duration_statement.")
    max_connections: int | None = Field(None, ge=10, description="Override the instance-size default.")

    @model_validator(mode="after")
    def _storage_ceiling(self) -> DatabaseConfig:
        if self.max_allocated_storage_gb < self.allocated_storage_gb:
            raise ValueError("maxAllocatedStorageGb must be >= allocatedStorageGb")
        return self


_FARGATE_MEMORY = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4097, 1024)),
    1024: tuple(range(2048, 8193, 1024)),
    2048: tuple(range(4096, 16385, 1024)),
    4096: tuple(range(8192, 30721, 1024)),
    8192: tuple(range(16384, 61441, 4096)),
    16384: tuple(range(32768, 122881, 8192)),
}
"""Fargate task sizes (Linux): CPU units -> memory MiB. Source: "Fargate task CPU and memory",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size."""


def validate_fargate_size(cpu: int, memory: int) -> None:
    if cpu not in _FARGATE_MEMORY:
        raise ValueError(f"cpu {cpu} is not a Fargate size; use one of {', '.join(map(str, _FARGATE_MEMORY))}")
    allowed = _FARGATE_MEMORY[cpu]
    if memory not in allowed:
        raise ValueError(
            f"memory {memory} MiB does not fit cpu {cpu}; allowed: {allowed[0]}..{allowed[-1]} "
            f"({', '.join(map(str, allowed[:4]))}{'...' if len(allowed) > 4 else ''})"
        )


class WorkerConfig(_Model):
    """A long-running container from the API image with no load balancer (bots, queue consumers)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")
    command: list[str] = Field(min_length=1)
    cpu: int = 256
    memory: int = 512
    desired_count: int = Field(1, ge=0, le=20)

    @model_validator(mode="after")
    def _size(self) -> WorkerConfig:
        validate_fargate_size(self.cpu, self.memory)
        return self


ECR_IMAGE_BY_DIGEST = r"^[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$"
"""An ECR image by digest: a tag can be re-pointed, a digest cannot (what staging ran is what prod runs)."""


class ServiceConfig(_Model):
    """The API container on ECS Fargate behind the ALB (image built from app/)."""

    port: int = Field(8000, ge=1024, le=65_535, description="Container port (non-root, so >= 1024).")
    cpu: int = 256
    memory: int = 512
    architecture: Literal["arm64", "x86_64"] = Field("arm64", description="Graviton is ~20% cheaper.")
    desired_count: int = Field(1, ge=0, le=50)
    min_count: int = Field(1, ge=0, le=50)
    max_count: int = Field(2, ge=1, le=100)
    cpu_target_percent: int = Field(60, ge=10, le=95)
    requests_per_target: int = Field(500, ge=10, description="Target-tracking on ALBRequestCountPerTarget.")
    health_check_path: str = Field("/api/health", pattern=r"^/")
    health_check_grace_seconds: int = Field(60, ge=0, le=600)
    deregistration_delay_seconds: int = Field(30, ge=0, le=3600)
    execute_command: bool = Field(True, description="ECS Exec for debugging; off in prod by default.")
    log_retention_days: LogRetentionDays = 30
    gunicorn_workers: int = Field(2, ge=1, le=32)
    environment: dict[str, str] = Field(
        default_factory=dict, description="Plain, non-secret env vars. Secrets go through SECRET_KEYS."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Extra origins; the frontend's is added.")
    workers: list[WorkerConfig] = Field(default_factory=list)
    image: str | None = Field(
        None,
        pattern=ECR_IMAGE_BY_DIGEST,
        description=(
            "Deploy this prebuilt image by digest (`<account>.dkr.ecr.<region>.amazonaws.com/<repo>@sha256:<hex>`) "
            "instead of building app/: CI builds once per commit, deploys the digest to staging and promotes the same "
            "digest to prod (`scripts/deploy.py --image`, which sets this key for the update). None: pulumi-docker "
            "builds app/."
        ),
    )
    image_retention_count: int = Field(
        20,
        ge=5,
        le=1000,
        description="ECR lifecycle keeps this many most recent images (rollback targets); older ones expire.",
    )
    load_balancer_deletion_protection: bool = Field(
        False, description="ALB deletion protection; on in prod so a stray destroy cannot take traffic down."
    )
    load_balancer_access_logs: bool = Field(
        False, description="ALB access logs to an S3 bucket (per-request forensics); on in prod."
    )
    access_log_retention_days: int = Field(90, ge=1, le=3653, description="Days ALB access logs are kept in S3.")
    front_door: Literal["alb", "httpApi"] = Field(
        "alb",
        description="What serves the API to the internet. alb: Application Load Balancer (~27 USD/month before "
        "traffic; WAF, access logs, deletion protection; prod). httpApi: API Gateway HTTP API + VPC link to the "
        "tasks through Cloud Map, billed per request (staging default; no WAF: stage throttling instead).",
    )
    spot: bool = Field(
        False,
        description="Run the API tasks on Fargate Spot (~70% cheaper; a task may be stopped with a 2-minute "
        "warning and is replaced). For stacks where a short interruption is acceptable (staging).",
    )

    @field_validator("environment")
    @classmethod
    def _no_secrets_in_env(cls, env: dict[str, str]) -> dict[str, str]:
        reject_secret_like_env(env, "the task definition")
        return env

    @field_validator("workers")
    @classmethod
    def _unique_worker_names(cls, workers: list[WorkerConfig]) -> list[WorkerConfig]:
        # Each worker is an ECS service named after it: ECS refuses two services of one name in a cluster.
        names = [worker.name for worker in workers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(
                f"worker names must be unique (each is an ECS service name); repeated: {', '.join(repeated)}"
            )
        return workers

    @model_validator(mode="after")
    def _counts(self) -> ServiceConfig:
        validate_fargate_size(self.cpu, self.memory)
        if not self.min_count <= self.desired_count <= self.max_count:
            raise ValueError(
                f"need minCount <= desiredCount <= maxCount, got {self.min_count} <= {self.desired_count} "
                f"<= {self.max_count}"
            )
        return self


class WafConfig(_Model):
    enabled: bool = False
    rate_limit: int = Field(2000, ge=100, description="Requests per client IP per 5 minutes (WAF rate-based rule).")
    log_retention_days: LogRetentionDays = Field(
        30, description="Days WAF request logs (aws-waf-logs-* log groups, FSBP WAF.11) are kept; 90 in prod."
    )


def validate_path_pattern(value: str) -> str:
    """A CloudFront cache-behaviour path pattern: starts with '/', at most 255 characters, `*`/`?` wildcards."""
    if not re.fullmatch(r"/[A-Za-z0-9_\-.*$/~\"'@:+?&=!]*", value) or len(value) > 255:
        raise ValueError("must start with '/' and use only URL path characters with '*' or '?' wildcards")
    if value in {"/*", "*"}:
        raise ValueError("'/*' would make every file, index.html included, immutable; name the hashed-asset folder")
    return value


PathPattern = Annotated[str, AfterValidator(validate_path_pattern)]


class FrontendConfig(_Model):
    """The SPA on S3 + CloudFront (infra/aws/frontend.py)."""

    price_class: Literal["PriceClass_100", "PriceClass_200", "PriceClass_All"] = Field(
        "PriceClass_100",
        description="CloudFront edge locations: 100 = North America and Europe (cheapest), All = everywhere.",
    )
    content_security_policy: str = Field(
        "default-src 'self'; img-src 'self' data: https:; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self' https:; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
        description="Content-Security-Policy header CloudFront adds to every response (overrides the origin's).",
    )
    immutable_paths: list[PathPattern] = Field(
        default_factory=lambda: ["/assets/*"],
        min_length=1,
        description="Path patterns of content-hashed build output, cached for a year and marked immutable "
        "('/assets/*' is Vite's; Create React App uses '/static/*'). Everything else, index.html first, is "
        "revalidated on every request so a deploy shows at once.",
    )
    access_logs: bool = Field(
        False, description="CloudFront standard logs to a dedicated log bucket (on in prod by default)."
    )
    log_retention_days: LogRetentionDays = Field(90, description="Days before access-log objects expire.")


class CacheConfig(_Model):
    enabled: bool = False
    engine: Literal["valkey", "redis"] = "valkey"
    node_type: str = Field("cache.t4g.micro", description="ElastiCache node type (priced ones for `engine`).")
    replicas: int = Field(0, ge=0, le=5)
    maxmemory_policy: Literal[
        "noeviction",
        "allkeys-lru",
        "volatile-lru",
        "allkeys-lfu",
        "volatile-lfu",
        "allkeys-random",
        "volatile-random",
        "volatile-ttl",
    ] = Field(
        "noeviction",
        description="noeviction: queues (BullMQ, RQ) lose jobs silently under any evicting policy.",
    )

    @model_validator(mode="after")
    def _priced_node_type(self) -> CacheConfig:
        known = priced_classes(f"elasticache.{self.engine}.")
        if self.node_type not in known:
            raise ValueError(
                f"nodeType {self.node_type!r} is not an ElastiCache node type with a {self.engine} list price in "
                f"infra/prices.json; known: {', '.join(known)} (add its price row there to use another)"
            )
        return self


CONTINUOUS_BACKUP_MAX_DAYS = 35
"""AWS Backup keeps continuous (point-in-time) recovery points of RDS and S3 at most 35 days."""


class OffsiteCopyConfig(_Model):
    """Copies of the backups in a vault in a second region (disaster recovery when the stack's region is lost)."""

    region: AwsRegion = Field(
        description="Region of the offsite vault; must differ from aws:region (the copy is for losing that region).",
    )
    retention_days: int = Field(365, ge=1, description="Days each offsite copy is kept (1 year: the issue's anchor).")
    schedule: Schedule = Field(
        "cron(0 3 1 * ? *)",
        description="When the copied recovery point is taken (evaluated in backups.timezone). Monthly by default: "
        "a copy a month kept a year is 12 points to pay for, while the daily local ones cover the last weeks.",
    )


class VaultLockConfig(_Model):
    """AWS Backup Vault Lock on the vaults: recovery points cannot be deleted or kept outside [min, max] days."""

    min_retention_days: int = Field(7, ge=1, description="Shortest retention a rule may ask for in a locked vault.")
    max_retention_days: int = Field(400, ge=1, description="Longest retention a rule may ask for in a locked vault.")
    mode: Literal["governance", "compliance"] = Field(
        "governance",
        description="governance: an IAM principal with backup:DeleteBackupVaultLockConfiguration can still lift the "
        "lock (the way out of a mistaken min/max). compliance: after a 3-day grace period the lock can never be "
        "removed or shortened, not even by the account root or AWS Support — choose it only when a regulator "
        "demands WORM storage.",
    )


class BackupsConfig(_Model):
    """AWS Backup: daily recovery points of the database and the uploads bucket, offsite copies, restore tests."""

    enabled: bool = Field(True, description="false creates nothing backup-related (prod refuses it).")
    schedule: Schedule = Field("cron(0 2 * * ? *)", description="Daily at 02:00 in `timezone`.")
    timezone: TimeZone = Field(
        "America/Sao_Paulo", description="Time zone of every backup and restore-test schedule (no UTC maths)."
    )
    retention_days: int = Field(
        30,
        ge=1,
        description="Days the daily recovery points are kept. With `continuous` at most 35 (AWS Backup's cap for "
        "point-in-time recovery points) and equal to database.backupRetentionDays (AWS Backup takes over the "
        "RDS automated-backup retention, so a different number there would show as drift on every deploy).",
    )
    continuous: bool = Field(
        True,
        description="Point-in-time restore (continuous backup) for RDS and S3: RPO of minutes instead of a day.",
    )
    offsite: OffsiteCopyConfig | None = Field(None, description="Copies to a second region; none when absent.")
    vault_lock: VaultLockConfig | None = Field(
        None, description="Lock the vaults (prod). Retentions of every rule must fall inside [min, max]."
    )
    restore_testing: bool = Field(
        False,
        description="Monthly AWS Backup restore test of the database, validated by a Lambda "
        "(lambdas/restore_validation) that reports back to AWS Backup. Works without NAT: the validator runs "
        "outside the VPC and only its probe, which calls no AWS API, runs inside.",
    )
    restore_testing_schedule: Schedule = Field(
        "cron(0 9 ? * TUE#1 *)",
        description="When the restore test starts (in `timezone`): the first Tuesday of the month at 09:00, so a "
        "failure pages people at work, after the 1st's offsite copy.",
    )
    restore_validation_window_hours: int = Field(
        6,
        ge=1,
        le=168,
        description="Hours the restored copy lives for validation; AWS Backup deletes it when the validator "
        "reports or when the window ends, whichever is first.",
    )
    restore_test_instance_class: RdsInstanceClass = Field(
        "db.t4g.micro",
        description="Instance class of the restored copy: the smallest, it only answers a few catalogue queries.",
    )


class AwsStack(CommonStack):
    cloud: Literal["aws"] = "aws"
    region: AwsRegion = Field(description="From `aws:region` (a region in botocore's partition data).")
    owner: TagValue = Field(
        min_length=2, description="Team or person accountable; becomes the `owner` tag on every resource."
    )
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)
    waf: WafConfig = Field(default_factory=WafConfig)
    uploads: UploadsConfig = Field(default_factory=UploadsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    backups: BackupsConfig = Field(default_factory=BackupsConfig)


def _aws_problems(config: AwsStack, source: str) -> list[str]:
    problems: list[str] = []
    db = config.database
    if db.backup_window.split("-")[0] == db.maintenance_window.split("-")[0].split(":", 1)[-1]:
        problems.append(f"{source}: {PROJECT}:database.maintenanceWindow: must not start with the backup window")
    if config.backups.enabled:
        problems.extend(_backup_problems(config, source))
    if "email" in config.alerts.channels_in_use() and config.alerts.email_from is None and config.domain is None:
        problems.append(
            f"{source}: {PROJECT}:alerts.emailFrom: required when alerts.routing uses email and no domain is set "
            "(the sender SES sends alert e-mails from)"
        )
    for index, task in enumerate(config.jobs.scheduled_tasks):
        try:
            validate_fargate_size(task.cpu, task.memory)
        except ValueError as error:
            problems.append(f"{source}: {PROJECT}:jobs.scheduledTasks[{index}]: {error}")
    if config.alerts.routing.get("info") and "sms" in config.alerts.routing["info"]:
        problems.append(f"{source}: {PROJECT}:alerts.routing.info: SMS for info alerts would page people for noise")
    problems.extend(_front_door_problems(config, source))
    return problems


def _front_door_problems(config: AwsStack, source: str) -> list[str]:
    """WAF associates with REST APIs, ALBs, CloudFront, AppSync, Cognito, App Runner and Verified Access, not
    with an API Gateway HTTP API (docs.aws.amazon.com/waf/latest/developerguide/waf-chapter.html, "resources
    you can protect"); the HTTP API front door has stage throttling instead. The ALB-only keys would be ignored."""
    if config.service.front_door != "httpApi":
        return []
    problems = []
    if config.waf.enabled:
        problems.append(
            f"{source}: {PROJECT}:waf.enabled: AWS WAF cannot protect an API Gateway HTTP API; set "
            f"{PROJECT}:service.frontDoor: alb (WAF on the load balancer) or waf.enabled: false"
        )
    for key, on in (
        ("loadBalancerDeletionProtection", config.service.load_balancer_deletion_protection),
        ("loadBalancerAccessLogs", config.service.load_balancer_access_logs),
    ):
        if on:
            problems.append(
                f"{source}: {PROJECT}:service.{key}: applies to the ALB only; this stack's "
                f"service.frontDoor is httpApi (set frontDoor: alb, or drop the key)"
            )
    return problems


def _backup_problems(config: AwsStack, source: str) -> list[str]:
    """Combinations AWS Backup would refuse half-way through `pulumi up` (or silently fight over)."""
    backups = config.backups
    key = f"{source}: {PROJECT}:backups"
    problems: list[str] = []
    retentions = {"retentionDays": backups.retention_days}
    if backups.offsite is not None:
        retentions["offsite.retentionDays"] = backups.offsite.retention_days
        if backups.offsite.region == config.region:
            problems.append(f"{key}.offsite.region: must differ from aws:region ({config.region})")
        elif aws_regions()[backups.offsite.region] != aws_regions()[config.region]:
            # AWS Backup copies only within a partition (aws, aws-cn, aws-us-gov...): ARNs and accounts differ.
            problems.append(
                f"{key}.offsite.region: {backups.offsite.region} is in partition "
                f"{aws_regions()[backups.offsite.region]}, aws:region {config.region} in "
                f"{aws_regions()[config.region]}; cross-partition copies are not possible"
            )
    if backups.vault_lock is not None:
        lock = backups.vault_lock
        if lock.min_retention_days > lock.max_retention_days:
            problems.append(
                f"{key}.vaultLock: minRetentionDays ({lock.min_retention_days}) > maxRetentionDays "
                f"({lock.max_retention_days})"
            )
        else:
            for name, days in retentions.items():
                if not lock.min_retention_days <= days <= lock.max_retention_days:
                    problems.append(
                        f"{key}.{name}: {days} is outside the vault lock range {lock.min_retention_days}.."
                        f"{lock.max_retention_days} (a locked vault refuses recovery points kept shorter or longer)"
                    )
    if backups.continuous:
        if backups.retention_days > CONTINUOUS_BACKUP_MAX_DAYS:
            problems.append(
                f"{key}.retentionDays: {backups.retention_days} days with continuous: true; AWS Backup keeps "
                f"point-in-time recovery points at most {CONTINUOUS_BACKUP_MAX_DAYS} days (use offsite copies for "
                "longer, or continuous: false)"
            )
        elif backups.retention_days != config.database.backup_retention_days:
            problems.append(
                f"{key}.retentionDays: {backups.retention_days} differs from database.backupRetentionDays "
                f"({config.database.backup_retention_days}); with continuous: true AWS Backup sets the RDS "
                "retention to the rule's, so make them equal"
            )
    return problems

"""The DigitalOcean stack model (`cloud: digitalocean`) and its cross-field checks."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from infra.config.common import AlertsConfig, CommonStack, UploadsConfig
from infra.config.validators import PROJECT, _Model, priced_classes, rate_seconds, reject_secret_like_env

# --------------------------------------------------------------------------------------------------------
# DigitalOcean (issue 8): App Platform, managed PostgreSQL, Spaces
# --------------------------------------------------------------------------------------------------------

DO_REGIONS: tuple[str, ...] = (
    "ams3",
    "atl1",
    "blr1",
    "fra1",
    "lon1",
    "nyc1",
    "nyc3",
    "sfo2",
    "sfo3",
    "sgp1",
    "syd1",
    "tor1",
)
"""Region slugs where both managed PostgreSQL and App Platform run (the app runs in the slug's data centre
group: `fra1` -> App Platform region `fra`)."""

SPACES_REGIONS: tuple[str, ...] = (
    "ams3",
    "atl1",
    "blr1",
    "fra1",
    "lon1",
    "nyc3",
    "sfo2",
    "sfo3",
    "sgp1",
    "syd1",
    "tor1",
)
"""Region slugs that offer Spaces (nyc1, for one, does not)."""

REGISTRY_REGIONS: tuple[str, ...] = ("ams3", "blr1", "fra1", "nyc3", "sfo2", "sfo3", "sgp1", "syd1", "tor1")
"""Region slugs where DigitalOcean Container Registry can live."""


def _slug_in(allowed: tuple[str, ...], what: str) -> Any:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(
                f"{value!r} is not a DigitalOcean region slug with {what}; use one of {', '.join(allowed)}"
            )
        return value

    return AfterValidator(check)


DoRegion = Annotated[str, _slug_in(DO_REGIONS, "managed PostgreSQL and App Platform")]
SpacesRegion = Annotated[str, _slug_in(SPACES_REGIONS, "Spaces")]
RegistryRegion = Annotated[str, _slug_in(REGISTRY_REGIONS, "Container Registry")]

_APP_SIZE_RE = re.compile(r"^apps-(s|d)-(\d+)vcpu-(0\.5|\d+)gb(-fixed)?$")
_DB_SIZE_RE = re.compile(r"^(db-s|db-amd|db-intel|gd|so1_5|m|m3|so)-(\d+)vcpu-(\d+)gb$")
_DO_MAINTENANCE_DAYS = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def validate_app_size(value: str) -> str:
    if not _APP_SIZE_RE.match(value):
        raise ValueError(
            f"{value!r} is not an App Platform instance size slug; e.g. apps-s-1vcpu-0.5gb, apps-s-1vcpu-1gb, "
            "apps-s-2vcpu-4gb (shared) or apps-d-1vcpu-2gb (dedicated; `doctl apps tier instance-size list`)"
        )
    return _priced(value, "do.app.", "App Platform instance size")


def validate_db_size(value: str) -> str:
    if not _DB_SIZE_RE.match(value):
        raise ValueError(
            f"{value!r} is not a managed database size slug; e.g. db-s-1vcpu-1gb, db-s-1vcpu-2gb, db-s-2vcpu-4gb "
            "(`doctl databases options slugs --engine pg`)"
        )
    return _priced(value, "do.db.", "managed database size")


def _priced(value: str, prefix: str, what: str) -> str:
    """The cost estimate must price every size it is given (an unpriced one would under-report the total)."""
    known = priced_classes(prefix)
    if value not in known:
        raise ValueError(
            f"{value!r}: no {what} list price in infra/prices.json; priced: {', '.join(known)} "
            "(add its row there to use another)"
        )
    return value


AppSize = Annotated[str, AfterValidator(validate_app_size)]
DbSize = Annotated[str, AfterValidator(validate_db_size)]


def is_dedicated(size: str) -> bool:
    """App Platform autoscales only components on dedicated-CPU sizes (apps-d-*)."""
    return size.startswith("apps-d-")


def db_connection_limit(size: str) -> int:
    """Connections a managed PostgreSQL node accepts for pools and clients: 25 per GB of RAM, less the 3
    DigitalOcean reserves for maintenance (so a 1 GB node gives 22)."""
    match = _DB_SIZE_RE.match(size)
    gigabytes = int(match.group(3)) if match else 1
    return min(25 * gigabytes, 5000) - 3


class DoDatabaseConfig(_Model):
    """Managed PostgreSQL cluster. Daily backups and 7 days of point-in-time restore are built in (not
    configurable); see README "DigitalOcean target" for restore."""

    engine_version: str = Field(
        "17",
        pattern=r"^1[3-8]$",
        description="PostgreSQL major version (`doctl databases options versions`; default 17).",
    )
    size: DbSize = Field("db-s-1vcpu-1gb", description="Node size slug; 1 GB (~15 USD/month) is the seed's size.")
    node_count: int = Field(
        1,
        ge=1,
        le=3,
        description="1 = primary only; 2-3 add standby nodes with automatic failover. Prod needs >= 2.",
    )
    deletion_protection: bool = Field(
        False,
        description="DigitalOcean has no deletion protection on clusters: this sets Pulumi `protect` on the "
        "cluster, so `pulumi destroy` refuses until it is turned off. On by default in prod.",
    )
    maintenance_day: _DO_MAINTENANCE_DAYS = Field("sunday", description="Weekly maintenance window day (UTC).")
    maintenance_hour: str = Field(
        "05:00", pattern=r"^([01]\d|2[0-3]):00$", description="Start of the maintenance window (UTC, on the hour)."
    )
    pool_size: int = Field(
        10, ge=1, description="Server connections of the PgBouncer pool; must fit the node's connection limit."
    )
    pool_mode: Literal["transaction", "session", "statement"] = Field(
        "transaction", description="transaction: a server connection per transaction (most clients per connection)."
    )

    @model_validator(mode="after")
    def _pool_fits(self) -> DoDatabaseConfig:
        limit = db_connection_limit(self.size)
        if self.pool_size > limit:
            raise ValueError(f"poolSize {self.pool_size} exceeds the {limit} connections a {self.size} node accepts")
        return self


DO_STACK_ENV = frozenset(
    {
        "DATABASE_URL",
        "SECRET_KEY",
        "JWT_SECRET_KEY",
        "SENTRY_DSN",
        "CORS_ORIGINS",
        "UPLOADS_BUCKET",
        "UPLOAD_MAX_BYTES",
        "UPLOAD_ALLOWED_TYPES",
        "PORT",
        "WEB_CONCURRENCY",
        "STACK",
        "LOG_LEVEL",
    }
)
"""Env vars the DigitalOcean stack sets on the API itself (plus the AWS_* ones boto3 reads for Spaces)."""


class DoServiceConfig(_Model):
    """The API as an App Platform service (image from the container registry, built from app/)."""

    port: int = Field(8000, ge=1024, le=65_535, description="Container port (non-root, so >= 1024).")
    instance_size: AppSize = Field(
        "apps-s-1vcpu-0.5gb", description="Instance size slug; apps-s-1vcpu-0.5gb is ~5 USD/month per instance."
    )
    desired_count: int = Field(1, ge=1, le=50, description="Instances when not autoscaling.")
    min_count: int = Field(1, ge=1, le=50, description="Autoscaling floor (= desiredCount without autoscaling).")
    max_count: int = Field(1, ge=1, le=250, description="Autoscaling ceiling; > minCount turns autoscaling on.")
    cpu_target_percent: int = Field(60, ge=10, le=95, description="Autoscaling target on average CPU.")
    health_check_path: str = Field("/api/health", pattern=r"^/", description="Readiness path App Platform probes.")
    health_check_grace_seconds: int = Field(20, ge=0, le=250, description="Probe delay after an instance starts.")
    gunicorn_workers: int = Field(2, ge=1, le=32, description="WEB_CONCURRENCY of the API container.")
    database_connection: Literal["direct", "pool"] = Field(
        "direct",
        description="How the API reaches PostgreSQL. direct: the cluster (TLS). pool: the PgBouncer pool — only "
        "once the app stops sending statement_timeout as a startup parameter, which PgBouncer refuses.",
    )
    environment: dict[str, str] = Field(
        default_factory=dict, description="Plain, non-secret env vars (type GENERAL). Secrets go through SECRET_KEYS."
    )
    cors_origins: list[str] = Field(default_factory=list, description="Extra origins; the frontend's is added.")
    cpu_alert_percent: int = Field(80, ge=10, le=100, description="CPU_UTILIZATION alert threshold (5 min).")
    memory_alert_percent: int = Field(80, ge=10, le=100, description="MEM_UTILIZATION alert threshold (5 min).")
    restart_alert_count: int = Field(3, ge=1, le=100, description="RESTART_COUNT alert threshold (5 min).")

    @field_validator("environment")
    @classmethod
    def _no_secrets_in_env(cls, env: dict[str, str]) -> dict[str, str]:
        reject_secret_like_env(env, "the app spec")
        taken = sorted(k for k in env if k in DO_STACK_ENV or k.startswith("AWS_"))
        if taken:
            raise ValueError(f"{', '.join(taken)} are set by the stack (infra/digitalocean/app.py); remove them here")
        return env

    @model_validator(mode="after")
    def _counts(self) -> DoServiceConfig:
        if not self.min_count <= self.desired_count <= self.max_count:
            raise ValueError(
                f"need minCount <= desiredCount <= maxCount, got {self.min_count} <= {self.desired_count} "
                f"<= {self.max_count}"
            )
        if self.autoscaling and not is_dedicated(self.instance_size):
            raise ValueError(
                f"maxCount > minCount asks for autoscaling, which App Platform offers only on dedicated sizes "
                f"(apps-d-*), not {self.instance_size}; set minCount = maxCount or a dedicated instanceSize"
            )
        return self

    @property
    def autoscaling(self) -> bool:
        return self.max_count > self.min_count


class DoWorkerConfig(_Model):
    """The auto-confirm worker (App Platform has no scheduled jobs: terraform-provider-digitalocean #1529)."""

    instance_size: AppSize = Field("apps-s-1vcpu-0.5gb", description="The loop sleeps most of the hour: smallest size.")
    grace_period_seconds: int = Field(
        60,
        ge=1,
        le=600,
        description="SIGTERM to SIGKILL on redeploy; the worker finishes its current batch and exits well within it.",
    )


class DoFrontendConfig(_Model):
    """The SPA as an App Platform static site, built by App Platform from the repository (3 sites are free)."""

    repo: str = Field(pattern=r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$", description="GitHub 'owner/name' holding the SPA.")
    branch: str = Field("main", min_length=1, description="Branch App Platform builds.")
    source_dir: str = Field("frontend", description="Directory of the SPA inside the repository.")
    build_command: str = Field("npm ci && npm run build", description="Build command run by App Platform.")
    output_dir: str = Field("dist", description="Build output served as the site.")
    deploy_on_push: bool = Field(
        False, description="Rebuild on every push to `branch` (handy for staging; prod deploys through Pulumi)."
    )


class DoUploadsConfig(UploadsConfig):
    spaces_region: SpacesRegion | None = Field(
        None, description="Region of the uploads Space; default: the stack's region (it must offer Spaces)."
    )


class DoRegistryConfig(_Model):
    """DigitalOcean Container Registry holding the API image (one registry per account)."""

    name: str = Field("shipyard", pattern=r"^[a-z0-9-]{1,63}$", description="Registry name (account-wide).")
    create: bool = Field(
        True,
        description="Create the registry in this stack. An account has one registry: the second stack on the "
        "same account sets false and uses the existing one by name.",
    )
    subscription_tier: Literal["starter", "basic", "professional"] = Field(
        "starter", description="starter is free (1 repository, 500 MiB) — enough: every component runs one image."
    )
    region: RegistryRegion | None = Field(None, description="Default: the stack's region when DOCR is offered there.")


class DoAlertsConfig(AlertsConfig):
    slack_channel: str = Field(
        "#alerts",
        pattern=r"^#?[a-z0-9][a-z0-9._-]{0,79}$",
        description="Channel App Platform and uptime alerts name when posting to `slackWebhookUrl`.",
    )


class DigitalOceanStack(CommonStack):
    cloud: Literal["digitalocean"]
    region: DoRegion = Field(description="DigitalOcean region slug, e.g. 'nyc3', 'fra1' (`shipyard:region`).")
    database: DoDatabaseConfig = Field(default_factory=DoDatabaseConfig)
    service: DoServiceConfig = Field(default_factory=DoServiceConfig)
    worker: DoWorkerConfig = Field(default_factory=DoWorkerConfig)
    frontend: DoFrontendConfig
    uploads: DoUploadsConfig = Field(default_factory=DoUploadsConfig)
    registry: DoRegistryConfig = Field(default_factory=DoRegistryConfig)
    alerts: DoAlertsConfig = Field(default_factory=DoAlertsConfig)

    @property
    def app_region(self) -> str:
        """App Platform takes the data-centre group (`fra`), not the slug (`fra1`)."""
        return self.region.rstrip("0123456789")

    @property
    def spaces_region(self) -> str:
        return self.uploads.spaces_region or self.region

    @property
    def registry_region(self) -> str | None:
        if self.registry.region:
            return self.registry.region
        return self.region if self.region in REGISTRY_REGIONS else None


DO_ALERT_CHANNELS = ("email", "slack")
"""Channels App Platform alerts and uptime alerts deliver to themselves (no forwarder runs on DigitalOcean)."""


def _digitalocean_problems(config: DigitalOceanStack, source: str) -> list[str]:
    problems: list[str] = []
    aws_only = "AWS-only, not available with cloud: digitalocean"
    if config.domain is not None and config.domain.hosted_zone_id is not None:
        problems.append(
            f"{source}: {PROJECT}:domain.hostedZoneId: {aws_only} (Route 53); point CNAME records at the app's "
            "default ingress instead (stack output `dnsRecords`)"
        )
    if config.jobs.scheduled_tasks:
        problems.append(
            f"{source}: {PROJECT}:jobs.scheduledTasks: {aws_only} (App Platform has no scheduled jobs: "
            "terraform-provider-digitalocean #1529)"
        )
    if config.jobs.auto_confirm.enabled and rate_seconds(config.jobs.auto_confirm.schedule) is None:
        problems.append(
            f"{source}: {PROJECT}:jobs.autoConfirm.schedule: the DigitalOcean worker runs on an interval; write "
            "'rate(N minutes|hours)', not a cron expression"
        )
    for severity, channels in sorted(config.alerts.routing.items()):
        for channel in channels:
            if channel not in DO_ALERT_CHANNELS:
                problems.append(
                    f"{source}: {PROJECT}:alerts.routing.{severity}: {channel!r} is {aws_only} (it goes through the "
                    f"alert forwarder Lambda); DigitalOcean delivers only to {' and '.join(DO_ALERT_CHANNELS)}"
                )
    if config.spaces_region not in SPACES_REGIONS:
        problems.append(
            f"{source}: {PROJECT}:uploads.spacesRegion: {config.region} has no Spaces; set one of "
            f"{', '.join(SPACES_REGIONS)}"
        )
    if config.registry.create and config.registry_region is None:
        problems.append(
            f"{source}: {PROJECT}:registry.region: {config.region} has no Container Registry; set one of "
            f"{', '.join(REGISTRY_REGIONS)}"
        )
    return problems

"""The stack configuration: one pydantic model of everything a `Pulumi.<stack>.yaml` may say.

Every key lives under the project namespace (`shipyard:<key>`), written in camelCase as Pulumi users expect;
the Python side reads snake_case attributes. A key in the stack file maps to exactly one field below, and
each field's description says what it drives — that is the "one hop" from config key to resource.

How values are decided, in order:
1. what the stack file says;
2. the tier's default (`TIER_DEFAULTS`: staging is cheap, prod is highly available);
3. the field default below.
Prod is then checked against `PROD_MINIMUMS`; asking for less is an error unless the stack file carries a
waiver with a written reason (`shipyard:waivers`).

`load_stack_config()` reads the config the Pulumi engine hands the program and returns a validated
`StackConfig`, or raises `ConfigError` listing *every* problem as
`Pulumi.<stack>.yaml: <key path>: <what is wrong, what is allowed>` before any resource exists.

Run `python -m infra.config --schema` for the JSON Schema of the stack file (make schema).
"""

from __future__ import annotations

import ipaddress
import json
import re
import sys
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pulumi import RunError
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

# Standard library only: the catalogue's ids validate `monitoring.alarms.<id>` before any resource exists.
from infra.aws.alarms import ALARM_IDS, DEFAULT_RUNBOOK_BASE_URL, override_problems

PROJECT = "shipyard"
"""The Pulumi project name (Pulumi.yaml) and so the config namespace: keys are `shipyard:<key>`."""

Tier = Literal["staging", "prod"]


class ConfigError(RunError):
    """An invalid stack configuration. `problems` holds one line per problem, already formatted.

    A `pulumi.RunError`, so the CLI prints the message without a Python traceback.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        self.registered: list[str] = []  # URNs registered before the error (the harness fills it in)
        super().__init__("invalid stack configuration:\n  " + "\n  ".join(problems))


class _Model(BaseModel):
    """Base for every config section: camelCase keys, unknown keys rejected, values immutable."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=True,
    )


# --------------------------------------------------------------------------------------------------------
# Reusable validated types
# --------------------------------------------------------------------------------------------------------

_RATE_RE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_CRON_RE = re.compile(r"^cron\((.+)\)$")
_CRON_FIELD_RE = re.compile(r"^[0-9A-Za-z*?,/\-#L W]+$")


def validate_schedule(value: str) -> str:
    """Accepts EventBridge Scheduler / AWS Backup expressions: `rate(N unit)` or `cron(6 fields)`.

    The cron dialect is AWS's, not Unix's: six fields (minutes hours day-of-month month day-of-week year)
    and exactly one of day-of-month / day-of-week must be `?`. Catching that here beats a failed
    `pulumi up` half-way through a deployment.
    """
    rate = _RATE_RE.match(value)
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2)
        if amount < 1:
            raise ValueError("rate amount must be at least 1")
        if (amount == 1) != (not unit.endswith("s")):
            raise ValueError(f"write 'rate(1 {unit.rstrip('s')})' for one and 'rate(N {unit.rstrip('s')}s)' for more")
        return value
    cron = _CRON_RE.match(value)
    if not cron:
        raise ValueError("must be 'rate(N minutes|hours|days)' or 'cron(min hour day-of-month month day-of-week year)'")
    fields = cron.group(1).split()
    if len(fields) != 6:
        raise ValueError(f"AWS cron takes 6 fields (min hour day-of-month month day-of-week year), got {len(fields)}")
    for index, field in enumerate(fields):
        if not _CRON_FIELD_RE.match(field):
            raise ValueError(f"cron field {index + 1} ({field!r}) has characters AWS cron does not accept")
    minute, hour, dom, _month, dow, _year = fields
    if (dom == "?") == (dow == "?"):
        raise ValueError("exactly one of day-of-month (field 3) and day-of-week (field 5) must be '?'")
    for name, text, high in (("minute", minute, 59), ("hour", hour, 23)):
        for number in re.findall(r"\d+", text):
            if int(number) > high:
                raise ValueError(f"{name} value {number} is out of range 0-{high}")
    return value


def validate_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'America/Sao_Paulo', 'UTC')") from None
    return value


def validate_cidr(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"not an IPv4 CIDR block with host bits zero ({exc})") from None
    if not network.is_private:
        raise ValueError("must be a private range (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)")
    if not 16 <= network.prefixlen <= 22:
        raise ValueError(f"prefix /{network.prefixlen} out of range: use /16 to /22 (room for 9 subnets)")
    return value


def validate_window(value: str) -> str:
    """RDS windows: `hh:mm-hh:mm` (backup) or `ddd:hh:mm-ddd:hh:mm` (maintenance), UTC."""
    if not re.fullmatch(
        r"((mon|tue|wed|thu|fri|sat|sun):)?([01]\d|2[0-3]):[0-5]\d-"
        r"((mon|tue|wed|thu|fri|sat|sun):)?([01]\d|2[0-3]):[0-5]\d",
        value,
    ):
        raise ValueError("must look like '03:00-04:00' or 'sun:05:00-sun:06:00' (UTC)")
    return value


Reason = Annotated[str, Field(min_length=10, description="why; at least a sentence")]
_LOG_RETENTION_ALLOWED = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


def validate_log_retention(value: int) -> int:
    if value not in _LOG_RETENTION_ALLOWED:
        raise ValueError(f"CloudWatch Logs accepts only {', '.join(map(str, _LOG_RETENTION_ALLOWED))} days")
    return value


Schedule = Annotated[str, AfterValidator(validate_schedule)]
TimeZone = Annotated[str, AfterValidator(validate_timezone)]
Cidr = Annotated[str, AfterValidator(validate_cidr)]
RdsWindow = Annotated[str, AfterValidator(validate_window)]
LogRetentionDays = Annotated[int, AfterValidator(validate_log_retention)]


# --------------------------------------------------------------------------------------------------------
# Sections shared by every cloud
# --------------------------------------------------------------------------------------------------------


class DomainConfig(_Model):
    """Custom domain. Without it the stack serves on the CloudFront / load balancer host names."""

    name: str = Field(description="Apex domain, e.g. 'example.com'.", pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")
    frontend_host: str = Field("app", description="Sub-domain of the SPA: app.example.com. '@' = apex.")
    api_host: str = Field("api", description="Sub-domain of the API: api.example.com.")
    hosted_zone_id: str | None = Field(
        None,
        description="Route 53 zone for `name`. Given: ACM certificates are DNS-validated and alias records "
        "created automatically. Absent: you create the records shown in the outputs yourself.",
    )

    def host(self, sub: str) -> str:
        return self.name if sub == "@" else f"{sub}.{self.name}"

    @property
    def frontend_fqdn(self) -> str:
        return self.host(self.frontend_host)

    @property
    def api_fqdn(self) -> str:
        return self.host(self.api_host)


class AutoConfirmJobConfig(_Model):
    """The hourly auto-confirm Lambda (lambdas/auto_confirm)."""

    enabled: bool = Field(True, description="Create the Lambda and its schedule.")
    schedule: Schedule = Field(
        "rate(1 hour)", description="EventBridge Scheduler expression; hourly per the product rule."
    )
    batch_size: int = Field(500, ge=1, le=10_000, description="Orders settled per transaction; bounds lock time.")
    timeout_seconds: int = Field(300, ge=10, le=900, description="Lambda timeout.")
    memory_mb: int = Field(256, ge=128, le=10_240, description="Lambda memory.")


class ScheduledTaskConfig(_Model):
    """A cron job run as a one-off ECS task from the API image (seed 001: reminders, cleanups...)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$", description="Short id, used in resource names.")
    schedule: Schedule = Field(description="EventBridge Scheduler expression, evaluated in `jobs.timezone`.")
    command: list[str] = Field(min_length=1, description="Container command, e.g. ['python', '-m', 'app.jobs.x'].")
    cpu: int = Field(256, description="Fargate CPU units.")
    memory: int = Field(512, description="Fargate memory (MiB).")


class JobsConfig(_Model):
    timezone: TimeZone = Field(
        "America/Sao_Paulo",
        description="Time zone of every job schedule (EventBridge Scheduler evaluates cron in it; no UTC maths).",
    )
    auto_confirm: AutoConfirmJobConfig = Field(default_factory=AutoConfirmJobConfig)
    scheduled_tasks: list[ScheduledTaskConfig] = Field(default_factory=list)

    @field_validator("scheduled_tasks")
    @classmethod
    def _unique_names(cls, tasks: list[ScheduledTaskConfig]) -> list[ScheduledTaskConfig]:
        names = [t.name for t in tasks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"task names must be unique; repeated: {', '.join(duplicates)}")
        return tasks


Channel = Literal["slack", "telegram", "email", "sms", "webhook"]
Severity = Literal["critical", "warning", "info"]


def _no_routing() -> dict[Severity, list[Channel]]:
    return {"critical": [], "warning": [], "info": []}


class EscalationConfig(_Model):
    interval_minutes: int = Field(30, ge=5, le=1440, description="Re-send a critical alarm still in ALARM after this.")
    max_count: int = Field(3, ge=0, le=20, description="How many re-sends at most (0 = no escalation).")


class StormConfig(_Model):
    threshold: int = Field(10, ge=2, description="More alerts than this within `windowSeconds` become one digest.")
    window_seconds: int = Field(60, ge=10, le=3600)


class AlertsConfig(_Model):
    """Who hears about what. Channel credentials are secrets (see `ALERT_CHANNEL_SECRETS`)."""

    routing: dict[Severity, list[Channel]] = Field(
        default_factory=_no_routing,
        description="Channels per severity. info with [] = kept in history only.",
    )
    oncall_email: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Subscribed to the critical topic by e-mail, so a broken forwarder still reaches a person.",
    )
    cooldown_minutes: int = Field(15, ge=0, le=1440, description="Same alarm+state not re-sent within this.")
    escalation: EscalationConfig = Field(default_factory=EscalationConfig)
    storm: StormConfig = Field(default_factory=StormConfig)
    rate_limit_per_minute: int = Field(20, ge=1, le=600, description="Per channel; beyond it alerts are digested.")
    email_from: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="Sender of alert e-mails (AWS: an SES e-mail identity is created for it and must be verified "
        "once by clicking the link SES mails to it). Default: alerts@<domain.name> when a domain is set; "
        "required when alerts.routing uses email and there is no domain.",
    )

    @field_validator("routing")
    @classmethod
    def _no_duplicate_channels(cls, routing: dict[str, list[str]]) -> dict[str, list[str]]:
        for severity, channels in routing.items():
            if len(set(channels)) != len(channels):
                raise ValueError(f"{severity}: a channel is listed twice")
        return routing

    def channels_in_use(self) -> set[str]:
        return {channel for channels in self.routing.values() for channel in channels}


ALERT_CHANNEL_SECRETS: dict[str, tuple[str, ...]] = {
    "slack": ("slackWebhookUrl",),
    "telegram": ("telegramBotToken", "telegramChatId"),
    "webhook": ("webhookUrl", "webhookSigningKey"),
    "sms": ("smsNumbers",),
    "email": ("alertEmails",),
}
"""Secret config keys each routed channel needs (set with `pulumi config set --secret shipyard:<key>`)."""

SECRET_KEYS: dict[str, str] = {
    "slackWebhookUrl": "Slack incoming-webhook URL for alerts",
    "telegramBotToken": "Telegram bot token for alerts",
    "telegramChatId": "Telegram chat id that receives alerts",
    "webhookUrl": "Generic alert webhook URL",
    "webhookSigningKey": "HMAC-SHA256 key signing generic webhook bodies",
    "smsNumbers": "Comma-separated E.164 phone numbers for SMS alerts",
    "alertEmails": "Comma-separated e-mail addresses for alert e-mails",
    "appSecretKey": "Flask SECRET_KEY (generated when unset)",
    "jwtSecretKey": "JWT signing key (generated when unset)",
    "sentryDsn": "Sentry DSN of the API (optional)",
}
"""Every secret the stack reads: top-level keys, never plain text in a stack file."""


class HealthEndpointConfig(_Model):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,30}$")
    target: Literal["frontend", "api"] = Field(description="Which public base URL `path` is appended to.")
    path: str = Field("/", pattern=r"^/")
    expected_status: int = Field(200, ge=100, le=599)
    body_contains: str | None = None
    timeout_seconds: float = Field(5.0, gt=0, le=30)
    latency_budget_ms: int = Field(2000, gt=0)

    @model_validator(mode="after")
    def _budget_within_timeout(self) -> HealthEndpointConfig:
        # The checker refuses a budget longer than the timeout at every run (lambdas/health_check/README.md).
        if self.latency_budget_ms > self.timeout_seconds * 1000:
            raise ValueError(
                f"latencyBudgetMs ({self.latency_budget_ms}) must be <= timeoutSeconds × 1000 "
                f"({self.timeout_seconds * 1000:g})"
            )
        return self


def _default_health_endpoints() -> list[HealthEndpointConfig]:
    return [
        HealthEndpointConfig(name="frontend", target="frontend", path="/"),
        HealthEndpointConfig(name="api-live", target="api", path="/api/health"),
        HealthEndpointConfig(name="api-ready", target="api", path="/api/health/ready"),
    ]


class HealthChecksConfig(_Model):
    enabled: bool = True
    schedule: Schedule = Field("rate(1 minute)", description="How often the health-check Lambda runs.")
    endpoints: list[HealthEndpointConfig] = Field(default_factory=_default_health_endpoints)
    database: bool = Field(True, description="Also check the database (TCP + TLS + SELECT 1) from inside the VPC.")
    cert_warn_days: int = Field(14, ge=1, le=90)


class AlarmOverride(_Model):
    threshold: float | None = None
    severity: Severity | None = None
    evaluation_periods: int | None = Field(None, ge=1)
    datapoints_to_alarm: int | None = Field(None, ge=1)
    enabled: bool = True


def validate_alarm_id(value: str) -> str:
    """Override keys must name a catalogued alarm: a typo would otherwise silently keep the default."""
    if value not in ALARM_IDS:
        close = sorted(i for i in ALARM_IDS if i.split("-")[0] == value.split("-")[0]) or sorted(ALARM_IDS)
        raise ValueError(f"unknown alarm id {value!r} (infra/aws/alarms.py); known ids include: {', '.join(close)}")
    return value


AlarmId = Annotated[str, AfterValidator(validate_alarm_id)]


class MonitoringConfig(_Model):
    availability_slo_percent: float = Field(99.9, gt=90, lt=100, description="SLO behind the burn-rate alarms.")
    alarms: dict[AlarmId, AlarmOverride] = Field(
        default_factory=dict,
        description="Overrides keyed by alarm id from the catalogue (infra/aws/alarms.py): threshold, severity, "
        "evaluationPeriods, datapointsToAlarm, enabled. Applies to every instance of a per-resource alarm.",
    )
    runbook_base_url: str = Field(
        DEFAULT_RUNBOOK_BASE_URL,
        pattern=r"^https://\S+$",
        description="Where docs/runbooks/ is browsable; each alarm description ends with "
        "`Runbook: <this>/<alarm id>.md`. The default is a placeholder: point it at the repository's docs.",
    )


class PolicyConfig(_Model):
    exceptions: dict[str, Reason] = Field(
        default_factory=dict,
        description="Policy rule id → written reason. The rule is skipped for this stack only.",
    )


class BudgetConfig(_Model):
    """The stack's monthly budget (issue 19): the plan's cost estimate is reported against it."""

    monthly_usd: float = Field(gt=0, le=100_000, description="Budget in USD a month, list prices (infra/prices.json).")
    source: str = Field(
        "",
        max_length=200,
        description="Where the figure comes from (e.g. 'seed 004: AWS 37.5 USD'); shown beside it in the plan.",
    )


class CommonStack(_Model):
    """Keys every cloud target understands."""

    tier: Tier = Field(description="staging | prod. Sets the defaults in TIER_DEFAULTS; prod is held to PROD_MINIMUMS.")
    owner: str = Field(min_length=2, description="Team or person accountable; becomes the `owner` tag.")
    domain: DomainConfig | None = None
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    health_checks: HealthChecksConfig = Field(default_factory=HealthChecksConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    waivers: dict[str, Reason] = Field(
        default_factory=dict,
        description="Prod minimum id (see PROD_MINIMUMS) → written reason for asking less.",
    )
    budget: BudgetConfig | None = Field(
        None,
        description="Monthly budget the plan reports against (`--fail-over-budget` fails over it); "
        "unset = the tier's (infra/cost.py GOALS_USD: staging 45, prod 200).",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Filled from the secret top-level keys in SECRET_KEYS; never written under this name.",
    )

    def secret(self, key: str) -> str | None:
        value = self.secrets.get(key)
        return value.get_secret_value() if value is not None else None


# --------------------------------------------------------------------------------------------------------
# AWS
# --------------------------------------------------------------------------------------------------------


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
    instance_class: str = Field("db.t4g.micro", pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$")
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
}


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


_SECRETISH = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY|DSN)", re.IGNORECASE)


def reject_secret_like_env(env: dict[str, str], visible_in: str) -> dict[str, str]:
    """Plain env vars are readable by anyone who can read `visible_in`; secret-looking names are refused."""
    leaked = sorted(k for k in env if _SECRETISH.search(k))
    if leaked:
        raise ValueError(
            f"{', '.join(leaked)} look like secrets; plain env vars are visible in {visible_in} — "
            "set them as secret config instead"
        )
    return env


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


class UploadsConfig(_Model):
    max_size_mb: int = Field(10, ge=1, le=5_000)
    allowed_types: list[str] = Field(default_factory=lambda: ["jpg", "jpeg", "png", "pdf", "mp4"], min_length=1)
    prefix: str = Field("uploads/", pattern=r"^[a-z0-9-]+/$")
    noncurrent_version_days: int = Field(30, ge=1)
    abort_multipart_days: int = Field(7, ge=1)
    access_log_retention_days: int = Field(
        90, ge=1, le=3653, description="Days S3 server access logs of the uploads and SPA buckets are kept (S3.9)."
    )


class CacheConfig(_Model):
    enabled: bool = False
    engine: Literal["valkey", "redis"] = "valkey"
    node_type: str = Field("cache.t4g.micro", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$")
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


CONTINUOUS_BACKUP_MAX_DAYS = 35
"""AWS Backup keeps continuous (point-in-time) recovery points of RDS and S3 at most 35 days."""


class OffsiteCopyConfig(_Model):
    """Copies of the backups in a vault in a second region (disaster recovery when the stack's region is lost)."""

    region: str = Field(
        pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$",
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
    restore_test_instance_class: str = Field(
        "db.t4g.micro",
        pattern=r"^db\.[a-z0-9]+\.[a-z0-9]+$",
        description="Instance class of the restored copy: the smallest, it only answers a few catalogue queries.",
    )


class AwsStack(CommonStack):
    cloud: Literal["aws"] = "aws"
    region: str = Field(description="From `aws:region`.", pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    frontend: FrontendConfig = Field(default_factory=FrontendConfig)
    waf: WafConfig = Field(default_factory=WafConfig)
    uploads: UploadsConfig = Field(default_factory=UploadsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    backups: BackupsConfig = Field(default_factory=BackupsConfig)


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
    return value


def validate_db_size(value: str) -> str:
    if not _DB_SIZE_RE.match(value):
        raise ValueError(
            f"{value!r} is not a managed database size slug; e.g. db-s-1vcpu-1gb, db-s-1vcpu-2gb, db-s-2vcpu-4gb "
            "(`doctl databases options slugs --engine pg`)"
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


StackConfig = Annotated[AwsStack | DigitalOceanStack, Field(discriminator="cloud")]
_STACK_ADAPTER: TypeAdapter[AwsStack | DigitalOceanStack] = TypeAdapter(StackConfig)


# --------------------------------------------------------------------------------------------------------
# Tier defaults and prod minimums
# --------------------------------------------------------------------------------------------------------

TIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "staging": {
        "network": {"nat": "none", "vpcEndpoints": False, "flowLogs": False},
        "database": {"backupRetentionDays": 7, "multiAz": False, "deletionProtection": False},
        "service": {
            "desiredCount": 1,
            "minCount": 1,
            "maxCount": 2,
            "executeCommand": True,
            "frontDoor": "httpApi",
            "spot": True,
        },
        "backups": {"retentionDays": 7},
    },
    "prod": {
        "network": {"nat": "single", "vpcEndpoints": False, "flowLogs": True},
        "database": {
            "instanceClass": "db.t4g.small",
            "backupRetentionDays": 30,
            "multiAz": True,
            "deletionProtection": True,
            "customerManagedKey": True,
            "enhancedMonitoringInterval": 60,
            "logRetentionDays": 90,
        },
        "service": {
            "cpu": 512,
            "memory": 1024,
            "desiredCount": 2,
            "minCount": 2,
            "maxCount": 6,
            "executeCommand": False,
            "logRetentionDays": 90,
            "loadBalancerDeletionProtection": True,
            "loadBalancerAccessLogs": True,
            "frontDoor": "alb",
            "spot": False,
        },
        "frontend": {"accessLogs": True},
        "waf": {"enabled": True, "logRetentionDays": 90},
        "backups": {"retentionDays": 30, "restoreTesting": True},
    },
}
"""Defaults per tier, applied under what the stack file says (the stack file always wins)."""

DO_TIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "staging": {
        "database": {"size": "db-s-1vcpu-1gb", "nodeCount": 1, "deletionProtection": False},
        "service": {"instanceSize": "apps-s-1vcpu-0.5gb", "desiredCount": 1, "minCount": 1, "maxCount": 1},
        "frontend": {"deployOnPush": True},
    },
    "prod": {
        # 2 GB: the 1 GB node's 22 connections are tight once two API instances and the worker connect.
        "database": {"size": "db-s-1vcpu-2gb", "nodeCount": 2, "deletionProtection": True, "poolSize": 20},
        "service": {"instanceSize": "apps-s-1vcpu-1gb", "desiredCount": 2, "minCount": 2, "maxCount": 2},
        "frontend": {"deployOnPush": False},
    },
}
"""The same, for `cloud: digitalocean` (its sections have other keys: size slugs instead of instance classes)."""


@dataclass(frozen=True)
class ProdMinimum:
    id: str
    key: str
    requirement: str

    def violated(self, config: AwsStack | DigitalOceanStack) -> bool:
        return _PROD_CHECKS[self.id](config)


_PROD_CHECKS: dict[str, Any] = {
    "database.multiAz": lambda c: isinstance(c, AwsStack) and not c.database.multi_az,
    "database.deletionProtection": lambda c: not c.database.deletion_protection,
    "database.backupRetentionDays": lambda c: isinstance(c, AwsStack) and c.database.backup_retention_days < 7,
    "service.minCount": lambda c: c.service.min_count < 2,
    "database.nodeCount": lambda c: isinstance(c, DigitalOceanStack) and c.database.node_count < 2,
    "network.nat": lambda c: isinstance(c, AwsStack) and c.network.nat == "none" and not c.network.vpc_endpoints,
    "network.flowLogs": lambda c: isinstance(c, AwsStack) and not c.network.flow_logs,
    "service.frontDoor": lambda c: isinstance(c, AwsStack) and c.service.front_door != "alb",
    "backups.enabled": lambda c: isinstance(c, AwsStack) and not c.backups.enabled,
    "alerts.routing.critical": lambda c: not c.alerts.routing.get("critical"),
    "alerts.oncallEmail": lambda c: c.alerts.oncall_email is None,
}

PROD_MINIMUMS: tuple[ProdMinimum, ...] = (
    ProdMinimum("database.multiAz", "shipyard:database.multiAz", "must be true in prod (survives an AZ outage)"),
    ProdMinimum("database.deletionProtection", "shipyard:database.deletionProtection", "must be true in prod"),
    ProdMinimum("database.backupRetentionDays", "shipyard:database.backupRetentionDays", "must be >= 7 in prod"),
    ProdMinimum("service.minCount", "shipyard:service.minCount", "must be >= 2 in prod (one task per AZ)"),
    ProdMinimum(
        "database.nodeCount",
        "shipyard:database.nodeCount",
        "must be >= 2 in prod (a standby node takes over when the primary fails)",
    ),
    ProdMinimum(
        "network.nat",
        "shipyard:network.nat",
        "prod tasks run in private subnets: needs 'single' or 'per_az' NAT, or vpcEndpoints: true",
    ),
    ProdMinimum("network.flowLogs", "shipyard:network.flowLogs", "must be true in prod (FSBP EC2.6)"),
    ProdMinimum(
        "service.frontDoor",
        "shipyard:service.frontDoor",
        "must be alb in prod (WAF, access logs and deletion protection need the load balancer)",
    ),
    ProdMinimum("backups.enabled", "shipyard:backups.enabled", "must be true in prod"),
    ProdMinimum(
        "alerts.routing.critical",
        "shipyard:alerts.routing.critical",
        "prod needs at least one channel for critical alerts",
    ),
    ProdMinimum(
        "alerts.oncallEmail",
        "shipyard:alerts.oncallEmail",
        "prod needs an on-call e-mail on the critical topic (reaches people if the forwarder breaks)",
    ),
)


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_value(raw: Any) -> Any:
    """Engine config values are strings; objects and lists arrive as JSON text."""
    if isinstance(raw, str) and raw[:1] in "{[":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _key_path(loc: tuple[int | str, ...], is_aws: bool) -> str:
    parts: list[str] = []
    for index, element in enumerate(loc):
        if element == "[key]":  # pydantic's marker for "the mapping key itself was invalid"
            continue
        if isinstance(element, int):
            parts[-1] += f"[{element}]"
        elif index == 0 and element == "region" and is_aws:
            return "aws:region"
        elif index == 0:
            parts.append(f"{PROJECT}:{element}")
        else:
            parts.append(str(element))
    return ".".join(parts) if parts else f"{PROJECT}:<root>"


def _field_for(model: type[BaseModel], loc: Iterable[int | str]) -> type[BaseModel] | None:
    """The model class found by walking `loc` (aliases) from `model`, for 'allowed keys' hints."""
    current: Any = model
    for element in loc:
        if isinstance(element, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {(f.alias or n): f for n, f in current.model_fields.items()}
        field = by_alias.get(str(element))
        if field is None:
            return None
        current = _unwrap_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


_AWS_ONLY_WHY: dict[str, str] = {
    "network": "App Platform and managed databases run without a VPC you lay out",
    "waf": "App Platform has no WAF to attach",
    "cache": "the DigitalOcean target creates no cache; ElastiCache node types and engines do not exist there",
    "backups": "managed PostgreSQL on DigitalOcean takes daily backups with 7 days of point-in-time restore "
    "by itself, with no copies to other regions; see README, DigitalOcean target",
}


def _is_aws_key(loc: tuple[int | str, ...]) -> bool:
    parent = _field_for(AwsStack, loc[:-1])
    if parent is None:
        return False
    return str(loc[-1]) in {(f.alias or n) for n, f in parent.model_fields.items()}


def _describe(kind: str, message: str, loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    if kind == "extra_forbidden":
        parent = _field_for(model, loc[:-1])
        aws_only = ""
        if model is DigitalOceanStack and _is_aws_key(loc):
            why = _AWS_ONLY_WHY.get(str(loc[0])) if len(loc) == 1 else None
            aws_only = f"AWS-only key, not available with cloud: digitalocean{f' — {why}' if why else ''}; "
        if parent is not None:
            allowed = sorted(
                (f.alias or n) for n, f in parent.model_fields.items() if n not in {"secrets", "cloud", "region"}
            )
            return f"{aws_only or 'unknown key; '}allowed here: {', '.join(allowed)}"
        return aws_only.rstrip("; ") or "unknown key"
    if kind == "missing":
        return "required key is missing"
    return message.removeprefix("Value error, ")


def stack_file_name(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"


def parse_stack_config(
    raw: Mapping[str, Any],
    *,
    source: str,
    secret_keys: Iterable[str] = (),
) -> AwsStack | DigitalOceanStack:
    """Validate engine-style config (`{"shipyard:tier": "prod", "aws:region": "...", ...}`).

    `source` names the stack file in messages. `secret_keys` are the fully qualified keys the engine
    marks secret; a key from SECRET_KEYS given in plain text is an error (it would sit in git).
    """
    secret_keys = set(secret_keys)
    problems: list[str] = []
    document: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for full_key, value in sorted(raw.items()):
        namespace, _, key = full_key.partition(":")
        if namespace == "aws" and key == "region":
            document["region"] = value
            continue
        if namespace != PROJECT:
            continue
        if key in SECRET_KEYS:
            if full_key not in secret_keys:
                problems.append(
                    f"{source}: {full_key}: is a secret but is stored in plain text; remove it and run "
                    f"`pulumi config set --secret {full_key} <value>`"
                )
                continue
            secrets[key] = str(value)
            continue
        if key == "secrets":
            problems.append(f"{source}: {full_key}: reserved; set secrets as top-level secret keys")
            continue
        document[key] = _parse_value(value)
    document.setdefault("cloud", "aws")
    tier = document.get("tier")
    tier_defaults = TIER_DEFAULTS if document.get("cloud") == "aws" else DO_TIER_DEFAULTS
    if isinstance(tier, str) and tier in tier_defaults:
        document = _deep_merge(tier_defaults[tier], document)
    document["secrets"] = secrets
    is_aws = document.get("cloud") == "aws"
    model: type[BaseModel] = AwsStack if is_aws else DigitalOceanStack
    config: AwsStack | DigitalOceanStack | None = None
    try:
        config = _STACK_ADAPTER.validate_python(document)
    except ValidationError as exc:
        for error in exc.errors():
            loc = tuple(error["loc"])
            if loc and loc[0] in {"aws", "digitalocean"}:
                loc = loc[1:]
            problems.append(f"{source}: {_key_path(loc, is_aws)}: {_describe(error['type'], error['msg'], loc, model)}")
    if config is not None:
        problems.extend(_semantic_problems(config, source))
    if problems:
        raise ConfigError(problems)
    assert config is not None
    return config


def _semantic_problems(config: AwsStack | DigitalOceanStack, source: str) -> list[str]:
    problems: list[str] = []
    known = {m.id for m in PROD_MINIMUMS}
    for waiver in sorted(config.waivers):
        if waiver not in known:
            problems.append(
                f"{source}: {PROJECT}:waivers.{waiver}: not a prod minimum; known: {', '.join(sorted(known))}"
            )
    if config.tier == "prod":
        for minimum in PROD_MINIMUMS:
            if minimum.violated(config) and minimum.id not in config.waivers:
                problems.append(
                    f"{source}: {minimum.key}: {minimum.requirement}; to accept less, add "
                    f"`{PROJECT}:waivers: {{{minimum.id}: <reason>}}`"
                )
    for channel in sorted(config.alerts.channels_in_use()):
        for key in ALERT_CHANNEL_SECRETS[channel]:
            if config.secret(key) is None:
                stack = source.removeprefix("Pulumi.").removesuffix(".yaml")
                problems.append(
                    f"{source}: {PROJECT}:{key}: required secret is not set (alerts.routing uses {channel}); "
                    f"run `pulumi config set --secret {PROJECT}:{key} <value> -s {stack}`"
                )
    for alarm_id, override in sorted(config.monitoring.alarms.items()):
        for problem in override_problems(alarm_id, override):
            problems.append(f"{source}: {PROJECT}:monitoring.alarms.{alarm_id}: {problem}")
    if isinstance(config, AwsStack):
        problems.extend(_aws_problems(config, source))
    else:
        problems.extend(_digitalocean_problems(config, source))
    return problems


DO_ALERT_CHANNELS = ("email", "slack")
"""Channels App Platform alerts and uptime alerts deliver to themselves (no forwarder runs on DigitalOcean)."""


def rate_seconds(schedule: str) -> int | None:
    """Seconds between runs of a `rate(N unit)` expression; None for a cron expression."""
    match = _RATE_RE.match(schedule)
    if not match:
        return None
    per_unit = {"minute": 60, "hour": 3600, "day": 86_400}
    return int(match.group(1)) * per_unit[match.group(2).rstrip("s")]


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


def required_secret_keys(raw: Mapping[str, Any]) -> list[str]:
    """Secret keys (fully qualified) this engine-style config needs; best effort on invalid config.

    The offline plan stands placeholders in for exactly these, so optional secrets keep their real
    behaviour (e.g. an unset `appSecretKey` is generated) and the plan shows the stack as deployed.
    """
    alerts = _parse_value(raw.get(f"{PROJECT}:alerts", "{}"))
    routing = alerts.get("routing", {}) if isinstance(alerts, dict) else {}
    channels = (
        {c for cs in routing.values() if isinstance(cs, list) for c in cs} if isinstance(routing, dict) else set()
    )
    return sorted(
        f"{PROJECT}:{key}" for c in channels if c in ALERT_CHANNEL_SECRETS for key in ALERT_CHANNEL_SECRETS[c]
    )


def _engine_config() -> tuple[dict[str, Any], set[str]]:
    """The config the engine handed this program (explicit settings win over the env fallback)."""
    from pulumi.runtime import config as runtime_config

    values: dict[str, Any] = dict(runtime_config.get_config_env())
    values.update(runtime_config.CONFIG.get())
    secret_keys = set(runtime_config.get_config_secret_keys_env()) | set(runtime_config._SECRET_KEYS.get())
    return values, secret_keys


def load_stack_config(source: str | None = None) -> AwsStack | DigitalOceanStack:
    """Validate the running stack's config. Call before creating any resource."""
    import pulumi

    values, secret_keys = _engine_config()
    return parse_stack_config(values, source=source or stack_file_name(pulumi.get_stack()), secret_keys=secret_keys)


def json_schema() -> dict[str, Any]:
    """JSON Schema of a stack file's `config:` block (keys fully qualified, as written in the file)."""
    aws = AwsStack.model_json_schema(by_alias=True, mode="validation")
    do = DigitalOceanStack.model_json_schema(by_alias=True, mode="validation")
    defs = {**aws.pop("$defs", {}), **do.pop("$defs", {})}
    properties: dict[str, Any] = {"aws:region": aws["properties"]["region"]}
    for schema in (aws, do):
        for name, prop in schema["properties"].items():
            if name in {"secrets", "region"}:
                continue
            key = f"{PROJECT}:{name}"
            if key in properties and properties[key] != prop:
                # Same key, different section per cloud (e.g. database): a stack file matches one of them.
                properties[key] = {"anyOf": [properties[key], prop]}
            else:
                properties.setdefault(key, prop)
    properties[f"{PROJECT}:region"] = do["properties"]["region"]
    properties[f"{PROJECT}:cloud"] = {"enum": ["aws", "digitalocean"], "default": "aws"}
    for key, description in SECRET_KEYS.items():
        properties[f"{PROJECT}:{key}"] = {
            "description": f"{description}. Secret: set with `pulumi config set --secret {PROJECT}:{key}`.",
            "type": "object",
            "properties": {"secure": {"type": "string"}},
            "required": ["secure"],
            "additionalProperties": False,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Pulumi.<stack>.yaml for the shipyard project",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                "required": [f"{PROJECT}:tier", f"{PROJECT}:owner"],
                "patternProperties": {r"^(?!shipyard:)[a-z0-9-]+:": {}},
                "additionalProperties": False,
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
        },
        "$defs": defs,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--schema"]:
        print("usage: python -m infra.config --schema", file=sys.stderr)
        return 2
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

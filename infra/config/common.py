"""Sections every cloud target understands (domain, jobs, alerts, health checks, monitoring, policy)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

# Standard library only: the catalogue's ids validate `monitoring.alarms.<id>` before any resource exists.
from infra.aws.alarms import ALARM_IDS, DEFAULT_RUNBOOK_BASE_URL
from infra.config.validators import Reason, Schedule, Tier, TimeZone, _Model

# --------------------------------------------------------------------------------------------------------
# Sections shared by every cloud
# --------------------------------------------------------------------------------------------------------


def validate_dns_label(value: str) -> str:
    """A host name label under the domain (RFC 1035: 1-63 of a-z, 0-9 and '-', not at either end), or '@'."""
    if value != "@" and not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
        raise ValueError(
            f"{value!r} is not a DNS label: 1-63 characters of a-z, 0-9 and '-' (not first or last), "
            "or '@' for the apex"
        )
    return value


def validate_domain_name(value: str) -> str:
    """ACM and Route 53 take at most 253 characters, 63 per label (RFC 1035)."""
    long_labels = [label for label in value.split(".") if len(label) > 63]
    if len(value) > 253 or long_labels:
        raise ValueError(f"a domain name has at most 253 characters and 63 per label; {value[:40]!r}... is longer")
    return value


def validate_hosted_zone_id(value: str) -> str:
    """Route 53 hosted zone ids: 'Z' and upper-case letters/digits, at most 32 characters (the API's HostedZone Id,
    https://docs.aws.amazon.com/Route53/latest/APIReference/API_HostedZone.html); the console's '/hostedzone/'
    prefix is not part of it."""
    if not re.fullmatch(r"Z[A-Z0-9]{1,31}", value):
        raise ValueError(
            f"{value!r} is not a Route 53 hosted zone id (like Z0123456789ABCDEFGHIJ, without /hostedzone/)"
        )
    return value


class DomainConfig(_Model):
    """Custom domain. Without it the stack serves on the CloudFront / load balancer host names."""

    name: Annotated[str, AfterValidator(validate_domain_name)] = Field(
        description="Apex domain, e.g. 'example.com'.", pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$"
    )
    frontend_host: Annotated[str, AfterValidator(validate_dns_label)] = Field(
        "app", description="Sub-domain of the SPA: app.example.com. '@' = apex."
    )
    api_host: Annotated[str, AfterValidator(validate_dns_label)] = Field(
        "api", description="Sub-domain of the API: api.example.com."
    )
    hosted_zone_id: Annotated[str, AfterValidator(validate_hosted_zone_id)] | None = Field(
        None,
        description="Route 53 zone for `name`. Given: ACM certificates are DNS-validated and alias records "
        "created automatically. Absent: you create the records shown in the outputs yourself.",
    )

    @model_validator(mode="after")
    def _distinct_hosts(self) -> DomainConfig:
        if self.frontend_host == self.api_host:
            raise ValueError(f"frontendHost and apiHost are both {self.api_host!r}; one DNS name cannot point at both")
        return self

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


def _unique_names(items: list[Any], what: str) -> list[Any]:
    names = [item.name for item in items]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{what} names must be unique; repeated: {', '.join(repeated)}")
    return items


class HealthChecksConfig(_Model):
    enabled: bool = True
    schedule: Schedule = Field("rate(1 minute)", description="How often the health-check Lambda runs.")
    endpoints: list[HealthEndpointConfig] = Field(default_factory=_default_health_endpoints)

    @field_validator("endpoints")
    @classmethod
    def _unique_endpoint_names(cls, endpoints: list[HealthEndpointConfig]) -> list[HealthEndpointConfig]:
        # The name is the metric dimension and alarm name segment: two endpoints with one name would share both.
        return _unique_names(endpoints, "endpoint")

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


class UploadsConfig(_Model):
    max_size_mb: int = Field(10, ge=1, le=5_000)
    allowed_types: list[str] = Field(
        default_factory=lambda: ["jpg", "jpeg", "png", "pdf", "mp4"],
        min_length=1,
        description="File extensions (lowercase, no dot) the API accepts for upload; executables and types a "
        "browser runs (html, svg, js...) are refused.",
    )
    prefix: str = Field("uploads/", pattern=r"^[a-z0-9-]+/$")
    noncurrent_version_days: int = Field(30, ge=1)
    abort_multipart_days: int = Field(7, ge=1)
    access_log_retention_days: int = Field(
        90, ge=1, le=3653, description="Days S3 server access logs of the uploads and SPA buckets are kept (S3.9)."
    )

    @field_validator("allowed_types")
    @classmethod
    def _extensions(cls, types: list[str]) -> list[str]:
        return validate_upload_types(types)


_ACTIVE_TYPES = frozenset(
    [
        "exe",
        "com",
        "bat",
        "cmd",
        "msi",
        "scr",
        "dll",
        "sh",
        "ps1",
        "vbs",
        "jar",
        "apk",
        "app",
        "dmg",
        "html",
        "htm",
        "xhtml",
        "shtml",
        "svg",
        "svgz",
        "js",
        "mjs",
        "php",
        "xml",
        "swf",
    ]
)
"""Extensions an OS executes or a browser renders as active content: served back from our bucket or domain,
they would carry malware or stored XSS (OWASP File Upload Cheat Sheet: block dangerous extensions)."""


def validate_upload_types(types: list[str]) -> list[str]:
    problems = []
    for index, extension in enumerate(types):
        if not re.fullmatch(r"[a-z0-9]{1,10}", extension):
            problems.append(f"[{index}] {extension!r} is not a file extension (lowercase letters/digits, no dot)")
        elif extension in _ACTIVE_TYPES:
            problems.append(f"[{index}] {extension!r} is an executable or browser-active type")
    repeated = sorted({t for t in types if types.count(t) > 1})
    if repeated:
        problems.append(f"listed twice: {', '.join(repeated)}")
    if problems:
        raise ValueError("; ".join(problems) + " (allowed: e.g. jpg, png, pdf, mp4)")
    return types


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

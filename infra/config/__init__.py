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

The package, by concern: `validators` (namespace, base model, validated value types), `common` (sections
every cloud shares), `aws` and `digitalocean` (each target's model and cross-field checks), `tiers` (tier
defaults, prod minimums), `errors` (`ConfigError`, message wording), `loading`, `schema`. Import from
`infra.config`; the names below are its interface.

Run `python -m infra.config --schema` for the JSON Schema of the stack file (make schema).
"""

from __future__ import annotations

from infra.config.aws import (
    CONTINUOUS_BACKUP_MAX_DAYS,
    AwsStack,
    BackupsConfig,
    CacheConfig,
    DatabaseConfig,
    FrontendConfig,
    NetworkConfig,
    OffsiteCopyConfig,
    PathPattern,
    ServiceConfig,
    VaultLockConfig,
    WafConfig,
    WorkerConfig,
    validate_fargate_size,
    validate_path_pattern,
)
from infra.config.common import (
    ALERT_CHANNEL_SECRETS,
    SECRET_KEYS,
    AlarmId,
    AlarmOverride,
    AlertsConfig,
    AutoConfirmJobConfig,
    Channel,
    CommonStack,
    DomainConfig,
    EscalationConfig,
    HealthChecksConfig,
    HealthEndpointConfig,
    JobsConfig,
    MonitoringConfig,
    PolicyConfig,
    ScheduledTaskConfig,
    Severity,
    StormConfig,
    UploadsConfig,
    validate_alarm_id,
)
from infra.config.digitalocean import (
    DO_ALERT_CHANNELS,
    DO_REGIONS,
    DO_STACK_ENV,
    REGISTRY_REGIONS,
    SPACES_REGIONS,
    AppSize,
    DbSize,
    DigitalOceanStack,
    DoAlertsConfig,
    DoDatabaseConfig,
    DoFrontendConfig,
    DoRegion,
    DoRegistryConfig,
    DoServiceConfig,
    DoUploadsConfig,
    DoWorkerConfig,
    RegistryRegion,
    SpacesRegion,
    db_connection_limit,
    is_dedicated,
    validate_app_size,
    validate_db_size,
)
from infra.config.errors import ConfigError
from infra.config.loading import (
    StackConfig,
    load_stack_config,
    parse_stack_config,
    required_secret_keys,
    stack_file_name,
)
from infra.config.schema import json_schema, main
from infra.config.tiers import DO_TIER_DEFAULTS, PROD_MINIMUMS, TIER_DEFAULTS, ProdMinimum
from infra.config.validators import (
    _SECRETISH,
    PROJECT,
    Cidr,
    LogRetentionDays,
    RdsWindow,
    Reason,
    Schedule,
    Tier,
    TimeZone,
    rate_seconds,
    reject_secret_like_env,
    validate_cidr,
    validate_log_retention,
    validate_schedule,
    validate_timezone,
    validate_window,
)

__all__ = [
    "ALERT_CHANNEL_SECRETS",
    "CONTINUOUS_BACKUP_MAX_DAYS",
    "DO_ALERT_CHANNELS",
    "DO_REGIONS",
    "DO_STACK_ENV",
    "DO_TIER_DEFAULTS",
    "PROD_MINIMUMS",
    "PROJECT",
    "REGISTRY_REGIONS",
    "SECRET_KEYS",
    "SPACES_REGIONS",
    "TIER_DEFAULTS",
    "_SECRETISH",
    "AlarmId",
    "AlarmOverride",
    "AlertsConfig",
    "AppSize",
    "AutoConfirmJobConfig",
    "AwsStack",
    "BackupsConfig",
    "CacheConfig",
    "Channel",
    "Cidr",
    "CommonStack",
    "ConfigError",
    "DatabaseConfig",
    "DbSize",
    "DigitalOceanStack",
    "DoAlertsConfig",
    "DoDatabaseConfig",
    "DoFrontendConfig",
    "DoRegion",
    "DoRegistryConfig",
    "DoServiceConfig",
    "DoUploadsConfig",
    "DoWorkerConfig",
    "DomainConfig",
    "EscalationConfig",
    "FrontendConfig",
    "HealthChecksConfig",
    "HealthEndpointConfig",
    "JobsConfig",
    "LogRetentionDays",
    "MonitoringConfig",
    "NetworkConfig",
    "OffsiteCopyConfig",
    "PathPattern",
    "PolicyConfig",
    "ProdMinimum",
    "RdsWindow",
    "Reason",
    "RegistryRegion",
    "Schedule",
    "ScheduledTaskConfig",
    "ServiceConfig",
    "Severity",
    "SpacesRegion",
    "StackConfig",
    "StormConfig",
    "Tier",
    "TimeZone",
    "UploadsConfig",
    "VaultLockConfig",
    "WafConfig",
    "WorkerConfig",
    "db_connection_limit",
    "is_dedicated",
    "json_schema",
    "load_stack_config",
    "main",
    "parse_stack_config",
    "rate_seconds",
    "reject_secret_like_env",
    "required_secret_keys",
    "stack_file_name",
    "validate_alarm_id",
    "validate_app_size",
    "validate_cidr",
    "validate_db_size",
    "validate_fargate_size",
    "validate_log_retention",
    "validate_path_pattern",
    "validate_schedule",
    "validate_timezone",
    "validate_window",
]

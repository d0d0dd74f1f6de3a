"""Loading: engine config -> tier defaults -> validated `AwsStack | DigitalOceanStack`, or `ConfigError`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
)

from infra.aws.alarms import override_problems
from infra.config.aws import AwsStack, _aws_problems
from infra.config.common import ALERT_CHANNEL_SECRETS, SECRET_KEYS
from infra.config.digitalocean import DigitalOceanStack, _digitalocean_problems
from infra.config.errors import ConfigError, _describe, _key_path
from infra.config.tiers import DO_TIER_DEFAULTS, PROD_MINIMUMS, TIER_DEFAULTS
from infra.config.validators import PROJECT

StackConfig = Annotated[AwsStack | DigitalOceanStack, Field(discriminator="cloud")]
_STACK_ADAPTER: TypeAdapter[AwsStack | DigitalOceanStack] = TypeAdapter(StackConfig)


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

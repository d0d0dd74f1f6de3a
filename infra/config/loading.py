"""Loading: engine config -> tier defaults -> validated `AwsStack | DigitalOceanStack`, or `ConfigError`."""

from __future__ import annotations

import difflib
import importlib.util
import json
import re
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    Field,
    TypeAdapter,
    ValidationError,
)

from infra.aws.alarms import BY_ID, override_problems
from infra.config.aws import AwsStack, _aws_problems
from infra.config.common import ALERT_CHANNEL_SECRETS, SECRET_KEYS
from infra.config.digitalocean import DigitalOceanStack, _digitalocean_problems
from infra.config.errors import ConfigError, Problem, _describe, _key_path
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
    document, secrets, problems = _read_keys(raw, source, set(secret_keys))
    document.setdefault("cloud", "aws")
    tier = document.get("tier")
    tier_defaults = TIER_DEFAULTS if document.get("cloud") == "aws" else DO_TIER_DEFAULTS
    if isinstance(tier, str) and tier in tier_defaults:
        document = _deep_merge(tier_defaults[tier], document)
    document["secrets"] = secrets
    config, model_problems, dropped = _validate_reporting_all(document, source)
    problems.extend(model_problems)
    if config is not None:
        problems.extend(_cross_field_problems(config, source, dropped))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    assert config is not None
    return config


def _read_keys(
    raw: Mapping[str, Any], source: str, secret_keys: set[str]
) -> tuple[dict[str, Any], dict[str, str], list[Problem]]:
    """(the project's keys as a document, the secrets, problems with keys): every key is looked at, none ignored."""
    problems: list[Problem] = []
    document: dict[str, Any] = {}
    secrets: dict[str, str] = {}
    for full_key, value in sorted(raw.items(), key=lambda item: str(item[0])):
        if not isinstance(full_key, str):
            problems.append(Problem(source, str(full_key), f"keys are text like '{PROJECT}:<name>', not {full_key!r}"))
            continue
        namespace, _, key = full_key.partition(":")
        if namespace == "aws" and key == "region":
            document["region"] = value
        elif namespace != PROJECT:
            problems.extend(_foreign_key_problems(full_key, source))
        elif key in SECRET_KEYS and full_key not in secret_keys:
            problems.append(
                Problem(
                    source,
                    full_key,
                    f"is a secret but is stored in plain text; remove it and run "
                    f"`pulumi config set --secret {full_key} <value>`",
                )
            )
        elif key in SECRET_KEYS:
            secrets[key] = str(value)
        elif key == "secrets":
            problems.append(Problem(source, full_key, "reserved; set secrets as top-level secret keys"))
        else:
            document[key] = _parse_value(value)
    return document, secrets, problems


def _cross_field_problems(config: AwsStack | DigitalOceanStack, source: str, dropped: list[str]) -> list[Problem]:
    """The checks that need a whole model. A value left out as invalid was replaced by its default for this
    pass: a check about it, or one citing it, would only repeat the first problem or mislead, so it is skipped."""
    kept = []
    for text in _semantic_problems(config, source):
        problem = Problem.parse(text, source)
        about_dropped = any(
            problem.key == key
            or problem.key.startswith((f"{key}.", f"{key}["))
            or key.partition(":")[2] in problem.message
            for key in dropped
        )
        if not about_dropped:
            kept.append(problem)
    return kept


KNOWN_NAMESPACES = (PROJECT, "aws", "digitalocean", "pulumi")
"""Config namespaces a stack file may use: this project's, the two providers' and Pulumi's own."""
_PROVIDER_PACKAGES = {"aws": "pulumi_aws", "digitalocean": "pulumi_digitalocean"}


@cache
def provider_config_keys(namespace: str) -> frozenset[str]:
    """Keys a provider reads from its namespace (`aws:profile`...), from its generated config module, unimported."""
    spec = importlib.util.find_spec(_PROVIDER_PACKAGES[namespace])
    if spec is None or spec.origin is None:  # pragma: no cover - both are in requirements.txt
        return frozenset({"region"})
    text = (Path(spec.origin).parent / "config" / "vars.py").read_text()
    return frozenset(re.findall(r"__config__\.get\w*\('(\w+)'\)", text))


def _foreign_key_problems(full_key: str, source: str) -> list[Problem]:
    """A key outside the project namespace: a typo (`shipyrd:database`, `aws:regoin`) would silently be ignored."""
    namespace, _, key = full_key.partition(":")
    if namespace == "pulumi":
        return []
    if namespace in _PROVIDER_PACKAGES:
        known = provider_config_keys(namespace)
        if key in known:
            return []
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean '{namespace}:{close[0]}'?" if close else ""
        message = f"unknown {namespace}: key (the {namespace} provider reads {', '.join(sorted(known))}){hint}"
        return [Problem(source, full_key, message)]
    close = difflib.get_close_matches(namespace.lower(), KNOWN_NAMESPACES, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}:{key}'?" if close else ""
    where = f"namespace {namespace!r}" if key else "a key without a namespace"
    message = f"unknown {where}: keys go under {PROJECT}: (this project), aws:, digitalocean: or pulumi:{hint}"
    return [Problem(source, full_key, message)]


def _validate_reporting_all(
    document: dict[str, Any], source: str
) -> tuple[AwsStack | DigitalOceanStack | None, list[Problem], list[str]]:
    """Validate, and when values are invalid, validate again without them (defaults in their place) so checks
    that need a whole model still run: every problem shows in one run, not one layer per fix.

    Returns (config or None, problems, key paths of the values left out).
    """
    is_aws = document.get("cloud") == "aws"
    model: type[BaseModel] = AwsStack if is_aws else DigitalOceanStack
    problems: list[Problem] = []
    dropped: list[str] = []
    for _ in range(_MAX_PASSES):
        try:
            return _STACK_ADAPTER.validate_python(document), problems, dropped
        except ValidationError as exc:
            progress = False
            for error in exc.errors():
                loc = tuple(element for element in error["loc"] if element != "[key]")
                if loc and loc[0] in {"aws", "digitalocean"}:
                    loc = loc[1:]
                kind = error["type"]
                if kind in {"union_tag_invalid", "union_tag_not_found"}:
                    loc, value = ("cloud",), document.get("cloud")
                else:
                    value = error.get("input")
                key = _key_path(loc, is_aws)
                if kind == "missing" and key in dropped:
                    continue  # missing only because an earlier pass left the invalid value out
                message = _describe(kind, error["msg"], loc, model, value, error.get("ctx"))
                problems.append(Problem(source, key, message))
                if kind != "missing" and _drop(document, loc):
                    dropped.append(key)
                    progress = True
            if not progress:
                break
    return None, problems, dropped


_MAX_PASSES = 4
"""Enough for nested sections: each pass removes every value the previous one found invalid."""


def _drop(document: dict[str, Any], loc: tuple[int | str, ...]) -> bool:
    """Remove the value at `loc` (a list is removed whole, an item of it would shift the others)."""
    node: Any = document
    for index, element in enumerate(loc):
        if not isinstance(node, dict) or element not in node:
            return False
        if index == len(loc) - 1 or isinstance(node[element], list):
            if element in {"cloud", "secrets"}:
                return False
            del node[element]
            return True
        node = node[element]
    return False


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
        for problem in [*override_problems(alarm_id, override), *threshold_problems(alarm_id, override.threshold)]:
            problems.append(f"{source}: {PROJECT}:monitoring.alarms.{alarm_id}: {problem}")
    if isinstance(config, AwsStack):
        problems.extend(_aws_problems(config, source))
    else:
        problems.extend(_digitalocean_problems(config, source))
    return problems


def threshold_problems(alarm_id: str, threshold: float | None) -> list[str]:
    """A threshold that makes the alarm always fire, or never: every catalogued metric is >= 0 (counts, percents,
    seconds, days), and a percentage is at most 100."""
    spec = BY_ID[alarm_id]
    if threshold is None or spec.is_composite:
        return []
    greater = spec.comparison.startswith("Greater")
    inclusive = "OrEqual" in spec.comparison
    sign = (">=" if inclusive else ">") if greater else ("<=" if inclusive else "<")
    condition = f"the alarm fires when the metric {sign} {threshold:g}"
    below_zero = threshold < 0 or (threshold == 0 and inclusive == greater)
    if below_zero:
        outcome = "always fires (it is in ALARM all the time)" if greater else "can never fire"
        return [f"threshold {threshold:g}: {condition} and the metric is never negative, so it {outcome}"]
    above_full = threshold > 100 or (threshold == 100 and inclusive != greater)
    if spec.unit == "%" and above_full:
        outcome = "can never fire" if greater else "always fires (it is in ALARM all the time)"
        return [f"threshold {threshold:g}: {condition} of a percentage (0-100), so it {outcome}"]
    return []


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

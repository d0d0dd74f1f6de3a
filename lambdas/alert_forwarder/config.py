"""ROUTING (non-secret, from the environment) and the channel credentials (from Secrets Manager).

Both are validated as a whole when loaded; every error names the field it is about so a bad stack
config shows up as one readable line in the function's log rather than as a KeyError mid-delivery.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .model import CHANNELS, SEVERITIES


class ConfigError(ValueError):
    """Configuration is unusable; the message names the variable/key at fault (never a secret value)."""


DEFAULT_RATE_LIMIT_PER_MINUTE = {"slack": 30, "telegram": 20, "email": 10, "sms": 5, "webhook": 60}
DEFAULT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Routing:
    channels: dict[str, tuple[str, ...]]
    cooldown_seconds: int = 900
    escalation_interval_seconds: int = 1800
    escalation_count: int = 3
    storm_threshold: int = 10
    storm_window_seconds: int = 60
    rate_limit_per_minute: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMIT_PER_MINUTE))
    channel_timeout_seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(CHANNELS, DEFAULT_TIMEOUT_SECONDS)
    )
    history_days: int = 90
    default_severity: str = "warning"
    retry_max_attempts: int = 4
    retry_base_delay_seconds: float = 0.5

    def channels_for(self, severity: str) -> tuple[str, ...]:
        return self.channels.get(severity, ())

    @property
    def used_channels(self) -> tuple[str, ...]:
        seen = {c for chans in self.channels.values() for c in chans}
        return tuple(c for c in CHANNELS if c in seen)


_INT_FIELDS = {
    "cooldown_seconds": 0,
    "escalation_interval_seconds": 1,
    "escalation_count": 0,
    "storm_threshold": 1,
    "storm_window_seconds": 1,
    "history_days": 1,
    "retry_max_attempts": 1,
}
_KNOWN_KEYS = {
    *SEVERITIES,
    *_INT_FIELDS,
    "rate_limit_per_minute",
    "channel_timeout_seconds",
    "default_severity",
    "retry_base_delay_seconds",
}


def _int_field(data: dict[str, Any], key: str, minimum: int, default: int) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"ROUTING.{key}: expected an integer, got {type(value).__name__}")
    if value < minimum:
        raise ConfigError(f"ROUTING.{key}: must be >= {minimum}, got {value}")
    return value


def _per_channel(data: dict[str, Any], key: str, defaults: dict[str, Any], *, integer: bool) -> dict[str, Any]:
    raw = data.get(key)
    if raw is None:
        return dict(defaults)
    kind = "an integer" if integer else "a number"

    def check(path: str, value: Any) -> Any:
        ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            raise ConfigError(f"ROUTING.{path}: expected {kind}, got {type(value).__name__}")
        if value <= 0:
            raise ConfigError(f"ROUTING.{path}: must be > 0, got {value}")
        return value

    if isinstance(raw, dict):
        result = dict(defaults)
        for channel, value in raw.items():
            if channel not in CHANNELS:
                raise ConfigError(f"ROUTING.{key}.{channel}: unknown channel (known: {', '.join(CHANNELS)})")
            result[channel] = check(f"{key}.{channel}", value)
        return result
    value = check(key, raw)
    return dict.fromkeys(CHANNELS, value)


def load_routing(text: str | None) -> Routing:
    """Parse and validate the ROUTING environment variable."""
    if text is None or not text.strip():
        raise ConfigError("ROUTING: environment variable is not set (expected a JSON object)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"ROUTING: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"ROUTING: expected a JSON object, got {type(data).__name__}")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"ROUTING.{unknown[0]}: unknown key (known: {', '.join(sorted(_KNOWN_KEYS))})")

    channels: dict[str, tuple[str, ...]] = {}
    for severity in SEVERITIES:
        if severity not in data:
            raise ConfigError(f"ROUTING.{severity}: missing (give a list of channels, [] for history only)")
        value = data[severity]
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise ConfigError(f"ROUTING.{severity}: expected a list of channel names")
        for index, channel in enumerate(value):
            if channel not in CHANNELS:
                raise ConfigError(
                    f"ROUTING.{severity}[{index}]: unknown channel {channel!r} (known: {', '.join(CHANNELS)})"
                )
        channels[severity] = tuple(dict.fromkeys(value))

    default_severity = data.get("default_severity", "warning")
    if default_severity not in SEVERITIES:
        raise ConfigError(f"ROUTING.default_severity: must be one of {', '.join(SEVERITIES)}")

    ints = {key: _int_field(data, key, minimum, getattr(Routing, key)) for key, minimum in _INT_FIELDS.items()}
    base_delay = data.get("retry_base_delay_seconds", Routing.retry_base_delay_seconds)
    if isinstance(base_delay, bool) or not isinstance(base_delay, int | float) or base_delay < 0:
        raise ConfigError("ROUTING.retry_base_delay_seconds: expected a number >= 0")
    return Routing(
        retry_base_delay_seconds=float(base_delay),
        channels=channels,
        rate_limit_per_minute=_per_channel(data, "rate_limit_per_minute", DEFAULT_RATE_LIMIT_PER_MINUTE, integer=True),
        channel_timeout_seconds=_per_channel(
            data,
            "channel_timeout_seconds",
            dict.fromkeys(CHANNELS, DEFAULT_TIMEOUT_SECONDS),
            integer=False,
        ),
        default_severity=default_severity,
        **ints,
    )


_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SECRET_KEYS = (
    "slack_webhook_url",
    "slack_bot_token",
    "slack_channel",
    "telegram_bot_token",
    "telegram_chat_id",
    "webhook_url",
    "webhook_signing_key",
    "sms_numbers",
    "email_addresses",
    "email_from",
)


@dataclass(frozen=True, repr=False)
class ChannelSecrets:
    """Credentials for every channel. repr() never shows values: these objects end up in tracebacks."""

    slack_webhook_url: str | None = None
    slack_bot_token: str | None = None
    slack_channel: str | None = None
    telegram_bot_token: str | None = None
    telegram_chat_id: str | None = None
    webhook_url: str | None = None
    webhook_signing_key: str | None = None
    sms_numbers: tuple[str, ...] = ()
    email_addresses: tuple[str, ...] = ()
    email_from: str | None = None

    def __repr__(self) -> str:
        present = [k for k in _SECRET_KEYS if getattr(self, k)]
        return f"ChannelSecrets(keys set: {', '.join(present) or 'none'})"

    def problem_for(self, channel: str) -> str | None:
        """Why `channel` cannot be used with these credentials, or None when it can."""
        where = "CHANNELS_SECRET"
        if channel == "slack":
            if self.slack_bot_token:
                return None if self.slack_channel else f"{where}.slack_channel: required with slack_bot_token"
            return None if self.slack_webhook_url else f"{where}: slack needs slack_webhook_url or slack_bot_token"
        if channel == "telegram":
            missing = [k for k in ("telegram_bot_token", "telegram_chat_id") if not getattr(self, k)]
            return f"{where}.{missing[0]}: required for telegram" if missing else None
        if channel == "webhook":
            missing = [k for k in ("webhook_url", "webhook_signing_key") if not getattr(self, k)]
            return f"{where}.{missing[0]}: required for webhook" if missing else None
        if channel == "sms":
            return None if self.sms_numbers else f"{where}.sms_numbers: required for sms (E.164 numbers)"
        if channel == "email":
            if not self.email_addresses:
                return f"{where}.email_addresses: required for email"
            return None if self.email_from else f"{where}.email_from: required for email"
        return f"unknown channel {channel!r}"


def _str_or_none(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool) and key == "telegram_chat_id":
        return str(value)  # chat ids are often written as numbers
    if not isinstance(value, str):
        raise ConfigError(f"CHANNELS_SECRET.{key}: expected a string, got {type(value).__name__}")
    return value


def _url(data: dict[str, Any], key: str) -> str | None:
    value = _str_or_none(data, key)
    if value is not None and not value.startswith(("https://", "http://")):
        raise ConfigError(f"CHANNELS_SECRET.{key}: expected an http(s) URL")
    return value


def parse_channel_secrets(text: str) -> ChannelSecrets:
    """Parse the secret's JSON. Error messages name keys only, never values."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError("CHANNELS_SECRET: secret string is not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError("CHANNELS_SECRET: expected a JSON object")

    def str_list(key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        value = data.get(key) or []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"CHANNELS_SECRET.{key}: expected a list of strings")
        for index, item in enumerate(value):
            if not pattern.match(item):
                raise ConfigError(f"CHANNELS_SECRET.{key}[{index}]: not {what}")
        return tuple(dict.fromkeys(value))

    return ChannelSecrets(
        slack_webhook_url=_url(data, "slack_webhook_url"),
        slack_bot_token=_str_or_none(data, "slack_bot_token"),
        slack_channel=_str_or_none(data, "slack_channel"),
        telegram_bot_token=_str_or_none(data, "telegram_bot_token"),
        telegram_chat_id=_str_or_none(data, "telegram_chat_id"),
        webhook_url=_url(data, "webhook_url"),
        webhook_signing_key=_str_or_none(data, "webhook_signing_key"),
        sms_numbers=str_list("sms_numbers", _E164, "an E.164 phone number like +5511999990000"),
        email_addresses=str_list("email_addresses", _EMAIL, "an email address"),
        email_from=_str_or_none(data, "email_from"),
    )


def unknown_secret_keys(text: str) -> list[str]:
    """Keys in the secret this code does not read (likely typos); names only."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return []
    return sorted(set(data) - set(_SECRET_KEYS)) if isinstance(data, dict) else []

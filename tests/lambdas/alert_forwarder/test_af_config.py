"""ROUTING and channel-secret validation: errors name the field, never a secret value."""

from __future__ import annotations

import json

import pytest

from lambdas.alert_forwarder.config import (
    ConfigError,
    load_routing,
    parse_channel_secrets,
    unknown_secret_keys,
)


def routing(**extra: object) -> str:
    return json.dumps({"critical": ["sms", "slack"], "warning": ["slack"], "info": [], **extra})


def test_defaults_and_per_channel_values() -> None:
    parsed = load_routing(routing(rate_limit_per_minute={"slack": 3}, channel_timeout_seconds=2.5, cooldown_seconds=0))
    assert parsed.channels_for("critical") == ("sms", "slack")
    assert parsed.channels_for("info") == ()
    assert parsed.rate_limit_per_minute["slack"] == 3
    assert parsed.rate_limit_per_minute["sms"] == 5
    assert set(parsed.channel_timeout_seconds.values()) == {2.5}
    assert parsed.cooldown_seconds == 0
    assert parsed.escalation_count == 3
    assert parsed.used_channels == ("slack", "sms")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, "ROUTING: environment variable is not set"),
        ("{not json", "ROUTING: not valid JSON"),
        ("[]", "ROUTING: expected a JSON object"),
        (json.dumps({"critical": [], "warning": []}), "ROUTING.info: missing"),
        (routing(critcal=[]), "ROUTING.critcal: unknown key"),
        (
            json.dumps({"critical": ["pager"], "warning": [], "info": []}),
            "ROUTING.critical[0]: unknown channel 'pager'",
        ),
        (json.dumps({"critical": "slack", "warning": [], "info": []}), "ROUTING.critical: expected a list"),
        (routing(cooldown_seconds="900"), "ROUTING.cooldown_seconds: expected an integer, got str"),
        (routing(storm_threshold=0), "ROUTING.storm_threshold: must be >= 1, got 0"),
        (routing(rate_limit_per_minute={"pager": 1}), "ROUTING.rate_limit_per_minute.pager: unknown channel"),
        (
            routing(channel_timeout_seconds={"slack": -1}),
            "ROUTING.channel_timeout_seconds.slack: must be > 0",
        ),
        (routing(default_severity="fatal"), "ROUTING.default_severity: must be one of"),
    ],
)
def test_routing_errors_name_the_field(text: str | None, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_routing(text)
    assert str(caught.value).startswith(expected)


def test_secret_parsing_and_problems_name_keys_only() -> None:
    secrets = parse_channel_secrets(
        json.dumps(
            {
                "slack_bot_token": "xoxb-secret-value",
                "telegram_bot_token": "123:ABC",
                "telegram_chat_id": -1001,
                "sms_numbers": "+15555550100",
                "email_addresses": ["a@example.com"],
            }
        )
    )
    assert secrets.telegram_chat_id == "-1001"
    assert secrets.sms_numbers == ("+15555550100",)
    assert "xoxb" not in repr(secrets)
    assert "123:ABC" not in repr(secrets)
    assert secrets.problem_for("slack") == "CHANNELS_SECRET.slack_channel: required with slack_bot_token"
    assert secrets.problem_for("telegram") is None
    assert secrets.problem_for("webhook") == "CHANNELS_SECRET.webhook_url: required for webhook"
    assert secrets.problem_for("email") == "CHANNELS_SECRET.email_from: required for email"
    assert secrets.problem_for("sms") is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"sms_numbers": ["5555550100"]}, "CHANNELS_SECRET.sms_numbers[0]: not an E.164 phone number"),
        ({"email_addresses": ["nobody"]}, "CHANNELS_SECRET.email_addresses[0]: not an email address"),
        ({"webhook_url": "ftp://x"}, "CHANNELS_SECRET.webhook_url: expected an http(s) URL"),
        ({"telegram_bot_token": 5}, "CHANNELS_SECRET.telegram_bot_token: expected a string"),
    ],
)
def test_secret_errors(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_channel_secrets(json.dumps(data))
    assert str(caught.value).startswith(expected)
    assert "5555550100" not in str(caught.value)
    assert "ftp://x" not in str(caught.value)


def test_unknown_secret_keys_are_reported_by_name() -> None:
    assert unknown_secret_keys(json.dumps({"slack_webhook": "https://x", "email_from": "a@b.c"})) == ["slack_webhook"]

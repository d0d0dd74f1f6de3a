"""Fixtures for the alert forwarder: moto in server mode and HTTP sinks, all on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from lambdas.alert_forwarder.config import ChannelSecrets, Routing, load_routing
from lambdas.alert_forwarder.deliver import RetryPolicy, urllib_post
from lambdas.alert_forwarder.forward import Deps, build_targets
from lambdas.alert_forwarder.render import RenderContext
from lambdas.alert_forwarder.state import StateStore, table_definition

from .sinks import Sink, Sinks

logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto server request lines

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
SAMPLES = Path(__file__).resolve().parents[3] / "lambdas" / "alert_forwarder" / "samples"
EMAIL_FROM = "alerts@example.com"

ROUTING_ALL = {
    "critical": ["sms", "telegram", "slack", "email", "webhook"],
    "warning": ["slack", "telegram"],
    "info": [],
    "cooldown_seconds": 600,
    "escalation_interval_seconds": 900,
    "escalation_count": 2,
    "storm_threshold": 10,
    "storm_window_seconds": 60,
    "rate_limit_per_minute": 100,
    # Far above a loopback round trip even on a loaded CI machine: a healthy sink that answered after the
    # client gave up would be sent the message twice (at-least-once), and exact-count tests would flake.
    "channel_timeout_seconds": 2.0,
}


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text())


class Clock:
    """Real time plus a jump offset: sleeps are real (Retry-After is measured), cooldowns can be skipped."""

    def __init__(self) -> None:
        # Start 1 s into a minute: storm windows and rate-limit minutes are epoch-aligned, and a test that
        # straddled a boundary would see two windows' worth of individual messages.
        now = time.time()
        self.offset = (now // 60 + 1) * 60 + 1 - now

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Budget:
    """Stands in for context.get_remaining_time_in_millis: a deadline on the real clock."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def __call__(self) -> float:
        return self.deadline - time.monotonic()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Any]:
    """boto3 clients for the moto server; the environment also points there, so nothing can reach AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in clients:
            clients[service] = session.client(service, endpoint_url=moto_endpoint)
        return clients[service]

    client("ses").verify_email_identity(EmailAddress=EMAIL_FROM)
    return client


@pytest.fixture
def store(aws: Callable[[str], Any]) -> StateStore:
    name = f"alerts-{uuid.uuid4().hex[:10]}"
    aws("dynamodb").create_table(**table_definition(name))
    return StateStore(aws("dynamodb"), name)


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    created = Sinks(Sink("slack_webhook"), Sink("telegram"), Sink("webhook"))
    yield created
    created.stop()


def make_secrets(sinks: Sinks, **overrides: Any) -> ChannelSecrets:
    values: dict[str, Any] = {
        "slack_webhook_url": sinks.slack.url,
        "telegram_bot_token": "123456:TEST-TOKEN",
        "telegram_chat_id": "-1001234567890",
        "webhook_url": sinks.webhook.url,
        "webhook_signing_key": "whsec-test-key",
        "sms_numbers": ("+15555550100", "+15555550101"),
        "email_addresses": ("oncall@example.com",),
        "email_from": EMAIL_FROM,
    }
    values.update(overrides)
    return ChannelSecrets(**values)


def make_deps(
    store: StateStore,
    aws: Callable[[str], Any],
    sinks: Sinks,
    *,
    routing: dict[str, Any] | Routing | None = None,
    secrets: ChannelSecrets | None = None,
    clock: Clock | None = None,
    budget: float = 20.0,
    retry: RetryPolicy | None = None,
    telegram_base: str | None = None,
    slack_api_base: str | None = None,
    cloudwatch: bool = False,
) -> Deps:
    if not isinstance(routing, Routing):
        routing = load_routing(json.dumps(routing or ROUTING_ALL))
    return Deps(
        store=store,
        routing=routing,
        targets=build_targets(
            secrets or make_secrets(sinks),
            http=urllib_post,
            ses=lambda: aws("ses"),
            sns=lambda: aws("sns"),
            slack_api_base=slack_api_base or "http://127.0.0.1:9/unused",
            telegram_api_base=telegram_base or sinks.telegram.base_url,
        ),
        ctx=RenderContext(project="shipyard", stack="test"),
        clock=clock or Clock(),
        remaining=Budget(budget),
        retry=retry or RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, reserve_seconds=0.5),
        cloudwatch=(lambda: aws("cloudwatch")) if cloudwatch else None,
    )


def ses_messages() -> list[Any]:
    from moto.ses.models import ses_backends

    return list(ses_backends[ACCOUNT][REGION].sent_messages)


def sms_messages() -> list[tuple[str, str]]:
    from moto.sns.models import sns_backends

    return list(sns_backends[ACCOUNT][REGION].sms_messages.values())

"""Fixtures for infrastructure tests: each stack file evaluated once per session through the real harness."""

from __future__ import annotations

import pytest

from infra.harness import StackRun, run_stack

# Secrets the stack files route alerts through; tests set them as `pulumi config set --secret` would.
ALERT_SECRETS = {
    "shipyard:slackWebhookUrl": "https://hooks.slack.invalid/services/T000/B000/XXXX",
    "shipyard:telegramBotToken": "123456:TEST-TOKEN",
    "shipyard:telegramChatId": "-1001234567890",
    "shipyard:smsNumbers": "+5511999990000",
    "shipyard:alertEmails": "oncall@example.com",
    "shipyard:webhookUrl": "https://hooks.example.invalid/alerts",
    "shipyard:webhookSigningKey": "test-signing-key",
}

STACKS = ("staging", "prod")


def evaluate(stack: str, **kwargs: object) -> StackRun:
    kwargs.setdefault("secret_overrides", ALERT_SECRETS)
    return run_stack(stack, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def stack_runs() -> dict[str, StackRun]:
    return {stack: evaluate(stack) for stack in STACKS}


@pytest.fixture(scope="session")
def staging(stack_runs: dict[str, StackRun]) -> StackRun:
    return stack_runs["staging"]


@pytest.fixture(scope="session")
def prod(stack_runs: dict[str, StackRun]) -> StackRun:
    return stack_runs["prod"]


@pytest.fixture(params=STACKS)
def any_stack(request: pytest.FixtureRequest, stack_runs: dict[str, StackRun]) -> StackRun:
    return stack_runs[request.param]

"""Lambda entry point (`lambdas.alert_forwarder.handler.handler`).

Thin on purpose: pick the event type (SNS alerts, or the scheduled sweep), build the dependencies once
per container, call `forward.process_records` / `forward.sweep`, emit metrics, and raise when any target
could not be delivered so Lambda retries the invocation and finally dead-letters it. boto3 and the rest
of the package load on the first invocation, not at import (cold-start budget).

Environment: ROUTING (JSON), CHANNELS_SECRET_ARN, STATE_TABLE, STACK, PROJECT; optional SLACK_API_BASE,
TELEGRAM_API_BASE (e.g. a self-hosted Bot API server), SECRETS_TTL_SECONDS. See README.md.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

if TYPE_CHECKING:
    from .config import ChannelSecrets, Routing
    from .forward import Deps, Result

NAMESPACE = "Shipyard/AlertForwarder"
logger = Logger(service="alert-forwarder")
# service="": infra sets POWERTOOLS_SERVICE_NAME, which would otherwise add a `service` dimension — and the
# dashboard and alarms, which name exactly {Stack}, would silently stop matching the metrics.
metrics = Metrics(namespace=NAMESPACE, service="")


def is_sweep_event(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    if event.get("action") == "sweep":
        return True
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


class _Runtime:
    """What survives between invocations of one container: config, clients, the cached secret."""

    def __init__(self, env: dict[str, str]):
        from .config import ConfigError, load_routing

        self.routing: Routing = load_routing(env.get("ROUTING"))
        missing = [name for name in ("STATE_TABLE", "CHANNELS_SECRET_ARN") if not env.get(name)]
        if missing:
            raise ConfigError(f"{missing[0]}: environment variable is not set")
        self.table = env["STATE_TABLE"]
        self.secret_arn = env["CHANNELS_SECRET_ARN"]
        self.stack = env.get("STACK", "")
        self.project = env.get("PROJECT", "")
        self.slack_api_base = env.get("SLACK_API_BASE") or None
        self.telegram_api_base = env.get("TELEGRAM_API_BASE") or None
        self.secrets_ttl = float(env.get("SECRETS_TTL_SECONDS") or 300)
        self._clients: dict[str, Any] = {}
        self._secrets: tuple[float, ChannelSecrets] | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=3, read_timeout=8, retries={"max_attempts": 3, "mode": "standard"})
            self._clients[service] = boto3.session.Session().client(service, config=config)
        return self._clients[service]

    def secrets(self) -> ChannelSecrets:
        from .config import parse_channel_secrets, unknown_secret_keys

        now = time.monotonic()
        if self._secrets and now - self._secrets[0] < self.secrets_ttl:
            return self._secrets[1]
        text = self.client("secretsmanager").get_secret_value(SecretId=self.secret_arn)["SecretString"]
        parsed = parse_channel_secrets(text)
        unknown = unknown_secret_keys(text)
        if unknown:
            logger.warning("channel secret has keys this forwarder does not read", extra={"keys": unknown})
        self._secrets = (now, parsed)
        return parsed

    def deps(self, context: Any) -> Deps:
        from .deliver import DEFAULT_SLACK_API_BASE, DEFAULT_TELEGRAM_API_BASE, RetryPolicy, urllib_post
        from .forward import Deps, build_targets
        from .render import RenderContext
        from .state import StateStore

        def remaining() -> float:
            getter = getattr(context, "get_remaining_time_in_millis", None)
            return getter() / 1000.0 if callable(getter) else 60.0

        secrets_holder: dict[str, Any] = {}

        def targets(channel: str) -> Any:
            # Secrets are fetched only when something is to be sent (a quiet sweep needs none).
            if "resolve" not in secrets_holder:
                secrets_holder["resolve"] = build_targets(
                    self.secrets(),
                    http=urllib_post,
                    ses=lambda: self.client("ses"),
                    sns=lambda: self.client("sns"),
                    slack_api_base=self.slack_api_base or DEFAULT_SLACK_API_BASE,
                    telegram_api_base=self.telegram_api_base or DEFAULT_TELEGRAM_API_BASE,
                )
            return secrets_holder["resolve"](channel)

        return Deps(
            store=StateStore(self.client("dynamodb"), self.table),
            routing=self.routing,
            targets=targets,
            ctx=RenderContext(project=self.project, stack=self.stack),
            remaining=remaining,
            retry=RetryPolicy(
                max_attempts=self.routing.retry_max_attempts,
                base_delay=self.routing.retry_base_delay_seconds,
                max_delay=max(8.0, self.routing.retry_base_delay_seconds),
            ),
            cloudwatch=lambda: self.client("cloudwatch"),
            log=logger,
        )


_runtime: _Runtime | None = None


def _get_runtime() -> _Runtime:
    global _runtime
    if _runtime is None:
        _runtime = _Runtime(dict(os.environ))
    return _runtime


def reset_runtime() -> None:
    """Forget cached config, clients and secrets (tests; a new container would do the same)."""
    global _runtime
    _runtime = None


def _emit(result: Result, stack: str) -> None:
    metrics.add_dimension("Stack", stack or "unknown")
    for name, value in (
        ("AlertsReceived", result.received),
        ("MessagesSent", result.sent),
        ("DeliveryFailures", len(result.failures)),
        ("AlertsSuppressed", result.suppressed),
        ("AlertsHeldForDigest", result.held),
        ("DigestsSent", result.digests_sent),
        ("EscalationsSent", result.escalations_sent),
    ):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    metrics.flush_metrics()


def handler(event: Any, context: Any) -> dict[str, Any]:
    from .forward import DeliveryFailed, process_records, sweep
    from .parse import is_sqs_event, records_from_event

    runtime = _get_runtime()
    deps = runtime.deps(context)
    if is_sweep_event(event):
        result = sweep(deps)
        kind = "sweep"
    else:
        result = process_records(records_from_event(event), deps)
        kind = "alerts"
    _emit(result, runtime.stack)
    summary = {
        "kind": kind,
        "received": result.received,
        "notified": result.notified,
        "suppressed": result.suppressed,
        "held_for_digest": result.held,
        "sent": result.sent,
        "already_sent": result.already_sent,
        "digests_sent": result.digests_sent,
        "escalations_sent": result.escalations_sent,
        "failed": len(result.failures),
    }
    if kind == "alerts" and is_sqs_event(event):
        # Behind an SQS queue (event source mapping with ReportBatchItemFailures): only the failed
        # messages go back to the queue, to be retried and finally moved to its dead-letter queue.
        failed = result.failed_sqs_ids()
        if failed:
            logger.error(
                "delivery incomplete; returning failed batch items",
                extra={**summary, "error": result.failure_summary()},
            )
        return {"batchItemFailures": [{"itemIdentifier": sqs_id} for sqs_id in failed]}
    if result.failures:
        logger.error("delivery incomplete; failing the invocation so Lambda retries", extra=summary)
        raise DeliveryFailed(result)
    logger.info("done", extra=summary)
    return summary

"""CloudWatch metrics as EMF log lines, through Powertools Metrics.

Each function publishes under its own namespace with exactly one dimension, ``Stack`` (env ``STACK``),
so an alarm defined on ``{Stack: <stack>}`` matches. EMF goes out through the function's log stream:
no PutMetricData call, no VPC endpoint needed. ``POWERTOOLS_METRICS_DISABLED=true`` suppresses output
(the values are still computed by the caller and returned in its result).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

Unit = Literal["Count", "Milliseconds", "Seconds", "None"]


@dataclass(frozen=True)
class MetricValue:
    name: str
    unit: Unit
    value: float


def stack_from_env(env: Mapping[str, str]) -> str:
    stack = env.get("STACK", "").strip()
    if not stack:
        raise ValueError("STACK must be set (the metrics' Stack dimension, e.g. staging or prod)")
    return stack


def publish(namespace: str, stack: str, values: Iterable[MetricValue]) -> None:
    """Print one EMF document with ``values`` under ``namespace`` and ``{Stack: stack}``."""
    from aws_lambda_powertools import Metrics

    # service="" (not None): None would fall back to POWERTOOLS_SERVICE_NAME and add a `service`
    # dimension, and alarms keyed on {Stack} alone would silently stop matching.
    metrics = Metrics(namespace=namespace, service="")
    metrics.clear_metrics()  # Powertools shares the metric set between instances
    try:
        metrics.add_dimension(name="Stack", value=stack)
        for metric in values:
            metrics.add_metric(name=metric.name, unit=metric.unit, value=metric.value)
        metrics.flush_metrics(raise_on_empty_metrics=True)
    finally:
        metrics.clear_metrics()

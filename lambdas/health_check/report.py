"""Turn a run's results into what leaves the function: EMF metrics, JSON log lines, the result event, a table.

Everything here is a pure function of the report, so tests read exactly what would be printed.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from lambdas.health_check.checks import CheckResult
from lambdas.health_check.runner import RunReport

NAMESPACE = "Shipyard/HealthCheck"
SOURCE = "shipyard.health_check"  # how the alert forwarder recognises our events and log lines
DETAIL_TYPE = "Health Check Run"
EVENT_VERSION = 1


def _emf(stack: str, timestamp_ms: int) -> AmazonCloudWatchEMFProvider:
    # service="" keeps POWERTOOLS_SERVICE_NAME from adding a `service` dimension: alarms match the exact
    # dimension set, and a surprise extra dimension would silently detach every alarm from its metric.
    provider = AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service="", default_dimensions={"Stack": stack})
    provider.timestamp = timestamp_ms
    return provider


def emf_documents(report: RunReport, stack: str) -> list[dict[str, Any]]:
    """One EMF document per endpoint (Up, LatencyMs, CertDaysLeft), one per failure, one for the run."""
    timestamp_ms = int(report.started_at.timestamp() * 1000)
    documents: list[dict[str, Any]] = []
    for result in report.results:
        per_endpoint = _emf(stack, timestamp_ms)
        per_endpoint.add_dimension("Endpoint", result.name)
        per_endpoint.add_metric("Up", "Count", 1 if result.up else 0)
        # Latency is only published when an answer came back: a timeout's "latency" is just the timeout,
        # and would drag every percentile on the dashboard towards it.
        if result.latency_ms is not None:
            per_endpoint.add_metric("LatencyMs", "Milliseconds", result.latency_ms)
        if result.cert_days_left is not None:
            per_endpoint.add_metric("CertDaysLeft", "None", result.cert_days_left)
        documents.append(dict(per_endpoint.serialize_metric_set()))

        if result.reason is not None:
            # Two views of one count: per endpoint and reason, and rolled up by reason for the stack.
            # Reasons are a closed set (checks.REASONS), so the number of metrics stays bounded.
            failure = _emf(stack, timestamp_ms)
            failure.add_dimension("Endpoint", result.name)
            failure.add_dimension("Reason", result.reason)
            failure.add_dimensions(Reason=result.reason)
            failure.add_metric("CheckFailed", "Count", 1)
            documents.append(dict(failure.serialize_metric_set()))

    run = _emf(stack, timestamp_ms)
    run.add_metric("RunDurationMs", "Milliseconds", report.duration_ms)
    documents.append(dict(run.serialize_metric_set()))
    return documents


def check_log_line(result: CheckResult, stack: str) -> dict[str, Any]:
    if not result.up:
        level, message = "ERROR", f"{result.name} is down: {result.reason}: {result.detail}"
    elif result.warnings:
        level, message = "WARNING", f"{result.name} is up with warnings: {', '.join(result.warnings)}"
    else:
        level, message = "INFO", f"{result.name} is up"
    return {
        "level": level,
        "message": message,
        "source": SOURCE,
        "event": "check",
        "stack": stack,
        **result.as_dict(),
    }


def result_event(report: RunReport, stack: str) -> dict[str, Any]:
    """The run as one JSON document: returned by the handler and logged as the summary line."""
    down = [r for r in report.results if not r.up]
    warned = [r for r in report.results if r.warnings]
    if down:
        level = "ERROR"
        message = "health check: " + ", ".join(f"{r.name} down ({r.reason})" for r in down)
    elif warned:
        level = "WARNING"
        message = "health check: all up; " + ", ".join(f"{r.name}: {', '.join(r.warnings)}" for r in warned)
    else:
        level, message = "INFO", f"health check: all {len(report.results)} up"
    return {
        "source": SOURCE,
        "detail-type": DETAIL_TYPE,
        "version": EVENT_VERSION,
        "event": "summary",
        "level": level,
        "message": message,
        "stack": stack,
        "time": report.started_at.isoformat(),
        "ok": report.ok,
        "total": len(report.results),
        "up": len(report.results) - len(down),
        "down": len(down),
        "duration_ms": report.duration_ms,
        "deadline_s": report.deadline_s,
        "results": [
            {
                "endpoint": r.name,
                "up": r.up,
                "reason": r.reason,
                "detail": r.detail,
                "latency_ms": r.latency_ms,
                "status": r.status,
                "cert_days_left": r.cert_days_left,
                "warnings": list(r.warnings),
            }
            for r in report.results
        ],
    }


def format_table(report: RunReport) -> str:
    """A fixed-width table for people at a terminal."""
    headers = ("ENDPOINT", "KIND", "UP", "REASON", "LATENCY", "STATUS", "CERT DAYS", "DETAIL")
    rows = [
        (
            r.name,
            r.kind,
            "yes" if r.up else "NO",
            r.reason or ("warn: " + ",".join(r.warnings) if r.warnings else "-"),
            f"{r.latency_ms:.0f} ms" if r.latency_ms is not None else "-",
            str(r.status) if r.status is not None else "-",
            f"{r.cert_days_left:.1f}" if r.cert_days_left is not None else "-",
            r.detail or "",
        )
        for r in report.results
    ]
    widths = [max(len(str(row[i])) for row in (headers, *rows)) for i in range(len(headers) - 1)]
    lines = []
    for row in (headers, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    up = sum(1 for r in report.results if r.up)
    lines.append(f"{up}/{len(report.results)} up in {report.duration_ms:.0f} ms (deadline {report.deadline_s:g} s)")
    return "\n".join(lines)

"""What leaves the function: EMF metric documents, log lines, the result event and the terminal table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lambdas.health_check.checks import CERT_EXPIRING, CheckResult
from lambdas.health_check.report import (
    NAMESPACE,
    SOURCE,
    check_log_line,
    emf_documents,
    format_table,
    result_event,
)
from lambdas.health_check.runner import RunReport

STARTED = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)


def sample_report() -> RunReport:
    return RunReport(
        results=(
            CheckResult(
                name="frontend",
                kind="http",
                target="https://shop.example/",
                up=True,
                latency_ms=42.5,
                status=200,
                cert_days_left=9.25,
                warnings=[CERT_EXPIRING],
            ),
            CheckResult(
                name="api-ready",
                kind="http",
                target="https://api.example/api/health/ready",
                up=False,
                reason="status",
                detail="status 503, expected 200",
                phase="assert",
                latency_ms=12.0,
                status=503,
                cert_days_left=80.0,
            ),
            CheckResult(
                name="database",
                kind="postgres",
                target="postgres://db:5432/shop",
                up=False,
                reason="timeout",
                detail="no answer within 3 s (during query)",
                phase="query",
            ),
        ),
        started_at=STARTED,
        duration_ms=3001.5,
        deadline_s=25.0,
    )


def metrics_of(document: dict[str, Any]) -> tuple[list[list[str]], dict[str, str], dict[str, Any]]:
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    units = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
    values = {name: document[name] for name in units}
    return directive["Dimensions"], units, values


def test_emf_documents_per_endpoint_per_failure_and_per_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # Set in many Lambda configurations; it must not add a dimension the alarms do not expect.
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "health-check")

    documents = emf_documents(sample_report(), "prod")

    assert {d["_aws"]["Timestamp"] for d in documents} == {int(STARTED.timestamp() * 1000)}
    assert all("service" not in d for d in documents)
    summary = [(metrics_of(d), d.get("Endpoint"), d.get("Reason"), d["Stack"]) for d in documents]
    assert summary == [
        (
            (
                [["Stack", "Endpoint"]],
                {"Up": "Count", "LatencyMs": "Milliseconds", "CertDaysLeft": "None"},
                {"Up": [1.0], "LatencyMs": [42.5], "CertDaysLeft": [9.25]},
            ),
            "frontend",
            None,
            "prod",
        ),
        (
            (
                [["Stack", "Endpoint"]],
                {"Up": "Count", "LatencyMs": "Milliseconds", "CertDaysLeft": "None"},
                {"Up": [0.0], "LatencyMs": [12.0], "CertDaysLeft": [80.0]},
            ),
            "api-ready",
            None,
            "prod",
        ),
        (
            (
                [["Stack", "Endpoint", "Reason"], ["Stack", "Reason"]],
                {"CheckFailed": "Count"},
                {"CheckFailed": [1.0]},
            ),
            "api-ready",
            "status",
            "prod",
        ),
        # A timeout publishes no latency: it would only be the timeout itself.
        (([["Stack", "Endpoint"]], {"Up": "Count"}, {"Up": [0.0]}), "database", None, "prod"),
        (
            (
                [["Stack", "Endpoint", "Reason"], ["Stack", "Reason"]],
                {"CheckFailed": "Count"},
                {"CheckFailed": [1.0]},
            ),
            "database",
            "timeout",
            "prod",
        ),
        (([["Stack"]], {"RunDurationMs": "Milliseconds"}, {"RunDurationMs": [3001.5]}), None, None, "prod"),
    ]


def test_one_log_line_per_check_with_level_and_fields() -> None:
    frontend, api, database = (check_log_line(r, "prod") for r in sample_report().results)

    assert (frontend["level"], frontend["message"]) == (
        "WARNING",
        "frontend is up with warnings: cert_expiring",
    )
    assert (api["level"], api["message"]) == ("ERROR", "api-ready is down: status: status 503, expected 200")
    assert database["level"] == "ERROR"
    for line in (frontend, api, database):
        assert (line["source"], line["event"], line["stack"]) == (SOURCE, "check", "prod")
        assert {
            "endpoint",
            "kind",
            "target",
            "up",
            "reason",
            "detail",
            "phase",
            "latency_ms",
            "status",
            "location",
            "cert_days_left",
            "cert_not_after",
            "warnings",
            "phases_ms",
        } <= set(line)
    assert (api["endpoint"], api["up"], api["reason"], api["status"]) == ("api-ready", False, "status", 503)


def test_result_event_is_recognisable_by_the_forwarder() -> None:
    event = result_event(sample_report(), "prod")

    assert event["source"] == "shipyard.health_check"
    assert (event["detail-type"], event["version"], event["event"]) == ("Health Check Run", 1, "summary")
    assert (event["ok"], event["total"], event["up"], event["down"]) == (False, 3, 1, 2)
    assert event["level"] == "ERROR"
    assert event["message"] == "health check: api-ready down (status), database down (timeout)"
    assert event["time"] == "2026-05-04T03:02:01+00:00"
    assert [(r["endpoint"], r["up"], r["reason"]) for r in event["results"]] == [
        ("frontend", True, None),
        ("api-ready", False, "status"),
        ("database", False, "timeout"),
    ]


def test_all_up_with_a_warning_is_a_warning_event() -> None:
    report = sample_report()
    only_frontend = RunReport(results=report.results[:1], started_at=STARTED, duration_ms=5, deadline_s=25)

    event = result_event(only_frontend, "staging")

    assert (event["ok"], event["level"]) == (True, "WARNING")
    assert event["message"] == "health check: all up; frontend: cert_expiring"


def test_table_for_people() -> None:
    assert format_table(sample_report()).splitlines() == [
        "ENDPOINT   KIND      UP   REASON               LATENCY  STATUS  CERT DAYS  DETAIL",
        "frontend   http      yes  warn: cert_expiring  42 ms    200     9.2",
        "api-ready  http      NO   status               12 ms    503     80.0       status 503, expected 200",
        "database   postgres  NO   timeout              -        -       -          "
        "no answer within 3 s (during query)",
        "1/3 up in 3002 ms (deadline 25 s)",
    ]

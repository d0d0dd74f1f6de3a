"""The alarm catalogue: every CloudWatch alarm the platform can create, declared once, as data.

Each `AlarmSpec` says what is measured (one metric, or metric math over several), how (statistic, period,
evaluation periods, datapoints to alarm, comparison, missing-data treatment), against what threshold, how
bad it is (severity → SNS topic), what the description tells the person paged, and what its runbook
(docs/runbooks/<id>.md, generated from this file by `python -m infra.aws.alarms --write-runbooks`) says.

`infra/aws/monitoring.py` turns the catalogue into alarms for whatever the stack actually deployed
(a "subject": the API load balancer, the database, each Lambda, each DLQ, each health-checked endpoint...).
The values it binds at deploy time (dimension values, the desired task count, the allocated storage) are
named in the spec as `{binding}` placeholders or `Bound("binding")` thresholds.

Per stack, `shipyard:monitoring.alarms.<id>` overrides threshold, severity, evaluation periods,
datapoints to alarm, or disables an alarm. infra/config/ validates those ids against `ALARM_IDS` before any
resource exists, which is why this module imports nothing but the standard library.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

Severity = Literal["critical", "warning", "info"]
Comparison = Literal[
    "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold", "LessThanOrEqualToThreshold"
]
MissingData = Literal["breaching", "notBreaching", "ignore", "missing"]
Subject = Literal[
    "api",  # the ALB and its target group (LoadBalancer, TargetGroup, desired_count)
    "service",  # the ECS service (ClusterName, ServiceName)
    "database",  # the RDS instance (DBInstanceIdentifier, allocated_bytes, memory_bytes, max_connections)
    "cache",  # each ElastiCache node (CacheClusterId); one alarm per node
    "frontend",  # the CloudFront distribution (DistributionId); alarms live in us-east-1
    "function",  # each Lambda (FunctionName, timeout_ms); one alarm per function
    "queue",  # each dead-letter queue (QueueName); one alarm per queue
    "auto_confirm",  # the hourly auto-confirm job (Stack)
    "health_endpoint",  # each health-checked endpoint (Stack, Endpoint)
    "health_certificate",  # each TLS endpoint of the health check (Stack, Endpoint)
    "health_checker",  # the health checker itself (Stack, checker_count)
    "backup",  # the AWS Backup vault (BackupVaultName)
    "alert_forwarder",  # the alert forwarder's own delivery metrics (Stack)
    "alert_inbox",  # the SQS inbox the alert topics deliver to (QueueName)
    "restore_test",  # the monthly restore test's validator (Stack)
    "app_events",  # metrics from log metric filters on the app's JSON events (log_namespace)
    "slo",  # availability SLO burn rate over the ALB (LoadBalancer, burn thresholds)
    "http_api",  # the API Gateway HTTP API front door (ApiId, Stage) and its ECS service's task counts
    "http_api_slo",  # availability SLO burn rate over the HTTP API (ApiId, Stage, burn thresholds)
    "composite",  # alarms over other alarms
]

RUNBOOK_DIR = "docs/runbooks"
"""Where the runbook pages live in the repository (one `<id>.md` per catalogued alarm)."""

DEFAULT_RUNBOOK_BASE_URL = "https://github.com/example-org/shipyard/blob/main/docs/runbooks"
"""Placeholder until the repository has its public home: set `shipyard:monitoring.runbookBaseUrl`."""

SLO_WINDOWS = {
    # name: (long window s, short window s, burn rate) — the SRE workbook's multiwindow pair for a 30-day SLO:
    # fast pages when 2% of the month's budget burns in 1 h, slow when 5% burns in 6 h.
    "fast": (3600, 300, 14.4),
    "slow": (21600, 1800, 6.0),
}


@dataclass(frozen=True)
class Bound:
    """A threshold taken from a value the stack binds at deploy time (e.g. the desired task count)."""

    binding: str


@dataclass(frozen=True)
class MetricQuery:
    id: str
    """Id used in `AlarmSpec.expression` (m1, m2...)."""
    namespace: str
    """May contain `{binding}` placeholders (the app-event namespace carries the stack name)."""
    name: str
    stat: str
    """CloudWatch statistic (Sum, Average, Minimum, Maximum, SampleCount) or percentile (p95, p99)."""
    dimensions: tuple[tuple[str, str], ...] = ()
    """(CloudWatch dimension name, binding key or literal prefixed with '=') pairs."""


@dataclass(frozen=True)
class AlarmSpec:
    id: str
    subject: Subject
    resource: str
    """Name segment; `{instance}` becomes the function/queue/endpoint for per-instance alarms."""
    condition: str
    severity: Severity
    title: str
    description: str
    """What is wrong, in words; `{threshold}` and bindings are filled in. The runbook link is appended."""
    threshold: float | Bound
    comparison: Comparison
    period: int
    evaluation_periods: int
    datapoints_to_alarm: int
    missing_data: MissingData
    metrics: tuple[MetricQuery, ...] = ()
    expression: str | None = None
    """Metric math over `metrics` (ids); `{binding}` placeholders are plan-time numbers. None: the single metric."""
    unit: str = ""
    """Shown after the threshold in descriptions and on dashboards ('%', ' s', ' days')."""
    rule: str | None = None
    """Composite alarms only: the rule over other catalogue ids, written `ALARM(<id>)`."""
    meaning: str = ""
    checks: tuple[str, ...] = ()
    fixes: tuple[str, ...] = ()
    notes: str = ""

    @property
    def is_composite(self) -> bool:
        return self.subject == "composite"

    @property
    def runbook_path(self) -> str:
        return f"{RUNBOOK_DIR}/{self.id}.md"

    def runbook_url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/{self.id}.md"

    def window_text(self) -> str:
        if self.is_composite:
            return ""
        minutes = self.period // 60
        unit = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
        if self.evaluation_periods == 1:
            return f"over {unit}"
        return f"in {self.datapoints_to_alarm} of {self.evaluation_periods} periods of {unit}"


@dataclass(frozen=True)
class Resolved:
    """A catalogue entry after the stack's override: what the alarm will actually be."""

    spec: AlarmSpec
    threshold: float | Bound
    severity: Severity
    evaluation_periods: int
    datapoints_to_alarm: int


def format_number(value: float) -> str:
    """`80` not `80.0`, `1.44` not `1.4400000000000002`: the text on-call reads and tests look for."""
    if math.isclose(value, round(value), abs_tol=1e-9):
        return str(round(value))
    return f"{value:.4g}"


def bindings_text(values: Mapping[str, object]) -> dict[str, str]:
    """Plan-time values formatted for descriptions (numbers without a trailing .0)."""
    return {k: format_number(v) if isinstance(v, int | float) else str(v) for k, v in values.items()}


def _m(mid: str, namespace: str, name: str, stat: str, *dimensions: tuple[str, str]) -> MetricQuery:
    return MetricQuery(mid, namespace, name, stat, tuple(dimensions))


ALB = ("LoadBalancer", "load_balancer")
TG = ("TargetGroup", "target_group")
HTTP_API = (("ApiId", "api_id"), ("Stage", "stage"))
"""AWS/ApiGateway dimensions of an HTTP API stage (docs.aws.amazon.com/apigateway/latest/developerguide/
http-api-metrics.html: metrics 4xx, 5xx, Count, Latency, IntegrationLatency in ms, DataProcessed)."""
ECS_SERVICE = (("ClusterName", "cluster"), ("ServiceName", "service"))
STACK = ("Stack", "stack")

_ESCALATE = {
    "critical": "Page the secondary on-call if there is no clear improvement within 15 minutes; open an incident "
    "and post in the incident channel if customers are affected or money movement may be wrong.",
    "warning": "Handle within working hours. Escalate to critical (page) if it keeps getting worse or another "
    "alarm on the same resource joins it.",
    "info": "No page. Read it in the alert history; it feeds a composite alarm that pages when it matters.",
}

CATALOGUE: tuple[AlarmSpec, ...] = (
    # ---------------------------------------------------------------------------------------------- API (ALB)
    AlarmSpec(
        id="api-5xx-rate",
        subject="api",
        resource="api",
        condition="5xx-rate",
        severity="critical",
        title="API 5xx error rate",
        description="More than {threshold}% of API requests answered 5xx (target + load balancer errors, "
        "minutes with at least 10 requests only) {window}.",
        threshold=5,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(
            _m("m1", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum", ALB),
            _m("m2", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum", ALB),
            _m("m3", "AWS/ApplicationELB", "RequestCount", "Sum", ALB),
        ),
        expression="IF(m3 >= 10, 100 * (FILL(m1, 0) + FILL(m2, 0)) / m3, 0)",
        unit="%",
        meaning="Users get server errors. ELB 5xx (502/503/504) means the load balancer found no healthy or "
        "answering task; target 5xx means the application itself failed.",
        checks=(
            "Dashboard, API section: is it target 5xx (app) or ELB 5xx (no healthy task / timeouts)?",
            "Healthy hosts and ECS running task count; recent deployments (ECS service events).",
            "API log group: `fields @timestamp, level, event, message | filter level = 'ERROR' "
            "| sort @timestamp desc`.",
            "Database alarms (connections, CPU): a database problem surfaces as API 5xx.",
        ),
        fixes=(
            "A bad deploy: roll back to the previous task definition revision (ECS console → service → update).",
            "Tasks crash-looping: read the stopped task reason; fix config/secrets and redeploy.",
            "Overload: raise service.maxCount or task size in the stack config and `pulumi up`.",
        ),
    ),
    AlarmSpec(
        id="api-latency-p95",
        subject="api",
        resource="api",
        condition="latency-p95",
        severity="warning",
        title="API latency p95",
        description="API p95 response time above {threshold} s {window}.",
        threshold=2,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=5,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/ApplicationELB", "TargetResponseTime", "p95", ALB),),
        unit=" s",
        meaning="One request in twenty takes longer than the threshold: the API is slow for many users.",
        checks=(
            "ECS CPU/memory and RDS CPU/connections on the dashboard: saturation?",
            "Slow queries in the database log group (log_min_duration_statement).",
            "A traffic spike (RequestCount) or a new release.",
        ),
        fixes=("Scale out (service.maxCount) or up (service.cpu/memory); add the missing index for a slow query.",),
    ),
    AlarmSpec(
        id="api-latency-p99",
        subject="api",
        resource="api",
        condition="latency-p99",
        severity="critical",
        title="API latency p99",
        description="API p99 response time above {threshold} s {window}.",
        threshold=5,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/ApplicationELB", "TargetResponseTime", "p99", ALB),),
        unit=" s",
        meaning="The slowest requests approach client and gunicorn timeouts; users see hangs and retries.",
        checks=(
            "Same as api-latency-p95, plus: are requests piling up (gunicorn workers busy, ECS CPU at 100%)?",
            "Database locks: `SELECT * FROM pg_stat_activity WHERE wait_event_type = 'Lock'`.",
        ),
        fixes=("Scale out now; then remove the cause (slow query, lock contention, external call without timeout).",),
    ),
    AlarmSpec(
        id="api-healthy-hosts-low",
        subject="api",
        resource="api",
        condition="healthy-hosts-low",
        severity="warning",
        title="API healthy targets below desired",
        description="Healthy API targets fell short of the service's desired task count (which follows "
        "autoscaling) by more than {threshold} {window}.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=5,
        missing_data="notBreaching",
        metrics=(
            _m("m1", "AWS/ApplicationELB", "HealthyHostCount", "Minimum", TG, ALB),
            _m(
                "m2",
                "ECS/ContainerInsights",
                "DesiredTaskCount",
                "Maximum",
                ("ClusterName", "cluster"),
                ("ServiceName", "service"),
            ),
        ),
        expression="m2 - m1",
        meaning="Some tasks the service wants are not healthy behind the load balancer: capacity and redundancy "
        "are reduced. Five minutes in a row, so a normal scale-out or deployment does not fire it.",
        checks=(
            "Target group → Targets: which are unhealthy and the reason (timeout, 5xx on /api/health).",
            "ECS service events: tasks stopping, failing to place, image pull errors.",
        ),
        fixes=("Replace failing tasks (force new deployment) once the cause (config, dependency) is fixed.",),
        notes="DesiredTaskCount comes from Container Insights (on for the cluster); without it the alarm sees "
        "no data and stays OK, and api-no-healthy-hosts still covers a full outage.",
    ),
    AlarmSpec(
        id="api-no-healthy-hosts",
        subject="api",
        resource="api",
        condition="no-healthy-hosts",
        severity="critical",
        title="API has no healthy target",
        description="Fewer than {threshold} healthy API target {window}: the API is down.",
        threshold=1,
        comparison="LessThanThreshold",
        period=60,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        missing_data="breaching",
        metrics=(_m("m1", "AWS/ApplicationELB", "HealthyHostCount", "Minimum", TG, ALB),),
        meaning="The load balancer has nowhere to send requests: every API call fails with 503.",
        checks=(
            "ECS service: running count, stopped task reasons, last deployment.",
            "Database reachable? (health-check database endpoint alarm, RDS events).",
        ),
        fixes=("Roll back the last deployment; if tasks cannot start, fix the reason in the stopped task message.",),
    ),
    # ---------------------------------------------------------------------------------------------- API (HTTP API)
    # The same questions as the ALB block above, asked of the metrics an HTTP API front door has (issue 19):
    # API Gateway's 5xx/Count/IntegrationLatency, and ECS task counts where the ALB had healthy targets.
    AlarmSpec(
        id="http-api-5xx-rate",
        subject="http_api",
        resource="api",
        condition="http-api-5xx-rate",
        severity="critical",
        title="API 5xx error rate (HTTP API)",
        description="More than {threshold}% of API requests answered 5xx (the app's and API Gateway's own, "
        "minutes with at least 10 requests only) {window}.",
        threshold=5,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(
            _m("m1", "AWS/ApiGateway", "5xx", "Sum", *HTTP_API),
            _m("m2", "AWS/ApiGateway", "Count", "Sum", *HTTP_API),
        ),
        expression="IF(m2 >= 10, 100 * FILL(m1, 0) / m2, 0)",
        unit="%",
        meaning="Users get server errors. 503 from API Gateway means no task was registered in Cloud Map (none "
        "running or none healthy); 504 means the task did not answer within 30 s; other 5xx come from the app.",
        checks=(
            "Access log group (output httpApiAccessLogGroup): `fields status, integrationError | filter status "
            ">= 500 | stats count() by status, integrationError`.",
            "ECS running task count and stopped task reasons; recent deployments (ECS service events).",
            "API log group: `filter level = 'ERROR' | sort @timestamp desc`; database alarms.",
        ),
        fixes=(
            "A bad deploy: roll back to the previous task definition revision.",
            "No task registered: fix why tasks stop (stopped reason), or a Spot interruption: wait for the "
            "replacement (about two minutes).",
        ),
    ),
    AlarmSpec(
        id="http-api-latency-p95",
        subject="http_api",
        resource="api",
        condition="http-api-latency-p95",
        severity="warning",
        title="API latency p95 (HTTP API)",
        description="API p95 time in the app (integration latency) above {threshold} ms {window}.",
        threshold=2000,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=5,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/ApiGateway", "IntegrationLatency", "p95", *HTTP_API),),
        unit=" ms",
        meaning="One request in twenty takes longer than the threshold in the app: the API is slow for many users.",
        checks=(
            "ECS CPU/memory and RDS CPU/connections on the dashboard: saturation?",
            "Slow queries in the database log group (log_min_duration_statement).",
        ),
        fixes=("Scale out (service.maxCount) or up (service.cpu/memory); add the missing index for a slow query.",),
    ),
    AlarmSpec(
        id="http-api-latency-p99",
        subject="http_api",
        resource="api",
        condition="http-api-latency-p99",
        severity="critical",
        title="API latency p99 (HTTP API)",
        description="API p99 time in the app (integration latency) above {threshold} ms {window}.",
        threshold=5000,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/ApiGateway", "IntegrationLatency", "p99", *HTTP_API),),
        unit=" ms",
        meaning="The slowest requests approach the 30 s integration timeout; users see hangs and 504s.",
        checks=("Same as http-api-latency-p95, plus database locks and calls without a timeout.",),
        fixes=("Scale out now; then remove the cause (slow query, lock contention, external call without timeout).",),
    ),
    AlarmSpec(
        id="http-api-tasks-below-desired",
        subject="http_api",
        resource="api",
        condition="tasks-below-desired",
        severity="warning",
        title="API running tasks below desired",
        description="Running API tasks fell short of the service's desired count by more than {threshold} {window}.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=60,
        evaluation_periods=5,
        datapoints_to_alarm=5,
        missing_data="notBreaching",
        metrics=(
            _m("m1", "ECS/ContainerInsights", "RunningTaskCount", "Minimum", *ECS_SERVICE),
            _m("m2", "ECS/ContainerInsights", "DesiredTaskCount", "Maximum", *ECS_SERVICE),
        ),
        expression="m2 - m1",
        meaning="Some tasks the service wants are not running (the HTTP API has no target health of its own): "
        "capacity and redundancy are reduced. Five minutes in a row, so a deployment or a Spot replacement "
        "does not fire it.",
        checks=("ECS service events: tasks stopping, failing to place (Spot capacity), image pull errors.",),
        fixes=("Fix the stop reason; with Spot and no capacity for long, set service.spot: false and `pulumi up`.",),
    ),
    AlarmSpec(
        id="http-api-no-running-tasks",
        subject="http_api",
        resource="api",
        condition="no-running-tasks",
        severity="critical",
        title="API has no running task",
        description="Fewer than {threshold} running API task {window}: the API is down.",
        threshold=1,
        comparison="LessThanThreshold",
        period=60,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        missing_data="breaching",
        metrics=(_m("m1", "ECS/ContainerInsights", "RunningTaskCount", "Minimum", *ECS_SERVICE),),
        meaning="Nothing is registered for the HTTP API to call: every API request fails with 503.",
        checks=("ECS service: running count, stopped task reasons (SpotInterruption?), last deployment.",),
        fixes=("Roll back the last deployment; if tasks cannot start, fix the reason in the stopped task message.",),
    ),
    *(
        AlarmSpec(
            id=f"http-api-slo-burn-{speed}-{window}",
            subject="http_api_slo",
            resource="slo",
            condition=f"http-api-burn-{speed}-{window}",
            severity="info",
            title=f"SLO burn rate over the HTTP API ({speed}, {window} window)",
            description="API 5xx share of requests above {threshold}% (the " + speed + " burn rate of "
            "{slo_percent}% availability) {window}.",
            threshold=Bound(f"{speed}_burn_percent"),
            comparison="GreaterThanThreshold",
            period=seconds,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            missing_data="notBreaching",
            metrics=(
                _m("m1", "AWS/ApiGateway", "5xx", "Sum", *HTTP_API),
                _m("m2", "AWS/ApiGateway", "Count", "Sum", *HTTP_API),
            ),
            expression="100 * FILL(m1, 0) / m2",
            unit="%",
            meaning=f"One window of the {speed} burn-rate pair behind the HTTP API; alone it does not page. "
            f"slo-burn-{speed} pages when both windows of the pair are in ALARM.",
            checks=(f"See slo-burn-{speed}.",),
            fixes=(f"See slo-burn-{speed}.",),
        )
        for speed, (long_s, short_s, _burn) in SLO_WINDOWS.items()
        for window, seconds in (("long", long_s), ("short", short_s))
    ),
    # ---------------------------------------------------------------------------------------------- ECS
    AlarmSpec(
        id="service-cpu-high",
        subject="service",
        resource="service",
        condition="cpu-high",
        severity="warning",
        title="ECS service CPU high",
        description="API service average CPU above {threshold}% {window}.",
        threshold=80,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(
            _m("m1", "AWS/ECS", "CPUUtilization", "Average", ("ClusterName", "cluster"), ("ServiceName", "service")),
        ),
        unit="%",
        meaning="Tasks run hot; autoscaling should add tasks — if it cannot (at maxCount), latency follows.",
        checks=("Running vs maxCount; RequestCount trend; a runaway endpoint in the logs.",),
        fixes=("Raise service.maxCount or service.cpu in the stack config.",),
    ),
    AlarmSpec(
        id="service-memory-high",
        subject="service",
        resource="service",
        condition="memory-high",
        severity="warning",
        title="ECS service memory high",
        description="API service average memory above {threshold}% {window}.",
        threshold=90,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(
            _m("m1", "AWS/ECS", "MemoryUtilization", "Average", ("ClusterName", "cluster"), ("ServiceName", "service")),
        ),
        unit="%",
        meaning="Tasks are close to their memory limit; the next spike gets them OOM-killed (exit code 137).",
        checks=("Stopped tasks with OutOfMemory; memory growing steadily after each deploy (a leak)?",),
        fixes=("Raise service.memory; lower gunicornWorkers; find the leak.",),
    ),
    # ---------------------------------------------------------------------------------------------- RDS
    AlarmSpec(
        id="database-cpu-high",
        subject="database",
        resource="db",
        condition="cpu-high",
        severity="warning",
        title="Database CPU high",
        description="Database CPU above {threshold}% {window}.",
        threshold=80,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/RDS", "CPUUtilization", "Average", ("DBInstanceIdentifier", "db")),),
        unit="%",
        meaning="The database is saturated; every query slows down and the API follows.",
        checks=(
            "Performance Insights: top SQL by load.",
            "`SELECT pid, now() - query_start AS age, query FROM pg_stat_activity WHERE state = 'active' "
            "ORDER BY age DESC`.",
            "Burstable class (db.t4g.*): CPU credit balance exhausted?",
        ),
        fixes=(
            "Cancel the runaway query (`SELECT pg_cancel_backend(pid)`); add an index; move up database.instanceClass.",
        ),
    ),
    AlarmSpec(
        id="database-storage-low",
        subject="database",
        resource="db",
        condition="storage-low",
        severity="warning",
        title="Database free storage low",
        description="Database free storage below {threshold}% of the {allocated_gb} GiB allocated {window}.",
        threshold=20,
        comparison="LessThanThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/RDS", "FreeStorageSpace", "Minimum", ("DBInstanceIdentifier", "db")),),
        expression="100 * m1 / {allocated_bytes}",
        unit="%",
        meaning="The disk is filling. Storage autoscaling grows it at 10% free (up to maxAllocatedStorageGb); "
        "a full disk stops all writes.",
        checks=(
            "FreeStorageSpace trend: sudden (bulk load, WAL from a stuck replication slot) or steady growth?",
            "`SELECT slot_name, active FROM pg_replication_slots` — an inactive slot retains WAL forever.",
            "Table sizes: `SELECT relname, pg_size_pretty(pg_total_relation_size(oid)) FROM pg_class "
            "ORDER BY pg_total_relation_size(oid) DESC LIMIT 10`.",
        ),
        fixes=(
            "Raise database.allocatedStorageGb (and maxAllocatedStorageGb) and `pulumi up`; the percentage here "
            "is of allocatedStorageGb, so keep it in step with what autoscaling grew to.",
            "Drop an unused replication slot; archive/delete old data.",
        ),
    ),
    AlarmSpec(
        id="database-memory-low",
        subject="database",
        resource="db",
        condition="memory-low",
        severity="warning",
        title="Database freeable memory low",
        description="Database freeable memory below {threshold}% of the instance's {memory_gb} GiB {window}.",
        threshold=10,
        comparison="LessThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/RDS", "FreeableMemory", "Minimum", ("DBInstanceIdentifier", "db")),),
        expression="100 * m1 / {memory_bytes}",
        unit="%",
        meaning="The instance is close to swapping; queries slow down sharply and the OS may kill backends.",
        checks=("Connection count (each backend costs memory); work_mem-heavy queries; SwapUsage.",),
        fixes=("Reduce connections (pooling, fewer gunicorn workers); move up database.instanceClass.",),
    ),
    AlarmSpec(
        id="database-connections-high",
        subject="database",
        resource="db",
        condition="connections-high",
        severity="warning",
        title="Database connections near max",
        description="Database connections above {threshold}% of max_connections ({max_connections}) {window}.",
        threshold=80,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/RDS", "DatabaseConnections", "Maximum", ("DBInstanceIdentifier", "db")),),
        expression="100 * m1 / {max_connections}",
        unit="%",
        meaning="New connections will soon be refused ('too many clients'); the API and jobs fail on connect.",
        checks=(
            "`SELECT usename, application_name, state, count(*) FROM pg_stat_activity "
            "GROUP BY 1, 2, 3 ORDER BY 4 DESC`.",
            "Idle-in-transaction sessions; tasks count × gunicorn workers × pool size vs max_connections.",
        ),
        fixes=(
            "Terminate idle-in-transaction sessions; lower pool sizes; set database.maxConnections or a larger class.",
        ),
    ),
    # ---------------------------------------------------------------------------------------------- ElastiCache
    AlarmSpec(
        id="cache-memory-high",
        subject="cache",
        resource="cache-{instance}",
        condition="memory-high",
        severity="warning",
        title="Cache memory high",
        description="Cache node {node} uses more than {threshold}% of its maxmemory {window}.",
        threshold=80,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        missing_data="notBreaching",
        metrics=(
            _m("m1", "AWS/ElastiCache", "DatabaseMemoryUsagePercentage", "Maximum", ("CacheClusterId", "nodeid")),
        ),
        unit="%",
        meaning="With maxmemory-policy noeviction (the default here, so queues never lose jobs) a full cache "
        "refuses every write with 'OOM command not allowed': enqueueing jobs fails.",
        checks=(
            "`INFO memory` and `--bigkeys` (redis-cli/valkey-cli over TLS with the auth token from its secret).",
            "Queues that are not being consumed (a stopped worker) grow until memory is full.",
        ),
        fixes=("Restart/scale the consumers; delete dead keys; move up cache.nodeType.",),
    ),
    AlarmSpec(
        id="cache-cpu-high",
        subject="cache",
        resource="cache-{instance}",
        condition="cpu-high",
        severity="warning",
        title="Cache engine CPU high",
        description="Cache node {node} engine CPU above {threshold}% {window}.",
        threshold=90,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/ElastiCache", "EngineCPUUtilization", "Average", ("CacheClusterId", "nodeid")),),
        unit="%",
        meaning="The single-threaded engine is saturated: every command waits, so does every API call using it.",
        checks=("Slow commands: `SLOWLOG GET 20`; KEYS/SCAN patterns; a hot key.",),
        fixes=("Remove the expensive command pattern; move up cache.nodeType.",),
    ),
    # ---------------------------------------------------------------------------------------------- CloudFront
    AlarmSpec(
        id="frontend-5xx-rate",
        subject="frontend",
        resource="frontend",
        condition="5xx-rate",
        severity="critical",
        title="Frontend (CloudFront) 5xx error rate",
        description="More than {threshold}% of frontend requests answered 5xx by CloudFront (periods with at "
        "least 20 requests only) {window}.",
        threshold=5,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        missing_data="notBreaching",
        metrics=(
            _m(
                "m1",
                "AWS/CloudFront",
                "5xxErrorRate",
                "Average",
                ("DistributionId", "distribution"),
                ("Region", "=Global"),
            ),
            _m("m2", "AWS/CloudFront", "Requests", "Sum", ("DistributionId", "distribution"), ("Region", "=Global")),
        ),
        expression="IF(m2 >= 20, m1, 0)",
        unit="%",
        meaning="The web app does not load for many users: CloudFront cannot get the files from its origin.",
        checks=(
            "CloudFront → Monitoring → error breakdown (502/503/504); S3 origin and OAC policy unchanged?",
            "The last frontend deploy: was index.html removed or the bucket policy changed?",
        ),
        fixes=("Redeploy the frontend (`make deploy-frontend`); restore the bucket policy with `pulumi up`.",),
        notes="CloudFront publishes its metrics in us-east-1 only, so this alarm is created there, and its actions "
        "go to topics in us-east-1 (the stack's own topics when the stack runs there).",
    ),
    # ---------------------------------------------------------------------------------------------- Lambdas
    AlarmSpec(
        id="lambda-errors",
        subject="function",
        resource="lambda-{instance}",
        condition="errors",
        severity="warning",
        title="Lambda errors",
        description="Lambda {function_name} reported more than {threshold} errors {window}.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/Lambda", "Errors", "Sum", ("FunctionName", "function")),),
        meaning="An invocation raised or timed out. Scheduled and SNS-triggered functions retry, then park the "
        "event in their DLQ.",
        checks=(
            "The function's log group: `fields @timestamp, level, message | filter level = 'ERROR' or "
            "@message like /Task timed out/`.",
            "A `config_error` event means its environment is wrong (fixed by `pulumi up`).",
        ),
        fixes=("Fix the cause, deploy, then replay the DLQ messages (see dlq-depth).",),
    ),
    AlarmSpec(
        id="lambda-throttles",
        subject="function",
        resource="lambda-{instance}",
        condition="throttles",
        severity="warning",
        title="Lambda throttles",
        description="Lambda {function_name} was throttled more than {threshold} times {window}.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/Lambda", "Throttles", "Sum", ("FunctionName", "function")),),
        meaning="Invocations were refused for lack of concurrency (its reserved concurrency or the account limit).",
        checks=(
            "ConcurrentExecutions; reserved concurrency of the function; other functions eating the account pool.",
        ),
        fixes=("Raise reserved concurrency, or the account's Lambda concurrency quota.",),
    ),
    AlarmSpec(
        id="lambda-duration-near-timeout",
        subject="function",
        resource="lambda-{instance}",
        condition="duration-near-timeout",
        severity="warning",
        title="Lambda duration near timeout",
        description="Lambda {function_name} p99 duration above {threshold}% of its {timeout_s} s timeout {window}.",
        threshold=80,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/Lambda", "Duration", "p99", ("FunctionName", "function")),),
        expression="100 * m1 / {timeout_ms}",
        unit="%",
        meaning="Runs are close to being killed by the timeout, which leaves work half done.",
        checks=("What got slower: a dependency (database, a webhook), or more work per run (batch size, backlog)?",),
        fixes=("Fix the slow dependency, or raise the function's timeout in its config.",),
    ),
    AlarmSpec(
        id="dlq-depth",
        subject="queue",
        resource="dlq-{instance}",
        condition="messages",
        severity="warning",
        title="Dead-letter queue not empty",
        description="Dead-letter queue {queue_name} holds more than {threshold} messages {window}.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", ("QueueName", "queue")),),
        meaning="An event failed every retry and was parked: the work it carried (an alert, a scheduled run) "
        "did not happen. Messages stay 14 days.",
        checks=(
            "Read a message without deleting it: `aws sqs receive-message --queue-url <url> "
            "--visibility-timeout 0 --attribute-names All --message-attribute-names All`.",
            "The matching errors in the function's log group (ErrorMessage attribute).",
        ),
        fixes=(
            "Fix the cause first; then redrive (SQS console → Start DLQ redrive) or re-invoke the function with "
            "the message body; purge only messages that are known obsolete.",
        ),
    ),
    # ---------------------------------------------------------------------------------------------- alert delivery
    AlarmSpec(
        id="alert-delivery-failing",
        subject="alert_forwarder",
        resource="alerts",
        condition="delivery-failing",
        severity="critical",
        title="Alerts are not reaching a channel",
        description="The alert forwarder gave up on at least {threshold} delivery to a channel in each of 3 "
        "consecutive 5-minute periods ({window}).",
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        period=300,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/AlertForwarder", "DeliveryFailures", "Sum", STACK),),
        meaning="Some alerts reach no one on at least one channel (Slack, Telegram, webhook, e-mail or SMS): "
        "the forwarder keeps every failed alert (history, retries, then its DLQ), but people are not seeing "
        "them. This alarm itself reaches on-call by the critical topic's direct e-mail subscription, which "
        "does not go through the forwarder. One failed period is a provider blip; three in a row is broken.",
        checks=(
            "The forwarder's log group: the `delivery incomplete` lines "
            "name the targets that failed and why (HTTP status, error), never the credentials.",
            "The channel's credentials in the alert-channels secret (revoked Slack webhook, bot removed from the "
            "Telegram chat, SES identity unverified, SMS spend limit).",
            "alertDlqUrl / alertDeliveryDlqUrl depth (dlq-depth alarms): alerts waiting for a replay.",
        ),
        fixes=(
            "Fix the channel: write the whole corrected JSON document (every channel, not only the broken one: "
            "start from `get-secret-value`) to a file outside the repo, then `aws secretsmanager put-secret-value "
            "--secret-id <alert channels secret> --secret-string file://alert-channels.json` (a file keeps the "
            "credentials out of shell history) and delete the file; warm forwarders read it again within "
            "SECRETS_TTL_SECONDS, 5 minutes. Then replay what the DLQs hold as the dlq-depth runbook says: targets "
            "that already succeeded are not sent twice.",
        ),
    ),
    AlarmSpec(
        id="alert-inbox-stale",
        subject="alert_inbox",
        resource="alerts-inbox",
        condition="stale",
        severity="critical",
        title="Alerts are waiting in the inbox, unread",
        description="The oldest alert in the forwarder's inbox has waited more than {threshold} s {window}.",
        threshold=1800,
        comparison="GreaterThanThreshold",
        period=300,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        # SQS stops reporting a queue's metrics after hours without activity: a quiet inbox is a healthy one.
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", ("QueueName", "queue")),),
        unit=" s",
        meaning="Alarms and events reached the topics but the forwarder is not taking them from its inbox: the "
        "event source mapping is disabled or throttled, the function cannot be invoked, or its role lost the "
        "SQS rights. Nothing reaches Slack, Telegram, e-mail or SMS meanwhile, and after 4 days (the inbox's "
        "retention) the waiting alerts expire without ever reaching a dead-letter queue. A retried alert waits "
        "out the 12-minute visibility timeout between tries, so only half an hour of waiting is this fault. "
        "This alarm reaches on-call by the critical topic's direct e-mail subscription.",
        checks=(
            "The mapping's state: `aws lambda list-event-source-mappings --function-name <alertForwarderFunction> "
            "--query 'EventSourceMappings[].[State,StateTransitionReason,LastProcessingResult]'`.",
            "The forwarder's Throttles and Errors metrics, and its log group (a crash on every batch also keeps "
            "alerts waiting, until they are dead-lettered after 5 receives).",
        ),
        fixes=(
            "A disabled mapping: `pulumi up` enables it again (the program declares it enabled). A function "
            "that fails: fix and deploy it; the waiting alerts are then delivered in batches, oldest first "
            "within each alarm, and nothing already delivered is sent twice.",
        ),
    ),
    # ---------------------------------------------------------------------------------------------- auto-confirm
    AlarmSpec(
        id="auto-confirm-failed",
        subject="auto_confirm",
        resource="auto-confirm",
        condition="failed",
        severity="critical",
        title="Auto-confirm job failing",
        description="The auto-confirm job reported RunFailed at least {threshold} time in each of 2 consecutive "
        "hours ({window}).",
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        period=3600,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/AutoConfirm", "RunFailed", "Sum", STACK),),
        meaning="Delivered orders are not being confirmed and seller funds are not released on time.",
        checks=(
            "The auto-confirm log group: the failing run's error; database reachable (health-check database)?",
            "lambda-errors and dlq-depth alarms for the auto-confirm function.",
        ),
        fixes=(
            "Fix the cause; the next hourly run catches up (it settles everything overdue in batches). To run now: "
            "`aws lambda invoke --function-name <auto-confirm function> --cli-binary-format raw-in-base64-out "
            "--payload '{}' /dev/stdout` (AWS CLI v2: without the flag it reads the payload as base64).",
        ),
    ),
    AlarmSpec(
        id="auto-confirm-not-running",
        subject="auto_confirm",
        resource="auto-confirm",
        condition="not-running",
        severity="critical",
        title="Auto-confirm job did not run",
        description="The auto-confirm job published fewer than {threshold} run in each of 2 consecutive hours "
        "({window}; no data counts as not running).",
        threshold=1,
        comparison="LessThanThreshold",
        period=3600,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        missing_data="breaching",
        # RunFailed is published by every run (0 or 1): its sample count is the number of runs.
        metrics=(_m("m1", "Shipyard/AutoConfirm", "RunFailed", "SampleCount", STACK),),
        meaning="The hourly schedule is not invoking the job, or the job dies before reporting.",
        checks=(
            "EventBridge Scheduler: the schedule exists and is ENABLED; its DLQ (dlq-depth) has the failed invokes.",
            "Lambda Invocations/Errors for the function; Throttles.",
        ),
        fixes=("Re-enable or recreate the schedule with `pulumi up`; invoke once by hand to catch up.",),
        notes="Assumes the hourly schedule (jobs.autoConfirm.schedule = rate(1 hour)); a slower schedule needs "
        "this alarm's evaluationPeriods raised.",
    ),
    AlarmSpec(
        id="auto-confirm-backlog",
        subject="auto_confirm",
        resource="auto-confirm",
        condition="overdue-backlog",
        severity="warning",
        title="Auto-confirm overdue backlog",
        description="The oldest order overdue for auto-confirmation waited more than {threshold} seconds "
        "(2 hours) {window}.",
        threshold=7200,
        comparison="GreaterThanThreshold",
        period=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/AutoConfirm", "OldestOverdueSeconds", "Maximum", STACK),),
        unit=" s",
        meaning="Runs happen but do not keep up, or keep skipping some orders (OrdersSkipped).",
        checks=("OrdersConfirmed vs OrdersSkipped per run; skipped orders' reasons in the log.",),
        fixes=("Raise jobs.autoConfirm.batchSize or timeoutSeconds; fix the data behind skipped orders.",),
    ),
    # ---------------------------------------------------------------------------------------------- health check
    AlarmSpec(
        id="health-endpoint-down",
        subject="health_endpoint",
        resource="endpoint-{instance}",
        condition="down",
        severity="critical",
        title="Health check failing",
        description="Health-checked endpoint {endpoint} (target: {target}) failing: Up below {threshold} {window}.",
        threshold=1,
        comparison="LessThanThreshold",
        period=60,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/HealthCheck", "Up", "Minimum", STACK, ("Endpoint", "endpoint")),),
        meaning="The endpoint failed its assertions (status, body, latency budget, TLS) in 2 of the last 3 "
        "one-minute checks. Missing data is covered by health-checker-not-running.",
        checks=(
            "Logs Insights on the health-check log groups: `fields @timestamp, endpoint, reason, detail, phase | "
            "filter event = 'check' and level = 'ERROR' | sort @timestamp desc`.",
            "The `reason` field says where to look: timeout, refused, dns, tls, connection, status, body, latency, "
            "database, credentials (see lambdas/health_check/README.md).",
        ),
        fixes=("Fix what the reason points to; the alarm clears after the next passing minutes (OK is sent).",),
        notes="The `database` endpoint verifies the RDS server certificate with AWS's RDS CA bundle, shipped as "
        "`lambdas/shared/rds-ca-bundle.pem` (`make rds-ca` fetches it from https://truststore.pki.rds.amazonaws.com/"
        "global/global-bundle.pem; the deploy workflow runs it before `pulumi up`). If the file was missing at "
        "deploy time the check falls back to the system trust store, which lacks the RDS CAs, and reports reason "
        "`tls` on every run (`pulumi up` warns about it): run `make rds-ca` and deploy.",
    ),
    AlarmSpec(
        id="health-checker-not-running",
        subject="health_checker",
        resource="health-check",
        condition="not-running",
        severity="warning",
        title="Health checker not running",
        description="Fewer than {threshold} health-check runs per minute (one per checker function) {window}; "
        "no data counts as not running.",
        threshold=Bound("checker_count"),
        comparison="LessThanThreshold",
        period=60,
        evaluation_periods=3,
        datapoints_to_alarm=3,
        missing_data="breaching",
        metrics=(_m("m1", "Shipyard/HealthCheck", "RunDurationMs", "SampleCount", STACK),),
        meaning="We are blind: endpoint alarms see no data and stay quiet. Every checker function reports "
        "RunDurationMs once per run.",
        checks=(
            "Scheduler schedules enabled; Lambda Errors/Throttles of the health-check functions.",
            "A `config_error` line in their logs (bad TARGETS after a config change).",
        ),
        fixes=("Fix the configuration and `pulumi up`; re-enable the schedule.",),
        notes="Assumes the one-minute schedule (healthChecks.schedule = rate(1 minute)). Both checker functions "
        "publish under the same `Stack`, so the threshold is the number of functions: one of them stopping is "
        "enough to fire.",
    ),
    AlarmSpec(
        id="health-cert-expiring",
        subject="health_certificate",
        resource="cert-{instance}",
        condition="expiring",
        severity="warning",
        title="TLS certificate expiring",
        description="The TLS certificate of {endpoint} has fewer than {threshold} days left {window}.",
        threshold=14,
        comparison="LessThanThreshold",
        period=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/HealthCheck", "CertDaysLeft", "Minimum", STACK, ("Endpoint", "endpoint")),),
        unit=" days",
        meaning="ACM renews its certificates by itself 60 days ahead; a certificate this close to expiry means "
        "renewal is stuck (usually DNS validation records removed) or the certificate is not ACM's.",
        checks=("ACM console: certificate status and renewal status; the validation CNAME still in DNS?",),
        fixes=("Restore the validation record (`pulumi up` recreates it when the zone is ours); re-issue otherwise.",),
    ),
    AlarmSpec(
        id="health-cert-critical",
        subject="health_certificate",
        resource="cert-{instance}",
        condition="expiry-imminent",
        severity="critical",
        title="TLS certificate about to expire",
        description="The TLS certificate of {endpoint} has fewer than {threshold} days left {window}.",
        threshold=3,
        comparison="LessThanThreshold",
        period=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/HealthCheck", "CertDaysLeft", "Minimum", STACK, ("Endpoint", "endpoint")),),
        unit=" days",
        meaning="Browsers and clients will refuse the site within days.",
        checks=("As health-cert-expiring, now urgent.",),
        fixes=("Issue a new ACM certificate and attach it (`pulumi up`); validate by DNS immediately.",),
    ),
    # ---------------------------------------------------------------------------------------------- backups
    AlarmSpec(
        id="backup-job-failed",
        subject="backup",
        resource="backup",
        condition="job-failed",
        severity="warning",
        title="AWS Backup job failed",
        description="At least {threshold} AWS Backup job failed in the vault {window}.",
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        period=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "AWS/Backup", "NumberOfBackupJobsFailed", "Sum", ("BackupVaultName", "vault")),),
        meaning="Last night's backup did not complete: the recovery point objective is at risk.",
        checks=("AWS Backup → Jobs → Failed: the status message (permissions, resource busy, KMS key access).",),
        fixes=("Fix the cause and start an on-demand backup job from the plan's rule; confirm it completes.",),
    ),
    AlarmSpec(
        id="restore-validation-failed",
        subject="restore_test",
        resource="restore-test",
        condition="validation-failed",
        severity="critical",
        title="Restore test: restored database failed validation",
        description="The monthly restore test restored the database, but the validator found it unusable "
        "(RestoreValidationSucceeded below {threshold}) {window}.",
        threshold=1,
        comparison="LessThanThreshold",
        period=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/Backup", "RestoreValidationSucceeded", "Minimum", STACK),),
        meaning="A backup we would restore from in a disaster does not hold a working marketplace (tables missing "
        "or empty, invariants broken), or the validator could not reach or log in to the restored copy. Until this "
        "is understood, the recovery point objective is not proven.",
        checks=(
            "AWS Backup → Restore testing → jobs: the job's validation status message names the failed checks.",
            "The restore validator's log group: `fields @timestamp, message | filter event = "
            "'restore_validation_failed'` (which table, which invariant, or connect/IAM error).",
            "Cannot connect: the restored instance's security group and IAM auth (restore metadata overrides in "
            "infra/aws/backup.py), and that app/migrations/0003 (restore_validator role) has run on the live DB.",
            "Message starts 'validator probe': the probe Lambda (`<stack>-restore-validation-probe`, in the VPC) "
            "timed out, raised or is missing — its own log group says why.",
        ),
        fixes=(
            "Data problem: compare with the live database; restore the previous recovery point by hand and run "
            "`python -m lambdas.restore_validation --database-url ...` against it (docs/runbooks/restore.md).",
            "Access problem: fix the override or the role, then start an on-demand restore test job from the "
            "restore testing plan and confirm the validation turns SUCCESSFUL.",
        ),
    ),
    AlarmSpec(
        id="restore-test-overdue",
        subject="restore_test",
        resource="restore-test",
        condition="overdue",
        severity="critical",
        title="Restore test overdue: no validated restore in 35 days",
        description="The last restore test whose restored copy passed validation is more than {threshold} days "
        "old, on each of 2 daily checks (no data from the daily check counts too).",
        threshold=35,
        comparison="GreaterThanThreshold",
        period=86_400,
        evaluation_periods=2,
        datapoints_to_alarm=2,
        missing_data="breaching",
        metrics=(_m("m1", "Shipyard/Backup", "DaysSinceLastRestoreTest", "Maximum", STACK),),
        unit=" days",
        meaning="The monthly restore test has not proven a backup restorable for over a month: it did not run "
        "(plan deleted or disabled, schedule skipped), kept failing, or its validator never reported. The RPO and "
        "RTO on paper are unverified until a test passes again.",
        checks=(
            "AWS Backup → Restore testing → the plan: last execution time, and its restore jobs with their "
            "validation status.",
            "restore-job-failed and restore-validation-failed in the alert history for the cause.",
            "No data: the restore-test-age function's log group (`filter event = 'restore_test_age_failed'`) and "
            "its lambda-errors / dlq-depth alarms; its daily EventBridge schedule is ENABLED.",
        ),
        fixes=(
            "Fix the cause, then start a restore test job on demand from the plan and confirm it completes and "
            "validates SUCCESSFUL; the next daily check clears the alarm.",
        ),
        notes="Why a daily gauge: a CloudWatch alarm looks at most 7 days back (period × evaluation periods <= "
        "604 800 s), so missing data of the monthly test's own metrics cannot express 35 days. The "
        "restore_test_age Lambda asks AWS Backup every day for the plan's newest validated restore "
        "(ListRestoreJobs) and publishes its age.",
    ),
    AlarmSpec(
        id="restore-job-failed",
        subject="restore_test",
        resource="restore-test",
        condition="job-failed",
        severity="critical",
        title="Restore test: restore job failed",
        description="At least {threshold} restore job of the restore testing plan FAILED or was ABORTED {window}.",
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        period=3600,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "Shipyard/Backup", "RestoreJobFailed", "Sum", STACK),),
        meaning="AWS Backup could not restore the latest recovery point of the database: in a disaster the same "
        "restore could fail too, so the recovery time objective is at risk.",
        checks=(
            "AWS Backup → Jobs → Restore jobs: the failed job's status message (subnet group, security group, "
            "instance class not offered in the AZ, KMS key access, no recovery point within the selection window).",
            "The restore validator's log group: `filter event = 'restore_job_failed'`.",
            "backup-job-failed: no recent recovery point makes the test fail as well.",
        ),
        fixes=(
            "Fix the cause (usually the restore metadata overrides in infra/aws/backup.py, then `pulumi up`), "
            "then run the restore testing plan on demand and watch it complete and validate.",
        ),
    ),
    # ---------------------------------------------------------------------------------------------- app events
    AlarmSpec(
        id="app-financial-error",
        subject="app_events",
        resource="app",
        condition="financial-error",
        severity="critical",
        title="Financial error logged",
        description="At least {threshold} financial_error event was logged (API or auto-confirm job) {window}.",
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "{log_namespace}", "FinancialError", "Sum"),),
        meaning="Money movement failed or was refused mid-way (payment, escrow release, refund).",
        checks=(
            "API and auto-confirm log groups: `fields @timestamp, message, order_id | filter event = "
            "'financial_error'` (in the job, a batch rolled back).",
        ),
        fixes=(
            "Do not retry blindly: reconcile the affected orders against the ledger first, then repair by hand "
            "with a second person reviewing.",
        ),
    ),
    AlarmSpec(
        id="app-balance-inconsistency",
        subject="app_events",
        resource="app",
        condition="balance-inconsistency",
        severity="critical",
        title="Balance inconsistency detected",
        description="At least {threshold} balance_inconsistency event was logged (API or auto-confirm job) {window}.",
        threshold=1,
        comparison="GreaterThanOrEqualToThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "{log_namespace}", "BalanceInconsistency", "Sum"),),
        meaning="A balance does not match its ledger entries. Payouts based on it could be wrong.",
        checks=(
            "API and auto-confirm log groups: `filter event = 'balance_inconsistency'` — which account, expected "
            "vs actual.",
        ),
        fixes=("Freeze payouts for the account; reconcile from the ledger; fix and document the correction.",),
    ),
    AlarmSpec(
        id="app-upload-failed",
        subject="app_events",
        resource="app",
        condition="upload-failed",
        severity="warning",
        title="Uploads failing",
        description="The application logged at least {threshold} upload_failed events {window}.",
        threshold=5,
        comparison="GreaterThanOrEqualToThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "{log_namespace}", "UploadFailed", "Sum"),),
        meaning="Users cannot attach files (delivery proofs, images).",
        checks=("API log: `filter event = 'upload_failed'` — the reason (S3 access denied, size, type).",),
        fixes=("Fix the bucket policy/IAM (`pulumi up`) or the uploads limits in config.",),
    ),
    AlarmSpec(
        id="app-database-error",
        subject="app_events",
        resource="app",
        condition="database-error",
        severity="warning",
        title="Database errors in the application",
        description="At least {threshold} database_error events were logged (API or auto-confirm job) {window}.",
        threshold=5,
        comparison="GreaterThanOrEqualToThreshold",
        period=300,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        metrics=(_m("m1", "{log_namespace}", "DatabaseError", "Sum"),),
        meaning="Queries fail: connection refused, timeouts, constraint violations surfacing as errors.",
        checks=("API log: `filter event = 'database_error'`; database alarms (connections, CPU, storage).",),
        fixes=("Follow the database alarm that explains it; otherwise fix the failing query and deploy.",),
    ),
    # ---------------------------------------------------------------------------------------------- SLO burn rate
    *(
        AlarmSpec(
            id=f"slo-burn-{speed}-{window}",
            subject="slo",
            resource="slo",
            condition=f"burn-{speed}-{window}",
            severity="info",
            title=f"SLO burn rate ({speed}, {window} window)",
            description="API 5xx share of requests above {threshold}% (the " + speed + " burn rate of "
            "{slo_percent}% availability) {window}.",
            threshold=Bound(f"{speed}_burn_percent"),
            comparison="GreaterThanThreshold",
            period=seconds,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            missing_data="notBreaching",
            metrics=(
                _m("m1", "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", "Sum", ALB),
                _m("m2", "AWS/ApplicationELB", "HTTPCode_ELB_5XX_Count", "Sum", ALB),
                _m("m3", "AWS/ApplicationELB", "RequestCount", "Sum", ALB),
            ),
            expression="100 * (FILL(m1, 0) + FILL(m2, 0)) / m3",
            unit="%",
            meaning=f"One window of the {speed} burn-rate pair; alone it does not page. slo-burn-{speed} pages "
            "when both windows of the pair are in ALARM.",
            checks=(f"See slo-burn-{speed}.",),
            fixes=(f"See slo-burn-{speed}.",),
        )
        for speed, (long_s, short_s, _burn) in SLO_WINDOWS.items()
        for window, seconds in (("long", long_s), ("short", short_s))
    ),
    AlarmSpec(
        id="slo-burn-fast",
        subject="composite",
        resource="slo",
        condition="burn-fast",
        severity="critical",
        title="Availability SLO burning fast",
        description="The API error budget burns at 14.4x or more over both the last 1 h and the last 5 min: at "
        "this pace 2% of the 30-day budget is gone every hour.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=0,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        rule="(ALARM(slo-burn-fast-long) AND ALARM(slo-burn-fast-short)) OR "
        "(ALARM(http-api-slo-burn-fast-long) AND ALARM(http-api-slo-burn-fast-short))",
        meaning="Users are failing at a rate that exhausts a month's error budget in about two days.",
        checks=(
            "api-5xx-rate and the dashboard's API section: when did errors start, which status, which endpoint?",
            "Recent deploys and config changes.",
        ),
        fixes=("Stop the bleeding first: roll back the last change; scale out; then find the cause.",),
        notes="""### The burn-rate math

The SLO (`shipyard:monitoring.availabilitySloPercent`, default 99.9) allows an error budget of
1 − SLO = 0.1% of requests to fail over 30 days. The burn rate is how fast that budget is spent:
burn = error ratio / budget. A burn rate of 1 spends exactly the budget in 30 days.

- Fast pair: burn 14.4 over 1 h **and** 5 min. 14.4 × 1 h / 720 h = 2% of the monthly budget per hour.
  Error-ratio threshold = 14.4 × 0.1% = 1.44% of requests (5xx from targets plus the load balancer).
- Slow pair: burn 6 over 6 h **and** 30 min. 6 × 6 h / 720 h = 5% of the budget in 6 h.
  Threshold = 6 × 0.1% = 0.6%.

Each window is a metric alarm (`slo-burn-<speed>-long|short`, severity info, period = window) on
`100 * (Target 5xx + ELB 5xx) / RequestCount`; the composite pages only when both are in ALARM. The
long window proves the burn is significant; the short window proves it is still happening, so the
page clears within minutes of a fix instead of an hour later (Google SRE workbook, "Alerting on SLOs").""",
    ),
    AlarmSpec(
        id="slo-burn-slow",
        subject="composite",
        resource="slo",
        condition="burn-slow",
        severity="warning",
        title="Availability SLO burning slowly",
        description="The API error budget burns at 6x or more over both the last 6 h and the last 30 min: at "
        "this pace 5% of the 30-day budget is gone every 6 hours.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=0,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        rule="(ALARM(slo-burn-slow-long) AND ALARM(slo-burn-slow-short)) OR "
        "(ALARM(http-api-slo-burn-slow-long) AND ALARM(http-api-slo-burn-slow-short))",
        meaning="A steady trickle of errors that would exhaust the month's budget in about five days.",
        checks=("Which endpoint returns 5xx (API logs by path/status); a failing dependency that degrades slowly.",),
        fixes=("Fix during working hours; track the remaining budget on the dashboard.",),
        notes="See slo-burn-fast for the math (same formula, burn 6 over 6 h and 30 min).",
    ),
    AlarmSpec(
        id="service-down",
        subject="composite",
        resource="service",
        condition="down",
        severity="critical",
        title="Service down",
        description="The API is down: no healthy target while the readiness health check fails, or the 5xx rate "
        "alarm is firing.",
        threshold=0,
        comparison="GreaterThanThreshold",
        period=0,
        evaluation_periods=1,
        datapoints_to_alarm=1,
        missing_data="notBreaching",
        # Either front door's alarms (only one set exists in a stack; a missing alarm drops out of its group).
        rule="((ALARM(api-no-healthy-hosts) OR ALARM(http-api-no-running-tasks)) AND "
        "ALARM(health-endpoint-down:api-ready)) OR ALARM(api-5xx-rate) OR ALARM(http-api-5xx-rate)",
        meaning="Two independent signals agree that customers cannot use the product (or the API fails outright).",
        checks=("Start with whichever child alarm fired (its own runbook), then the dashboard's API section.",),
        fixes=("Roll back the last deployment; restore the database; fail over — whatever the child alarm says.",),
        notes="Without the health checker (healthChecks.enabled: false) the rule is "
        "`ALARM(api-no-healthy-hosts) OR ALARM(api-5xx-rate)`.",
    ),
)

BY_ID: dict[str, AlarmSpec] = {spec.id: spec for spec in CATALOGUE}
ALARM_IDS: frozenset[str] = frozenset(BY_ID)
COMPOSITE_IDS: frozenset[str] = frozenset(spec.id for spec in CATALOGUE if spec.is_composite)

if len(BY_ID) != len(CATALOGUE):  # pragma: no cover - a typo guard, caught by the first import
    raise RuntimeError("duplicate alarm id in the catalogue")


class OverrideLike(Protocol):
    """What `resolve` needs from infra.config.AlarmOverride (kept structural so this module stays import-light)."""

    @property
    def threshold(self) -> float | None: ...
    @property
    def severity(self) -> Severity | None: ...
    @property
    def evaluation_periods(self) -> int | None: ...
    @property
    def datapoints_to_alarm(self) -> int | None: ...
    @property
    def enabled(self) -> bool: ...


def resolve(spec: AlarmSpec, override: OverrideLike | None) -> Resolved | None:
    """The alarm as this stack wants it, or None when the stack disabled it."""
    if override is None:
        return Resolved(spec, spec.threshold, spec.severity, spec.evaluation_periods, spec.datapoints_to_alarm)
    if not override.enabled:
        return None
    return Resolved(
        spec=spec,
        threshold=spec.threshold if override.threshold is None else override.threshold,
        severity=override.severity or spec.severity,
        evaluation_periods=override.evaluation_periods or spec.evaluation_periods,
        datapoints_to_alarm=override.datapoints_to_alarm or spec.datapoints_to_alarm,
    )


def override_problems(alarm_id: str, override: OverrideLike) -> list[str]:
    """What is wrong with an override once merged with its catalogue entry (ids are checked by the caller)."""
    spec = BY_ID[alarm_id]
    problems = []
    if spec.is_composite and (
        override.threshold is not None
        or override.evaluation_periods is not None
        or override.datapoints_to_alarm is not None
    ):
        problems.append("a composite alarm has no threshold or periods; only severity and enabled apply")
    evaluation = override.evaluation_periods or spec.evaluation_periods
    datapoints = override.datapoints_to_alarm or spec.datapoints_to_alarm
    if not spec.is_composite and datapoints > evaluation:
        problems.append(f"datapointsToAlarm ({datapoints}) must be <= evaluationPeriods ({evaluation})")
    limit = max_evaluation_seconds(spec.period)
    if not spec.is_composite and spec.period * evaluation > limit:
        problems.append(
            f"evaluationPeriods × period must be <= {limit // 86_400} day(s) for a {spec.period} s period "
            f"({spec.period} s × {evaluation} > {limit} s)"
        )
    return problems


def max_evaluation_seconds(period: int) -> int:
    """CloudWatch's longest evaluation range (PutMetricAlarm): 1 day for periods under an hour, else 7 days."""
    return 86_400 if period < 3600 else 7 * 86_400


# ---------------------------------------------------------------------------------------------------------
# Runbooks (generated pages; a test keeps them in step with this catalogue)
# ---------------------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _readable(text: str) -> str:
    """Description templates with their per-stack values written as readable placeholders."""
    return _PLACEHOLDER.sub(lambda match: f"<{match.group(1)}>", text)


def _condition_text(spec: AlarmSpec) -> str:
    if spec.is_composite:
        return f"composite rule `{spec.rule}`."
    threshold = (
        f"the stack's `{spec.threshold.binding}`"
        if isinstance(spec.threshold, Bound)
        else f"{format_number(spec.threshold)}{spec.unit}"
    )
    what = (
        f"metric math `{spec.expression}` over "
        + ", ".join(f"{m.id} = {m.namespace} {m.name} ({m.stat})" for m in spec.metrics)
        if spec.expression
        else ", ".join(f"{m.namespace} {m.name} ({m.stat})" for m in spec.metrics)
    )
    return (
        f"{what}; {spec.comparison} {threshold}; period {spec.period} s, {spec.datapoints_to_alarm} of "
        f"{spec.evaluation_periods} periods; missing data: {spec.missing_data}."
    )


def render_runbook(spec: AlarmSpec) -> str:
    lines = [
        f"# {spec.title} (`{spec.id}`)",
        "",
        "<!-- Generated from infra/aws/alarms.py by `python -m infra.aws.alarms --write-runbooks`; edit there. -->",
        "",
        f"Severity: **{spec.severity}** (override per stack with `shipyard:monitoring.alarms.{spec.id}`). "
        f"Alarm name: `<project>-<stack>-<severity>-{spec.resource.replace('{instance}', '<instance>')}-"
        f"{spec.condition}`.",
        "",
        "## What it means",
        "",
        _readable(spec.description)
        .replace("<window>", spec.window_text())
        .replace("<threshold>", "<threshold>" if isinstance(spec.threshold, Bound) else format_number(spec.threshold)),
        "",
        spec.meaning,
        "",
        f"Condition: {_condition_text(spec)}",
        "",
        "## First checks",
        "",
        *[f"1. {check}" for check in spec.checks],
        "",
        "## How to fix",
        "",
        *[f"- {fix}" for fix in spec.fixes],
        "",
        "## How to escalate",
        "",
        _ESCALATE[spec.severity],
        "",
    ]
    if spec.notes:
        lines += ["## Notes", "", spec.notes, ""]
    return "\n".join(lines)


def render_index() -> str:
    lines = [
        "# Runbooks",
        "",
        "<!-- Generated from infra/aws/alarms.py by `python -m infra.aws.alarms --write-runbooks`; edit there. -->",
        "",
        "One page per alarm of the catalogue (infra/aws/alarms.py). Every alarm description ends with",
        "`Runbook: <shipyard:monitoring.runbookBaseUrl>/<id>.md`.",
        "",
        "| Alarm id | Severity | Title |",
        "|---|---|---|",
        *[f"| [{spec.id}]({spec.id}.md) | {spec.severity} | {spec.title} |" for spec in CATALOGUE],
        "",
    ]
    return "\n".join(lines)


def runbook_files() -> dict[str, str]:
    files = {f"{spec.id}.md": render_runbook(spec) for spec in CATALOGUE}
    files["README.md"] = render_index()
    return files


def write_runbooks(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in runbook_files().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The alarm catalogue's runbook pages.")
    parser.add_argument("--write-runbooks", action="store_true", help=f"(re)write {RUNBOOK_DIR}/*.md")
    args = parser.parse_args(argv)
    if not args.write_runbooks:
        parser.print_help(sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[2]
    for path in write_runbooks(root / RUNBOOK_DIR):
        print(path.relative_to(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Monitoring: the alarm catalogue (infra/aws/alarms.py) made real for what this stack deployed.

- One CloudWatch alarm per catalogue entry and watched subject (per function, per DLQ, per health-checked
  endpoint...), named `<project>-<stack>-<severity>-<resource>-<condition>`, its description ending with the
  runbook link, ALARM and OK actions on the SNS topic of its severity.
- Composite alarms (service down, SLO burn-rate pairs) over those alarms.
- Log metric filters turning the app's JSON events (`{ $.event = "financial_error" }`...) into metrics.
- One dashboard per stack: a section per concern, each alarm's threshold drawn as a horizontal annotation
  on the graph of the metric it watches, and an alarm status widget.

CloudFront publishes its metrics in us-east-1 only and an alarm's SNS actions must be in the alarm's region,
so the CloudFront alarm is created with the edge provider. When the stack itself runs in us-east-1 that is the
same provider and the same topics; elsewhere, this component creates one small us-east-1 topic per severity
(encrypted with a us-east-1 customer key CloudWatch may use) that delivers to the alert forwarder's inbox
queue (SNS → SQS works across regions) and, for critical, to the on-call e-mail — so the page arrives the
same way as every other one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.alarms import (
    BY_ID,
    CATALOGUE,
    SLO_WINDOWS,
    AlarmSpec,
    Bound,
    Resolved,
    Severity,
    bindings_text,
    format_number,
    resolve,
)
from infra.aws.http_api import STAGE as HTTP_API_STAGE
from infra.aws.kms import DELETION_WINDOW_DAYS, alarm_topic_key_policy
from infra.component import Component
from infra.config import MonitoringConfig
from infra.naming import Naming

EDGE_REGION = "us-east-1"
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")

APP_EVENTS: Mapping[str, str] = {
    "financial_error": "FinancialError",
    "balance_inconsistency": "BalanceInconsistency",
    "upload_failed": "UploadFailed",
    "database_error": "DatabaseError",
}
"""The app's JSON log `event` values that become metrics (and alarms: app-<event>)."""
JOB_EVENTS = ("balance_inconsistency", "financial_error", "database_error")
"""Events the auto-confirm job logs too (lambdas/auto_confirm/README.md); its log group gets the same filters."""


# ---------------------------------------------------------------------------------------------------------
# What can be watched (each built from another component's public attributes)
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiWatch:
    """The API behind its front door (the ALB or the HTTP API), from the service component."""

    load_balancer_arn_suffix: pulumi.Input[str] | None
    """`app/<name>/<id>`: the `LoadBalancer` dimension; None behind the HTTP API."""
    target_group_arn_suffix: pulumi.Input[str] | None
    """`targetgroup/<name>/<id>`: the `TargetGroup` dimension; None behind the HTTP API."""
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    log_group_name: pulumi.Input[str] | None = None
    """The API containers' log group; its JSON events feed the app-* alarms."""
    http_api_id: pulumi.Input[str] | None = None
    """The HTTP API's id (`ApiId` dimension, stage `$default`) when it is the front door; then the http-api-*
    alarms replace the ALB ones (a metric that does not exist in the stack gets no alarm)."""

    @property
    def behind_alb(self) -> bool:
        return self.load_balancer_arn_suffix is not None and self.target_group_arn_suffix is not None


@dataclass(frozen=True)
class DatabaseWatch:
    identifier: pulumi.Input[str]
    allocated_storage_gb: int
    instance_class: str
    max_connections: int | None = None
    """The `max_connections` parameter when set; else estimated from the instance class's memory."""


@dataclass(frozen=True)
class CacheWatch:
    node_ids: Sequence[pulumi.Input[str]]
    """Every node of the replication group (`CacheClusterId`, e.g. `<group>-001`): the primary may move."""


@dataclass(frozen=True)
class FrontendWatch:
    distribution_id: pulumi.Input[str]


@dataclass(frozen=True)
class FunctionWatch:
    label: str
    """Short name used in the alarm name (`lambda-<label>`)."""
    function_name: pulumi.Input[str]
    timeout_seconds: int


@dataclass(frozen=True)
class QueueWatch:
    label: str
    queue_name: pulumi.Input[str]
    severity: Severity | None = None
    """Page at this severity instead of the catalogue's (or the stack override's). The alert forwarder's own
    dead-letter queues use critical: the warning topic reaches people only through the forwarder, so an alarm
    about the forwarder failing must go where the on-call e-mail subscription is."""


@dataclass(frozen=True)
class HealthEndpointWatch:
    name: str
    """The `Endpoint` dimension (the TARGETS name)."""
    target: str
    """What it checks, in words (frontend, api, database)."""
    tls: bool
    """Publishes CertDaysLeft: one pair of certificate alarms per distinct certificate holder."""
    latency_budget_ms: float | None = None


@dataclass(frozen=True)
class HealthWatch:
    endpoints: Sequence[HealthEndpointWatch]
    checker_count: int
    """Checker functions publishing RunDurationMs each minute under the same `Stack`."""


@dataclass(frozen=True)
class AutoConfirmWatch:
    log_group_name: pulumi.Input[str]


@dataclass(frozen=True)
class BackupWatch:
    vault_name: pulumi.Input[str]
    restore_testing: bool = False
    """The restore validator publishes Shipyard/Backup metrics under `Stack` (restore-* alarms)."""


def edge_topic_name(naming: Naming, severity: str) -> str:
    """The us-east-1 topic of one severity; it ends in the severity, which the forwarder reads. us-east-1 for
    every stack's region: the region in the name keeps two regions' stacks apart."""
    return naming.account_wide("alarms-edge", severity)


@dataclass(frozen=True)
class EdgeDelivery:
    """Where the us-east-1 alarm topics deliver when the stack runs elsewhere."""

    alert_inbox_arn: pulumi.Input[str] | None = None
    """The alerts component's inbox queue (SNS → SQS works across regions; the queue's policy admits these
    topics by name)."""
    oncall_email: str | None = None


@dataclass(frozen=True)
class MonitoringArgs:
    settings: MonitoringConfig
    """`shipyard:monitoring`: SLO, per-alarm overrides, runbook base URL."""
    region: str
    topic_arns: Mapping[str, pulumi.Input[str]] | None = None
    """Severity → SNS topic ARN in the stack's region (the alerts component). None: this component creates
    bare `<project>-<stack>-alarms-<severity>` topics, so alarms work before the alerts stack is wired."""
    edge_provider: aws.Provider | None = None
    """us-east-1 provider for the CloudFront alarm; required with `frontend`."""
    edge_delivery: EdgeDelivery = field(default_factory=EdgeDelivery)
    api: ApiWatch | None = None
    database: DatabaseWatch | None = None
    cache: CacheWatch | None = None
    frontend: FrontendWatch | None = None
    functions: Sequence[FunctionWatch] = ()
    queues: Sequence[QueueWatch] = ()
    health: HealthWatch | None = None
    auto_confirm: AutoConfirmWatch | None = None
    backup: BackupWatch | None = None
    alert_forwarder: bool = False
    """The alert forwarder is deployed: alarm on its DeliveryFailures and draw its metrics on the dashboard."""
    alert_inbox_queue: pulumi.Input[str] | None = None
    """The SQS inbox the alert topics deliver to (`Alerts.inbox`): alarm when alerts wait in it unread."""


# ---------------------------------------------------------------------------------------------------------
# RDS sizing (for the percentages the database alarms are written in)
# ---------------------------------------------------------------------------------------------------------

_SIZE_GIB = {"micro": 1, "small": 2, "medium": 4, "large": 8, "xlarge": 16}
_FAMILY_FACTOR = {"r": 2, "x": 4, "z": 2}


def instance_memory_gib(instance_class: str) -> float:
    """Memory of an RDS instance class (db.t4g.micro → 1, db.m7g.2xlarge → 32, db.r7g.large → 16)."""
    _, family, size = instance_class.split(".")
    match = re.fullmatch(r"(\d*)xlarge", size)
    base = _SIZE_GIB["xlarge"] * int(match.group(1) or 1) if match else _SIZE_GIB.get(size, 1)
    return base * _FAMILY_FACTOR.get(family[0], 1)


def default_max_connections(instance_class: str) -> int:
    """RDS PostgreSQL's default `LEAST(DBInstanceClassMemory / 9531392, 5000)`, where DBInstanceClassMemory is
    the class memory minus what RDS reserves (~256 MiB here): 84 for 1 GiB, 197 for 2 GiB (AWS lists ~81/~189)."""
    memory = instance_memory_gib(instance_class) * 1024**3 - 256 * 1024**2
    return int(min(memory // 9_531_392, 5000))


# ---------------------------------------------------------------------------------------------------------
# Composite rules
# ---------------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(\(|\)|AND|OR|ALARM\(([\w:.-]+)\))")


def _parse_rule(rule: str) -> Any:
    """`(ALARM(a) AND ALARM(b)) OR ALARM(c)` → ("OR", [("AND", ["a", "b"]), "c"]); AND binds tighter."""
    tokens: list[str] = []
    position = 0
    while position < len(rule.rstrip()):
        match = _TOKEN.match(rule, position)
        if not match:
            raise ValueError(f"cannot parse composite rule {rule!r} at {position}")
        tokens.append(f"@{match.group(2)}" if match.group(2) else match.group(1))
        position = match.end()

    def parse_or(index: int) -> tuple[Any, int]:
        terms = []
        node, index = parse_and(index)
        terms.append(node)
        while index < len(tokens) and tokens[index] == "OR":
            node, index = parse_and(index + 1)
            terms.append(node)
        return (("OR", terms) if len(terms) > 1 else terms[0]), index

    def parse_and(index: int) -> tuple[Any, int]:
        terms = []
        node, index = parse_atom(index)
        terms.append(node)
        while index < len(tokens) and tokens[index] == "AND":
            node, index = parse_atom(index + 1)
            terms.append(node)
        return (("AND", terms) if len(terms) > 1 else terms[0]), index

    def parse_atom(index: int) -> tuple[Any, int]:
        if tokens[index] == "(":
            node, index = parse_or(index + 1)
            return node, index + 1
        return tokens[index][1:], index + 1

    tree, _ = parse_or(0)
    return tree


def render_rule(rule: str, names: Mapping[str, str]) -> str | None:
    """The rule over existing alarms only: a missing alarm leaves its AND group (it cannot vouch either way)
    and an empty group leaves its OR; None when nothing is left."""

    def render(node: Any) -> str | None:
        if isinstance(node, str):
            return f'ALARM("{names[node]}")' if node in names else None
        operator, children = node
        parts = [part for part in (render(child) for child in children) if part is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else "(" + f" {operator} ".join(parts) + ")"

    rendered = render(_parse_rule(rule))
    if rendered is not None and rendered.startswith("(") and rendered.endswith(")"):
        rendered = rendered[1:-1]
    return rendered


# ---------------------------------------------------------------------------------------------------------
# The component
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Instance:
    """One subject the catalogue applies to, with the values its alarms bind."""

    key: str
    """`` for singletons, else the function/queue/endpoint label."""
    values: dict[str, Any]
    severity: Severity | None = None
    """Overrides the resolved severity for this subject only (see QueueWatch.severity)."""


@dataclass
class CreatedAlarm:
    id: str
    instance: str
    name: str
    severity: Severity
    resolved: Resolved | None
    arn: pulumi.Output[str]
    resource: aws.cloudwatch.MetricAlarm | aws.cloudwatch.CompositeAlarm


class Monitoring(Component):
    alarms: list[CreatedAlarm]
    dashboard: aws.cloudwatch.Dashboard
    dashboard_url: pulumi.Output[str]

    def __init__(self, name: str, args: MonitoringArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Monitoring", name, naming, opts)
        if args.topic_arns is None:
            self.topic_arns: Mapping[str, pulumi.Input[str]] = self._own_topics()
        else:
            self.topic_arns = args.topic_arns
        missing = sorted(set(SEVERITIES) - set(self.topic_arns))
        if missing:
            raise ValueError(f"monitoring: no SNS topic for severity {', '.join(missing)}")
        if args.frontend is not None and args.edge_provider is None:
            raise ValueError("monitoring: watching the frontend needs the us-east-1 provider (CloudFront metrics)")
        self.args = args
        self.settings = args.settings
        self.log_namespace = f"Shipyard/{naming.stack}/AppEvents"
        self.alarms = []
        self._edge_topics: dict[str, pulumi.Input[str]] = {}

        self.metric_filters = self._metric_filters()
        for spec in CATALOGUE:
            if spec.is_composite:
                continue
            resolved = resolve(spec, self.settings.alarms.get(spec.id))
            if resolved is None:
                continue
            for instance in self._instances(spec):
                self._metric_alarm(resolved, instance)
        for spec in CATALOGUE:
            if spec.is_composite:
                resolved = resolve(spec, self.settings.alarms.get(spec.id))
                if resolved is not None:
                    self._composite_alarm(resolved)

        # Dashboards are global per account (their ARN has no region): the name carries the stack's region.
        dashboard_name = naming.account_wide("overview")
        self.dashboard = aws.cloudwatch.Dashboard(
            self.child_name("dashboard"),
            dashboard_name=dashboard_name,
            dashboard_body=pulumi.Output.json_dumps(self._dashboard_body()),
            opts=self.opts(),
        )
        self.dashboard_name = self.dashboard.dashboard_name
        self.dashboard_url = self.dashboard.dashboard_name.apply(
            lambda dashboard: (
                f"https://{args.region}.console.aws.amazon.com/cloudwatch/home?region={args.region}"
                f"#dashboards/dashboard/{dashboard}"
            )
        )
        self.alarm_count = len(self.alarms)
        self.alarm_arns = [alarm.arn for alarm in self.alarms]
        self.register_outputs({"dashboardUrl": self.dashboard_url, "alarmCount": self.alarm_count})

    # ------------------------------------------------------------------------------------------ subjects
    def _slo_values(self) -> dict[str, Any]:
        budget_percent = 100 - self.settings.availability_slo_percent
        values: dict[str, Any] = {"slo_percent": self.settings.availability_slo_percent}
        for speed, (_long, _short, burn) in SLO_WINDOWS.items():
            values[f"{speed}_burn_percent"] = round(burn * budget_percent, 6)
        return values

    def _instances(self, spec: AlarmSpec) -> list[_Instance]:
        args = self.args
        stack = self.naming.stack
        subject = spec.subject
        if subject in {"http_api", "http_api_slo"} and args.api is not None and args.api.http_api_id is not None:
            api = args.api
            return [
                _Instance(
                    "",
                    {
                        "api_id": api.http_api_id,
                        "stage": HTTP_API_STAGE,
                        "cluster": api.cluster_name,
                        "service": api.service_name,
                        **self._slo_values(),
                    },
                )
            ]
        if subject in {"api", "slo"} and args.api is not None and args.api.behind_alb:
            api = args.api
            return [
                _Instance(
                    "",
                    {
                        "load_balancer": api.load_balancer_arn_suffix,
                        "target_group": api.target_group_arn_suffix,
                        "cluster": api.cluster_name,
                        "service": api.service_name,
                        **self._slo_values(),
                    },
                )
            ]
        if subject == "service" and args.api is not None:
            return [_Instance("", {"cluster": args.api.cluster_name, "service": args.api.service_name})]
        if subject == "database" and args.database is not None:
            db = args.database
            memory_gib = instance_memory_gib(db.instance_class)
            return [
                _Instance(
                    "",
                    {
                        "db": db.identifier,
                        "allocated_gb": db.allocated_storage_gb,
                        "allocated_bytes": db.allocated_storage_gb * 1024**3,
                        "memory_gb": memory_gib,
                        "memory_bytes": int(memory_gib * 1024**3),
                        "max_connections": db.max_connections or default_max_connections(db.instance_class),
                    },
                )
            ]
        if subject == "cache" and args.cache is not None:
            return [
                _Instance(f"node{index + 1}", {"node": f"{index + 1} of {len(args.cache.node_ids)}", "nodeid": node})
                for index, node in enumerate(args.cache.node_ids)
            ]
        if subject == "frontend" and args.frontend is not None:
            return [_Instance("", {"distribution": args.frontend.distribution_id})]
        if subject == "function":
            return [
                _Instance(
                    f.label,
                    {
                        "function": f.function_name,
                        "function_name": f.label,
                        "timeout_ms": f.timeout_seconds * 1000,
                        "timeout_s": f.timeout_seconds,
                    },
                )
                for f in args.functions
            ]
        if subject == "queue":
            return [_Instance(q.label, {"queue": q.queue_name, "queue_name": q.label}, q.severity) for q in args.queues]
        if subject == "auto_confirm" and args.auto_confirm is not None:
            return [_Instance("", {"stack": stack})]
        if subject == "health_endpoint" and args.health is not None:
            return [
                _Instance(e.name, {"stack": stack, "endpoint": e.name, "target": e.target})
                for e in args.health.endpoints
            ]
        if subject == "health_certificate" and args.health is not None:
            # One certificate per target: frontend, api and the database each have one, however many paths.
            seen: set[str] = set()
            instances = []
            for endpoint in args.health.endpoints:
                if endpoint.tls and endpoint.target not in seen:
                    seen.add(endpoint.target)
                    instances.append(_Instance(endpoint.name, {"stack": stack, "endpoint": endpoint.name}))
            return instances
        if subject == "health_checker" and args.health is not None:
            return [_Instance("", {"stack": stack, "checker_count": args.health.checker_count})]
        if subject == "backup" and args.backup is not None:
            return [_Instance("", {"vault": args.backup.vault_name})]
        if subject == "alert_forwarder" and args.alert_forwarder:
            return [_Instance("", {"stack": stack})]
        if subject == "alert_inbox" and args.alert_inbox_queue is not None:
            return [_Instance("", {"queue": args.alert_inbox_queue})]
        if subject == "restore_test" and args.backup is not None and args.backup.restore_testing:
            return [_Instance("", {"stack": stack})]
        if subject == "app_events" and self.metric_filters:
            return [_Instance("", {"log_namespace": self.log_namespace})]
        return []

    # ------------------------------------------------------------------------------------------ alarms
    def _topics_for(self, spec: AlarmSpec) -> Mapping[str, pulumi.Input[str]]:
        if spec.subject != "frontend" or self.args.region == EDGE_REGION:
            return self.topic_arns
        if not self._edge_topics:
            self._edge_topics = self._create_edge_topics()
        return self._edge_topics

    def _own_topics(self) -> dict[str, pulumi.Input[str]]:
        # Not encrypted with the AWS-managed SNS key: its key policy cannot admit CloudWatch, whose alarm
        # actions would then fail silently. Alarm texts carry no secrets.
        return {
            severity: aws.sns.Topic(
                self.child_name("topic", severity),
                name=self.naming.physical("alarms", severity),
                opts=self.opts(),
            ).arn
            for severity in SEVERITIES
        }

    def _create_edge_topics(self) -> dict[str, pulumi.Input[str]]:
        assert self.args.edge_provider is not None
        delivery = self.args.edge_delivery
        edge = self.opts(provider=self.args.edge_provider)
        # KMS keys are regional: the us-east-1 topics need their own customer key, with the same policy as the
        # alerts component's (CloudWatch may use it; aws/sns would make the alarm's actions fail silently).
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        key = aws.kms.Key(
            self.child_name("edge-topic-key"),
            description=f"{self.naming.physical('alarms-edge')}: us-east-1 alarm topics (CloudFront alarms)",
            enable_key_rotation=True,
            deletion_window_in_days=DELETION_WINDOW_DAYS,
            policy=account_id.apply(alarm_topic_key_policy),
            opts=edge,
        )
        topics: dict[str, pulumi.Input[str]] = {}
        for severity in SEVERITIES:
            # The name ends in the severity: the forwarder reads it from there, as for the regional topics.
            topic = aws.sns.Topic(
                self.child_name("edge-topic", severity),
                name=edge_topic_name(self.naming, severity),
                kms_master_key_id=key.arn,
                opts=edge,
            )
            topics[severity] = topic.arn
            if delivery.alert_inbox_arn is not None:
                aws.sns.TopicSubscription(
                    self.child_name("edge-forwarder", severity),
                    topic=topic.arn,
                    protocol="sqs",
                    endpoint=delivery.alert_inbox_arn,
                    raw_message_delivery=False,
                    opts=self.opts(provider=self.args.edge_provider),
                )
            if severity == "critical" and delivery.oncall_email:
                aws.sns.TopicSubscription(
                    self.child_name("edge-oncall", severity),
                    topic=topic.arn,
                    protocol="email",
                    endpoint=delivery.oncall_email,
                    opts=self.opts(provider=self.args.edge_provider),
                )
        return topics

    def _description(self, resolved: Resolved, threshold: float | None, values: Mapping[str, Any]) -> str:
        spec = resolved.spec
        plain = {k: v for k, v in values.items() if isinstance(v, int | float | str)}
        text = spec.description.format(
            threshold=format_number(threshold) if threshold is not None else "",
            window=_window_text(spec, resolved),
            **bindings_text(plain),
        )
        description = (
            f"{text} Severity: {resolved.severity}. Runbook: {spec.runbook_url(self.settings.runbook_base_url)}"
        )
        if len(description) > 1024:
            raise ValueError(f"alarm {spec.id}: description longer than CloudWatch's 1024 characters")
        return description

    def _metric_alarm(self, resolved: Resolved, instance: _Instance) -> None:
        if instance.severity is not None:
            resolved = dataclasses.replace(resolved, severity=instance.severity)
        spec = resolved.spec
        values = instance.values
        threshold = (
            float(values[resolved.threshold.binding])
            if isinstance(resolved.threshold, Bound)
            else float(resolved.threshold)
        )
        resource = spec.resource.replace("{instance}", instance.key)
        alarm_name = self.naming.alarm(resolved.severity, resource, spec.condition)
        topics = self._topics_for(spec)
        common: dict[str, Any] = {
            "name": alarm_name,
            "alarm_description": self._description(resolved, threshold, values),
            "comparison_operator": spec.comparison,
            "threshold": threshold,
            "evaluation_periods": resolved.evaluation_periods,
            "datapoints_to_alarm": resolved.datapoints_to_alarm,
            "treat_missing_data": spec.missing_data,
            "alarm_actions": [topics[resolved.severity]],
            "ok_actions": [topics[resolved.severity]],
            "tags": {"severity": resolved.severity, "alarm-id": spec.id, "runbook": spec.runbook_path},
        }
        if spec.expression is None:
            (metric,) = spec.metrics
            stat_args = (
                {"extended_statistic": metric.stat} if metric.stat.startswith("p") else {"statistic": metric.stat}
            )
            common.update(
                namespace=metric.namespace.format(**values),
                metric_name=metric.name,
                period=spec.period,
                dimensions=_dimensions(metric.dimensions, values) or None,
                **stat_args,
            )
        else:
            queries = [
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id=metric.id,
                    return_data=False,
                    metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                        namespace=metric.namespace.format(**values),
                        metric_name=metric.name,
                        period=spec.period,
                        stat=metric.stat,
                        dimensions=_dimensions(metric.dimensions, values) or None,
                    ),
                )
                for metric in spec.metrics
            ]
            queries.append(
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="e1",
                    expression=spec.expression.format(**{k: format_number(v) for k, v in _numbers(values).items()}),
                    label=spec.title,
                    return_data=True,
                )
            )
            common["metric_queries"] = queries
        provider_opts = {"provider": self.args.edge_provider} if spec.subject == "frontend" else {}
        logical = self.child_name(spec.id, instance.key) if instance.key else self.child_name(spec.id)
        alarm = aws.cloudwatch.MetricAlarm(logical, opts=self.opts(**provider_opts), **common)
        self.alarms.append(
            CreatedAlarm(spec.id, instance.key, alarm_name, resolved.severity, resolved, alarm.arn, alarm)
        )

    def _composite_alarm(self, resolved: Resolved) -> None:
        spec = resolved.spec
        assert spec.rule is not None
        # Composite rules may only reference alarms in their own region: leave the edge ones out.
        names = {
            (f"{a.id}:{a.instance}" if a.instance else a.id): a.name
            for a in self.alarms
            if BY_ID[a.id].subject != "frontend"
        }
        rule = render_rule(spec.rule, names)
        if rule is None:
            return
        referenced = [a.resource for a in self.alarms if f'"{a.name}"' in rule]
        alarm_name = self.naming.alarm(resolved.severity, spec.resource, spec.condition)
        topic = self.topic_arns[resolved.severity]
        alarm = aws.cloudwatch.CompositeAlarm(
            self.child_name(spec.id),
            alarm_name=alarm_name,
            alarm_rule=rule,
            alarm_description=self._description(resolved, None, {}),
            alarm_actions=[topic],
            ok_actions=[topic],
            tags={"severity": resolved.severity, "alarm-id": spec.id, "runbook": spec.runbook_path},
            opts=self.opts(depends_on=referenced),
        )
        self.alarms.append(CreatedAlarm(spec.id, "", alarm_name, resolved.severity, resolved, alarm.arn, alarm))

    # ------------------------------------------------------------------------------------------ log events
    def _metric_filters(self) -> list[aws.cloudwatch.LogMetricFilter]:
        groups: list[tuple[str, pulumi.Input[str], Sequence[str]]] = []
        if self.args.api is not None and self.args.api.log_group_name is not None:
            groups.append(("api", self.args.api.log_group_name, tuple(APP_EVENTS)))
        if self.args.auto_confirm is not None:
            groups.append(("auto-confirm", self.args.auto_confirm.log_group_name, JOB_EVENTS))
        filters = []
        for source, group, events in groups:
            for event in events:
                filters.append(
                    aws.cloudwatch.LogMetricFilter(
                        self.child_name("filter", source, event.replace("_", "-")),
                        name=self.naming.physical(source, event.replace("_", "-")),
                        log_group_name=group,
                        pattern=f'{{ $.event = "{event}" }}',
                        metric_transformation=aws.cloudwatch.LogMetricFilterMetricTransformationArgs(
                            name=APP_EVENTS[event],
                            namespace=self.log_namespace,
                            value="1",
                            unit="Count",
                        ),
                        opts=self.opts(),
                    )
                )
        return filters

    # ------------------------------------------------------------------------------------------ dashboard
    def _resolved(self, alarm_id: str) -> Resolved | None:
        return resolve(BY_ID[alarm_id], self.settings.alarms.get(alarm_id))

    def _http_api_widgets(self, api: ApiWatch, section: Any, graph: Any) -> None:
        """The API section for the HTTP API front door: the same four questions as the ALB's, its metrics."""
        gateway = ["AWS/ApiGateway"]
        dims = ["ApiId", api.http_api_id, "Stage", HTTP_API_STAGE]
        section("API", "HTTP API requests, time in the app, errors, and running vs desired tasks.")
        graph("Requests", [[*gateway, "Count", *dims]])
        graph(
            "Integration latency (ms)",
            [
                [*gateway, "IntegrationLatency", *dims, {"stat": "p50", "label": "p50"}],
                [*gateway, "IntegrationLatency", *dims, {"stat": "p95", "label": "p95"}],
                [*gateway, "IntegrationLatency", *dims, {"stat": "p99", "label": "p99"}],
            ],
            self._annotation("http-api-latency-p95") + self._annotation("http-api-latency-p99"),
            stat="Average",
        )
        ratio = [
            [*gateway, "5xx", *dims, {"id": "m1", "visible": False}],
            [*gateway, "Count", *dims, {"id": "m2", "visible": False}],
            [{"expression": "100 * FILL(m1, 0) / m2", "label": "5xx %", "id": "e1"}],
        ]
        graph("5xx (% of requests)", ratio, self._annotation("http-api-5xx-rate"))
        insights = ["ECS/ContainerInsights"]
        svc = ["ClusterName", api.cluster_name, "ServiceName", api.service_name]
        graph(
            "Running vs desired tasks",
            [
                [*insights, "RunningTaskCount", *svc, {"stat": "Minimum"}],
                [*insights, "DesiredTaskCount", *svc, {"stat": "Maximum"}],
            ],
            self._annotation("http-api-no-running-tasks"),
            stat="Minimum",
        )
        slo = self._slo_values()
        graph(
            f"Error ratio vs {format_number(self.settings.availability_slo_percent)}% SLO burn thresholds (1 h)",
            ratio,
            self._annotation("http-api-slo-burn-fast-long", slo) + self._annotation("http-api-slo-burn-slow-long", slo),
            period=3600,
            width=16,
        )

    def _annotation(self, alarm_id: str, values: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        resolved = self._resolved(alarm_id)
        if resolved is None or not any(a.id == alarm_id for a in self.alarms):
            return []
        threshold = resolved.threshold
        if isinstance(threshold, Bound):
            if values is None or threshold.binding not in values:
                return []
            value = float(values[threshold.binding])
        else:
            value = float(threshold)
        color = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#7f7f7f"}[resolved.severity]
        return [
            {
                "value": value,
                "label": f"{alarm_id} ({resolved.severity}): {format_number(value)}{resolved.spec.unit}",
                "color": color,
            }
        ]

    def _dashboard_body(self) -> dict[str, Any]:
        region = self.args.region
        stack = self.naming.stack
        widgets: list[dict[str, Any]] = []

        def section(title: str, text: str) -> None:
            widgets.append(
                {"type": "text", "width": 24, "height": 2, "properties": {"markdown": f"## {title}\n{text}"}}
            )

        def graph(
            title: str,
            metrics: list[list[Any]],
            annotations: list[dict[str, Any]] | None = None,
            widget_region: str | None = None,
            stat: str = "Sum",
            period: int = 60,
            width: int = 8,
        ) -> None:
            properties: dict[str, Any] = {
                "title": title,
                "region": widget_region or region,
                "view": "timeSeries",
                "stat": stat,
                "period": period,
                "metrics": metrics,
            }
            if annotations:
                properties["annotations"] = {"horizontal": annotations}
            widgets.append({"type": "metric", "width": width, "height": 6, "properties": properties})

        api = self.args.api
        if api is not None and api.http_api_id is not None:
            self._http_api_widgets(api, section, graph)
        if api is not None and api.behind_alb:
            alb = ["AWS/ApplicationELB"]
            lb = ["LoadBalancer", api.load_balancer_arn_suffix]
            section("API", "Load balancer requests, latency, errors and healthy targets.")
            graph("Requests", [[*alb, "RequestCount", *lb]])
            graph(
                "Latency (s)",
                [
                    [*alb, "TargetResponseTime", *lb, {"stat": "p50", "label": "p50"}],
                    [*alb, "TargetResponseTime", *lb, {"stat": "p95", "label": "p95"}],
                    [*alb, "TargetResponseTime", *lb, {"stat": "p99", "label": "p99"}],
                ],
                self._annotation("api-latency-p95") + self._annotation("api-latency-p99"),
                stat="Average",
            )
            graph(
                "5xx (% of requests)",
                [
                    [*alb, "HTTPCode_Target_5XX_Count", *lb, {"id": "m1", "visible": False}],
                    [*alb, "HTTPCode_ELB_5XX_Count", *lb, {"id": "m2", "visible": False}],
                    [*alb, "RequestCount", *lb, {"id": "m3", "visible": False}],
                    [{"expression": "100 * (FILL(m1, 0) + FILL(m2, 0)) / m3", "label": "5xx %", "id": "e1"}],
                ],
                self._annotation("api-5xx-rate"),
            )
            graph(
                "Healthy targets vs desired tasks",
                [
                    [*alb, "HealthyHostCount", "TargetGroup", api.target_group_arn_suffix, *lb, {"stat": "Minimum"}],
                    [
                        "ECS/ContainerInsights",
                        "DesiredTaskCount",
                        "ClusterName",
                        api.cluster_name,
                        "ServiceName",
                        api.service_name,
                        {"stat": "Maximum"},
                    ],
                ],
                self._annotation("api-no-healthy-hosts"),
                stat="Minimum",
            )
            slo = self._slo_values()
            graph(
                f"Error ratio vs {format_number(self.settings.availability_slo_percent)}% SLO burn thresholds (1 h)",
                [
                    [*alb, "HTTPCode_Target_5XX_Count", *lb, {"id": "m1", "visible": False}],
                    [*alb, "HTTPCode_ELB_5XX_Count", *lb, {"id": "m2", "visible": False}],
                    [*alb, "RequestCount", *lb, {"id": "m3", "visible": False}],
                    [{"expression": "100 * (FILL(m1, 0) + FILL(m2, 0)) / m3", "label": "5xx %", "id": "e1"}],
                ],
                self._annotation("slo-burn-fast-long", slo) + self._annotation("slo-burn-slow-long", slo),
                period=3600,
                width=16,
            )
        if api is not None:
            ecs = ["AWS/ECS"]
            svc = ["ClusterName", api.cluster_name, "ServiceName", api.service_name]
            section("Containers", "ECS service CPU and memory (% of the task size).")
            graph("CPU %", [[*ecs, "CPUUtilization", *svc]], self._annotation("service-cpu-high"), stat="Average")
            graph(
                "Memory %", [[*ecs, "MemoryUtilization", *svc]], self._annotation("service-memory-high"), stat="Average"
            )

        db = self.args.database
        if db is not None:
            values = self._instances(BY_ID["database-cpu-high"])[0].values
            rds = ["AWS/RDS"]
            dim = ["DBInstanceIdentifier", db.identifier]
            section("Database", f"RDS PostgreSQL ({db.instance_class}, {db.allocated_storage_gb} GiB allocated).")
            graph("CPU %", [[*rds, "CPUUtilization", *dim]], self._annotation("database-cpu-high"), stat="Average")
            graph(
                "Free storage (% of allocated)",
                [
                    [*rds, "FreeStorageSpace", *dim, {"id": "m1", "visible": False, "stat": "Minimum"}],
                    [{"expression": f"100 * m1 / {values['allocated_bytes']}", "label": "free %", "id": "e1"}],
                ],
                self._annotation("database-storage-low"),
                period=300,
            )
            graph(
                f"Connections (% of max_connections {values['max_connections']})",
                [
                    [*rds, "DatabaseConnections", *dim, {"id": "m1", "visible": False, "stat": "Maximum"}],
                    [{"expression": f"100 * m1 / {values['max_connections']}", "label": "connections %", "id": "e1"}],
                ],
                self._annotation("database-connections-high"),
                period=300,
            )
            graph(
                "Freeable memory (% of instance)",
                [
                    [*rds, "FreeableMemory", *dim, {"id": "m1", "visible": False, "stat": "Minimum"}],
                    [{"expression": f"100 * m1 / {values['memory_bytes']}", "label": "free memory %", "id": "e1"}],
                ],
                self._annotation("database-memory-low"),
                period=300,
            )

        cache = self.args.cache
        if cache is not None:
            ec = ["AWS/ElastiCache"]
            section("Cache", "ElastiCache nodes: memory (noeviction: full = writes refused) and engine CPU.")
            graph(
                "Memory % of maxmemory",
                [[*ec, "DatabaseMemoryUsagePercentage", "CacheClusterId", node] for node in cache.node_ids],
                self._annotation("cache-memory-high"),
                stat="Maximum",
                period=300,
            )
            graph(
                "Engine CPU %",
                [[*ec, "EngineCPUUtilization", "CacheClusterId", node] for node in cache.node_ids],
                self._annotation("cache-cpu-high"),
                stat="Average",
                period=300,
            )

        frontend = self.args.frontend
        if frontend is not None:
            cf = ["AWS/CloudFront"]
            dist = ["DistributionId", frontend.distribution_id, "Region", "Global"]
            # No cache-hit-rate widget: CacheHitRate is one of the 8 "additional metrics" that exist only with a
            # paid monitoring subscription (aws.cloudfront.MonitoringSubscription; 8 metrics x 0.30 USD, the
            # CloudWatch custom-metric list price = 2.40 USD/month per distribution), and it would say little
            # here: index.html is never cached by design (CachingDisabled) and hashed assets always hit.
            # https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/viewing-cloudfront-metrics.html
            section("Frontend", "CloudFront (metrics live in us-east-1): requests and error rates.")
            graph("Requests", [[*cf, "Requests", *dist]], widget_region=EDGE_REGION)
            graph(
                "Error rates %",
                [[*cf, "4xxErrorRate", *dist], [*cf, "5xxErrorRate", *dist]],
                self._annotation("frontend-5xx-rate"),
                widget_region=EDGE_REGION,
                stat="Average",
                period=300,
            )

        if self.args.auto_confirm is not None:
            job = ["Shipyard/AutoConfirm"]
            st = ["Stack", stack]
            section("Jobs", "Hourly auto-confirm: orders confirmed, overdue backlog, run duration.")
            graph(
                "Orders confirmed / skipped",
                [[*job, "OrdersConfirmed", *st], [*job, "OrdersSkipped", *st]],
                period=3600,
            )
            graph(
                "Oldest overdue order (s)",
                [[*job, "OldestOverdueSeconds", *st]],
                self._annotation("auto-confirm-backlog"),
                stat="Maximum",
                period=3600,
            )
            graph(
                "Run duration (ms) and failures",
                [[*job, "RunDurationMs", *st, {"stat": "Maximum"}], [*job, "RunFailed", *st, {"yAxis": "right"}]],
                period=3600,
            )

        backup = self.args.backup
        if backup is not None:
            vault = ["BackupVaultName", backup.vault_name]
            section("Backups", "AWS Backup jobs of the vault (daily); with restore testing, the monthly restore test.")
            graph(
                "Backup jobs completed / failed",
                [
                    ["AWS/Backup", "NumberOfBackupJobsCompleted", *vault],
                    ["AWS/Backup", "NumberOfBackupJobsFailed", *vault, {"yAxis": "right"}],
                ],
                self._annotation("backup-job-failed"),
                period=3600,
            )
            if backup.restore_testing:
                rt = ["Shipyard/Backup"]
                st = ["Stack", stack]
                graph(
                    "Days since last validated restore test",
                    [[*rt, "DaysSinceLastRestoreTest", *st]],
                    self._annotation("restore-test-overdue"),
                    stat="Maximum",
                    period=86_400,
                )
                graph(
                    "Restore time (s, the measured RTO part) and validation (1 = passed)",
                    [
                        [*rt, "RestoreTimeSeconds", *st, {"stat": "Maximum"}],
                        [*rt, "RestoreValidationSucceeded", *st, {"stat": "Minimum", "yAxis": "right"}],
                    ],
                    period=86_400,
                )

        health = self.args.health
        if health is not None:
            hc = ["Shipyard/HealthCheck"]
            st = ["Stack", stack]
            section("Health checks", "Every minute, per endpoint: up (1/0), latency against its budget, failures.")
            graph(
                "Up (1 = passing)",
                [[*hc, "Up", *st, "Endpoint", e.name, {"label": e.name}] for e in health.endpoints],
                self._annotation("health-endpoint-down"),
                stat="Minimum",
            )
            for endpoint in health.endpoints:
                budget = (
                    [
                        {
                            "value": endpoint.latency_budget_ms,
                            "label": f"budget {format_number(endpoint.latency_budget_ms)} ms",
                        }
                    ]
                    if endpoint.latency_budget_ms
                    else []
                )
                graph(
                    f"{endpoint.name} latency (ms)",
                    [
                        [*hc, "LatencyMs", *st, "Endpoint", endpoint.name, {"stat": "p50", "label": "p50"}],
                        [*hc, "LatencyMs", *st, "Endpoint", endpoint.name, {"stat": "p95", "label": "p95"}],
                    ],
                    budget,
                    stat="p95",
                )
            graph(
                "Failures by reason",
                [
                    [
                        {
                            "expression": f'SEARCH(\'{{Shipyard/HealthCheck,Stack,Reason}} Stack="{stack}" '
                            "MetricName=\"CheckFailed\"', 'Sum', 60)",
                            "id": "e1",
                            "label": "",
                        }
                    ]
                ],
            )
            graph(
                "Certificate days left",
                [[*hc, "CertDaysLeft", *st, "Endpoint", e.name, {"label": e.name}] for e in health.endpoints if e.tls],
                self._annotation("health-cert-expiring") + self._annotation("health-cert-critical"),
                stat="Minimum",
                period=3600,
            )

        if self.args.functions or self.args.queues:
            section("Lambdas", "Errors, throttles and dead-letter queues of every function.")
            if self.args.functions:
                lam = ["AWS/Lambda"]
                graph(
                    "Errors",
                    [
                        [*lam, "Errors", "FunctionName", f.function_name, {"label": f.label}]
                        for f in self.args.functions
                    ],
                )
                graph(
                    "Throttles",
                    [
                        [*lam, "Throttles", "FunctionName", f.function_name, {"label": f.label}]
                        for f in self.args.functions
                    ],
                )
            if self.args.queues:
                graph(
                    "DLQ messages",
                    [
                        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q.queue_name, {"label": q.label}]
                        for q in self.args.queues
                    ],
                    self._annotation("dlq-depth"),
                    stat="Maximum",
                    period=300,
                )

        if self.args.alert_forwarder:
            fw = ["Shipyard/AlertForwarder"]
            st = ["Stack", stack]
            section("Alerts", "The alert forwarder: alerts received, messages sent, delivery failures, suppressed.")
            graph(
                "Forwarded",
                [[*fw, name, *st] for name in ("AlertsReceived", "MessagesSent", "DigestsSent", "AlertsSuppressed")],
                period=300,
            )
            graph("Delivery failures", [[*fw, "DeliveryFailures", *st]], period=300)

        section("Alarms", f"{len(self.alarms)} alarms; red = in ALARM. Names: <project>-<stack>-<severity>-...")
        # The alarm widget lists at most 100 alarms.
        arns = [alarm.arn for alarm in self.alarms]
        for start in range(0, len(arns), 100):
            widgets.append(
                {
                    "type": "alarm",
                    "width": 24,
                    "height": 8,
                    "properties": {
                        "title": "Alarm status",
                        "alarms": arns[start : start + 100],
                        "sortBy": "stateUpdatedTimestamp",
                    },
                }
            )
        return {"start": "-PT6H", "periodOverride": "inherit", "widgets": widgets}


def _dimensions(pairs: Sequence[tuple[str, str]], values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: (key[1:] if key.startswith("=") else values[key]) for name, key in pairs}


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _window_text(spec: AlarmSpec, resolved: Resolved) -> str:
    minutes = spec.period // 60
    unit = f"{minutes} min" if minutes < 60 else f"{minutes // 60} h"
    if resolved.evaluation_periods == 1:
        return f"over {unit}"
    return f"in {resolved.datapoints_to_alarm} of {resolved.evaluation_periods} periods of {unit}"

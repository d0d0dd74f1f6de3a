"""Monitoring: the catalogue becomes alarms wired to the severity topics, with runbooks and a dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.aws.alarms import (
    BY_ID,
    CATALOGUE,
    RUNBOOK_DIR,
    Bound,
    format_number,
    max_evaluation_seconds,
    runbook_files,
)
from infra.aws.monitoring import default_max_connections, instance_memory_gib, render_rule
from infra.config import ConfigError
from infra.harness import PROJECT_ROOT, Resource, StackRun
from tests.infra.component_program import run_program
from tests.infra.conftest import evaluate

METRIC_ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
COMPOSITE = "aws:cloudwatch/compositeAlarm:CompositeAlarm"
TOPIC = "aws:sns/topic:Topic"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"
FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
BASE_URL = "https://github.com/example-org/shipyard/blob/main/docs/runbooks"

# Which alarms each kind of component must have (by catalogue id), checked against what the stack deployed.
REQUIRED_BY_COMPONENT = {
    "shipyard:aws:Database": {"database-cpu-high", "database-storage-low", "database-memory-low",
                              "database-connections-high"},
    "shipyard:aws:PythonFunction": {"lambda-errors", "lambda-throttles", "lambda-duration-near-timeout", "dlq-depth"},
    "shipyard:aws:HealthCheck": {"health-endpoint-down", "health-checker-not-running", "health-cert-expiring",
                                 "health-cert-critical"},
    "shipyard:aws:Frontend": {"frontend-5xx-rate"},
    "shipyard:aws:Cache": {"cache-memory-high", "cache-cpu-high"},
    "shipyard:aws:AutoConfirmJob": {"auto-confirm-failed", "auto-confirm-not-running", "auto-confirm-backlog"},
    "shipyard:aws:Alerts": {"alert-delivery-failing"},
    "shipyard:aws:LoadBalancer": {"api-5xx-rate", "api-latency-p95", "api-latency-p99", "api-healthy-hosts-low",
                                  "api-no-healthy-hosts", "slo-burn-fast", "slo-burn-slow", "slo-burn-fast-long",
                                  "slo-burn-fast-short", "slo-burn-slow-long", "slo-burn-slow-short"},
    "shipyard:aws:Service": {"service-cpu-high", "service-memory-high", "service-down", "app-financial-error",
                             "app-balance-inconsistency", "app-upload-failed", "app-database-error"},
}  # fmt: skip


def _alarms(run: StackRun) -> list[Resource]:
    return run.of_type(METRIC_ALARM) + run.of_type(COMPOSITE)


def _name(alarm: Resource) -> str:
    return str(alarm.inputs.get("name") or alarm.inputs["alarmName"])


def _by_id(run: StackRun, alarm_id: str) -> list[Resource]:
    return [a for a in _alarms(run) if a.inputs["tags"]["alarm-id"] == alarm_id]


def _topics_by_severity(run: StackRun) -> dict[str, str]:
    found = {}
    for topic in run.of_type(TOPIC):
        name = topic.inputs["name"]
        for severity in ("critical", "warning", "info"):
            if name.endswith(f"-{severity}") and "edge" not in name:
                found[severity] = topic.outputs["arn"]
    return found


def test_every_alarm_notifies_its_severity_topic_on_alarm_and_ok(any_stack: StackRun) -> None:
    topics = _topics_by_severity(any_stack)
    assert set(topics) == {"critical", "warning", "info"}
    alarms = _alarms(any_stack)
    assert alarms
    for alarm in alarms:
        severity = alarm.inputs["tags"]["severity"]
        assert _name(alarm).startswith(f"shipyard-{any_stack.stack}-{severity}-"), _name(alarm)
        assert alarm.inputs["alarmActions"] == [topics[severity]], _name(alarm)
        assert alarm.inputs["okActions"] == [topics[severity]], _name(alarm)
        assert any_stack.component_of(alarm).type == "shipyard:aws:Monitoring"  # type: ignore[union-attr]


def test_every_description_states_its_threshold_and_ends_with_its_runbook(any_stack: StackRun) -> None:
    for alarm in any_stack.of_type(METRIC_ALARM):
        alarm_id = alarm.inputs["tags"]["alarm-id"]
        description = alarm.inputs["alarmDescription"]
        assert format_number(alarm.inputs["threshold"]) in description, (alarm_id, description)
        assert description.endswith(f"Runbook: {BASE_URL}/{alarm_id}.md")
        assert (PROJECT_ROOT / RUNBOOK_DIR / f"{alarm_id}.md").is_file()
    for alarm in any_stack.of_type(COMPOSITE):
        alarm_id = alarm.inputs["tags"]["alarm-id"]
        assert alarm.inputs["alarmDescription"].endswith(f"Runbook: {BASE_URL}/{alarm_id}.md")


def test_every_catalogued_alarm_has_a_fresh_runbook_page() -> None:
    directory = PROJECT_ROOT / RUNBOOK_DIR
    for spec in CATALOGUE:
        text = (directory / f"{spec.id}.md").read_text()
        for heading in ("## What it means", "## First checks", "## How to fix", "## How to escalate"):
            assert heading in text, (spec.id, heading)
        if not isinstance(spec.threshold, Bound) and not spec.is_composite:
            assert format_number(spec.threshold) in text
    stale = [name for name, text in runbook_files().items() if (directory / name).read_text() != text]
    assert stale == [], "run `python -m infra.aws.alarms --write-runbooks`"


def test_catalogue_entries_are_complete_and_consistent() -> None:
    for spec in CATALOGUE:
        assert spec.meaning and spec.checks and spec.fixes, spec.id
        if spec.is_composite:
            assert spec.rule
            continue
        assert spec.metrics, spec.id
        assert 1 <= spec.datapoints_to_alarm <= spec.evaluation_periods, spec.id
        assert spec.period % 60 == 0 and spec.period * spec.evaluation_periods <= max_evaluation_seconds(spec.period)
        assert "{threshold}" in spec.description, spec.id
        if spec.expression:
            for metric in spec.metrics:
                assert metric.id in spec.expression, (spec.id, metric.id)


def test_every_component_has_its_alarms(any_stack: StackRun) -> None:
    deployed = {a.inputs["tags"]["alarm-id"] for a in _alarms(any_stack)}
    checked = 0
    for component in any_stack.resources:
        required = REQUIRED_BY_COMPONENT.get(component.type)
        if required:
            checked += 1
            assert required <= deployed, (component.name, sorted(required - deployed))
    assert checked >= 7
    # Per-instance alarms: one per function and one per dead-letter queue.
    functions = any_stack.of_type("aws:lambda/function:Function")
    assert len(_by_id(any_stack, "lambda-errors")) == len(functions)
    watched = {json.dumps(a.inputs["dimensions"]) for a in _by_id(any_stack, "lambda-errors")}
    assert watched == {json.dumps({"FunctionName": f.outputs["name"]}) for f in functions}
    queues = [q for q in any_stack.of_type("aws:sqs/queue:Queue") if q.inputs["name"].endswith("-dlq")]
    assert {a.inputs["dimensions"]["QueueName"] for a in _by_id(any_stack, "dlq-depth")} >= {
        q.outputs["name"] for q in queues
    }


def test_database_alarms_use_metric_math_against_the_instance(any_stack: StackRun) -> None:
    instance = any_stack.one("aws:rds/instance:Instance")
    (storage,) = _by_id(any_stack, "database-storage-low")
    queries = {q["id"]: q for q in storage.inputs["metricQueries"]}
    assert queries["m1"]["metric"]["dimensions"] == {"DBInstanceIdentifier": instance.outputs["identifier"]}
    assert queries["m1"]["metric"]["metricName"] == "FreeStorageSpace"
    allocated = int(instance.inputs["allocatedStorage"]) * 1024**3
    assert queries["e1"]["expression"] == f"100 * m1 / {allocated}"
    assert queries["e1"]["returnData"] is True and queries["m1"]["returnData"] is False
    assert storage.inputs["threshold"] == 20 and storage.inputs["comparisonOperator"] == "LessThanThreshold"
    (connections,) = _by_id(any_stack, "database-connections-high")
    expected_max = default_max_connections(instance.inputs["instanceClass"])
    assert f"100 * m1 / {expected_max}" in json.dumps(connections.inputs["metricQueries"])
    assert f"({expected_max})" in connections.inputs["alarmDescription"]


def test_health_check_alarms_follow_the_checker_contract(any_stack: StackRun) -> None:
    downs = {a.inputs["dimensions"]["Endpoint"]: a for a in _by_id(any_stack, "health-endpoint-down")}
    assert {"database", "frontend"} <= set(downs)
    down = downs["database"]
    assert down.inputs["namespace"] == "Shipyard/HealthCheck" and down.inputs["metricName"] == "Up"
    assert down.inputs["dimensions"] == {"Stack": any_stack.stack, "Endpoint": "database"}
    assert (down.inputs["statistic"], down.inputs["period"]) == ("Minimum", 60)
    assert (down.inputs["evaluationPeriods"], down.inputs["datapointsToAlarm"]) == (3, 2)
    assert down.inputs["treatMissingData"] == "notBreaching"
    (silent,) = _by_id(any_stack, "health-checker-not-running")
    checkers = [f for f in any_stack.of_type("aws:lambda/function:Function") if "health-check" in f.inputs["name"]]
    assert silent.inputs["threshold"] == len(checkers)
    assert silent.inputs["treatMissingData"] == "breaching"
    assert silent.inputs["statistic"] == "SampleCount" and silent.inputs["metricName"] == "RunDurationMs"


def test_outputs_give_the_dashboard_url_and_alarm_count(any_stack: StackRun) -> None:
    dashboard = any_stack.one(DASHBOARD)
    name = dashboard.inputs["dashboardName"]
    assert name == f"shipyard-{any_stack.stack}-us-east-1-overview"  # dashboards are account-global
    assert any_stack.outputs["dashboardUrl"] == (
        f"https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#dashboards/dashboard/{name}"
    )
    assert any_stack.outputs["alarmCount"] == len(_alarms(any_stack))


def _dashboard(run: StackRun) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(run.one(DASHBOARD).inputs["dashboardBody"])
    return body


def _sections(body: dict[str, Any]) -> list[str]:
    return [w["properties"]["markdown"].split("\n")[0][3:] for w in body["widgets"] if w["type"] == "text"]


def test_dashboard_has_sections_thresholds_and_every_alarm(any_stack: StackRun) -> None:
    body = _dashboard(any_stack)
    assert {"API", "Containers", "Database", "Frontend", "Health checks", "Lambdas", "Alarms"} <= set(_sections(body))
    (status,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert sorted(status["properties"]["alarms"]) == sorted(a.outputs["arn"] for a in _alarms(any_stack))
    cpu = next(w for w in body["widgets"] if w["properties"].get("title") == "CPU %")
    (line,) = cpu["properties"]["annotations"]["horizontal"]
    assert line["value"] == _by_id(any_stack, "database-cpu-high")[0].inputs["threshold"]


def test_cache_nodes_get_alarms_when_the_cache_is_on() -> None:
    run = evaluate("staging", config_overrides={"shipyard:cache": {"enabled": True, "replicas": 1}})
    group = run.one("aws:elasticache/replicationGroup:ReplicationGroup")
    for alarm_id in ("cache-memory-high", "cache-cpu-high"):
        alarms = _by_id(run, alarm_id)
        assert sorted(a.inputs["dimensions"]["CacheClusterId"] for a in alarms) == group.outputs["memberClusters"]
    assert "Cache" in _sections(_dashboard(run))


# ---------------------------------------------------------------------------------------------- overrides


def test_overrides_change_threshold_severity_and_can_disable() -> None:
    run = evaluate(
        "staging",
        config_overrides={
            "shipyard:monitoring": {
                "runbookBaseUrl": "https://docs.example.com/runbooks/",
                "alarms": {
                    "database-cpu-high": {"threshold": 65, "severity": "critical", "evaluationPeriods": 4},
                    "lambda-throttles": {"enabled": False},
                },
            }
        },
    )
    topics = _topics_by_severity(run)
    (cpu,) = _by_id(run, "database-cpu-high")
    assert _name(cpu) == "shipyard-staging-critical-db-cpu-high"
    assert cpu.inputs["threshold"] == 65 and cpu.inputs["evaluationPeriods"] == 4
    assert cpu.inputs["alarmActions"] == [topics["critical"]] == cpu.inputs["okActions"]
    assert "65%" in cpu.inputs["alarmDescription"] and "3 of 4" in cpu.inputs["alarmDescription"]
    assert cpu.inputs["alarmDescription"].endswith("Runbook: https://docs.example.com/runbooks/database-cpu-high.md")
    assert _by_id(run, "lambda-throttles") == []
    assert _by_id(run, "lambda-errors")  # only the disabled one went
    assert run.outputs["alarmCount"] == len(_alarms(run))


def test_unknown_override_id_is_a_config_error_before_any_resource() -> None:
    with pytest.raises(ConfigError) as raised:
        evaluate("prod", config_overrides={"shipyard:monitoring": {"alarms": {"database-cpu-hgih": {"threshold": 1}}}})
    (problem,) = raised.value.problems
    assert problem.startswith("Pulumi.prod.yaml: shipyard:monitoring.alarms.database-cpu-hgih: unknown alarm id")
    assert "database-cpu-high" in problem  # the near miss is suggested
    assert raised.value.registered == []


def test_override_inconsistent_with_the_catalogue_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as raised:
        evaluate(
            "staging",
            config_overrides={
                "shipyard:monitoring": {
                    "alarms": {"database-cpu-high": {"datapointsToAlarm": 5}, "slo-burn-fast": {"threshold": 2}}
                }
            },
        )
    assert raised.value.problems == [
        "Pulumi.staging.yaml: shipyard:monitoring.alarms.database-cpu-high: datapointsToAlarm (5) must be <= "
        "evaluationPeriods (3)",
        "Pulumi.staging.yaml: shipyard:monitoring.alarms.slo-burn-fast: a composite alarm has no threshold or "
        "periods; only severity and enabled apply",
    ]
    assert raised.value.registered == []


# ---------------------------------------------------------------------------------------------- the whole catalogue

_FULL = """
from infra.aws.monitoring import (ApiWatch, AutoConfirmWatch, BackupWatch, CacheWatch, DatabaseWatch, EdgeDelivery,
    FrontendWatch, FunctionWatch, HealthEndpointWatch, HealthWatch, Monitoring, MonitoringArgs, QueueWatch)
edge = aws.Provider("aws-edge", region="us-east-1")
topics = {s: aws.sns.Topic(f"t-{s}", name=f"shipyard-{pulumi.get_stack()}-alerts-{s}", opts=with_provider).arn
          for s in ("critical", "warning", "info")}
monitoring = Monitoring("monitoring", MonitoringArgs(
    settings=config.monitoring, region=config.region, topic_arns=topics, edge_provider=edge,
    edge_delivery=EdgeDelivery(alert_inbox_arn=INBOX, oncall_email="oncall@example.com"),
    api=ApiWatch("app/shipyard-api/0123456789abcdef", "targetgroup/shipyard-api/fedcba9876543210",
                 "shipyard-cluster", "shipyard-api", log_group_name="/ecs/shipyard-api"),
    database=DatabaseWatch("shipyard-db", allocated_storage_gb=50, instance_class="db.r7g.large"),
    cache=CacheWatch(["shipyard-prod-cache-001", "shipyard-prod-cache-002"]),
    frontend=FrontendWatch("E2QWRUHAPOMQZL"),
    functions=[FunctionWatch("auto-confirm", "shipyard-auto-confirm", 300)],
    queues=[QueueWatch("auto-confirm", "shipyard-auto-confirm-dlq"), QueueWatch("forwarder", "shipyard-fw-dlq")],
    health=HealthWatch([HealthEndpointWatch("frontend", "frontend", True, 2000),
                        HealthEndpointWatch("api-ready", "api", True, 2000),
                        HealthEndpointWatch("api-live", "api", True, 1000)], checker_count=2),
    auto_confirm=AutoConfirmWatch("/aws/lambda/shipyard-auto-confirm"),
    backup=BackupWatch("shipyard-vault", restore_testing=True),
    alert_forwarder=True,
    alert_inbox_queue="shipyard-prod-alerts-inbox",
), naming, with_provider)
pulumi.export("alarmCount", monitoring.alarm_count)
"""
INBOX = "arn:aws:sqs:eu-west-1:123456789012:shipyard-prod-alerts-inbox"


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> StackRun:
    body = f"INBOX = {INBOX!r}\n" + _FULL
    return run_program(tmp_path_factory.mktemp("full"), "prod", body)


HTTP_API_IDS = {spec.id for spec in BY_ID.values() if spec.subject in ("http_api", "http_api_slo")}
"""The HTTP API front door's alarms: a stack has these or the ALB's (api-*, slo-burn-*-long|short), never both."""


def test_every_catalogue_entry_is_created_when_everything_is_watched(full: StackRun, staging: StackRun) -> None:
    deployed = {a.inputs["tags"]["alarm-id"] for a in _alarms(full)}
    assert deployed == set(BY_ID) - HTTP_API_IDS  # `full` watches an ALB
    assert {a.inputs["tags"]["alarm-id"] for a in _alarms(staging)} >= HTTP_API_IDS  # staging's HTTP API
    assert full.outputs["alarmCount"] == len(_alarms(full))
    # One certificate pair per certificate holder, not per path: frontend and api.
    assert len(_by_id(full, "health-cert-expiring")) == 2
    assert len(_by_id(full, "health-endpoint-down")) == 3
    assert len(_by_id(full, "dlq-depth")) == 2
    assert len(_by_id(full, "cache-memory-high")) == 2


def test_api_alarms_watch_the_load_balancer(full: StackRun) -> None:
    (rate,) = _by_id(full, "api-5xx-rate")
    queries = {q["id"]: q for q in rate.inputs["metricQueries"]}
    assert queries["e1"]["expression"] == "IF(m3 >= 10, 100 * (FILL(m1, 0) + FILL(m2, 0)) / m3, 0)"
    assert {queries[m]["metric"]["metricName"] for m in ("m1", "m2", "m3")} == {
        "HTTPCode_Target_5XX_Count",
        "HTTPCode_ELB_5XX_Count",
        "RequestCount",
    }
    assert all(
        queries[m]["metric"]["dimensions"] == {"LoadBalancer": "app/shipyard-api/0123456789abcdef"}
        for m in ("m1", "m2", "m3")
    )
    (p95,) = _by_id(full, "api-latency-p95")
    (p99,) = _by_id(full, "api-latency-p99")
    assert (p95.inputs["extendedStatistic"], p95.inputs["threshold"], p95.inputs["tags"]["severity"]) == (
        "p95",
        2,
        "warning",
    )
    assert (p99.inputs["extendedStatistic"], p99.inputs["threshold"], p99.inputs["tags"]["severity"]) == (
        "p99",
        5,
        "critical",
    )
    (low,) = _by_id(full, "api-healthy-hosts-low")
    queries = {q["id"]: q for q in low.inputs["metricQueries"]}
    assert queries["e1"]["expression"] == "m2 - m1" and low.inputs["threshold"] == 0
    assert queries["m1"]["metric"]["dimensions"] == {
        "TargetGroup": "targetgroup/shipyard-api/fedcba9876543210",
        "LoadBalancer": "app/shipyard-api/0123456789abcdef",
    }
    assert (queries["m2"]["metric"]["namespace"], queries["m2"]["metric"]["metricName"]) == (
        "ECS/ContainerInsights",
        "DesiredTaskCount",
    )
    assert queries["m2"]["metric"]["dimensions"] == {"ClusterName": "shipyard-cluster", "ServiceName": "shipyard-api"}
    (cpu,) = _by_id(full, "service-cpu-high")
    assert cpu.inputs["dimensions"] == {"ClusterName": "shipyard-cluster", "ServiceName": "shipyard-api"}


def test_duration_alarm_is_a_share_of_the_timeout(full: StackRun) -> None:
    (duration,) = _by_id(full, "lambda-duration-near-timeout")
    queries = {q["id"]: q for q in duration.inputs["metricQueries"]}
    assert queries["m1"]["metric"]["stat"] == "p99"
    assert queries["e1"]["expression"] == "100 * m1 / 300000"
    assert duration.inputs["threshold"] == 80 and "300 s timeout" in duration.inputs["alarmDescription"]


def test_auto_confirm_alarms(full: StackRun) -> None:
    (failed,) = _by_id(full, "auto-confirm-failed")
    assert (failed.inputs["period"], failed.inputs["evaluationPeriods"], failed.inputs["datapointsToAlarm"]) == (
        3600,
        2,
        2,
    )
    assert failed.inputs["namespace"] == "Shipyard/AutoConfirm" and failed.inputs["metricName"] == "RunFailed"
    assert failed.inputs["dimensions"] == {"Stack": "prod"}
    (silent,) = _by_id(full, "auto-confirm-not-running")
    assert silent.inputs["treatMissingData"] == "breaching"
    assert (silent.inputs["metricName"], silent.inputs["statistic"]) == ("RunFailed", "SampleCount")
    (backlog,) = _by_id(full, "auto-confirm-backlog")
    assert backlog.inputs["metricName"] == "OldestOverdueSeconds" and backlog.inputs["threshold"] == 7200


def test_alert_delivery_failures_page_through_the_critical_topic(any_stack: StackRun) -> None:
    """The forwarder giving up on a channel pages on-call by the critical topic, whose e-mail subscription does
    not depend on the forwarder; three bad 5-minute periods in a row, so one provider blip does not page."""
    (failing,) = _by_id(any_stack, "alert-delivery-failing")
    assert (failing.inputs["namespace"], failing.inputs["metricName"], failing.inputs["statistic"]) == (
        "Shipyard/AlertForwarder",
        "DeliveryFailures",
        "Sum",
    )
    assert failing.inputs["dimensions"] == {"Stack": any_stack.stack}
    assert (failing.inputs["period"], failing.inputs["evaluationPeriods"], failing.inputs["datapointsToAlarm"]) == (
        300,
        3,
        3,
    )
    assert failing.inputs["alarmActions"] == [_topics_by_severity(any_stack)["critical"]]


def test_prod_critical_topic_reaches_people_without_the_forwarder(prod: StackRun) -> None:
    """Prod's `alerts.oncallEmail` subscribes straight to the critical topic, so alert-delivery-failing still
    reaches someone when the forwarder is what is broken (staging sets no on-call address)."""
    email = [
        s
        for s in prod.of_type("aws:sns/topicSubscription:TopicSubscription")
        if s.inputs["protocol"] == "email" and s.inputs["topic"] == _topics_by_severity(prod)["critical"]
    ]
    assert [s.inputs["endpoint"] for s in email] == ["oncall@example.com"]


def test_log_metric_filters_on_the_app_and_job_events(full: StackRun) -> None:
    filters = {(f.inputs["logGroupName"], f.inputs["pattern"]) for f in full.of_type(FILTER)}
    api_events = ("financial_error", "balance_inconsistency", "upload_failed", "database_error")
    job_events = ("balance_inconsistency", "financial_error", "database_error")
    assert filters == {("/ecs/shipyard-api", f'{{ $.event = "{event}" }}') for event in api_events} | {
        ("/aws/lambda/shipyard-auto-confirm", f'{{ $.event = "{event}" }}') for event in job_events
    }
    namespaces = {f.inputs["metricTransformation"]["namespace"] for f in full.of_type(FILTER)}
    assert namespaces == {"Shipyard/prod/AppEvents"}
    (financial,) = _by_id(full, "app-financial-error")
    assert (financial.inputs["namespace"], financial.inputs["metricName"]) == (
        "Shipyard/prod/AppEvents",
        "FinancialError",
    )
    assert financial.inputs["tags"]["severity"] == "critical"


def test_cloudfront_alarm_lives_in_us_east_1(full: StackRun) -> None:
    (alarm,) = _by_id(full, "frontend-5xx-rate")
    edge = full.one("pulumi:providers:aws", "aws-edge")
    assert alarm.provider is not None and alarm.provider.startswith(edge.urn)
    dims = alarm.inputs["metricQueries"][0]["metric"]["dimensions"]
    assert dims == {"DistributionId": "E2QWRUHAPOMQZL", "Region": "Global"}


def test_composites_reference_their_child_alarms(full: StackRun) -> None:
    names = {a.inputs["tags"]["alarm-id"] + ":" + _name(a) for a in full.of_type(METRIC_ALARM)}

    def name_of(alarm_id: str, fragment: str = "") -> str:
        return next(n.split(":", 1)[1] for n in names if n.startswith(alarm_id + ":") and fragment in n)

    (down,) = _by_id(full, "service-down")
    assert down.inputs["alarmRule"] == (
        f'(ALARM("{name_of("api-no-healthy-hosts")}") AND ALARM("{name_of("health-endpoint-down", "api-ready")}"))'
        f' OR ALARM("{name_of("api-5xx-rate")}")'
    )
    (fast,) = _by_id(full, "slo-burn-fast")
    assert fast.inputs["alarmRule"] == (
        f'ALARM("{name_of("slo-burn-fast-long")}") AND ALARM("{name_of("slo-burn-fast-short")}")'
    )
    assert fast.inputs["tags"]["severity"] == "critical"


def test_burn_rate_windows_follow_the_slo(full: StackRun) -> None:
    expected = {
        "slo-burn-fast-long": (3600, 1.44),
        "slo-burn-fast-short": (300, 1.44),
        "slo-burn-slow-long": (21600, 0.6),
        "slo-burn-slow-short": (1800, 0.6),
    }
    for alarm_id, (period, threshold) in expected.items():
        (alarm,) = _by_id(full, alarm_id)
        assert alarm.inputs["threshold"] == pytest.approx(threshold)
        assert {q["metric"]["period"] for q in alarm.inputs["metricQueries"] if "metric" in q} == {period}
        assert alarm.inputs["tags"]["severity"] == "info"  # the composite pages, not the windows


def test_full_dashboard_has_every_section_with_thresholds(full: StackRun) -> None:
    body = _dashboard(full)
    assert _sections(body) == [
        "API",
        "Containers",
        "Database",
        "Cache",
        "Frontend",
        "Jobs",
        "Backups",
        "Health checks",
        "Lambdas",
        "Alerts",
        "Alarms",
    ]
    by_title = {w["properties"].get("title"): w["properties"] for w in body["widgets"] if w["type"] == "metric"}
    latency = [a["value"] for a in by_title["Latency (s)"]["annotations"]["horizontal"]]
    assert latency == [2, 5]
    assert by_title["Error rates %"]["region"] == "us-east-1"
    assert [a["value"] for a in by_title["Oldest overdue order (s)"]["annotations"]["horizontal"]] == [7200]
    overdue = by_title["Days since last validated restore test"]["annotations"]["horizontal"]
    assert [a["value"] for a in overdue] == [35]
    assert [a["value"] for a in by_title["api-live latency (ms)"]["annotations"]["horizontal"]] == [1000]
    assert [a["value"] for a in by_title["Healthy targets vs desired tasks"]["annotations"]["horizontal"]] == [1]


def test_out_of_region_stack_sends_cloudfront_alarms_through_us_east_1_topics(tmp_path: Path) -> None:
    body = f"INBOX = {INBOX!r}\n" + _FULL.replace("region=config.region,", 'region="eu-west-1",')
    run = run_program(tmp_path, "prod", body)
    edge_topics = {t.inputs["name"]: t for t in run.of_type(TOPIC) if "alarms-edge" in t.inputs["name"]}
    assert sorted(edge_topics) == [f"shipyard-prod-us-east-1-alarms-edge-{s}" for s in ("critical", "info", "warning")]
    (alarm,) = _by_id(run, "frontend-5xx-rate")
    assert alarm.inputs["alarmActions"] == [edge_topics["shipyard-prod-us-east-1-alarms-edge-critical"].outputs["arn"]]
    subscriptions = run.of_type("aws:sns/topicSubscription:TopicSubscription")
    assert {(s.inputs["protocol"], s.inputs["endpoint"]) for s in subscriptions} == {
        ("sqs", INBOX),
        ("email", "oncall@example.com"),
    }
    # SNS envelopes, as from the regional topics: the forwarder reads the severity from TopicArn.
    to_inbox = [s for s in subscriptions if s.inputs["protocol"] == "sqs"]
    assert len(to_inbox) == 3 and all(s.inputs["rawMessageDelivery"] is False for s in to_inbox)
    # The regional alarms still go to the regional topics.
    (cpu,) = _by_id(run, "database-cpu-high")
    assert "alerts-warning" in cpu.inputs["alarmActions"][0]


# ---------------------------------------------------------------------------------------------- helpers


def test_render_rule_drops_missing_alarms_sensibly() -> None:
    rule = "(ALARM(a) AND ALARM(b:x)) OR ALARM(c)"
    assert render_rule(rule, {"a": "A", "b:x": "B", "c": "C"}) == '(ALARM("A") AND ALARM("B")) OR ALARM("C")'
    assert render_rule(rule, {"a": "A", "c": "C"}) == 'ALARM("A") OR ALARM("C")'
    assert render_rule(rule, {"c": "C"}) == 'ALARM("C")'
    assert render_rule(rule, {"a": "A", "b:x": "B"}) == 'ALARM("A") AND ALARM("B")'
    assert render_rule(rule, {}) is None


def test_rds_sizes() -> None:
    assert instance_memory_gib("db.t4g.micro") == 1
    assert instance_memory_gib("db.t4g.small") == 2
    assert instance_memory_gib("db.r7g.large") == 16
    assert instance_memory_gib("db.m7g.2xlarge") == 32
    assert default_max_connections("db.t4g.micro") == 84
    assert default_max_connections("db.m7g.2xlarge") == 3576


def test_real_stack_watches_the_api_it_deployed(any_stack: StackRun) -> None:
    behind_alb = any_stack.outputs["frontDoor"] == "alb"
    if behind_alb:
        alb = any_stack.one("aws:lb/loadBalancer:LoadBalancer")
        group = any_stack.one("aws:lb/targetGroup:TargetGroup")
        (rate,) = _by_id(any_stack, "api-5xx-rate")
        dims = {json.dumps(q["metric"]["dimensions"]) for q in rate.inputs["metricQueries"] if "metric" in q}
        assert dims == {json.dumps({"LoadBalancer": alb.outputs["arnSuffix"]})}
        (low,) = _by_id(any_stack, "api-healthy-hosts-low")
        m1 = next(q for q in low.inputs["metricQueries"] if q["id"] == "m1")
        assert m1["metric"]["dimensions"]["TargetGroup"] == group.outputs["arnSuffix"]
    else:  # the HTTP API front door (tests/infra/test_front_door.py has the rest)
        api = any_stack.one("aws:apigatewayv2/api:Api")
        (rate,) = _by_id(any_stack, "http-api-5xx-rate")
        gateway_dims = [q["metric"]["dimensions"] for q in rate.inputs["metricQueries"] if "metric" in q]
        assert gateway_dims == [{"ApiId": api.id, "Stage": "$default"}] * 2
    api_logs = any_stack.outputs["apiLogGroup"]
    events = {f.inputs["pattern"] for f in any_stack.of_type(FILTER) if f.inputs["logGroupName"] == api_logs}
    assert events == {
        f'{{ $.event = "{e}" }}'
        for e in ("financial_error", "balance_inconsistency", "upload_failed", "database_error")
    }
    (down,) = _by_id(any_stack, "service-down")
    assert "api-ready-down" in down.inputs["alarmRule"]
    assert ("no-healthy-hosts" if behind_alb else "no-running-tasks") in down.inputs["alarmRule"]
    # The health checker probes the API's own URL.
    public = any_stack.one("aws:lambda/function:Function", "health-check-public-function")
    urls = [t["url"] for t in json.loads(public.inputs["environment"]["variables"]["TARGETS"])]
    assert f"{any_stack.outputs['apiUrl']}/api/health/ready" in urls
    assert f"{any_stack.outputs['frontendUrl']}/" in urls


def test_scheduled_tasks_dead_letter_queue_is_watched() -> None:
    task = {"name": "reminders", "schedule": "cron(0 9 * * ? *)", "command": ["python", "-m", "app.jobs.remind"]}
    run = evaluate("staging", config_overrides={"shipyard:jobs": {"scheduledTasks": [task]}})
    queues = {a.inputs["dimensions"]["QueueName"] for a in _by_id(run, "dlq-depth")}
    assert run.outputs["scheduledTasksDeadLetterQueue"] in queues


def test_auto_confirm_log_group_feeds_the_job_events(any_stack: StackRun) -> None:
    job = any_stack.one("aws:lambda/function:Function", "auto-confirm-function-function")
    group = job.inputs["loggingConfig"]["logGroup"]
    patterns = {f.inputs["pattern"] for f in any_stack.of_type(FILTER) if f.inputs["logGroupName"] == group}
    assert patterns == {
        f'{{ $.event = "{e}" }}' for e in ("balance_inconsistency", "financial_error", "database_error")
    }
    assert {a.inputs["dimensions"]["FunctionName"] for a in _by_id(any_stack, "lambda-errors")} >= {job.outputs["name"]}


CLOUDFRONT_ADDITIONAL_METRICS = {
    "CacheHitRate",
    "OriginLatency",
    "401ErrorRate",
    "403ErrorRate",
    "404ErrorRate",
    "502ErrorRate",
    "503ErrorRate",
    "504ErrorRate",
}
"""CloudFront metrics that exist only with a (paid) monitoring subscription on the distribution
(https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/viewing-cloudfront-metrics.html)."""


def test_dashboard_shows_no_cloudfront_metric_that_is_never_published(any_stack: StackRun) -> None:
    """A widget on an additional metric stays empty unless the distribution has a monitoring subscription."""
    subscribed = any_stack.of_type("aws:cloudfront/monitoringSubscription:MonitoringSubscription")
    shown = {
        metric[1]
        for widget in _dashboard(any_stack)["widgets"]
        if widget["type"] == "metric"
        for metric in widget["properties"]["metrics"]
        if metric[0] == "AWS/CloudFront"
    }
    assert "Requests" in shown
    assert subscribed or not shown & CLOUDFRONT_ADDITIONAL_METRICS, sorted(shown & CLOUDFRONT_ADDITIONAL_METRICS)
    alarms = {a.inputs.get("metricName") for a in any_stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert subscribed or not alarms & CLOUDFRONT_ADDITIONAL_METRICS

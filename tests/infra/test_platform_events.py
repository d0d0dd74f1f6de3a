"""RDS event subscriptions and ECS EventBridge rules, read from what the real program registers.

The rules' patterns are matched against real-shaped events with moto's EventBridge pattern engine (a
third-party implementation of AWS's matching rules), and the forwarder's own parser reads the events they
let through: the rule, the topic and the forwarder agree on one format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from infra.aws.kms import ALARM_TOPIC_PUBLISHERS
from infra.aws.platform_events import RDS_CRITICAL_CATEGORIES, RDS_WARNING_CATEGORIES
from infra.harness import StackRun
from lambdas.alert_forwarder.parse import parse_record, records_from_event
from tests.infra.test_alerts import _topic_arns

RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SUBSCRIPTION = "aws:rds/eventSubscription:EventSubscription"
CLUSTER = "aws:ecs/cluster:Cluster"
SERVICE = "aws:ecs/service:Service"
DB = "aws:rds/instance:Instance"
TOPIC_POLICY = "aws:sns/topicPolicy:TopicPolicy"
KEY = "aws:kms/key:Key"
SAMPLES = Path(__file__).resolve().parents[2] / "lambdas" / "alert_forwarder" / "samples"


def _cluster_arn(run: StackRun) -> str:
    return run.one(CLUSTER, "api-cluster").outputs["arn"]


def _pattern(run: StackRun, part: str) -> EventPattern:
    return EventPattern.load(run.one(RULE, f"platform-events-{part}").inputs["eventPattern"])


def _task_event(cluster_arn: str, **detail: Any) -> dict[str, Any]:
    """An `ECS Task State Change` event as EventBridge delivers it (fields as in the forwarder's sample)."""
    sample = json.loads(json.loads((SAMPLES / "ecs_task_stopped.json").read_text())["Records"][0]["Sns"]["Message"])
    sample["detail"] = {**sample["detail"], "clusterArn": cluster_arn, **detail}
    return sample


# ------------------------------------------------------------------------------------------------- RDS events


def test_rds_events_of_the_instance_go_to_critical_and_warning_topics(any_stack: StackRun) -> None:
    topics = _topic_arns(any_stack)
    db_identifier = any_stack.one(DB, "database-instance").inputs["identifier"]
    subscriptions = {s.name.removeprefix("platform-events-rds-"): s for s in any_stack.of_type(SUBSCRIPTION)}
    assert set(subscriptions) == {"critical", "warning"}
    for severity, categories in (("critical", RDS_CRITICAL_CATEGORIES), ("warning", RDS_WARNING_CATEGORIES)):
        subscription = subscriptions[severity]
        assert subscription.inputs["snsTopic"] == topics[severity]
        assert subscription.inputs["sourceType"] == "db-instance"
        assert subscription.inputs["sourceIds"] == [db_identifier]
        assert sorted(subscription.inputs["eventCategories"]) == sorted(categories)
        assert any_stack.component_of(subscription).name == "platform-events"  # type: ignore[union-attr]
    # The database going down pages; nightly snapshot chatter ("backup") is not subscribed at all.
    assert {"failover", "failure", "low storage"} <= set(subscriptions["critical"].inputs["eventCategories"])
    assert not {"backup"} & {c for s in subscriptions.values() for c in s.inputs["eventCategories"]}


def test_rds_and_eventbridge_may_publish_to_the_encrypted_alert_topics(any_stack: StackRun) -> None:
    """Without these grants RDS and EventBridge deliveries fail silently (SNS drops them)."""
    assert {"events.rds.amazonaws.com", "events.amazonaws.com"} <= set(ALARM_TOPIC_PUBLISHERS)
    key_policy = json.loads(any_stack.one(KEY, "alerts-topic-key").inputs["policy"])
    key_services = {
        service
        for statement in key_policy["Statement"]
        if "kms:GenerateDataKey*" in statement["Action"]
        for service in statement["Principal"]["Service"]
    }
    assert {"events.rds.amazonaws.com", "events.amazonaws.com"} <= key_services
    for policy in any_stack.of_type(TOPIC_POLICY):
        statements = json.loads(policy.inputs["policy"])["Statement"]
        publishers = {
            service
            for statement in statements
            if statement["Action"] == "sns:Publish" and "Service" in statement["Principal"]
            for service in statement["Principal"]["Service"]
        }
        assert {"events.rds.amazonaws.com", "events.amazonaws.com"} <= publishers, policy.name


# ------------------------------------------------------------------------------------------------- ECS tasks


def test_task_stopped_rule_targets_the_warning_topic(any_stack: StackRun) -> None:
    rule = any_stack.one(RULE, "platform-events-task-stopped")
    target = any_stack.one(TARGET, "platform-events-task-stopped-target")
    assert target.inputs["rule"] == rule.outputs["name"]
    assert target.inputs["arn"] == _topic_arns(any_stack)["warning"]
    assert "inputTransformer" not in target.inputs  # the forwarder parses the raw event


@pytest.mark.parametrize(
    ("detail", "reported"),
    [
        ({"stopCode": "EssentialContainerExited", "stoppedReason": "Essential container in task exited"}, True),
        ({"stopCode": "TaskFailedToStart", "stoppedReason": "CannotPullContainerError: pull access denied"}, True),
        (
            {
                "stopCode": "ServiceSchedulerInitiated",
                "stoppedReason": "Task failed ELB health checks in (target-group arn:aws:elasticloadbalancing:x)",
            },
            True,
        ),
        ({"stopCode": "ServiceSchedulerInitiated", "stoppedReason": "Task failed container health checks"}, True),
        # A deployment replacing tasks, a scale-in and a person stopping a task are not failures.
        ({"stopCode": "ServiceSchedulerInitiated", "stoppedReason": "Scaling activity initiated by deployment"}, False),
        ({"stopCode": "UserInitiated", "stoppedReason": "Task stopped by user"}, False),
        # Still running: not a stop at all.
        ({"lastStatus": "RUNNING", "stopCode": "EssentialContainerExited", "stoppedReason": "x"}, False),
    ],
)
def test_task_stopped_rule_reports_failures_not_deployments(
    prod: StackRun, detail: dict[str, str], reported: bool
) -> None:
    pattern = _pattern(prod, "task-stopped")
    assert pattern.matches_event(_task_event(_cluster_arn(prod), **detail)) is reported


def test_task_stopped_rule_ignores_other_clusters(prod: StackRun, staging: StackRun) -> None:
    crashed = {"stopCode": "EssentialContainerExited"}
    assert _pattern(prod, "task-stopped").matches_event(_task_event(_cluster_arn(prod), **crashed))
    assert not _pattern(prod, "task-stopped").matches_event(_task_event(_cluster_arn(staging), **crashed))


def test_the_forwarder_reads_what_the_task_rule_lets_through(prod: StackRun) -> None:
    """Rule → SNS → forwarder: the event that matched arrives as an SNS message the parser understands."""
    event = _task_event(_cluster_arn(prod), stopCode="EssentialContainerExited")
    assert _pattern(prod, "task-stopped").matches_event(event)
    topic_arn = _topic_arns(prod)["warning"]
    sns_event = {
        "Records": [
            {
                "EventSource": "aws:sns",
                "Sns": {
                    "Type": "Notification",
                    "MessageId": "m-1",
                    "TopicArn": topic_arn,
                    "Message": json.dumps(event),
                    "Timestamp": "2026-11-25T12:00:00.000Z",
                },
            }
        ]
    }
    (record,) = records_from_event(sns_event)
    alert = parse_record(record, received_at="2026-11-25T12:00:01Z")
    assert alert.kind == "ecs_task_stopped"
    assert alert.severity == "warning"  # from the topic it came through
    assert "shipyard-prod" in alert.title


# ------------------------------------------------------------------------------------------------- deployments


def test_deployment_failed_rule_covers_every_ecs_service(any_stack: StackRun) -> None:
    pattern = _pattern(any_stack, "deployment-failed")
    services = [s.outputs["arn"] for s in any_stack.of_type(SERVICE)]
    assert services
    for arn in services:
        failed = _deployment_event(arn, "SERVICE_DEPLOYMENT_FAILED")
        assert pattern.matches_event(failed), arn
        assert not pattern.matches_event(_deployment_event(arn, "SERVICE_DEPLOYMENT_COMPLETED")), arn
    target = any_stack.one(TARGET, "platform-events-deployment-failed-target")
    assert target.inputs["arn"] == _topic_arns(any_stack)["warning"]


def _deployment_event(service_arn: str, name: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "ddca6449-b258-46c0-8653-e0e3a6d0468b",
        "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs",
        "account": "123456789012",
        "time": "2026-11-25T12:00:00Z",
        "region": "us-east-1",
        "resources": [service_arn],
        "detail": {
            "eventType": "ERROR" if name.endswith("FAILED") else "INFO",
            "eventName": name,
            "deploymentId": "ecs-svc/123",
            "updatedAt": "2026-11-25T12:00:00Z",
            "reason": "ECS deployment circuit breaker: tasks failed to start.",
        },
    }


def test_every_child_is_parented_to_the_component(any_stack: StackRun) -> None:
    children = [
        r
        for r in (*any_stack.of_type(RULE), *any_stack.of_type(TARGET), *any_stack.of_type(SUBSCRIPTION))
        if r.name.startswith("platform-events-")
    ]
    assert len(children) == 6
    assert all(any_stack.component_of(r).name == "platform-events" for r in children)  # type: ignore[union-attr]

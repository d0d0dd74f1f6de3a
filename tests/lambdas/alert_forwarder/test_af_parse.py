"""Every supported input format, from the sample files the preview CLI also uses."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdas.alert_forwarder.model import ALARM, EVENT, OK
from lambdas.alert_forwarder.parse import (
    IncomingRecord,
    parse_alerts,
    parse_record,
    records_from_event,
    severity_from_name,
    severity_from_topic,
    split_runbook,
)

from .conftest import sample

NOW = "2025-03-14T16:00:00.000Z"


def parse_sample(name: str, default: str = "warning") -> Any:
    records = records_from_event(sample(name))
    assert len(records) == 1
    return parse_record(records[0], received_at=NOW, default_severity=default)


def test_single_metric_alarm() -> None:
    alert = parse_sample("cloudwatch_alarm_single.json")
    assert alert.kind == "metric_alarm"
    assert alert.message_id == "0d7e8b43-3b2a-5f7c-9d9a-1a2b3c4d5e01"
    assert alert.title == "shipyard-prod-critical-db-cpu-high"
    assert alert.severity == "critical"  # from the topic name suffix
    assert (alert.old_state, alert.new_state) == (OK, ALARM)
    assert alert.value == "92.42"
    assert alert.threshold == "> 80"
    assert alert.reason == (
        "CPUUtilization is 92.42, above the threshold of > 80 for 3 of the last 3 datapoints (60 s periods)."
    )
    assert alert.metric == "AWS/RDS CPUUtilization{DBInstanceIdentifier=shipyard-prod-db} (Average, 60 s periods)"
    assert (alert.region, alert.account) == ("us-east-1", "123456789012")
    assert alert.runbook_url == "https://runbooks.example.com/db/cpu-high"
    assert alert.description == "Database CPU above 80% for 3 minutes. Check slow queries and connection count."
    assert alert.console_url == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#alarmsV2:alarm/shipyard-prod-critical-db-cpu-high"
    )
    assert alert.occurred_at == "2025-03-14T09:26:53.548Z"
    assert alert.alarm_key == "alarm:arn:aws:cloudwatch:us-east-1:123456789012:alarm:shipyard-prod-critical-db-cpu-high"


def test_recovery_has_same_alarm_key_and_reason_in_words() -> None:
    alarm = parse_sample("cloudwatch_alarm_single.json")
    ok = parse_sample("cloudwatch_alarm_ok.json")
    assert ok.alarm_key == alarm.alarm_key
    assert (ok.old_state, ok.new_state) == (ALARM, OK)
    assert ok.reason == "CPUUtilization is 41.5, no longer above the threshold of > 80 (60 s periods)."
    assert ok.fingerprint != alarm.fingerprint


def test_metric_math_alarm() -> None:
    alert = parse_sample("cloudwatch_metric_math.json")
    assert alert.kind == "metric_math_alarm"
    assert alert.severity == "warning"
    assert alert.value == "7.5"
    assert alert.threshold == "> 5"
    assert alert.reason.startswith("5xx rate (%) is 7.5, above the threshold of > 5 for 2 of the last 2 datapoints")
    details = dict(alert.details)
    assert details["Expression"] == "e1 = 100 * errors / requests"
    assert "AWS/ApplicationELB HTTPCode_Target_5XX_Count" in details["Input errors"]
    assert alert.runbook_url == "https://runbooks.example.com/api/5xx"


def test_anomaly_detection_alarm_from_bare_json() -> None:
    alert = parse_sample("cloudwatch_anomaly_bare.json")
    assert alert.kind == "anomaly_alarm"
    assert alert.message_id.startswith("sha256-")  # bare JSON has no SNS id: content-derived, stable on retry
    assert alert.severity == "warning"  # no topic: from the <project>-<stack>-<severity>- name segment
    assert alert.value == "0.912"
    assert alert.threshold == "upper band 0.331"
    assert "above the upper band" in alert.reason
    assert dict(alert.details)["Anomaly band"] == "ANOMALY_DETECTION_BAND(m1, 2)"
    assert alert.region == "us-east-1"  # from the AlarmArn, not the "US East (N. Virginia)" display name


def test_composite_alarm_from_sns_envelope() -> None:
    alert = parse_sample("cloudwatch_composite_envelope.json")
    assert alert.kind == "composite_alarm"
    assert alert.severity == "critical"
    assert alert.reason == "Composite rule is true; triggered by shipyard-prod-warning-api-5xx-rate (ALARM)."
    assert dict(alert.details)["Rule"].startswith('ALARM("shipyard-prod-warning-api-5xx-rate") AND')


def test_eventbridge_alarm_state_change() -> None:
    alert = parse_sample("eventbridge_alarm_state_change.json")
    assert alert.kind == "metric_alarm"
    assert alert.message_id == "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92"
    assert (alert.old_state, alert.new_state, alert.value, alert.threshold) == (OK, ALARM, "1520", None)
    assert alert.runbook_url == "https://runbooks.example.com/queue"
    assert "AWS/SQS ApproximateNumberOfMessagesVisible{QueueName=shipyard-prod-orders}" in (alert.metric or "")


def test_backup_text_notification() -> None:
    alert = parse_sample("backup_failed.json")
    assert alert.kind == "backup"
    assert alert.new_state == EVENT
    assert alert.title == "AWS Backup backup job failed: shipyard-prod-db"
    details = dict(alert.details)
    assert details["Resource"] == "arn:aws:rds:us-east-1:123456789012:db:shipyard-prod-db"
    assert details["Job"] == "1b2345b2-f22c-4dab-5eb6-bbc7890ed123"
    assert alert.console_url
    assert "backup/details/1b2345b2-f22c-4dab-5eb6-bbc7890ed123" in alert.console_url


def test_backup_eventbridge_event_without_topic_severity() -> None:
    event = {
        "id": "b-1",
        "detail-type": "Backup Job State Change",
        "source": "aws.backup",
        "account": "123456789012",
        "region": "us-east-1",
        "time": "2025-03-14T05:10:00Z",
        "detail": {
            "backupJobId": "job-9",
            "state": "FAILED",
            "statusMessage": "Insufficient privileges to perform this action.",
            "resourceArn": "arn:aws:dynamodb:us-east-1:123456789012:table/orders",
        },
    }
    alert = parse_record(records_from_event(event)[0], received_at=NOW)
    assert alert.kind == "backup"
    assert alert.severity == "critical"
    assert alert.reason == "Insufficient privileges to perform this action."


def test_ecs_task_stopped() -> None:
    alert = parse_sample("ecs_task_stopped.json")
    assert alert.kind == "ecs_task_stopped"
    assert alert.title == "ECS task stopped: service:shipyard-prod-api on shipyard-prod"
    assert "exit 137 (OutOfMemoryError: Container killed due to memory usage)" in alert.reason
    assert "stop code EssentialContainerExited" in alert.reason
    assert alert.console_url == (
        "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/shipyard-prod/tasks/6a2f1c0b9d8e4f7a?region=us-east-1"
    )
    assert alert.occurred_at == "2025-03-14T12:00:04.120Z"


def test_rds_eventbridge_and_subscription_formats() -> None:
    event = parse_sample("rds_event.json")
    assert event.kind == "rds_event"
    assert event.title == "RDS shipyard-prod-db: RDS-EVENT-0049 (failover)"
    assert event.reason == "A Multi-AZ failover has completed."
    subscription = parse_sample("rds_event_subscription.json")
    assert subscription.kind == "rds_event"
    assert subscription.title == "RDS shipyard-prod-db: RDS-EVENT-0089"
    assert "low at 4%" in subscription.reason
    assert subscription.region == "us-east-1"


def test_health_check_run_from_a_lambda_destination() -> None:
    records = records_from_event(sample("health_check_run_destination.json"))
    assert len(records) == 1
    alerts = parse_alerts(records[0], received_at=NOW)
    by_id = {a.message_id.split("#", 1)[1]: a for a in alerts}
    assert sorted(by_id) == ["api-ready", "database", "database:warnings", "web", "web:warnings"]
    down = by_id["api-ready"]
    assert down.kind == "health_check" and down.new_state == ALARM and down.severity == "critical"
    assert down.reason == "api-ready is down: status: status 503, expected 200."
    assert down.alarm_key == "health:prod:api-ready"
    assert (down.region, down.account) == ("us-east-1", "123456789012")  # from the destination's functionArn
    assert down.message_id == "lambda-7d2c1f0e-5b7a-4d1e-9a3b-2f4e6c8a0b1c#api-ready"  # stable on redelivery
    assert by_id["web"].new_state == OK
    cert = by_id["web:warnings"]
    assert cert.new_state == ALARM and cert.severity == "warning"
    assert cert.reason == "web is up with warnings: cert_expiring (certificate expires in 9.6 days)."
    assert by_id["database:warnings"].new_state == OK
    assert "api-ready:warnings" not in by_id  # a down endpoint says nothing about its warnings


def test_health_check_line_from_sns() -> None:
    (alert,) = parse_alerts(records_from_event(sample("health_check_line.json"))[0], received_at=NOW)
    assert alert.new_state == ALARM and alert.severity == "critical"
    assert alert.reason == "api-ready is down: timeout: no answer within 5 s."
    assert dict(alert.details)["Target"] == "https://api.example.com/readyz"
    assert dict(alert.details)["Phase"] == "response"


def test_lambda_failure_destination_is_an_alert_about_the_function() -> None:
    (alert,) = parse_alerts(records_from_event(sample("lambda_destination_failure.json"))[0], received_at=NOW)
    assert alert.kind == "lambda_failure" and alert.severity == "critical"
    assert alert.title == "Lambda shipyard-prod-health-check failed (RetriesExhausted)"
    assert alert.reason.startswith("ConfigError: HEALTH_CHECK_CONFIG.endpoints[0].url: not an http(s) URL")


def test_destination_wrapping_another_payload_is_unwrapped() -> None:
    wrapped = {
        "requestContext": {
            "requestId": "r-1",
            "functionArn": "arn:aws:lambda:us-east-1:1:function:f",
            "condition": "Success",
        },
        "responsePayload": sample("cloudwatch_anomaly_bare.json"),
    }
    (alert,) = parse_alerts(records_from_event(wrapped)[0], received_at=NOW)
    assert alert.kind == "anomaly_alarm" and alert.message_id == "lambda-r-1"


def test_plain_text() -> None:
    alert = parse_sample("plain_text.json")
    assert alert.kind == "text"
    assert alert.title == "Deploy rolled back"
    assert alert.reason.startswith("Deploy of shipyard-prod api v1.42.0 rolled back")
    assert alert.severity == "warning"


@pytest.mark.parametrize(
    ("message", "why"),
    [
        (json.dumps({"vendor": "acme", "status": "degraded"}), "Unrecognised JSON"),
        ('{"AlarmName": "x", ', "does not parse"),
        ("[1, 2, 3]", "not an object"),
        (json.dumps({"AlarmName": "x", "NewStateValue": "ALARM", "Trigger": "not-a-dict"}), None),
    ],
)
def test_unknown_or_malformed_is_forwarded_raw_never_dropped(message: str, why: str | None) -> None:
    alert = parse_record(
        IncomingRecord("m-2", message, topic_arn="arn:aws:sns:us-east-1:1:x-critical"), received_at=NOW
    )
    assert alert.message_id == "m-2"
    assert alert.severity == "critical"
    if why:
        assert alert.kind == "raw"
        assert alert.note
        assert why in alert.note
        assert alert.raw is not None


def test_eventbridge_event_of_unknown_type_carries_detail() -> None:
    event = {
        "id": "e-1",
        "source": "aws.guardduty",
        "detail-type": "GuardDuty Finding",
        "detail": {"severity": 8},
    }
    alert = parse_record(records_from_event(event)[0], received_at=NOW)
    assert alert.kind == "eventbridge"
    assert alert.note
    assert alert.raw
    assert '"severity": 8' in alert.raw


def test_malformed_sns_record_is_kept() -> None:
    event = {
        "Records": [
            {"Sns": {"MessageId": "m-3", "TopicArn": "arn:aws:sns:us-east-1:1:t-warning"}},
            {"foo": 1},
        ]
    }
    records = records_from_event(event)
    assert len(records) == 2
    alerts = [parse_record(r, received_at=NOW) for r in records]
    assert alerts[0].message_id == "m-3"
    assert alerts[0].note
    assert "Sns.Message is missing" in alerts[0].note
    assert alerts[1].note
    assert "not an SNS record" in alerts[1].note


def test_severity_rules() -> None:
    assert severity_from_topic("arn:aws:sns:us-east-1:1:shipyard-prod-alerts-critical") == "critical"
    assert severity_from_topic("arn:aws:sns:us-east-1:1:alerts") is None
    assert severity_from_name("shipyard-prod-warning-api-latency") == "warning"
    assert severity_from_name("Orders-Prod-Critical-Queue") == "critical"
    assert severity_from_name("no-level-here") is None


def test_runbook_is_taken_from_the_end_of_the_description() -> None:
    assert split_runbook("CPU high. Runbook: https://r.example/x") == ("CPU high.", "https://r.example/x")
    assert split_runbook("Runbook: not-a-url") == ("Runbook: not-a-url", None)
    assert split_runbook(None) == (None, None)

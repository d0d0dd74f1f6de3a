"""Builders for SNS events carrying CloudWatch alarm notifications (the shape Lambda receives)."""

from __future__ import annotations

import json
import uuid
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"


def topic_arn(severity: str) -> str:
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:shipyard-test-alerts-{severity}"


def alarm_message(
    name: str,
    new: str,
    old: str,
    *,
    at: str = "2025-03-14T09:26:53.548+0000",
    value: float = 92.5,
    reason: str | None = None,
) -> dict[str, Any]:
    verb = "greater" if new == "ALARM" else "not greater"
    return {
        "AlarmName": name,
        "AlarmDescription": f"{name} crossed its threshold. Runbook: https://runbooks.example.com/{name}",
        "AWSAccountId": ACCOUNT,
        "NewStateValue": new,
        "OldStateValue": old,
        "NewStateReason": reason
        or "Threshold Crossed: 1 out of the last 1 datapoints "
        f"[{value} (14/03/25 09:25:00)] was {verb} than the threshold (80.0).",
        "StateChangeTime": at,
        "Region": "US East (N. Virginia)",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
        "Trigger": {
            "MetricName": "CPUUtilization",
            "Namespace": "AWS/ECS",
            "Statistic": "AVERAGE",
            "Dimensions": [{"value": "api", "name": "ServiceName"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 80.0,
        },
    }


def sns_record(message: dict[str, Any] | str, severity: str, message_id: str | None = None) -> dict[str, Any]:
    body = message if isinstance(message, str) else json.dumps(message)
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": topic_arn(severity) + ":sub",
        "Sns": {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic_arn(severity),
            "Subject": None,
            "Message": body,
            "Timestamp": "2025-03-14T09:26:53.600Z",
            "MessageAttributes": {},
        },
    }


def sns_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def alarm_event(
    name: str, new: str, old: str, *, severity: str = "critical", message_id: str | None = None, **kw: Any
) -> dict[str, Any]:
    return sns_event(sns_record(alarm_message(name, new, old, **kw), severity, message_id))


def minute(n: int) -> str:
    """A distinct StateChangeTime per flap, in order."""
    return f"2025-03-14T{9 + n // 60:02d}:{n % 60:02d}:00.000+0000"

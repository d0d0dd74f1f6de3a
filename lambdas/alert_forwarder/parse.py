"""Turn whatever arrives (SNS records, bare EventBridge events, files for --preview) into `Alert`s.

Known formats: CloudWatch metric alarms (single metric, metric math, anomaly detection), composite alarms,
CloudWatch alarm state-change events, AWS Backup notifications (SNS text and EventBridge), ECS task state
changes, RDS events (EventBridge and RDS event subscriptions), the health check's runs and check lines
(`"source": "shipyard.health_check"`, also inside Lambda destination records) and plain text. Anything
else becomes a `raw` alert carrying the original text and a note — a parser never drops a message and
never raises on content.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .model import ALARM, EVENT, INSUFFICIENT_DATA, OK, SEVERITIES, Alert

HEALTH_CHECK_SOURCE = "shipyard.health_check"  # lambdas/health_check: run summaries and check lines
MAX_RAW_CHARS = 16_000  # what a raw alert keeps of an unknown message; channels clip further


@dataclass(frozen=True)
class IncomingRecord:
    """One message to forward, whatever envelope it came in."""

    message_id: str
    message: str
    topic_arn: str | None = None
    subject: str | None = None
    timestamp: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    envelope_note: str | None = None
    sqs_message_id: str | None = None  # set when the record came through an SQS queue (batch item failures)


def _content_id(text: str) -> str:
    # Deterministic so a retried invocation maps to the same idempotency key.
    return "sha256-" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:40]


def _attributes(raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        return {}
    result = {}
    for name, spec in raw.items():
        value = spec.get("Value") if isinstance(spec, dict) else spec
        if value is not None:
            result[str(name)] = str(value)
    return result


def _from_sns(sns: dict[str, Any], index: int) -> IncomingRecord:
    message = sns.get("Message")
    note = None
    if not isinstance(message, str):
        note = f"Records[{index}].Sns.Message is missing or not a string; forwarding the whole record"
        message = json.dumps(sns, sort_keys=True, default=str)
    message_id = sns.get("MessageId")
    if not isinstance(message_id, str) or not message_id:
        message_id = _content_id(message)
    return IncomingRecord(
        message_id=message_id,
        message=message,
        topic_arn=sns.get("TopicArn") if isinstance(sns.get("TopicArn"), str) else None,
        subject=sns.get("Subject") if isinstance(sns.get("Subject"), str) else None,
        timestamp=sns.get("Timestamp") if isinstance(sns.get("Timestamp"), str) else None,
        attributes=_attributes(sns.get("MessageAttributes")),
        envelope_note=note,
    )


def _from_sqs(record: dict[str, Any], index: int) -> IncomingRecord:
    """An SQS message whose body is an SNS notification (raw delivery off) or, with raw delivery, the
    message itself. The SNS MessageId stays the idempotency key, so both paths dedupe against each other."""
    body = str(record.get("body") or "")
    sqs_id = str(record.get("messageId") or "") or None
    try:
        envelope = json.loads(body)
    except json.JSONDecodeError:
        envelope = None
    if isinstance(envelope, dict) and envelope.get("Type") == "Notification" and "Message" in envelope:
        incoming = _from_sns(envelope, index)
    else:
        incoming = IncomingRecord(message_id=sqs_id or _content_id(body), message=body)
    return replace(incoming, sqs_message_id=sqs_id)


def is_sqs_event(event: Any) -> bool:
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        return False
    return all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)


def records_from_event(event: Any) -> list[IncomingRecord]:
    """Lambda SNS or SQS event, a single SNS envelope, an EventBridge event or any other payload."""
    if isinstance(event, dict) and isinstance(event.get("Records"), list):
        records = []
        for index, record in enumerate(event["Records"]):
            sns = record.get("Sns") if isinstance(record, dict) else None
            if isinstance(sns, dict):
                records.append(_from_sns(sns, index))
            elif isinstance(record, dict) and record.get("eventSource") == "aws:sqs":
                records.append(_from_sqs(record, index))
            else:
                text = json.dumps(record, sort_keys=True, default=str)
                records.append(
                    IncomingRecord(
                        message_id=_content_id(text),
                        message=text,
                        envelope_note=f"Records[{index}] is not an SNS record; forwarded as received",
                    )
                )
        return records
    if isinstance(event, dict) and event.get("Type") == "Notification" and "Message" in event:
        return [_from_sns(event, 0)]
    if isinstance(event, dict):
        text = json.dumps(event, sort_keys=True, default=str)
        request_id = _obj(event.get("requestContext")).get("requestId")  # Lambda destination records
        event_id = event.get("id") if isinstance(event.get("id"), str) else None
        event_id = event_id or (f"lambda-{request_id}" if isinstance(request_id, str) else None)
        return [IncomingRecord(message_id=event_id or _content_id(text), message=text)]
    text = event if isinstance(event, str) else json.dumps(event, default=str)
    return [IncomingRecord(message_id=_content_id(text), message=text)]


# ----------------------------------------------------------------------------------------------- helpers


def _obj(value: Any) -> dict[str, Any]:
    """A JSON object field, or {} when it is missing or of another type (input is never trusted)."""
    return value if isinstance(value, dict) else {}


def iso_utc(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def fmt_number(value: Any) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
    else:
        return None
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    if 1000 <= abs(number) < 1e15:
        return f"{number:.1f}"
    return f"{number:.4g}"  # small fractions, and huge values (1e308 as 1e+308, not 309 digits)


def _region_account_from_arn(arn: Any) -> tuple[str | None, str | None]:
    if not isinstance(arn, str) or not arn.startswith("arn:"):
        return None, None
    parts = arn.split(":", 5)
    if len(parts) < 5:
        return None, None
    return (parts[3] or None), (parts[4] or None)


_RUNBOOK = re.compile(r"runbook:\s*(\S+)\s*$", re.IGNORECASE)


def split_runbook(description: Any) -> tuple[str | None, str | None]:
    """Descriptions end with `Runbook: <url>`; return (description without it, url)."""
    if not isinstance(description, str) or not description.strip():
        return None, None
    text = description.strip()
    match = _RUNBOOK.search(text)
    if not match or not match.group(1).lower().startswith(("https://", "http://")):
        return text, None
    rest = text[: match.start()].rstrip(" \t\r\n;|-–—")
    return (rest or None), match.group(1)


def severity_from_topic(topic_arn: str | None) -> str | None:
    if not topic_arn:
        return None
    name = topic_arn.rsplit(":", 1)[-1].lower()
    for severity in SEVERITIES:
        if name.endswith(f"-{severity}"):
            return severity
    return None


def severity_from_name(name: str | None) -> str | None:
    """Alarm names look like <project>-<stack>-<severity>-<resource>-<condition>."""
    if not name:
        return None
    for segment in re.split(r"[-_.\s]+", name.lower()):
        if segment in SEVERITIES:
            return segment
    return None


def _alarm_console_url(region: str | None, name: str) -> str | None:
    if not region:
        return None
    return (
        f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#alarmsV2:alarm/{quote(name, safe='')}"
    )


def _stable_key(prefix: str, *parts: Any) -> str:
    joined = ":".join(str(p) for p in parts if p not in (None, ""))
    key = f"{prefix}:{joined}"
    if len(key) > 400:  # DynamoDB keys have a size limit; long ARNs are hashed
        key = f"{prefix}:sha256-{hashlib.sha256(joined.encode()).hexdigest()[:40]}"
    return key


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ------------------------------------------------------------------------------------- CloudWatch alarms

_OPERATORS = {
    "GreaterThanThreshold": (">", "above"),
    "GreaterThanOrEqualToThreshold": (">=", "at or above"),
    "LessThanThreshold": ("<", "below"),
    "LessThanOrEqualToThreshold": ("<=", "at or below"),
    "GreaterThanUpperThreshold": (">", "above the upper band"),
    "LessThanLowerThreshold": ("<", "below the lower band"),
    "LessThanLowerOrGreaterThanUpperThreshold": ("outside", "outside the expected band"),
}
_DATAPOINT = re.compile(r"\[\s*([-+]?\d[\d.]*(?:[eE][-+]?\d+)?)\s*\(")
_BAND = re.compile(r"(lower|upper) thresholds? \[\s*([-+]?\d[\d.]*(?:[eE][-+]?\d+)?)")
_OUT_OF = re.compile(r"(\d+) out of the last (\d+) datapoints?")
_N_DATAPOINTS = re.compile(r"(\d+) datapoints? \[")


def _dimensions_text(dimensions: Any) -> str:
    if not isinstance(dimensions, list) or not dimensions:
        return ""
    pairs = []
    for dim in dimensions:
        if isinstance(dim, dict):
            name = dim.get("name") or dim.get("Name")
            value = dim.get("value") or dim.get("Value")
            if name is not None:
                pairs.append(f"{name}={value}")
    return "{" + ", ".join(pairs) + "}" if pairs else ""


def _stat_name(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if value.isupper():  # "SUM" -> "Sum", "SAMPLE_COUNT" -> "SampleCount" (CloudWatch's own spelling); keep "p99"
        return "".join(word.capitalize() for word in value.split("_"))
    return value


def _describe_trigger(trigger: dict[str, Any]) -> tuple[str, str | None, str, list[tuple[str, str]]]:
    """(kind, metric label, metric line, details) for a metric alarm's Trigger block."""
    details: list[tuple[str, str]] = []
    metrics = trigger.get("Metrics")
    if isinstance(metrics, list) and metrics:
        threshold_id = trigger.get("ThresholdMetricId")
        band = next((m for m in metrics if isinstance(m, dict) and m.get("Id") == threshold_id), None)
        returned = [m for m in metrics if isinstance(m, dict) and m.get("ReturnData") and m is not band]
        inputs = [m for m in metrics if isinstance(m, dict) and isinstance(m.get("MetricStat"), dict)]
        for query in inputs:
            stat = query["MetricStat"]
            metric = _obj(stat.get("Metric"))
            line = (
                f"{metric.get('Namespace', '?')} {metric.get('MetricName', '?')}"
                f"{_dimensions_text(metric.get('Dimensions'))} {stat.get('Stat', '')}"
                f" over {stat.get('Period', '?')} s"
            ).strip()
            details.append((f"Input {query.get('Id', '?')}", line))
        main = returned[0] if returned else (inputs[0] if inputs else {})
        if isinstance(main.get("MetricStat"), dict):
            metric = main["MetricStat"].get("Metric") or {}
            label = str(main.get("Label") or metric.get("MetricName") or main.get("Id") or "metric")
        else:
            label = str(main.get("Label") or main.get("Expression") or main.get("Id") or "expression")
        if band is not None:
            details.append(("Anomaly band", str(band.get("Expression", ""))))
            return "anomaly_alarm", label, f"{label} vs {band.get('Expression', 'anomaly band')}", details
        expression = main.get("Expression")
        if not expression and len(inputs) == 1:
            return "metric_alarm", label, details[0][1], []
        if expression:
            details.insert(0, ("Expression", f"{main.get('Id', '?')} = {expression}"))
        return "metric_math_alarm", label, f"{label} (metric math)", details
    name = trigger.get("MetricName")
    namespace = trigger.get("Namespace")
    stat = _stat_name(trigger.get("ExtendedStatistic")) or _stat_name(trigger.get("Statistic"))
    label = str(name or "metric")
    line = f"{namespace or '?'} {name or '?'}{_dimensions_text(trigger.get('Dimensions'))}"
    if stat:
        line += f" ({stat}"
        if trigger.get("Period"):
            line += f", {trigger['Period']} s periods"
        line += ")"
    return "metric_alarm", label, line, details


def _alarm_reason_words(
    *,
    state: str,
    label: str,
    trigger: dict[str, Any],
    raw_reason: str,
    value: str | None,
    threshold_text: str | None,
    band: dict[str, str],
) -> str:
    operator = str(trigger.get("ComparisonOperator") or "")
    symbol, words = _OPERATORS.get(operator, ("", "beyond"))
    out_of = _OUT_OF.search(raw_reason)
    count = _N_DATAPOINTS.search(raw_reason)
    if out_of:
        span = f"{out_of.group(1)} of the last {out_of.group(2)} datapoints"
    elif count:
        span = f"{count.group(1)} datapoint{'s' if count.group(1) != '1' else ''}"
    else:
        periods = trigger.get("EvaluationPeriods")
        span = f"{periods} evaluation period{'s' if periods != 1 else ''}" if periods else ""
    period = trigger.get("Period")
    per = f" ({period} s periods)" if period else ""
    if state == INSUFFICIENT_DATA:
        return f"Not enough data to evaluate {label}{per}. {raw_reason}".strip()
    if value is None:
        return raw_reason or f"{label} changed state to {state}."
    if band:
        limits = " / ".join(f"{side} {limit}" for side, limit in sorted(band.items()))
        if state == ALARM:
            return f"{label} is {value}, {words} ({limits}) for {span}{per}."
        return f"{label} is {value}, back inside the expected band ({limits}){per}."
    if state == ALARM:
        return f"{label} is {value}, {words} the threshold of {threshold_text or symbol} for {span}{per}."
    if state == OK:
        return f"{label} is {value}, no longer {words} the threshold of {threshold_text or symbol}{per}."
    return raw_reason


def _metric_alarm(data: dict[str, Any], record: IncomingRecord, received_at: str, default_severity: str) -> Alert:
    name = str(data.get("AlarmName") or "unnamed alarm")
    alarm_arn = data.get("AlarmArn")
    region, account = _region_account_from_arn(alarm_arn)
    topic_region, topic_account = _region_account_from_arn(record.topic_arn)
    region = region or topic_region
    account = str(data.get("AWSAccountId") or account or topic_account or "") or None
    description, runbook = split_runbook(data.get("AlarmDescription"))
    state = str(data.get("NewStateValue") or "UNKNOWN")
    old_state = data.get("OldStateValue") if isinstance(data.get("OldStateValue"), str) else None
    raw_reason = str(data.get("NewStateReason") or "")
    details: list[tuple[str, str]] = []
    metric_line: str | None = None
    value = threshold_text = None

    if "AlarmRule" in data:
        kind = "composite_alarm"
        children = []
        for child in data.get("TriggeringChildren") or []:
            if isinstance(child, dict):
                child_name = str(child.get("Arn", "?")).split(":alarm:", 1)[-1]
                child_state = (child.get("State") or {}).get("Value", "?")
                children.append(f"{child_name} ({child_state})")
        details.append(("Rule", str(data.get("AlarmRule"))))
        if children:
            details.append(("Triggered by", ", ".join(children)))
        if state == ALARM:
            reason = "Composite rule is true" + (f"; triggered by {', '.join(children)}." if children else ".")
        elif state == OK:
            reason = "Composite rule is no longer true."
        else:
            reason = raw_reason or f"Composite alarm is {state}."
    else:
        trigger = _obj(data.get("Trigger"))
        kind, label, metric_line, trigger_details = _describe_trigger(trigger)
        details.extend(trigger_details)
        match = _DATAPOINT.search(raw_reason)
        value = fmt_number(match.group(1)) if match else None
        band = {side: fmt_number(limit) or limit for side, limit in _BAND.findall(raw_reason)}
        symbol, _ = _OPERATORS.get(str(trigger.get("ComparisonOperator") or ""), ("", ""))
        if band:
            threshold_text = " / ".join(f"{side} band {limit}" for side, limit in sorted(band.items()))
        elif trigger.get("Threshold") is not None:
            threshold_text = f"{symbol} {fmt_number(trigger.get('Threshold'))}".strip()
        reason = _alarm_reason_words(
            state=state,
            label=label or name,
            trigger=trigger,
            raw_reason=raw_reason,
            value=value,
            threshold_text=threshold_text,
            band=band,
        )

    severity = severity_from_topic(record.topic_arn) or severity_from_name(name) or default_severity
    return Alert(
        message_id=record.message_id,
        kind=kind,
        alarm_key=_stable_key("alarm", alarm_arn or f"{region}:{account}:{name}"),
        title=name,
        severity=severity,
        new_state=state,
        old_state=old_state,
        reason=reason,
        raw_reason=raw_reason,
        value=value,
        threshold=threshold_text,
        metric=metric_line,
        region=region,
        account=account,
        console_url=_alarm_console_url(region, name),
        runbook_url=runbook,
        description=description,
        occurred_at=iso_utc(data.get("StateChangeTime")) or iso_utc(record.timestamp),
        received_at=received_at,
        details=tuple(details),
        topic_arn=record.topic_arn,
    )


def _alarm_state_change_event(
    event: dict[str, Any], record: IncomingRecord, received_at: str, default_severity: str
) -> Alert:
    """EventBridge 'CloudWatch Alarm State Change' — mapped onto the SNS alarm shape."""
    detail = _obj(event.get("detail"))
    state = _obj(detail.get("state"))
    previous = _obj(detail.get("previousState"))
    configuration = _obj(detail.get("configuration"))
    resources = event.get("resources") if isinstance(event.get("resources"), list) else []
    as_sns: dict[str, Any] = {
        "AlarmName": detail.get("alarmName"),
        "AlarmDescription": configuration.get("description"),
        "AWSAccountId": event.get("account"),
        "NewStateValue": state.get("value"),
        "OldStateValue": previous.get("value"),
        "NewStateReason": state.get("reason"),
        "StateChangeTime": state.get("timestamp") or event.get("time"),
        "AlarmArn": resources[0] if resources else None,
    }
    if "alarmRule" in configuration:
        as_sns["AlarmRule"] = configuration["alarmRule"]
    else:
        metrics = []
        for metric in configuration.get("metrics") or []:
            if not isinstance(metric, dict):
                continue
            stat = metric.get("metricStat") if isinstance(metric.get("metricStat"), dict) else None
            entry: dict[str, Any] = {"Id": metric.get("id"), "ReturnData": metric.get("returnData")}
            if stat:
                inner = stat.get("metric") or {}
                entry["MetricStat"] = {
                    "Metric": {
                        "Namespace": inner.get("namespace"),
                        "MetricName": inner.get("name"),
                        "Dimensions": [{"name": k, "value": v} for k, v in (inner.get("dimensions") or {}).items()],
                    },
                    "Period": stat.get("period"),
                    "Stat": stat.get("stat"),
                }
            if metric.get("expression"):
                entry["Expression"] = metric["expression"]
                entry["Label"] = metric.get("label")
            metrics.append(entry)
        as_sns["Trigger"] = {"Metrics": metrics} if metrics else {}
    alert = _metric_alarm(as_sns, record, received_at, default_severity)
    region = event.get("region") if isinstance(event.get("region"), str) else alert.region
    return replace(alert, region=region, console_url=_alarm_console_url(region, alert.title))


# -------------------------------------------------------------------------------------- other formats


def _ecs_task(event: dict[str, Any], record: IncomingRecord, received_at: str, default: str) -> Alert:
    detail = _obj(event.get("detail"))
    region = event.get("region") if isinstance(event.get("region"), str) else None
    cluster_arn = str(detail.get("clusterArn") or "")
    cluster = cluster_arn.rsplit("/", 1)[-1] or "?"
    task_arn = str(detail.get("taskArn") or "")
    task_id = task_arn.rsplit("/", 1)[-1]
    group = str(detail.get("group") or detail.get("taskDefinitionArn", "task").rsplit("/", 1)[-1])
    last_status = str(detail.get("lastStatus") or "?")
    stop_code = detail.get("stopCode")
    failed_containers = []
    for container in detail.get("containers") or []:
        if not isinstance(container, dict):
            continue
        exit_code = container.get("exitCode")
        text = f"{container.get('name', '?')} exit {exit_code if exit_code is not None else '?'}"
        if container.get("reason"):
            text += f" ({container['reason']})"
        if exit_code not in (0, None) or container.get("reason"):
            failed_containers.append(text)
    stopped = last_status == "STOPPED"
    if stopped:
        reason = f"Task stopped: {detail.get('stoppedReason') or 'no reason given'}"
        if stop_code:
            reason += f" (stop code {stop_code})"
        if failed_containers:
            reason += ". Containers: " + "; ".join(failed_containers)
        reason += "."
        derived = (
            "warning" if failed_containers or stop_code in ("EssentialContainerExited", "TaskFailedToStart") else "info"
        )
    else:
        reason = f"Task is {last_status} (desired {detail.get('desiredStatus', '?')})."
        derived = "info"
    details = [("Cluster", cluster), ("Group", group)]
    if detail.get("taskDefinitionArn"):
        details.append(("Task definition", str(detail["taskDefinitionArn"]).rsplit("/", 1)[-1]))
    if task_id:
        details.append(("Task", task_id))
    console = (
        f"https://{region}.console.aws.amazon.com/ecs/v2/clusters/{quote(cluster, safe='')}/tasks/"
        f"{quote(task_id, safe='')}?region={region}"
        if region and task_id
        else None
    )
    return Alert(
        message_id=record.message_id,
        kind="ecs_task_stopped" if stopped else "ecs_task_state",
        alarm_key=_stable_key("ecs", cluster_arn, group),
        title=f"ECS task {'stopped' if stopped else last_status.lower()}: {group} on {cluster}",
        severity=severity_from_topic(record.topic_arn) or derived or default,
        new_state=EVENT,
        reason=reason,
        raw_reason=str(detail.get("stoppedReason") or ""),
        region=region,
        account=str(event.get("account")) if event.get("account") else None,
        console_url=console,
        occurred_at=iso_utc(detail.get("stoppedAt")) or iso_utc(event.get("time")),
        received_at=received_at,
        details=tuple(details),
        topic_arn=record.topic_arn,
    )


_RDS_SEVERITY = {"failure": "critical", "low storage": "critical", "failover": "warning"}


def _rds(
    *,
    record: IncomingRecord,
    received_at: str,
    default: str,
    message: str,
    source_id: str,
    source_arn: str | None,
    event_id: str,
    categories: list[str],
    source_type: str,
    when: Any,
    region: str | None,
    account: str | None,
) -> Alert:
    derived = next((_RDS_SEVERITY[c] for c in categories if c in _RDS_SEVERITY), "info")
    arn_region, arn_account = _region_account_from_arn(source_arn)
    region = region or arn_region
    is_cluster = "cluster" in source_type.lower()
    console = (
        f"https://{region}.console.aws.amazon.com/rds/home?region={region}#database:id="
        f"{quote(source_id, safe='')};is-cluster={'true' if is_cluster else 'false'}"
        if region and source_id
        else None
    )
    details = [("Event", event_id)] if event_id else []
    if categories:
        details.append(("Categories", ", ".join(categories)))
    if source_type:
        details.append(("Source type", source_type))
    return Alert(
        message_id=record.message_id,
        kind="rds_event",
        alarm_key=_stable_key("rds", source_arn or source_id, event_id),
        title=f"RDS {source_id or 'event'}: {event_id or (categories[0] if categories else 'event')}"
        + (f" ({', '.join(categories)})" if categories and event_id else ""),
        severity=severity_from_topic(record.topic_arn) or derived or default,
        new_state=EVENT,
        reason=message or f"RDS event {event_id}",
        raw_reason=message,
        region=region,
        account=account or arn_account,
        console_url=console,
        occurred_at=iso_utc(when) or iso_utc(record.timestamp),
        received_at=received_at,
        details=tuple(details),
        topic_arn=record.topic_arn,
    )


_BACKUP_FAILED = ("FAILED", "ABORTED", "EXPIRED", "PARTIAL")
_BACKUP_RESOURCE = re.compile(r"Resource ARN\s*:\s*(arn:\S+?)\.?(?:\s|$)")
_BACKUP_JOB = re.compile(r"(?:Backup|Restore|Copy)Job ID\s*:\s*(\S+?)\.?(?:\s|$)", re.IGNORECASE)


def _backup(
    *,
    record: IncomingRecord,
    received_at: str,
    default: str,
    event_type: str,
    state: str,
    text: str,
    resource_arn: str | None,
    job_id: str | None,
    region: str | None,
    account: str | None,
    when: Any,
) -> Alert:
    arn_region, arn_account = _region_account_from_arn(resource_arn)
    topic_region, _ = _region_account_from_arn(record.topic_arn)
    region = region or arn_region or topic_region
    failed = state.upper() in _BACKUP_FAILED
    job_kind = event_type.replace("_", " ").lower() or "backup job"
    console = None
    if region and job_id and event_type.upper().startswith("BACKUP"):
        console = (
            f"https://{region}.console.aws.amazon.com/backup/home?region={region}"
            f"#/jobs/backup/details/{quote(job_id, safe='')}"
        )
    details = [(k, v) for k, v in (("Resource", resource_arn), ("Job", job_id)) if v]
    return Alert(
        message_id=record.message_id,
        kind="backup",
        alarm_key=_stable_key("backup", event_type, resource_arn or job_id),
        title=f"AWS Backup {job_kind} {state.lower() or 'notification'}"
        + (f": {resource_arn.rsplit(':', 1)[-1]}" if resource_arn else ""),
        severity=severity_from_topic(record.topic_arn) or ("critical" if failed else "info") or default,
        new_state=EVENT,
        reason=text or f"{job_kind} is {state}",
        raw_reason=text,
        region=region,
        account=account or arn_account,
        console_url=console,
        occurred_at=iso_utc(when) or iso_utc(record.timestamp),
        received_at=received_at,
        details=tuple(details),
        topic_arn=record.topic_arn,
    )


def _eventbridge(event: dict[str, Any], record: IncomingRecord, received_at: str, default: str) -> Alert:
    source = event.get("source")
    detail_type = event.get("detail-type")
    detail = _obj(event.get("detail"))
    region = event.get("region") if isinstance(event.get("region"), str) else None
    account = str(event["account"]) if event.get("account") else None
    if source == "aws.ecs" and detail_type == "ECS Task State Change":
        return _ecs_task(event, record, received_at, default)
    if source == "aws.cloudwatch" and detail_type == "CloudWatch Alarm State Change":
        return _alarm_state_change_event(event, record, received_at, default)
    if source == "aws.rds" and "Message" in detail:
        return _rds(
            record=record,
            received_at=received_at,
            default=default,
            message=str(detail.get("Message") or ""),
            source_id=str(detail.get("SourceIdentifier") or ""),
            source_arn=detail.get("SourceArn") if isinstance(detail.get("SourceArn"), str) else None,
            event_id=str(detail.get("EventID") or ""),
            categories=[str(c) for c in detail.get("EventCategories") or []],
            source_type=str(detail.get("SourceType") or ""),
            when=detail.get("Date") or event.get("time"),
            region=region,
            account=account,
        )
    if source == "aws.backup":
        state = str(detail.get("state") or detail.get("status") or "")
        return _backup(
            record=record,
            received_at=received_at,
            default=default,
            event_type=str(detail_type or "backup job").upper().replace(" STATE CHANGE", "").replace(" ", "_"),
            state=state,
            text=str(detail.get("statusMessage") or f"{detail_type}: {state}"),
            resource_arn=detail.get("resourceArn") if isinstance(detail.get("resourceArn"), str) else None,
            job_id=str(detail.get("backupJobId") or detail.get("restoreJobId") or detail.get("copyJobId") or "")
            or None,
            region=region,
            account=account,
            when=event.get("time"),
        )
    resources = event.get("resources") if isinstance(event.get("resources"), list) else []
    pretty = json.dumps(detail, indent=2, sort_keys=True, default=str)
    return Alert(
        message_id=record.message_id,
        kind="eventbridge",
        alarm_key=_stable_key("event", source, detail_type, resources[0] if resources else None),
        title=f"{detail_type or 'EventBridge event'} ({source or 'unknown source'})",
        severity=severity_from_topic(record.topic_arn) or default,
        new_state=EVENT,
        reason=f"{detail_type or 'Event'} from {source or 'an unknown source'}"
        + (f" about {', '.join(str(r) for r in resources[:3])}" if resources else "")
        + ".",
        region=region,
        account=account,
        occurred_at=iso_utc(event.get("time")) or iso_utc(record.timestamp),
        received_at=received_at,
        note="This EventBridge event type has no dedicated format; its detail is attached as received.",
        raw=pretty[:MAX_RAW_CHARS],
        topic_arn=record.topic_arn,
    )


def _text(record: IncomingRecord, received_at: str, default: str) -> Alert:
    text = record.message
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "") or "(empty message)"
    title = record.subject or _clip(first_line, 120)
    attrs = record.attributes
    if ("EventType" in attrs and ("State" in attrs or "AWS Backup" in text)) or text.startswith("An AWS Backup job"):
        resource = _BACKUP_RESOURCE.search(text)
        job = _BACKUP_JOB.search(text)
        state = attrs.get("State") or ("FAILED" if "failed" in text.lower() else "COMPLETED")
        return _backup(
            record=record,
            received_at=received_at,
            default=default,
            event_type=attrs.get("EventType", "BACKUP_JOB"),
            state=state,
            text=text.strip(),
            resource_arn=resource.group(1) if resource else None,
            job_id=(job.group(1) if job else None) or attrs.get("Id"),
            region=None,
            account=attrs.get("AccountId"),
            when=attrs.get("StartTime") or record.timestamp,
        )
    region, account = _region_account_from_arn(record.topic_arn)
    return Alert(
        message_id=record.message_id,
        kind="text",
        alarm_key=_stable_key("text", record.topic_arn, hashlib.sha256(title.encode()).hexdigest()[:24]),
        title=title,
        severity=severity_from_topic(record.topic_arn) or severity_from_name(record.subject) or default,
        new_state=EVENT,
        reason=text.strip() or "(empty message)",
        raw_reason=text,
        region=region,
        account=account,
        occurred_at=iso_utc(record.timestamp),
        received_at=received_at,
        topic_arn=record.topic_arn,
    )


def _raw(record: IncomingRecord, received_at: str, default: str, why: str) -> Alert:
    region, account = _region_account_from_arn(record.topic_arn)
    digest = hashlib.sha256(record.message.encode("utf-8", "replace")).hexdigest()[:24]
    return Alert(
        message_id=record.message_id,
        kind="raw",
        alarm_key=_stable_key("raw", record.topic_arn, digest),
        title=record.subject or "Unrecognised notification",
        severity=severity_from_topic(record.topic_arn) or severity_from_name(record.subject) or default,
        new_state=EVENT,
        reason="The forwarder does not know this message format; the original is attached.",
        region=region,
        account=account,
        occurred_at=iso_utc(record.timestamp),
        received_at=received_at,
        note=why,
        raw=record.message[:MAX_RAW_CHARS],
        topic_arn=record.topic_arn,
    )


def parse_record(record: IncomingRecord, *, received_at: str, default_severity: str = "warning") -> Alert:
    """Normalise one record. Never raises on content: unknown input becomes a raw alert with a note."""
    alert = _parse(record, received_at, default_severity)
    if record.envelope_note:
        note = record.envelope_note + (f"; {alert.note}" if alert.note else "")
        alert = replace(alert, note=note, raw=alert.raw or record.message[:MAX_RAW_CHARS])
    return alert


def _parse(record: IncomingRecord, received_at: str, default: str) -> Alert:
    text = record.message
    stripped = text.lstrip()
    if not stripped.startswith(("{", "[")):
        return _text(record, received_at, default)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return _raw(record, received_at, default, f"Message looks like JSON but does not parse ({exc.msg}).")
    if not isinstance(data, dict):
        return _raw(record, received_at, default, "Message is JSON but not an object.")
    try:
        if "AlarmName" in data and ("NewStateValue" in data or "AlarmRule" in data):
            return _metric_alarm(data, record, received_at, default)
        if "detail-type" in data and "source" in data:
            return _eventbridge(data, record, received_at, default)
        if "Event Message" in data and ("Source ID" in data or "Event Source" in data):
            source_arn = data.get("Source ARN") if isinstance(data.get("Source ARN"), str) else None
            region, account = _region_account_from_arn(source_arn)
            return _rds(
                record=record,
                received_at=received_at,
                default=default,
                message=str(data.get("Event Message") or ""),
                source_id=str(data.get("Source ID") or ""),
                source_arn=source_arn,
                event_id=str(data.get("Event ID") or "").rsplit("#", 1)[-1],
                categories=[],
                source_type=str(data.get("Event Source") or ""),
                when=data.get("Event Time"),
                region=region,
                account=account,
            )
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # A known format with an unexpected shape: forward it raw rather than lose it.
        return _raw(record, received_at, default, f"Message resembles a known format but is malformed ({exc}).")
    pretty = json.dumps(data, indent=2, sort_keys=True, default=str)
    return replace(
        _raw(record, received_at, default, "Unrecognised JSON message; forwarded raw."),
        raw=pretty[:MAX_RAW_CHARS],
    )


# ------------------------------------------------------------------ health check runs, Lambda destinations


def _health_results(
    results: list[Any],
    *,
    stack: str,
    base_id: str,
    record: IncomingRecord,
    received_at: str,
    observed_at: str | None,
    region: str | None,
    account: str | None,
) -> list[Alert]:
    """One alert per endpoint (down = ALARM, up = OK) and, for endpoints that are up, one for their
    warnings (cert_expiring = ALARM, none = OK), so a renewed certificate resolves its warning."""
    alerts: list[Alert] = []
    topic_severity = severity_from_topic(record.topic_arn)
    for entry in results:
        result = _obj(entry)
        endpoint = str(result.get("endpoint") or "") or "unnamed endpoint"
        up = result.get("up") is True
        target = str(result.get("target") or "")
        latency = fmt_number(result.get("latency_ms"))
        details = [
            (label, str(result[key]))
            for label, key in (
                ("Target", "target"),
                ("Check", "kind"),
                ("Failure", "reason"),
                ("Phase", "phase"),
                ("HTTP status", "status"),
            )
            if result.get(key) not in (None, "")
        ]
        if latency:
            details.append(("Latency", f"{latency} ms"))
        common: dict[str, Any] = {
            "kind": "health_check",
            "metric": f"health check {endpoint}" + (f" ({target})" if target else ""),
            "region": region,
            "account": account,
            "occurred_at": iso_utc(result.get("time")) or observed_at or iso_utc(record.timestamp),
            "received_at": received_at,
            "details": tuple(details),
            "topic_arn": record.topic_arn,
        }
        if up:
            reason = f"{endpoint} is up" + (f", answered in {latency} ms." if latency else ".")
        else:
            why = ": ".join(str(x) for x in (result.get("reason"), result.get("detail")) if x)
            reason = f"{endpoint} is down" + (f": {why}." if why else ".")
        alerts.append(
            Alert(
                message_id=f"{base_id}#{endpoint}",
                alarm_key=_stable_key("health", stack, endpoint),
                title=f"health check {endpoint}" + (f" ({stack})" if stack else ""),
                severity=topic_severity or "critical",
                new_state=OK if up else ALARM,
                reason=reason,
                raw_reason=str(result.get("detail") or ""),
                **common,
            )
        )
        if up:
            warnings = [str(w) for w in result.get("warnings") or []]
            days = fmt_number(result.get("cert_days_left"))
            text = ", ".join(warnings)
            if "cert_expiring" in warnings and days:
                text += f" (certificate expires in {days} days)"
            alerts.append(
                Alert(
                    message_id=f"{base_id}#{endpoint}:warnings",
                    alarm_key=_stable_key("health", stack, endpoint, "warnings"),
                    title=f"health check {endpoint} warnings" + (f" ({stack})" if stack else ""),
                    severity="warning",
                    new_state=ALARM if warnings else OK,
                    reason=f"{endpoint} is up with warnings: {text}." if warnings else f"{endpoint}: no warnings.",
                    **common,
                )
            )
    return alerts


def _lambda_failure(
    data: dict[str, Any], record: IncomingRecord, received_at: str, region: str | None, account: str | None
) -> Alert:
    context = _obj(data.get("requestContext"))
    payload = _obj(data.get("responsePayload"))
    function_arn = str(context.get("functionArn") or "")
    function = function_arn.split(":function:", 1)[-1].split(":", 1)[0] or "function"
    condition = str(context.get("condition") or "failure")
    error = ": ".join(str(x) for x in (payload.get("errorType"), payload.get("errorMessage")) if x)
    return Alert(
        message_id=record.message_id,
        kind="lambda_failure",
        alarm_key=_stable_key("lambda", function_arn or function),
        title=f"Lambda {function} failed ({condition})",
        severity=severity_from_topic(record.topic_arn) or "critical",
        new_state=EVENT,
        reason=(error or "The function failed without an error message.")
        + f" Attempts: {context.get('approximateInvokeCount', '?')}.",
        raw_reason=error,
        region=region,
        account=account,
        console_url=(
            f"https://{region}.console.aws.amazon.com/lambda/home?region={region}#/functions/{quote(function)}"
            if region
            else None
        ),
        occurred_at=iso_utc(data.get("timestamp")) or iso_utc(record.timestamp),
        received_at=received_at,
        topic_arn=record.topic_arn,
    )


def parse_alerts(record: IncomingRecord, *, received_at: str, default_severity: str = "warning") -> list[Alert]:
    """Like parse_record, but a record may carry several alerts: a health check run has one per endpoint.

    Lambda destination records (`requestContext` + `responsePayload`, how the health check's runs reach
    the forwarder) are unwrapped; a failure record becomes an alert about the function itself.
    """
    try:
        data = json.loads(record.message) if record.message.lstrip().startswith("{") else None
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("requestContext"), dict) and "responsePayload" in data:
        function_arn = data["requestContext"].get("functionArn")
        region, account = _region_account_from_arn(function_arn)
        payload = data.get("responsePayload")
        failed = data["requestContext"].get("condition") not in (None, "Success") or (
            isinstance(payload, dict) and "errorMessage" in payload and "source" not in payload
        )
        if failed:
            return [_lambda_failure(data, record, received_at, region, account)]
        if isinstance(payload, dict):
            data = payload
            record = replace(record, message=json.dumps(payload))
    else:
        region = account = None
    if isinstance(data, dict) and data.get("source") == HEALTH_CHECK_SOURCE:
        stack = str(data.get("stack") or "")
        common: dict[str, Any] = {
            "stack": stack,
            "base_id": record.message_id,
            "record": record,
            "received_at": received_at,
            "observed_at": iso_utc(data.get("time")),
            "region": region,
            "account": account,
        }
        if data.get("event") == "summary" and isinstance(data.get("results"), list) and data["results"]:
            return _health_results(data["results"], **common)
        if data.get("event") == "check" and "endpoint" in data:
            return _health_results([data], **common)
    return [parse_record(record, received_at=received_at, default_severity=default_severity)]


def severity_summary(alerts: list[Alert]) -> Mapping[str, int]:
    counts = dict.fromkeys(SEVERITIES, 0)
    for alert in alerts:
        counts[alert.severity] = counts.get(alert.severity, 0) + 1
    return counts

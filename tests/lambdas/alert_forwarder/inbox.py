"""The alert path `pulumi up` deploys, on moto in server mode: severity topics → SQS inbox (redrive to a
dead-letter queue) → Lambda's SQS event source → the real forwarder handler.

Lambda's poller is the one part AWS runs that moto does not, so `EventSourceMapping` does what the Lambda
docs say it does (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html and
.../with-sqs.html): long-poll the queue, gather up to `batch_size` records for at most `window_s` after the
first one, invoke the function with the SQS event shape, delete what succeeded (with
ReportBatchItemFailures, everything not listed in `batchItemFailures`), and leave the rest to reappear after
the visibility timeout — SQS itself moves a message to the DLQ after `max_receives` receives. At most
`max_concurrency` invocations run at once. Used by tests/lambdas/alert_forwarder/test_af_inbox.py and by
bench/bench_alert_forwarder.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.aws.alerts import (
    FORWARDER_TIMEOUT_S,
    INBOX_BATCH_SIZE,
    INBOX_BATCHING_WINDOW_S,
    INBOX_MAX_CONCURRENCY,
    INBOX_MAX_RECEIVES,
    SEVERITIES,
    inbox_visibility_timeout,
)

SQS_RECEIVE_MAX = 10
"""ReceiveMessage returns at most 10 messages per call, whatever the batch size."""


@dataclass(frozen=True)
class InboxSettings:
    batch_size: int
    window_s: float
    max_concurrency: int
    max_receives: int
    visibility_timeout_s: int
    function_timeout_s: float

    @classmethod
    def deployed(cls, **overrides: Any) -> InboxSettings:
        """What infra/aws/alerts.py deploys; tests shorten the timeouts so a dead-letter takes seconds."""
        values: dict[str, Any] = {
            "batch_size": INBOX_BATCH_SIZE,
            "window_s": INBOX_BATCHING_WINDOW_S,
            "max_concurrency": INBOX_MAX_CONCURRENCY,
            "max_receives": INBOX_MAX_RECEIVES,
            "visibility_timeout_s": inbox_visibility_timeout(FORWARDER_TIMEOUT_S),
            "function_timeout_s": FORWARDER_TIMEOUT_S,
        }
        values.update(overrides)
        return cls(**values)


class AlertInbox:
    """Topics `<prefix>-alerts-<severity>` subscribed (SNS envelopes, not raw) to an inbox with a DLQ."""

    def __init__(self, sns: Any, sqs: Any, prefix: str, settings: InboxSettings):
        self.sns, self.sqs, self.settings = sns, sqs, settings
        self.dlq_url = sqs.create_queue(QueueName=f"{prefix}-alerts-delivery-dlq")["QueueUrl"]
        dlq_arn = self._arn(self.dlq_url)
        self.url = sqs.create_queue(
            QueueName=f"{prefix}-alerts-inbox",
            Attributes={
                "VisibilityTimeout": str(settings.visibility_timeout_s),
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": settings.max_receives}),
            },
        )["QueueUrl"]
        self.arn = self._arn(self.url)
        self.topics: dict[str, str] = {}
        for severity in SEVERITIES:
            arn = sns.create_topic(Name=f"{prefix}-alerts-{severity}")["TopicArn"]
            sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=self.arn)  # RawMessageDelivery defaults to false
            self.topics[severity] = arn

    def _arn(self, url: str) -> str:
        return str(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"])

    def publish(self, severity: str, message: Mapping[str, Any] | str) -> str:
        """What CloudWatch does on an alarm transition; returns the SNS MessageId (the forwarder's key)."""
        text = message if isinstance(message, str) else json.dumps(message)
        return str(self.sns.publish(TopicArn=self.topics[severity], Message=text)["MessageId"])

    def counts(self, url: str | None = None) -> tuple[int, int]:
        """(visible, in flight) messages of the inbox, or of `url`."""
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url or self.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead_lettered(self) -> list[str]:
        """SNS MessageIds of everything in the DLQ (received once, so they stay there for a person)."""
        ids: list[str] = []
        for _ in range(100):  # bounded: at most 1 000 messages
            messages = self.sqs.receive_message(
                QueueUrl=self.dlq_url, MaxNumberOfMessages=SQS_RECEIVE_MAX, VisibilityTimeout=300
            ).get("Messages", [])
            if not messages:
                return ids
            ids += [json.loads(m["Body"])["MessageId"] for m in messages]
        return ids


@dataclass
class Invocation:
    records: int
    failed: int
    seconds: float
    error: str | None = None
    slot: str = ""
    """Which of the `max_concurrency` slots ran it: invocations of one slot run one after another."""


class LambdaContext:
    def __init__(self, timeout_s: float):
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class EventSourceMapping:
    """Lambda's SQS poller, as documented, driving `handler(event, context)` (see the module docstring)."""

    inbox: AlertInbox
    handler: Callable[[dict[str, Any], Any], Any]
    region: str = "us-east-1"
    invocations: list[Invocation] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> EventSourceMapping:
        for number in range(self.inbox.settings.max_concurrency):
            thread = threading.Thread(target=self._poll, name=f"esm-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def __enter__(self) -> EventSourceMapping:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_until_drained(self, timeout_s: float) -> bool:
        """True once the inbox holds nothing visible or in flight (bounded by `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.inbox.counts() == (0, 0):
                return True
            time.sleep(0.05)
        return False

    # ---------------------------------------------------------------------------------------------- poller

    def _gather(self) -> list[dict[str, Any]]:
        settings = self.inbox.settings
        batch: list[dict[str, Any]] = []
        window_ends: float | None = None
        while len(batch) < settings.batch_size and not self._stop.is_set():
            if window_ends is not None and time.monotonic() >= window_ends:
                break
            messages = self.inbox.sqs.receive_message(
                QueueUrl=self.inbox.url,
                MaxNumberOfMessages=min(SQS_RECEIVE_MAX, settings.batch_size - len(batch)),
                WaitTimeSeconds=0 if batch else 1,  # long-poll while idle, as Lambda's pollers do
                AttributeNames=["All"],
            ).get("Messages", [])
            if messages and window_ends is None:
                window_ends = time.monotonic() + settings.window_s
            batch += messages
            if not messages and batch:
                time.sleep(0.02)
        return batch

    def _event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m.get("Attributes", {}),
                    "messageAttributes": {},
                    "md5OfBody": hashlib.md5(m["Body"].encode(), usedforsecurity=False).hexdigest(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.inbox.arn,
                    "awsRegion": self.region,
                }
                for m in messages
            ]
        }

    def _poll(self) -> None:
        sqs = self.inbox.sqs
        while not self._stop.is_set():
            messages = self._gather()
            if not messages:
                continue
            started = time.perf_counter()
            failed_ids: set[str] = set()
            error = None
            try:
                response = self.handler(self._event(messages), LambdaContext(self.inbox.settings.function_timeout_s))
                failed_ids = {item["itemIdentifier"] for item in (response or {}).get("batchItemFailures", [])}
            except Exception as exc:  # a failed invocation: the whole batch returns to the queue
                error = f"{type(exc).__name__}: {exc}"
                failed_ids = {m["MessageId"] for m in messages}
            done = [m for m in messages if m["MessageId"] not in failed_ids]
            for start in range(0, len(done), SQS_RECEIVE_MAX):
                chunk = done[start : start + SQS_RECEIVE_MAX]
                sqs.delete_message_batch(
                    QueueUrl=self.inbox.url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
                )
            with self._lock:
                self.invocations.append(
                    Invocation(
                        len(messages),
                        len(failed_ids),
                        time.perf_counter() - started,
                        error,
                        threading.current_thread().name,
                    )
                )

    def busiest_slot_seconds(self) -> float:
        """Time the function itself ran on its busiest concurrency slot: how long the forwarder needed for
        what it was given, without the time the stand-in queue took to hand it over."""
        per_slot: dict[str, float] = {}
        for invocation in self.invocations:
            per_slot[invocation.slot] = per_slot.get(invocation.slot, 0.0) + invocation.seconds
        return max(per_slot.values(), default=0.0)

"""Alert state and history in one DynamoDB table (low-level client: lighter to import than resources).

Items (pk / sk):
  ALARM#<alarm_key>   / STATE                   per-alarm state: current and notified state, per-state
                                                cooldown/dedupe data, the ALARM notice recoveries thread to
  MSG#<message_key>   / ALERT                   history: one per received alert, with the decision taken
  MSG#<message_key>   / DELIVERY#<target>       idempotency + outcome per channel target (provider id)
  MSG#<message_key>   / ATTEMPT#<target>#<t>#<n> history: every delivery attempt with its outcome
  DIGEST#<window>     / <received_at>#<id>      alerts held for the storm/rate-limit digest of a window
  COUNTER#<name>      / COUNTER                 storm and per-channel rate counters (atomic ADD)
  PENDING             / DIGEST#… | ESCALATION#… | SETTLE#…   work for the scheduled sweep
GSI `by_alarm` (gsi1pk = ALARM#<alarm_key>, gsi1sk = <received_at>#<message_id>) lists an alarm's history.
TTL attribute: `expires_at` (epoch seconds) on everything.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

HISTORY_INDEX = "by_alarm"
PARALLEL_REQUESTS = 8  # batch chunks in flight at once (boto3 clients are thread-safe)
_BATCH_ROUNDS = 8  # bounded retries for unprocessed batch items


def table_definition(name: str) -> dict[str, Any]:
    """CreateTable arguments — the schema the infra must create (tests and the benchmark use it as-is)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "gsi1pk", "AttributeType": "S"},
            {"AttributeName": "gsi1sk", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": HISTORY_INDEX,
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


T = TypeVar("T")
R = TypeVar("R")


def parallel(function: Callable[[T], R], items: list[T], workers: int = PARALLEL_REQUESTS) -> list[R]:
    """map() over threads for I/O-bound calls; inline when there is nothing to overlap."""
    if len(items) <= 1 or workers <= 1:
        return [function(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(function, items))


# ------------------------------------------------------------------------------ attribute value codec


def to_av(value: Any) -> dict[str, Any]:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int | float):
        return {"N": repr(value) if isinstance(value, float) else str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, dict):
        return {"M": {str(k): to_av(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [to_av(v) for v in value]}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def from_av(av: dict[str, Any]) -> Any:
    ((kind, value),) = av.items()
    if kind == "S":
        return value
    if kind == "N":
        return float(value) if any(c in value for c in ".eE") else int(value)
    if kind == "BOOL":
        return bool(value)
    if kind == "NULL":
        return None
    if kind == "M":
        return {k: from_av(v) for k, v in value.items()}
    if kind == "L":
        return [from_av(v) for v in value]
    if kind == "SS":
        return list(value)
    raise TypeError(f"unsupported attribute type {kind}")


def to_item(data: dict[str, Any]) -> dict[str, Any]:
    return {k: to_av(v) for k, v in data.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: from_av(v) for k, v in item.items()}


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


# --------------------------------------------------------------------------------------------- models


@dataclass
class AlarmState:
    alarm_key: str
    version: int = 0
    title: str = ""
    severity: str = ""
    kind: str = ""
    current_state: str | None = None
    current_since: str | None = None
    notified_state: str | None = None
    last_alert: dict[str, Any] | None = None
    per_state: dict[str, dict[str, Any]] = field(default_factory=dict)
    original_key: str | None = None
    original_at: str | None = None
    original_title: str | None = None
    # message id -> decision, for the alerts absorbed by the last write of this state (see put_alarm_state)
    journal: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_record(self, expires_at: int) -> dict[str, Any]:
        return {
            "pk": f"ALARM#{self.alarm_key}",
            "sk": "STATE",
            "alarm_key": self.alarm_key,
            "version": self.version,
            "title": self.title,
            "severity": self.severity,
            "kind": self.kind,
            "current_state": self.current_state,
            "current_since": self.current_since,
            "notified_state": self.notified_state,
            "last_alert": json.dumps(self.last_alert) if self.last_alert else None,
            "per_state": self.per_state,
            "original_key": self.original_key,
            "original_at": self.original_at,
            "original_title": self.original_title,
            "journal": json.dumps(self.journal, separators=(",", ":")) if self.journal else None,
            "expires_at": expires_at,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> AlarmState:
        return cls(
            alarm_key=data["alarm_key"],
            version=int(data.get("version", 0)),
            title=data.get("title", ""),
            severity=data.get("severity", ""),
            kind=data.get("kind", ""),
            current_state=data.get("current_state"),
            current_since=data.get("current_since"),
            notified_state=data.get("notified_state"),
            last_alert=json.loads(data["last_alert"]) if data.get("last_alert") else None,
            per_state=data.get("per_state") or {},
            original_key=data.get("original_key"),
            original_at=data.get("original_at"),
            original_title=data.get("original_title"),
            journal=json.loads(data["journal"]) if data.get("journal") else {},
        )


class StateStore:
    def __init__(self, client: Any, table: str):
        self.client = client
        self.table = table

    # ------------------------------------------------------------------------------------ batch reads

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        chunks = [keys[start : start + 100] for start in range(0, len(keys), 100)]
        return [item for found in parallel(self._batch_get_chunk, chunks) for item in found]

    def _batch_get_chunk(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        pending: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        for round_number in range(_BATCH_ROUNDS):
            response = self.client.batch_get_item(RequestItems=pending)
            found.extend(from_item(i) for i in response.get("Responses", {}).get(self.table, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                return found
            time.sleep(min(0.05 * 2**round_number, 1.0))
        raise RuntimeError(f"DynamoDB batch_get_item left keys unprocessed after {_BATCH_ROUNDS} rounds")

    def get_alerts(self, message_keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = [_key(f"MSG#{m}", "ALERT") for m in dict.fromkeys(message_keys)]
        return {item["pk"][4:]: item for item in self._batch_get(keys)}

    def get_alarm_states(self, alarm_keys: Iterable[str]) -> dict[str, AlarmState]:
        keys = [_key(f"ALARM#{a}", "STATE") for a in dict.fromkeys(alarm_keys)]
        return {item["alarm_key"]: AlarmState.from_record(item) for item in self._batch_get(keys)}

    def load(
        self, message_keys: Iterable[str], alarm_keys: Iterable[str]
    ) -> tuple[dict[str, dict[str, Any]], dict[str, AlarmState]]:
        """ALERT items of these messages and states of these alarms, in as few round trips as possible."""
        keys = [_key(f"MSG#{m}", "ALERT") for m in dict.fromkeys(message_keys)]
        keys += [_key(f"ALARM#{a}", "STATE") for a in dict.fromkeys(alarm_keys)]
        alerts: dict[str, dict[str, Any]] = {}
        states: dict[str, AlarmState] = {}
        for item in self._batch_get(keys):
            if item["sk"] == "ALERT":
                alerts[item["pk"][4:]] = item
            else:
                states[item["alarm_key"]] = AlarmState.from_record(item)
        return alerts, states

    def get_alarm_state(self, alarm_key: str) -> AlarmState | None:
        response = self.client.get_item(
            TableName=self.table, Key=_key(f"ALARM#{alarm_key}", "STATE"), ConsistentRead=True
        )
        item = response.get("Item")
        return AlarmState.from_record(from_item(item)) if item else None

    def get_deliveries(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        keys = [_key(f"MSG#{m}", f"DELIVERY#{t}") for m, t in dict.fromkeys(pairs)]
        return {(item["pk"][4:], item["sk"][9:]): item for item in self._batch_get(keys)}

    # ---------------------------------------------------------------------------- decision commits

    def put_alarm_state(self, state: AlarmState, expected_version: int, *, expires_at: int) -> bool:
        """Write the alarm's state if nobody else did since we read version `expected_version`.

        This conditional put is the one serialisation point between concurrent invocations: the state
        carries a journal of the decisions it absorbed, so whoever loses re-reads it and reuses them.
        """
        condition = "attribute_not_exists(pk)" if expected_version == 0 else "version = :expected"
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Item": to_item(state.to_record(expires_at)),
            "ConditionExpression": condition,
        }
        if expected_version:
            kwargs["ExpressionAttributeValues"] = {":expected": {"N": str(expected_version)}}
        try:
            self.client.put_item(**kwargs)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def write(self, puts: list[dict[str, Any]], deletes: list[tuple[str, str]] | None = None) -> None:
        """Unconditional batch puts and deletes (idempotent: safe to repeat on a retried invocation)."""
        requests = [{"PutRequest": {"Item": to_item(i)}} for i in puts]
        requests += [{"DeleteRequest": {"Key": _key(pk, sk)}} for pk, sk in deletes or []]
        parallel(self._batch_write_chunk, [requests[start : start + 25] for start in range(0, len(requests), 25)])

    def _batch_write_chunk(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self.table: requests}
        for round_number in range(_BATCH_ROUNDS):
            response = self.client.batch_write_item(RequestItems=pending)
            pending = response.get("UnprocessedItems") or {}
            if not pending:
                return
            time.sleep(min(0.05 * 2**round_number, 1.0))
        raise RuntimeError(f"DynamoDB batch_write_item left items unprocessed after {_BATCH_ROUNDS} rounds")

    def add_counter(self, name: str, amount: int, expires_at: int) -> int:
        """Atomically add `amount`; returns the new total."""
        response = self.client.update_item(
            TableName=self.table,
            Key=_key(f"COUNTER#{name}", "COUNTER"),
            UpdateExpression="ADD #n :amount SET expires_at = :exp",
            ExpressionAttributeNames={"#n": "count"},
            ExpressionAttributeValues={":amount": {"N": str(amount)}, ":exp": {"N": str(expires_at)}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["count"]["N"])

    def put_items(self, items: list[dict[str, Any]]) -> None:
        self.write(items, [])

    def update_alert(self, message_key: str, **values: Any) -> None:
        names = {f"#k{i}": k for i, k in enumerate(values)}
        self.client.update_item(
            TableName=self.table,
            Key=_key(f"MSG#{message_key}", "ALERT"),
            UpdateExpression="SET " + ", ".join(f"#k{i} = :v{i}" for i in range(len(values))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":v{i}": to_av(v) for i, v in enumerate(values.values())},
        )

    # -------------------------------------------------------------------------------------- delivery

    def claim_delivery(
        self, message_key: str, target: str, *, now: float, lease_until: float, expires_at: int, channel: str
    ) -> tuple[str, str]:
        """('claimed', '') when this invocation may send; ('sent', ref) when already delivered; ('busy', '')
        when another invocation holds an unexpired lease on it."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=_key(f"MSG#{message_key}", f"DELIVERY#{target}"),
                UpdateExpression="SET #s = :sending, lease_until = :lease, channel = :channel, expires_at = :exp",
                # free, failed before, or held by an invocation whose lease ran out (it died mid-send)
                ConditionExpression="attribute_not_exists(pk) OR #s = :failed "
                "OR (#s = :sending AND lease_until < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={
                    ":sending": {"S": "sending"},
                    ":failed": {"S": "failed"},
                    ":lease": {"N": repr(lease_until)},
                    ":now": {"N": repr(now)},
                    ":channel": {"S": channel},
                    ":exp": {"N": str(expires_at)},
                },
            )
            return "claimed", ""
        except self.client.exceptions.ConditionalCheckFailedException:
            pass
        response = self.client.get_item(
            TableName=self.table, Key=_key(f"MSG#{message_key}", f"DELIVERY#{target}"), ConsistentRead=True
        )
        item = from_item(response.get("Item") or {})
        if item.get("status") == "sent":
            return "sent", str(item.get("ref") or "")
        return "busy", ""

    def finish_delivery(
        self,
        message_key: str,
        target: str,
        *,
        ok: bool,
        ref: str,
        error: str | None,
        now: float,
        attempts: int,
    ) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=_key(f"MSG#{message_key}", f"DELIVERY#{target}"),
            UpdateExpression="SET #s = :status, #r = :ref, finished_at = :now, last_error = :err, "
            "attempts = if_not_exists(attempts, :zero) + :n REMOVE lease_until",
            ExpressionAttributeNames={"#s": "status", "#r": "ref"},
            ExpressionAttributeValues={
                ":status": {"S": "sent" if ok else "failed"},
                ":ref": {"S": ref},
                ":now": {"N": repr(now)},
                ":err": to_av(error),
                ":zero": {"N": "0"},
                ":n": {"N": str(attempts)},
            },
        )

    # ------------------------------------------------------------------------------ sweep markers

    def pending(self, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": "PENDING"}, ":prefix": {"S": prefix}},
            "ConsistentRead": True,
        }
        for _page in range(100):  # bounded: 100 pages of up to 1 MB
            response = self.client.query(**kwargs)
            items.extend(from_item(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items

    def put_marker(self, sk: str, **values: Any) -> None:
        self.client.put_item(TableName=self.table, Item=to_item({"pk": "PENDING", "sk": sk, **values}))

    def delete_marker(self, sk: str) -> None:
        self.client.delete_item(TableName=self.table, Key=_key("PENDING", sk))

    def digest_entries(self, window: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": f"DIGEST#{window}"}},
            "ConsistentRead": True,
        }
        for _page in range(100):
            response = self.client.query(**kwargs)
            items.extend(from_item(i) for i in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return items

    def message_items(self, message_key: str) -> list[dict[str, Any]]:
        """Everything stored under one message: its ALERT, DELIVERY and ATTEMPT items."""
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"MSG#{message_key}"}},
            ConsistentRead=True,
        )
        return [from_item(i) for i in response.get("Items", [])]

    def alarm_history(self, alarm_key: str, limit: int = 100) -> list[dict[str, Any]]:
        response = self.client.query(
            TableName=self.table,
            IndexName=HISTORY_INDEX,
            KeyConditionExpression="gsi1pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"ALARM#{alarm_key}"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [from_item(i) for i in response.get("Items", [])]

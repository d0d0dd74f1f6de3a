"""Sending to each channel: transports, error classification and the bounded retry loop.

The HTTP sender is a plain function argument (`HttpSender`) so tests and benchmarks pass the real
urllib-based one pointed at 127.0.0.1 servers; base URLs of the Slack and Telegram APIs are parameters.
Nothing here logs or formats a URL, a token or a phone number: Slack webhook URLs and Telegram bot
tokens are credentials, and exception text ends up in logs and in the DLQ.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .render import EmailContent, webhook_bytes

DEFAULT_SLACK_API_BASE = "https://slack.com/api"
DEFAULT_TELEGRAM_API_BASE = "https://api.telegram.org"
SIGNATURE_HEADER = "X-Shipyard-Signature"
TIMESTAMP_HEADER = "X-Shipyard-Timestamp"
DELIVERY_HEADER = "X-Shipyard-Delivery"
USER_AGENT = "shipyard-alert-forwarder/1"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes


class TransportError(Exception):
    """No usable HTTP response: refused, reset, timed out, or not HTTP at all."""


HttpSender = Callable[[str, bytes, Mapping[str, str], float], HttpResponse]


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpResponse:
    """POST with the standard library (keeps the cold start light); HTTP error statuses are returned."""
    import socket
    import urllib.error
    import urllib.request
    from http.client import HTTPException

    # http(s) only: URLs come from validated config (CHANNELS_SECRET) or the API base parameters
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return HttpResponse(
                response.status, {k.lower(): v for k, v in response.headers.items()}, response.read(1_000_000)
            )
    except urllib.error.HTTPError as exc:
        try:
            payload = exc.read(1_000_000)
        except (OSError, HTTPException):
            payload = b""
        return HttpResponse(exc.code, {k.lower(): v for k, v in (exc.headers or {}).items()}, payload)
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            raise TransportError(f"timed out after {timeout:.1f} s") from None
        raise TransportError(f"connection failed: {type(reason).__name__}") from None
    except TimeoutError:
        raise TransportError(f"timed out after {timeout:.1f} s") from None
    except (HTTPException, ConnectionError, OSError) as exc:
        raise TransportError(f"bad or no HTTP response: {type(exc).__name__}") from None


class ChannelError(Exception):
    """A failed send. `retryable` says whether trying again can help; `retry_after` is the server's wish."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None  # an HTTP-date; the normal backoff applies


def _classify_http(resp: HttpResponse, what: str) -> ChannelError:
    status = resp.status
    if status == 429:
        return ChannelError(
            f"{what}: HTTP 429 rate limited",
            retryable=True,
            retry_after=_retry_after(resp.headers),
            status=status,
        )
    if status >= 500 or status == 408:
        return ChannelError(
            f"{what}: HTTP {status}", retryable=True, retry_after=_retry_after(resp.headers), status=status
        )
    return ChannelError(
        f"{what}: HTTP {status} (not retried: the request itself is refused)", retryable=False, status=status
    )


def _json_body(resp: HttpResponse, what: str) -> dict[str, Any]:
    try:
        data = json.loads(resp.body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ChannelError(
            f"{what}: HTTP {resp.status} with a body that is not JSON", retryable=True, status=resp.status
        ) from None
    if not isinstance(data, dict):
        raise ChannelError(
            f"{what}: HTTP {resp.status} with an unexpected JSON body", retryable=True, status=resp.status
        )
    return data


class Transport(Protocol):
    channel: str

    def send(self, payload: Any, timeout: float, delivery_key: str) -> str:
        """Send once; return the provider's message id ("" if none). Raise ChannelError on failure."""
        ...


def _post(
    http: HttpSender, url: str, body: bytes, headers: Mapping[str, str], timeout: float, what: str
) -> HttpResponse:
    try:
        return http(url, body, headers, timeout)
    except TransportError as exc:
        raise ChannelError(f"{what}: {exc}", retryable=True) from None


@dataclass
class SlackWebhookTransport:
    http: HttpSender
    webhook_url: str
    channel: str = "slack"

    def send(self, payload: Any, timeout: float, delivery_key: str) -> str:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        resp = _post(self.http, self.webhook_url, body, headers, timeout, "slack webhook")
        if 200 <= resp.status < 300:
            return ""  # incoming webhooks return "ok" and no message id: recoveries reference by text
        raise _classify_http(resp, "slack webhook")


@dataclass
class SlackApiTransport:
    http: HttpSender
    token: str
    slack_channel: str
    api_base: str = DEFAULT_SLACK_API_BASE
    channel: str = "slack"

    def send(self, payload: Any, timeout: float, delivery_key: str) -> str:
        body = json.dumps({**payload, "channel": self.slack_channel}, ensure_ascii=False).encode("utf-8")
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Authorization": f"Bearer {self.token}",
            "User-Agent": USER_AGENT,
        }
        what = "slack chat.postMessage"
        resp = _post(self.http, f"{self.api_base.rstrip('/')}/chat.postMessage", body, headers, timeout, what)
        if resp.status != 200:
            raise _classify_http(resp, what)
        data = _json_body(resp, what)
        if data.get("ok") is True:
            return str(data.get("ts") or "")
        error = str(data.get("error") or "unknown_error")
        retryable = error in (
            "ratelimited",
            "internal_error",
            "fatal_error",
            "service_unavailable",
            "request_timeout",
        )
        raise ChannelError(f"{what}: error {error}", retryable=retryable, retry_after=_retry_after(resp.headers))


@dataclass
class TelegramTransport:
    http: HttpSender
    token: str
    chat_id: str
    api_base: str = DEFAULT_TELEGRAM_API_BASE
    channel: str = "telegram"

    def send(self, payload: Any, timeout: float, delivery_key: str) -> str:
        body = json.dumps({**payload, "chat_id": self.chat_id}, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        what = "telegram sendMessage"  # never the URL: it contains the bot token
        resp = _post(
            self.http,
            f"{self.api_base.rstrip('/')}/bot{self.token}/sendMessage",
            body,
            headers,
            timeout,
            what,
        )
        if resp.status == 200:
            data = _json_body(resp, what)
            if data.get("ok") is True and isinstance(data.get("result"), dict):
                return str(data["result"].get("message_id", ""))
            raise ChannelError(f"{what}: HTTP 200 but ok is not true", retryable=True, status=200)
        try:
            data = json.loads(resp.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            data = {}
        parameters = data.get("parameters") if isinstance(data, dict) else None
        if isinstance(parameters, dict) and isinstance(parameters.get("retry_after"), int | float):
            description = str(data.get("description", ""))[:200]
            return_after = float(parameters["retry_after"])
            raise ChannelError(
                f"{what}: HTTP {resp.status} {description}".strip(),
                retryable=True,
                retry_after=return_after,
                status=resp.status,
            )
        error = _classify_http(resp, what)
        if isinstance(data, dict) and data.get("description"):
            error = ChannelError(
                f"{error} — {str(data['description'])[:200]}",
                retryable=error.retryable,
                retry_after=error.retry_after,
                status=resp.status,
            )
        raise error


def epoch_of(iso: Any) -> str:
    """The timestamp header repeats the body's signed `sent_at` as Unix seconds."""
    from datetime import datetime

    try:
        return str(int(datetime.fromisoformat(str(iso)).timestamp()))
    except ValueError:
        return str(int(time.time()))


def webhook_signature(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass
class WebhookTransport:
    http: HttpSender
    url: str
    signing_key: str
    channel: str = "webhook"

    def send(self, payload: Any, timeout: float, delivery_key: str) -> str:
        body = webhook_bytes(payload)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": USER_AGENT,
            SIGNATURE_HEADER: webhook_signature(self.signing_key, body),
            TIMESTAMP_HEADER: epoch_of(payload.get("sent_at")),
            DELIVERY_HEADER: delivery_key,
        }
        resp = _post(self.http, self.url, body, headers, timeout, "webhook")
        if 200 <= resp.status < 300:
            return delivery_key
        raise _classify_http(resp, "webhook")


_AWS_RETRYABLE = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "ThrottledException",
    "RequestLimitExceeded",
    "ServiceUnavailable",
    "InternalFailure",
    "InternalError",
    "KMSThrottlingException",
}


def _aws_error(exc: Exception, what: str) -> ChannelError:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = str(response.get("Error", {}).get("Code", "Unknown"))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        retryable = code in _AWS_RETRYABLE or (isinstance(status, int) and status >= 500)
        return ChannelError(f"{what}: {code}", retryable=retryable, status=status if isinstance(status, int) else None)
    # botocore connection/timeout errors carry no response
    return ChannelError(f"{what}: {type(exc).__name__}", retryable=True)


@dataclass
class EmailTransport:
    ses: Any
    sender: str
    recipients: tuple[str, ...]
    channel: str = "email"

    def send(self, payload: Any, timeout: float, delivery_key: str) -> str:
        assert isinstance(payload, EmailContent)
        try:
            result = self.ses.send_email(
                Source=self.sender,
                Destination={"ToAddresses": list(self.recipients)},
                Message={
                    "Subject": {"Data": payload.subject, "Charset": "UTF-8"},
                    "Body": {
                        "Text": {"Data": payload.text, "Charset": "UTF-8"},
                        "Html": {"Data": payload.html, "Charset": "UTF-8"},
                    },
                },
            )
        except Exception as exc:  # botocore errors are only importable with botocore loaded
            raise _aws_error(exc, "ses send_email") from None
        return str(result.get("MessageId", ""))


@dataclass
class SmsTransport:
    sns: Any
    number: str
    channel: str = "sms"

    def send(self, payload: Any, timeout: float, delivery_key: str) -> str:
        try:
            result = self.sns.publish(
                PhoneNumber=self.number,
                Message=str(payload),
                MessageAttributes={
                    "AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"},
                },
            )
        except Exception as exc:
            raise _aws_error(exc, "sns publish (sms)") from None
        return str(result.get("MessageId", ""))


def mask_number(number: str) -> str:
    return number[:3] + "*" * max(len(number) - 7, 0) + number[-4:]


def target_id(channel: str, address: str = "") -> str:
    """Delivery target name used in idempotency keys and history — hashed so no number is stored."""
    if not address:
        return channel
    return f"{channel}#{hashlib.sha256(address.encode()).hexdigest()[:12]}"


# ------------------------------------------------------------------------------------------------ retry


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 8.0
    reserve_seconds: float = 2.0  # left for bookkeeping writes before the Lambda's deadline


@dataclass
class Attempt:
    number: int
    started_at: float
    duration_ms: int
    outcome: str  # sent | failed
    error: str | None = None
    status: int | None = None
    retry_after: float | None = None


@dataclass
class SendOutcome:
    ok: bool
    ref: str = ""
    error: str | None = None
    attempts: list[Attempt] = field(default_factory=list)


def send_with_retry(
    send: Callable[[float], str],
    *,
    timeout: float,
    policy: RetryPolicy,
    remaining: Callable[[], float],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    rng: random.Random,
) -> SendOutcome:
    """Try `send(timeout)` up to max_attempts, within the invocation's remaining time.

    Exponential backoff with full jitter between attempts; a server's Retry-After (HTTP header or
    Telegram's parameters.retry_after) is honoured — if it does not fit in the time left we stop and let
    the invocation fail, so Lambda's own retry comes back later instead of us hammering a limiter.
    """
    outcome = SendOutcome(ok=False)
    for number in range(1, policy.max_attempts + 1):
        budget = remaining() - policy.reserve_seconds
        if budget < 0.2:
            outcome.error = (outcome.error or "not attempted") + "; out of invocation time"
            return outcome
        started = clock()
        try:
            ref = send(min(timeout, budget))
        except ChannelError as exc:
            outcome.attempts.append(
                Attempt(
                    number,
                    started,
                    int((clock() - started) * 1000),
                    "failed",
                    str(exc),
                    exc.status,
                    exc.retry_after,
                )
            )
            outcome.error = str(exc)
            if not exc.retryable or number == policy.max_attempts:
                return outcome
            backoff = rng.uniform(0, min(policy.max_delay, policy.base_delay * 2 ** (number - 1)))
            delay = max(exc.retry_after, backoff * 0.1) if exc.retry_after is not None else backoff
            if delay > remaining() - policy.reserve_seconds - 0.2:
                outcome.error += f"; next try in {delay:.1f} s does not fit in the invocation"
                return outcome
            sleep(delay)
            continue
        outcome.attempts.append(Attempt(number, started, int((clock() - started) * 1000), "sent"))
        outcome.ok, outcome.ref, outcome.error = True, ref, None
        return outcome
    return outcome

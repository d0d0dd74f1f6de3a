"""Small real HTTP servers on 127.0.0.1 standing in for the Slack webhook/API, the Telegram Bot API and a
webhook receiver, with per-request faults: 500, 429 (+Retry-After), slower than the client's timeout,
an invalid HTTP response ("garbage"), a 200 whose body is not JSON, and 400."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    fault: str | None
    accepted: bool = False

    @property
    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Fault:
    kind: str  # 500 | 429 | slow | garbage | bad_json | 400
    retry_after: float | None = None


class Sink:
    """kind: slack_webhook | slack_api | telegram | webhook."""

    def __init__(self, kind: str, *, slow_seconds: float = 3.0, port: int = 0):
        self.kind = kind
        self.slow_seconds = slow_seconds
        self.requests: list[Received] = []
        self._faults: deque[Fault] = deque()
        self._always: Fault | None = None
        self._matching: list[tuple[bytes, Fault]] = []
        self._lock = threading.Lock()
        self._seq = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a stuck client cannot pin a server thread forever

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                sink._handle(self, body)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        paths = {"slack_webhook": "/services/T000/B000/XXXX", "webhook": "/hooks/alerts"}
        return self.base_url + paths.get(self.kind, "")

    def fail_next(self, *faults: Fault | str) -> None:
        with self._lock:
            self._faults.extend(f if isinstance(f, Fault) else Fault(f) for f in faults)

    def fail_matching(self, needle: str, fault: Fault | str) -> None:
        """Every request whose body contains `needle` gets `fault` (a receiver that rejects one alert)."""
        with self._lock:
            self._matching.append((needle.encode(), Fault(fault) if isinstance(fault, str) else fault))

    def clear_faults(self) -> None:
        with self._lock:
            self._matching.clear()
            self._faults.clear()
            self._always = None

    def fail_always(self, fault: Fault | str | None) -> None:
        with self._lock:
            self._always = Fault(fault) if isinstance(fault, str) else fault

    @property
    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.accepted]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _success_body(self, seq: int) -> bytes:
        if self.kind == "slack_webhook":
            return b"ok"
        if self.kind == "slack_api":
            return json.dumps({"ok": True, "channel": "C0ALERTS", "ts": f"1700000000.{seq:06d}"}).encode()
        if self.kind == "telegram":
            return json.dumps({"ok": True, "result": {"message_id": 1000 + seq, "chat": {"id": -100}}}).encode()
        return b""

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            matched = next((f for needle, f in self._matching if needle in body), None)
            fault = matched or (self._faults.popleft() if self._faults else self._always)
            self._seq += 1
            seq = self._seq
            record = Received(
                handler.path,
                {k.lower(): v for k, v in handler.headers.items()},
                body,
                time.monotonic(),
                fault.kind if fault else None,
            )
            self.requests.append(record)
        if fault is None:
            with self._lock:
                record.accepted = True  # before responding: the client may look as soon as it has the answer
            self._respond(handler, 200, self._success_body(seq))
            return
        if fault.kind == "slow":
            time.sleep(self.slow_seconds)
            self._respond(handler, 200, self._success_body(seq))  # too late: the client gave up
            return
        if fault.kind == "garbage":
            handler.wfile.write(b"\x00\x01 this is not HTTP at all\r\n\r\n")
            handler.close_connection = True
            return
        if fault.kind == "bad_json":
            self._respond(handler, 200, b"<html>upstream proxy error</html>")
            return
        if fault.kind == "429":
            headers = (
                {"Retry-After": str(int(fault.retry_after))}
                if fault.retry_after is not None and self.kind != "telegram"
                else {}
            )
            payload = b"rate limited"
            if self.kind == "telegram":
                payload = json.dumps(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {fault.retry_after}",
                        "parameters": {"retry_after": fault.retry_after},
                    }
                ).encode()
            self._respond(handler, 429, payload, headers)
            return
        if fault.kind == "400":
            payload = json.dumps(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            ).encode()
            self._respond(handler, 400, payload)
            return
        self._respond(handler, 500, b"internal error")

    @staticmethod
    def _respond(
        handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        respond(handler, status, body, headers)


def respond(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    """Answer with a body and a Content-Length; a client that already gave up is not an error here."""
    try:
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    except (BrokenPipeError, ConnectionResetError):
        pass


def unused_port() -> int:
    """A loopback port nobody listens on (connection refused) — until a Sink is started on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Sinks:
    slack: Sink
    telegram: Sink
    webhook: Sink
    extra: list[Sink] = field(default_factory=list)

    def all(self) -> list[Sink]:
        return [self.slack, self.telegram, self.webhook, *self.extra]

    def stop(self) -> None:
        for sink in self.all():
            sink.stop()

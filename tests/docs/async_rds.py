"""A stand-in for RDS's asynchrony, in front of moto (which applies every modification at once).

Real RDS applies ``modify-db-instance`` in the background: after a rename the new name answers
DBInstanceNotFound for a while (so ``aws rds wait db-instance-available`` on it fails at once: boto/boto3#2613,
aws/aws-sdk#421) and the old name is still taken (a rename back to it fails with DBInstanceAlreadyExists);
after ``--manage-master-user-password`` the instance has no ``MasterUserSecret`` until the change is applied.
This proxy forwards every request to moto and plays those windows for the next ``LAG`` describes of the
instance concerned, and logs the service's count and scaling changes in order, so the rehearsal can tell
that scaling was suspended around the switch. Loopback only; it stands in for the cloud API, never for our code.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LAG = 1  # describes of the instance that still see the change pending
NOT_FOUND = (
    '<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type>'
    "<Code>DBInstanceNotFound</Code><Message>DBInstance {name} not found.</Message></Error>"
    "<RequestId>async-rds</RequestId></ErrorResponse>"
)
ALREADY_EXISTS = (
    '<ErrorResponse xmlns="http://rds.amazonaws.com/doc/2014-10-31/"><Error><Type>Sender</Type>'
    "<Code>DBInstanceAlreadyExists</Code><Message>DB instance already exists</Message></Error>"
    "<RequestId>async-rds</RequestId></ErrorResponse>"
)


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.renaming: dict[str, list[str | int]] = {}  # new name → [old name, describes left]
        self.secret_pending: dict[str, int] = {}  # instance → describes left without MasterUserSecret
        self.seen: list[str] = []  # what was played, for the test's own assertions


def _handler(target: str, state: _State) -> type[BaseHTTPRequestHandler]:
    upstream = urlsplit(target)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
            connection = http.client.HTTPConnection(upstream.hostname or "127.0.0.1", upstream.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "content-length")}
            headers["Content-Length"] = str(len(body))
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            connection.close()
            return response.status, response.getheaders(), data

        def _reply(self, status: int, headers: list[tuple[str, str]], data: bytes) -> None:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
            self._note_switch_steps(body)
            action, name = form.get("Action"), form.get("DBInstanceIdentifier", "")
            xml = [("Content-Type", "text/xml")]
            with state.lock:
                if action == "DescribeDBInstances" and name in state.renaming and int(state.renaming[name][1]) > 0:
                    state.renaming[name][1] = int(state.renaming[name][1]) - 1
                    state.seen.append(f"not-found {name}")
                    return self._reply(404, xml, NOT_FOUND.format(name=name).encode())
                new_name = form.get("NewDBInstanceIdentifier")
                if (
                    action == "ModifyDBInstance"
                    and new_name
                    and any(old == new_name and int(left) > 0 for old, left in state.renaming.values())
                ):
                    state.seen.append(f"already-exists {new_name}")
                    return self._reply(400, xml, ALREADY_EXISTS.encode())
            status, headers, data = self._forward(body)
            with state.lock:
                if action == "ModifyDBInstance" and status == 200:
                    if new_name:
                        state.renaming[new_name] = [name, LAG]
                    if form.get("ManageMasterUserPassword") == "true":
                        state.secret_pending[name] = LAG
                if action == "DescribeDBInstances" and state.secret_pending.get(name, 0) > 0:
                    state.secret_pending[name] -= 1
                    state.seen.append(f"no-secret-yet {name}")
                    data = re.sub(rb"<MasterUserSecret>.*?</MasterUserSecret>", b"", data, flags=re.S)
            return self._reply(status, headers, data)

        def _note_switch_steps(self, body: bytes) -> None:
            """Log the service's count and scaling changes, in order (JSON-protocol ECS and autoscaling)."""
            operation = (self.headers.get("X-Amz-Target") or "").rsplit(".", 1)[-1]
            if operation not in ("UpdateService", "RegisterScalableTarget"):
                return
            request = json.loads(body or b"{}")
            with state.lock:
                if operation == "UpdateService" and "desiredCount" in request:
                    state.seen.append(f"desired-count {request['desiredCount']}")
                suspended = request.get("SuspendedState")
                if operation == "RegisterScalableTarget" and suspended:
                    state.seen.append("scaling " + ("suspended" if all(suspended.values()) else "resumed"))

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    return Handler


@contextmanager
def async_rds(moto_endpoint: str) -> Iterator[tuple[str, list[str]]]:
    """``(endpoint, played)``: an endpoint on 127.0.0.1 with RDS's delays, and the log of what it played."""
    state = _State()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(moto_endpoint, state))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state.seen
    finally:
        server.shutdown()
        server.server_close()

"""A small real HTTP server on 127.0.0.1 that answers AWS Backup's PutRestoreValidationResult (moto 5.2 lacks it).

It speaks the operation's REST-JSON protocol as botocore's service model describes it: ``PUT
/restore-jobs/{restoreJobId}/validations`` with a JSON body ``{"ValidationStatus", "ValidationStatusMessage"}``,
answered by ``204`` and an empty body; errors as ``x-amzn-ErrorType`` plus a JSON body. It records every
request (method, path, headers, parsed body) for the test to assert on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from .loopback_server import LoopbackServer


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def restore_job_id(self) -> str:
        # /restore-jobs/<id>/validations
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        return unquote(parts[1]) if len(parts) == 3 and parts[0] == "restore-jobs" else ""


class BackupApi(LoopbackServer):
    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.fail_with: tuple[int, str, str] | None = None
        """(HTTP status, error type, message) to answer with instead of 204."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                api.requests.append(
                    RecordedRequest(
                        method="PUT",
                        path=self.path,
                        headers={key.lower(): value for key, value in self.headers.items()},
                        body=json.loads(raw) if raw else {},
                    )
                )
                if api.fail_with is not None:
                    status, error_type, message = api.fail_with
                    payload = json.dumps({"__type": error_type, "Message": message}).encode()
                    self.send_response(status)
                    self.send_header("x-amzn-ErrorType", error_type)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                valid = self.path.startswith("/restore-jobs/") and self.path.endswith("/validations")
                self.send_response(204 if valid else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

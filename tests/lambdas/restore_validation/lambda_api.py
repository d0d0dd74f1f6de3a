"""A small real HTTP server on 127.0.0.1 standing in for the Lambda service's Invoke API (moto runs functions
only in Docker, which these machines lack).

It speaks the operation's REST-JSON protocol as botocore's service model describes it: ``POST
/2015-03-31/functions/{FunctionName}/invocations`` with the payload as the body, answered by ``200`` and the
function's JSON result. Like Lambda, an exception raised by the function is still a ``200`` with header
``X-Amz-Function-Error: Unhandled`` and ``{"errorMessage", "errorType"}`` as the body; an unknown function is
a ``404`` ``ResourceNotFoundException``. The function is our own code (a Python callable the test registers),
run in-process: only the transport is the stand-in's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from .loopback_server import LoopbackServer


@dataclass(frozen=True)
class Invocation:
    function: str
    invocation_type: str
    authorization: str
    payload: Any


class LambdaApi(LoopbackServer):
    def __init__(self) -> None:
        self.functions: dict[str, Callable[[Any], Any]] = {}
        self.invocations: list[Invocation] = []
        self.function_error: tuple[str, str] | None = None
        """(errorType, errorMessage) every invocation ends with instead of running, e.g. a timeout."""
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                parts = self.path.split("?", 1)[0].strip("/").split("/")
                length = int(self.headers.get("Content-Length") or 0)
                payload = json.loads(self.rfile.read(length) or b"null") if length else None
                if len(parts) != 4 or parts[:2] != ["2015-03-31", "functions"] or parts[3] != "invocations":
                    self._answer(404, {"message": f"no such route {self.path}"})
                    return
                name = unquote(parts[2])
                api.invocations.append(
                    Invocation(
                        function=name,
                        invocation_type=self.headers.get("X-Amz-Invocation-Type", "RequestResponse"),
                        authorization=self.headers.get("Authorization", ""),
                        payload=payload,
                    )
                )
                function = api.functions.get(name)
                if function is None:
                    message = f"Function not found: arn:aws:lambda:us-east-1:123456789012:function:{name}"
                    self._answer(404, {"Type": "User", "message": message}, error_type="ResourceNotFoundException")
                    return
                if api.function_error is not None:
                    error_type, message = api.function_error
                    self._answer(200, {"errorType": error_type, "errorMessage": message}, function_error="Unhandled")
                    return
                try:
                    result = function(payload)
                except Exception as error:  # what the Lambda runtime does with an exception the handler raised
                    body = {"errorType": type(error).__name__, "errorMessage": str(error)}
                    self._answer(200, body, function_error="Unhandled")
                    return
                self._answer(200, result)

            def _answer(
                self, status: int, body: Any, *, error_type: str | None = None, function_error: str | None = None
            ) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                if error_type is not None:
                    self.send_header("x-amzn-ErrorType", error_type)
                if function_error is not None:
                    self.send_header("X-Amz-Function-Error", function_error)
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        super().__init__(Handler)

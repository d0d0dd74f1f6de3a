"""Loopback TCP servers that stall a PostgreSQL client at a chosen phase (the client-side timeouts' tests).

- `SilentServer()`: accepts TCP and never says a word (the client stalls in TLS or in the login).
- `SilentServer(answer_login=True)`: answers the startup message like a trusting PostgreSQL (AuthenticationOk,
  ReadyForQuery) and then never answers a statement (the client stalls in the statement phase).

Only 127.0.0.1; every connection is held until `close()`, and the accept loop ends with it.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class SilentServer:
    def __init__(self, *, answer_login: bool = False) -> None:
        self.answer_login = answer_login
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)
            if self.answer_login:
                self._login(conn)

    def _login(self, conn: socket.socket) -> None:
        """Read the StartupMessage (length-prefixed) and say: authenticated, ready. Then silence."""
        conn.settimeout(5)
        try:
            length = int.from_bytes(_read(conn, 4), "big")
            _read(conn, length - 4)
            conn.sendall(b"R" + (8).to_bytes(4, "big") + (0).to_bytes(4, "big") + b"Z" + (5).to_bytes(4, "big") + b"I")
        except OSError:
            return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=5)
        for conn in self._held:
            conn.close()

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError("closed")
        data += chunk
    return data

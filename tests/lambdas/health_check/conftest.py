from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.tls import LOOPBACK, IssuedCert, Pki

from .support import LocalHttpServer, PostgresTlsFront

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

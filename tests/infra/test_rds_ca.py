"""`make rds-ca`: fetch AWS's RDS CA bundle over HTTPS, refuse anything that is not one, install atomically.

The downloads come from a real HTTP server on 127.0.0.1 serving certificates made here with the same
subject fields AWS's bundle uses (O=Amazon Web Services, Inc., OU=Amazon RDS, CN=Amazon RDS <region> Root CA ...).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra import rds_ca
from infra.packaging import function_entries

NOW = dt.datetime.now(dt.UTC)


def _rds_name(common_name: str, organization: str = rds_ca.AMAZON_ORGANIZATION) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Amazon RDS"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _certificate(
    name: x509.Name, *, ca: bool = True, valid_until: dt.datetime | None = None, valid_from: dt.datetime | None = None
) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from or NOW - dt.timedelta(days=30))
        .not_valid_after(valid_until or NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _bundle(*regions: str) -> bytes:
    return b"".join(_certificate(_rds_name(f"Amazon RDS {region} Root CA RSA2048 G1")) for region in regions)


GOOD = _bundle("us-east-1", "us-west-2", "sa-east-1")


class _Served:
    def __init__(self) -> None:
        self.body = GOOD
        self.status = 200
        self.requests = 0


@pytest.fixture
def served() -> Iterator[tuple[_Served, str]]:
    state = _Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            self.send_response(state.status)
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/global/global-bundle.pem"
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------------------- validation


def test_a_bundle_of_amazon_rds_root_cas_is_accepted() -> None:
    assert rds_ca.validate_bundle(GOOD) == 3


@pytest.mark.parametrize(
    ("pem", "reason"),
    [
        (b"<html><body>Access Denied</body></html>", "holds no PEM certificates \\(starts with '<html>"),
        (b"", "holds no PEM certificates"),
        (_certificate(_rds_name("Amazon RDS us-east-1 Root CA RSA2048 G1"), ca=False), "is not a CA certificate"),
        (GOOD + _certificate(_rds_name("Evil Root CA", "Evil Corp")), "is not an Amazon RDS CA"),
        (_certificate(_rds_name("Some Other CA")), "is not an Amazon RDS CA"),
        (
            _certificate(_rds_name("Amazon RDS us-east-1 Root CA RSA2048 G1"), valid_until=NOW - dt.timedelta(days=1)),
            "none of the 1 certificates is valid now",
        ),
    ],
    ids=["html", "empty", "leaf", "foreign-ca-appended", "not-rds", "expired"],
)
def test_anything_else_is_refused_with_the_reason(pem: bytes, reason: str) -> None:
    with pytest.raises(rds_ca.BundleError, match=reason):
        rds_ca.validate_bundle(pem)


# ------------------------------------------------------------------------------------------------- fetch + install


def test_install_fetches_validates_and_writes(served: tuple[_Served, str], tmp_path: Path) -> None:
    state, url = served
    target = tmp_path / "lambdas" / "shared" / "rds-ca-bundle.pem"
    assert "written (3 certificates" in rds_ca.install(url, target)
    assert target.read_bytes() == GOOD
    assert "unchanged" in rds_ca.install(url, target)
    assert state.requests == 2
    assert [p.name for p in target.parent.iterdir()] == ["rds-ca-bundle.pem"]  # no temporary file left


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"<html>maintenance</html>", 200, "holds no PEM certificates"),
        (b"", 503, "download failed"),
        (b"-" * (rds_ca.MAX_BYTES + 10), 200, "more than"),
    ],
    ids=["html-page", "http-503", "oversized"],
)
def test_a_bad_download_leaves_the_installed_bundle_alone(
    served: tuple[_Served, str], tmp_path: Path, body: bytes, status: int, reason: str
) -> None:
    state, url = served
    target = tmp_path / "rds-ca-bundle.pem"
    target.write_bytes(GOOD)
    state.body, state.status = body, status
    with pytest.raises(rds_ca.BundleError, match=reason):
        rds_ca.install(url, target)
    assert target.read_bytes() == GOOD
    assert [p.name for p in tmp_path.iterdir()] == ["rds-ca-bundle.pem"]


@pytest.mark.parametrize("url", ["http://truststore.pki.rds.amazonaws.com/global/global-bundle.pem", "ftp://x/y"])
def test_only_https_is_trusted_for_a_trust_anchor(url: str) -> None:
    def never(*_: object, **__: object) -> None:
        raise AssertionError("must refuse before connecting")

    with pytest.raises(rds_ca.BundleError, match="https only"):
        rds_ca.fetch(url, opener=never)


def test_cli_check_and_fetch(served: tuple[_Served, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, url = served
    target = tmp_path / "bundle.pem"
    assert rds_ca.main(["--check", "--output", str(target)]) == 1
    assert "no such file" in capsys.readouterr().err
    assert rds_ca.main(["--url", url, "--output", str(target)]) == 0
    assert rds_ca.main(["--check", "--output", str(target)]) == 0
    assert "3 Amazon RDS CA certificates" in capsys.readouterr().out


def test_cli_by_default_writes_the_lambdas_copy_and_the_api_image_copy(
    served: tuple[_Served, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One download, the same checked bytes in lambdas/shared/ and in the API's build context (app/certs/)."""
    _, url = served
    lambdas_copy, image_copy = tmp_path / "lambdas" / "bundle.pem", tmp_path / "app" / "certs" / "bundle.pem"
    monkeypatch.setattr(rds_ca, "BUNDLE_PATH", lambdas_copy)
    monkeypatch.setattr(rds_ca, "APP_BUNDLE_PATH", image_copy)
    assert rds_ca.main(["--url", url]) == 0
    assert lambdas_copy.read_bytes() == image_copy.read_bytes() == GOOD
    assert rds_ca.main(["--check"]) == 0
    assert rds_ca.IMAGE_PATH == "/srv/app/certs/rds-ca-bundle.pem"
    assert rds_ca.IMAGE_PATH.endswith("/" + rds_ca.APP_BUNDLE_RELATIVE)  # app/ is copied to /srv/app


# ------------------------------------------------------------------------------------------------- packaging


def test_the_bundle_goes_into_every_function_archive(tmp_path: Path) -> None:
    """Where `make rds-ca` writes is where every Lambda finds it: lambdas/shared is in each zip."""
    lambdas = tmp_path / "lambdas"
    (lambdas / "shared").mkdir(parents=True)
    (lambdas / "__init__.py").write_text("")
    (lambdas / "shared" / "__init__.py").write_text("")
    for package in ("auto_confirm", "health_check"):
        (lambdas / package).mkdir()
        (lambdas / package / "handler.py").write_text("def handler(event, context): ...\n")
    bundle = lambdas.parent / rds_ca.ARCHIVE_PATH
    bundle.write_bytes(GOOD)
    assert rds_ca.BUNDLE_PATH.relative_to(rds_ca.REPO_ROOT).as_posix() == rds_ca.ARCHIVE_PATH
    for package in ("auto_confirm", "health_check"):
        entries = dict(function_entries(package, lambdas_dir=lambdas))
        assert entries[rds_ca.ARCHIVE_PATH] == GOOD
    assert rds_ca.archive_path_or_warn("test", bundle=bundle) == rds_ca.ARCHIVE_PATH

"""AWS's RDS certificate authorities, shipped inside every Lambda archive so database TLS is verified.

RDS server certificates chain to Amazon RDS CAs that no system trust store holds. Without the bundle our
Lambdas either cannot verify the database (the health check reports `tls`) or encrypt without knowing who
they talk to (auto-confirm, the restore validator). The bundle is public, versioned by AWS and changes a
few times a year, so it is fetched, not hand-copied: `make rds-ca` (this module's CLI) downloads it from
AWS's trust store over HTTPS, checks that it holds only Amazon RDS CA certificates, at least one of them
currently valid, and writes it to `lambdas/shared/rds-ca-bundle.pem` (lambdas/shared goes into every function
archive) and to `app/certs/rds-ca-bundle.pem` (the API image's build context). The deploy workflows run it
before `pulumi up`/`preview`; commit the files if you prefer pinning them.

When the file is absent the program still plans and deploys: the components that would use it say so with
`pulumi.log.warn` and leave the CA setting out (see `archive_path_or_warn`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLE_PATH = REPO_ROOT / "lambdas" / "shared" / "rds-ca-bundle.pem"
"""Where the bundle lives in the repository (and so in every function archive)."""
ARCHIVE_PATH = "lambdas/shared/rds-ca-bundle.pem"
"""The same file relative to the archive root, which is the Lambda's working directory (/var/task)."""
APP_BUNDLE_RELATIVE = "certs/rds-ca-bundle.pem"
"""Where `make rds-ca` also puts it inside the API's build context (app/), so the image carries it."""
APP_BUNDLE_PATH = REPO_ROOT / "app" / APP_BUNDLE_RELATIVE
IMAGE_PATH = "/srv/app/" + APP_BUNDLE_RELATIVE
"""The bundle inside the API image: app/Dockerfile copies the build context to /srv/app."""
DEFAULT_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
"""All commercial regions' RDS CAs in one file (AWS: "Using SSL/TLS to encrypt a connection to a DB instance")."""
MAX_BYTES = 2_000_000
"""The global bundle is ~160 kB; anything this large is not it."""
TIMEOUT_S = 30.0
AMAZON_ORGANIZATION = "Amazon Web Services, Inc."


class BundleError(ValueError):
    """The downloaded or existing file is not a usable RDS CA bundle; the message says why."""


def validate_bundle(pem: bytes, *, now: Any = None) -> int:
    """Raise :class:`BundleError` unless ``pem`` holds only Amazon RDS CA certificates, one valid now.

    Returns how many certificates it holds. Checks, in order: PEM certificates at all (an HTML error page
    is not); each one a CA (basicConstraints CA:TRUE); each one issued to and by Amazon Web Services'
    RDS CAs; at least one inside its validity period.
    """
    import datetime as dt

    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        certificates = []
    if not certificates:
        start = pem[:60].decode("utf-8", "replace").strip()
        raise BundleError(f"holds no PEM certificates (starts with {start!r})")
    moment = now or dt.datetime.now(dt.UTC)
    valid_now = 0
    for index, certificate in enumerate(certificates, start=1):
        subject = certificate.subject.rfc4514_string()
        try:
            constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise BundleError(f"certificate {index} ({subject}) is not a CA certificate")
        for role, name in (("subject", certificate.subject), ("issuer", certificate.issuer)):
            organizations = [a.value for a in name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
            common_names = [str(a.value) for a in name.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if organizations != [AMAZON_ORGANIZATION] or not any("RDS" in cn for cn in common_names):
                raise BundleError(f"certificate {index}: {role} {name.rfc4514_string()} is not an Amazon RDS CA")
        if certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
            valid_now += 1
    if valid_now == 0:
        raise BundleError(f"none of the {len(certificates)} certificates is valid now")
    return len(certificates)


Opener = Callable[..., Any]


def fetchable(url: str) -> bool:
    """HTTPS only; plain HTTP only from 127.0.0.1 (the tests' local server)."""
    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname == "127.0.0.1")


def fetch(url: str, *, opener: Opener = urllib.request.urlopen, timeout_s: float = TIMEOUT_S) -> bytes:
    """Download ``url`` (HTTPS only; plain HTTP only from 127.0.0.1, for tests), at most :data:`MAX_BYTES`."""
    if not fetchable(url):
        raise BundleError(f"{url}: the bundle is a trust anchor; fetch it over https only")
    try:
        with opener(url, timeout=timeout_s) as response:
            body: bytes = response.read(MAX_BYTES + 1)
    except OSError as error:
        raise BundleError(f"{url}: download failed ({error})") from None
    if len(body) > MAX_BYTES:
        raise BundleError(f"{url}: more than {MAX_BYTES} bytes; not an RDS CA bundle")
    return body


def install(url: str = DEFAULT_URL, target: Path = BUNDLE_PATH, *, opener: Opener = urllib.request.urlopen) -> str:
    """Fetch, validate, and replace ``target`` atomically; an invalid download leaves ``target`` as it was."""
    return write_bundle(fetch(url, opener=opener), target, source=url)


def write_bundle(body: bytes, target: Path, *, source: str) -> str:
    """Validate ``body`` and replace ``target`` atomically (unchanged files are left alone)."""
    count = validate_bundle(body)
    if target.exists() and target.read_bytes() == body:
        return f"{target}: unchanged ({count} certificates)"
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".rds-ca-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(body)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return f"{target}: written ({count} certificates from {source})"


def archive_path_or_warn(purpose: str, bundle: Path = BUNDLE_PATH) -> str | None:
    """The in-archive path of the bundle when the repository has it; otherwise None and a plan warning."""
    if bundle.is_file():
        return ARCHIVE_PATH
    import pulumi

    pulumi.log.warn(
        f"{ARCHIVE_PATH} is missing, so {purpose} cannot verify the database's certificate. "
        "Run `make rds-ca` before `pulumi up` (the deploy workflow does)."
    )
    return None


def image_path_or_warn(purpose: str, app_dir: Path) -> str | None:
    """The bundle's path in the API image when the build context has it; otherwise None and a plan warning."""
    if (app_dir / APP_BUNDLE_RELATIVE).is_file():
        return IMAGE_PATH
    import pulumi

    pulumi.log.warn(
        f"app/{APP_BUNDLE_RELATIVE} is missing, so {purpose} connect with sslmode=require and cannot verify the "
        "database's certificate. Run `make rds-ca` before `pulumi up` (the deploy workflow does)."
    )
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.rds_ca", description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help=f"bundle to fetch (default {DEFAULT_URL})")
    parser.add_argument(
        "--output",
        type=Path,
        action="append",
        help=f"where to write it (repeatable; default: {BUNDLE_PATH} for the Lambdas and {APP_BUNDLE_PATH} "
        "for the API image)",
    )
    parser.add_argument("--check", action="store_true", help="validate the existing file only; fetch nothing")
    args = parser.parse_args(argv)
    outputs: list[Path] = args.output or [BUNDLE_PATH, APP_BUNDLE_PATH]
    if not args.check and not fetchable(args.url):
        parser.error(f"--url {args.url}: the bundle is a trust anchor; fetch it over https only")  # exit 2
    try:
        if args.check:
            for output in outputs:
                if not output.is_file():
                    raise BundleError(f"{output}: no such file (run `make rds-ca`)")
                print(f"{output}: {validate_bundle(output.read_bytes())} Amazon RDS CA certificates")
        else:
            print(install(args.url, outputs[0]))
            for output in outputs[1:]:  # one download, the same checked bytes everywhere
                print(write_bundle(outputs[0].read_bytes(), output, source=str(outputs[0])))
    except BundleError as error:
        print(f"rds-ca: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

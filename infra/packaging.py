"""Byte-reproducible Lambda archives: one zip per function (its code) and one layer zip (its dependencies).

Why reproducible: the engine hashes a `.zip` by its bytes, so an archive rebuilt from unchanged code must be
identical or every `pulumi preview` shows a Lambda update. Entries are sorted, timestamps fixed at
1980-01-01, permissions fixed, and caches (`__pycache__`, `*.pyc`) left out.

Function archive: `lambdas/__init__.py`, `lambdas/shared/` and `lambdas/<package>/` (no tests, samples or
docs), so the handler is importable as `lambdas.<package>.handler.handler`.

Layer archive: `python/<files>` of exactly the distributions pinned in `lambdas/requirements.txt`, copied from
the installed environment (the one `pulumi up` runs in; the CLI installs requirements.txt, which includes
lambdas/requirements.txt). Each must be installed at its pinned version and be pure Python (the layer targets
arm64 Lambda; a compiled wheel from this machine would not load there), and every dependency of a vendored
distribution must itself be vendored or come with the Lambda runtime — otherwise the build fails with a
message saying which.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"
BUILD_DIR = PROJECT_ROOT / "build" / "lambda"
REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"

# What the Lambda Python runtime already ships (boto3 and its dependency tree).
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "urllib3"})
_EXCLUDED_PARTS = frozenset({"__pycache__", "tests", "samples"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo", ".md")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
# Written by the installer, not the package: they name this machine's paths and tools, so they would make the
# layer differ between two machines with the same pins.
_INSTALL_RECORDS = frozenset({"RECORD", "INSTALLER", "direct_url.json", "REQUESTED"})


class PackagingError(Exception):
    """The archive cannot be built as declared (the message says what to change)."""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(path: Path = REQUIREMENTS) -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.\-+]+)", line)
        if not match:
            raise PackagingError(f"{path.name}:{number}: pin exactly as name==version, got {line!r}")
        pins[_normalise(match.group(1))] = match.group(2)
    return pins


def _dependencies(distribution: importlib.metadata.Distribution) -> set[str]:
    """Names of the distribution's unconditional requirements (extras are not installed in the layer)."""
    names = set()
    for requirement in distribution.requires or []:
        if "extra ==" in requirement.replace('"', "'").replace("extra=='", "extra == '"):
            continue
        names.add(_normalise(re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]))
    return names


def _write_zip(target: Path, entries: Iterable[tuple[str, bytes]]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    partial.replace(target)


def _cached(kind: str, entries: list[tuple[str, bytes]]) -> Path:
    """Write the zip once per distinct content; a rebuild of unchanged inputs returns the same file."""
    digest = hashlib.sha256()
    for name, data in sorted(entries):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    target = BUILD_DIR / f"{kind}-{digest.hexdigest()[:16]}.zip"
    if not target.exists():
        _write_zip(target, entries)
    return target


def function_entries(package: str, lambdas_dir: Path = LAMBDAS_DIR) -> list[tuple[str, bytes]]:
    source = lambdas_dir / package
    if not (source / "handler.py").is_file():
        raise PackagingError(f"lambdas/{package}/handler.py does not exist")
    entries = [("lambdas/__init__.py", (lambdas_dir / "__init__.py").read_bytes())]
    for directory in (lambdas_dir / "shared", source):
        if not directory.is_dir():
            continue
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(lambdas_dir.parent)
            if path.is_dir() or _EXCLUDED_PARTS & set(relative.parts) or path.name.endswith(_EXCLUDED_SUFFIXES):
                continue
            entries.append((relative.as_posix(), path.read_bytes()))
    return entries


def layer_entries(pins: dict[str, str] | None = None) -> list[tuple[str, bytes]]:
    pins = pinned_requirements() if pins is None else pins
    entries: list[tuple[str, bytes]] = []
    for name, version in sorted(pins.items()):
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            raise PackagingError(
                f"lambdas/requirements.txt pins {name}=={version} but it is not installed; run "
                "`pip install -r requirements.txt` in the environment that runs Pulumi"
            ) from None
        if distribution.version != version:
            raise PackagingError(
                f"lambdas/requirements.txt pins {name}=={version} but {distribution.version} is installed"
            )
        missing = sorted(_dependencies(distribution) - set(pins) - RUNTIME_PROVIDED)
        if missing:
            raise PackagingError(
                f"{name} needs {', '.join(missing)}, which is neither pinned in lambdas/requirements.txt nor "
                "provided by the Lambda runtime: pin it there"
            )
        for file in distribution.files or []:
            path = Path(str(distribution.locate_file(file)))
            posix = file.as_posix()
            if posix.startswith("..") or "__pycache__" in file.parts or posix.endswith((".pyc", ".pyo")):
                continue  # console scripts outside site-packages, byte-code caches
            if file.name in _INSTALL_RECORDS:
                continue
            if posix.endswith((".so", ".pyd", ".dylib")):
                raise PackagingError(
                    f"{name} contains compiled code ({posix}); the layer is built from this machine's wheels and "
                    "must be pure Python — use a pure-Python alternative or build the layer for the Lambda platform"
                )
            if path.is_file():
                entries.append((f"python/{posix}", path.read_bytes()))
    return entries


def build_function_archive(package: str) -> Path:
    return _cached(f"function-{package}", function_entries(package))


def build_layer_archive() -> Path:
    return _cached("layer-deps", layer_entries())

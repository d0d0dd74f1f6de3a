"""Lambda archives: byte-reproducible, complete, and importable with only what Lambda provides."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from infra import packaging
from infra.packaging import PackagingError, function_entries, layer_entries, pinned_requirements

HANDLER_PACKAGES = sorted(
    p.name for p in packaging.LAMBDAS_DIR.iterdir() if p.is_dir() and (p / "handler.py").is_file()
)
ENTRY_POINTS = sorted(
    f"{package}.{module.stem}"
    for package in HANDLER_PACKAGES
    for module in (packaging.LAMBDAS_DIR / package).glob("*.py")
    if "\ndef handler(event" in module.read_text()
)
"""Every `lambdas.<package>.<module>.handler` a function may name (restore_validation has two)."""


def _scratch_lambdas(tmp_path: Path) -> Path:
    lambdas = tmp_path / "lambdas"
    (lambdas / "demo" / "__pycache__").mkdir(parents=True)
    (lambdas / "shared").mkdir()
    (lambdas / "__init__.py").write_text("")
    (lambdas / "shared" / "__init__.py").write_text("")
    (lambdas / "demo" / "__init__.py").write_text("")
    (lambdas / "demo" / "handler.py").write_text("def handler(event, context):\n    return 1\n")
    (lambdas / "demo" / "__pycache__" / "handler.cpython-311.pyc").write_bytes(b"stale")
    (lambdas / "demo" / "README.md").write_text("docs")
    return lambdas


def test_function_archive_holds_code_only_and_is_byte_reproducible(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lambdas = _scratch_lambdas(tmp_path)
    names = [name for name, _ in function_entries("demo", lambdas)]
    assert sorted(names) == [
        "lambdas/__init__.py",
        "lambdas/demo/__init__.py",
        "lambdas/demo/handler.py",
        "lambdas/shared/__init__.py",
    ]
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    packaging._write_zip(first, function_entries("demo", lambdas))
    (lambdas / "demo" / "handler.py").touch()  # a newer mtime must not change the bytes
    packaging._write_zip(second, function_entries("demo", lambdas))
    assert first.read_bytes() == second.read_bytes()
    (lambdas / "demo" / "handler.py").write_text("def handler(event, context):\n    return 2\n")
    packaging._write_zip(second, function_entries("demo", lambdas))
    assert first.read_bytes() != second.read_bytes()


def test_missing_handler_is_a_clear_error(tmp_path: Path) -> None:
    lambdas = _scratch_lambdas(tmp_path)
    with pytest.raises(PackagingError, match=r"lambdas/nope/handler\.py does not exist"):
        function_entries("nope", lambdas)


def test_layer_is_reproducible_and_has_no_install_records(tmp_path: Path) -> None:
    entries = layer_entries()
    names = {name for name, _ in entries}
    assert "python/pg8000/__init__.py" in names
    assert "python/aws_lambda_powertools/__init__.py" in names
    assert not any(n.endswith(("/RECORD", "/direct_url.json", ".pyc")) for n in names)
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    packaging._write_zip(first, entries)
    packaging._write_zip(second, layer_entries())
    assert first.read_bytes() == second.read_bytes()


def test_layer_refuses_an_unpinned_dependency() -> None:
    pins = pinned_requirements()
    del pins["scramp"]
    with pytest.raises(PackagingError, match="pg8000 needs scramp, which is neither pinned"):
        layer_entries(pins)


def test_layer_refuses_a_version_other_than_the_pin() -> None:
    pins = {**pinned_requirements(), "six": "0.0.1"}
    with pytest.raises(PackagingError, match=r"pins six==0.0.1 but 1\.\d+\.\d+ is installed"):
        layer_entries(pins)


def test_layer_refuses_compiled_code() -> None:
    with pytest.raises(PackagingError, match="pydantic-core contains compiled code"):
        layer_entries({"pydantic-core": __import__("pydantic_core").__version__, "typing-extensions": "4.16.0"})


def test_bad_pin_line_names_the_line(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pg8000>=1.0\n")
    with pytest.raises(PackagingError, match=r"requirements.txt:1: pin exactly as name==version"):
        pinned_requirements(requirements)


# Modules the Lambda Python runtime provides besides the standard library.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "urllib3", "dateutil", "six", "jmespath")


@pytest.mark.parametrize("entry_point", ENTRY_POINTS)
def test_handler_imports_in_a_fresh_interpreter_with_only_lambda_parts(entry_point: str, tmp_path: Path) -> None:
    """Unpack the function and layer archives and import the handler with nothing else from our venv."""
    function_dir, layer_dir, runtime_dir = tmp_path / "task", tmp_path / "opt", tmp_path / "runtime"
    package = entry_point.split(".")[0]
    with zipfile.ZipFile(packaging.build_function_archive(package)) as archive:
        archive.extractall(function_dir)
    with zipfile.ZipFile(packaging.build_layer_archive()) as archive:
        archive.extractall(layer_dir)
    runtime_dir.mkdir()
    for module in RUNTIME_MODULES:
        source = Path(__import__(module).__file__ or "")
        source = source.parent if source.name == "__init__.py" else source
        (runtime_dir / source.name).symlink_to(source)
    code = (
        "import sys; "
        f"sys.path[:0] = [{str(function_dir)!r}, {str(layer_dir / 'python')!r}, {str(runtime_dir)!r}]; "
        f"import lambdas.{entry_point} as h; assert callable(h.handler)"
    )
    # -S: no site-packages, -I: no user site or PYTHONPATH: the sys.path above is all there is.
    result = subprocess.run(
        [sys.executable, "-S", "-I", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_NAMESPACE": "Shipyard", "STACK": "test"},
    )
    assert result.returncode == 0, result.stderr

"""The harness runs programs the CLI's way and fails loudly; stacks evaluated in one process do not leak."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from infra.harness import HarnessError, StackRun, run_stack
from tests.infra.conftest import evaluate


def _program(tmp_path: Path, main_py: str) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: scratch\nruntime: python\nmain: prog/\n")
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  aws:region: us-east-1\n")
    (tmp_path / "prog").mkdir()
    (tmp_path / "prog" / "__main__.py").write_text(textwrap.dedent(main_py))
    return tmp_path


def test_a_program_that_raises_fails_the_run(tmp_path: Path) -> None:
    root = _program(tmp_path, "raise RuntimeError('boom in program')\n")
    with pytest.raises(HarnessError, match="boom in program"):
        run_stack("dev", root=root)


def test_an_error_inside_an_apply_fails_the_run(tmp_path: Path) -> None:
    root = _program(
        tmp_path,
        """
        import pulumi, pulumi_aws as aws
        group = aws.cloudwatch.LogGroup("g", retention_in_days=7)
        pulumi.export("bad", group.arn.apply(lambda arn: 1 / 0))
        """,
    )
    with pytest.raises(HarnessError, match="division by zero"):
        run_stack("dev", root=root)


def test_an_unresolved_output_fails_the_run(tmp_path: Path) -> None:
    root = _program(
        tmp_path,
        """
        import pulumi, pulumi_aws as aws
        group = aws.cloudwatch.LogGroup("g", retention_in_days=7)
        pulumi.export("kmsKey", group.kms_key_id)  # never set, so never known
        """,
    )
    with pytest.raises(HarnessError, match="unresolved: kmsKey"):
        run_stack("dev", root=root)


def test_warnings_are_kept_in_order_once_each_and_do_not_fail_the_run(tmp_path: Path) -> None:
    root = _program(
        tmp_path,
        """
        import pulumi, pulumi_aws as aws
        pulumi.log.warn("bundle missing: run make rds-ca")
        aws.cloudwatch.LogGroup("g", retention_in_days=7)
        pulumi.log.warn("second thing")
        pulumi.log.warn("bundle missing: run make rds-ca")
        pulumi.log.info("not a warning")
        pulumi.export("ok", 1)
        """,
    )
    run = run_stack("dev", root=root)
    assert run.warnings == ["bundle missing: run make rds-ca", "second thing"]
    assert run.outputs == {"ok": 1}


def test_a_logged_error_still_fails_the_run_beside_warnings(tmp_path: Path) -> None:
    root = _program(tmp_path, "import pulumi\npulumi.log.warn('just a warning')\npulumi.log.error('bad config')\n")
    with pytest.raises(HarnessError, match="logged errors: bad config"):
        run_stack("dev", root=root)


def test_an_import_that_breaks_under_the_cli_breaks_here(tmp_path: Path) -> None:
    # Under the CLI the project root is not on sys.path; a program that forgets to add it cannot import
    # its own package, even though the test process itself can.
    root = _program(tmp_path, "import prog.helpers\n")
    (root / "prog" / "__init__.py").write_text("")
    (root / "prog" / "helpers.py").write_text("X = 1\n")
    sys.path.insert(0, str(root))
    try:
        with pytest.raises(HarnessError, match="No module named 'prog'"):
            run_stack("dev", root=root)
    finally:
        sys.path.remove(str(root))


def test_records_parent_protect_and_dependencies(tmp_path: Path) -> None:
    root = _program(
        tmp_path,
        """
        import pulumi, pulumi_aws as aws
        class Box(pulumi.ComponentResource):
            def __init__(self, name):
                super().__init__("scratch:x:Box", name)
                self.first = aws.sns.Topic("first", opts=pulumi.ResourceOptions(parent=self, protect=True))
                aws.sns.Topic("second", opts=pulumi.ResourceOptions(parent=self, depends_on=[self.first]))
                self.register_outputs({})
        box = Box("box")
        pulumi.export("topic", box.first.arn)
        """,
    )
    run = run_stack("dev", root=root)
    box = run.one("scratch:x:Box")
    first, second = run.named("first"), run.named("second")
    assert first.parent == box.urn and second.parent == box.urn
    assert first.protect and not second.protect
    assert second.depends_on == (first.urn,)
    assert run.outputs["topic"].startswith("arn:aws:sns:us-east-1:123456789012:")


def _stable(value: Any) -> Any:
    """Inputs with assets/archives shown by path: their repr carries a memory address, not content."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    path = getattr(value, "path", None)
    return f"{type(value).__name__}({path})" if path is not None else value


def _fingerprint(run: StackRun) -> list[tuple[str, str]]:
    return [(r.urn, repr(sorted(_stable(r.inputs).items()))) for r in run.resources]


def test_stacks_do_not_leak_into_each_other() -> None:
    first = evaluate("staging")
    evaluate("prod")
    again = evaluate("staging")
    assert _fingerprint(first) == _fingerprint(again)
    assert all(":staging::" in r.urn for r in again.resources)
    assert "infra.program" not in sys.modules or sys.modules["infra.program"].__file__


def test_every_component_child_is_parented(any_stack: StackRun) -> None:
    components = [r for r in any_stack.resources if r.type.startswith("shipyard:")]
    assert components
    for resource in any_stack.resources:
        if resource.type.startswith("aws:"):
            assert any_stack.component_of(resource) is not None, f"{resource.urn} is not inside a component"


def test_packages_of_a_virtualenv_inside_the_project_are_not_reimported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `.venv` usually sits in the project root; re-importing its packages (grpc, protobuf) crashed the
    # interpreter, so only the program's own modules may be unloaded and imported afresh.
    import builtins
    import site

    root = _program(tmp_path, "import fakepkg, pulumi\npulumi.export('n', len(fakepkg.IMPORTS))\n")
    site_packages = root / ".venv" / "lib" / "site-packages"
    (site_packages / "fakepkg").mkdir(parents=True)
    (site_packages / "fakepkg" / "__init__.py").write_text(
        "import builtins\nIMPORTS = builtins.__dict__.setdefault('_fakepkg_imports', [])\nIMPORTS.append(1)\n"
    )
    monkeypatch.syspath_prepend(str(site_packages))
    monkeypatch.setattr(site, "getsitepackages", lambda: [str(site_packages)])
    monkeypatch.setattr(builtins, "_fakepkg_imports", [], raising=False)
    import fakepkg  # type: ignore[import-not-found]

    try:
        run = run_stack("dev", root=root)
        assert run.outputs["n"] == 1
        assert sys.modules["fakepkg"] is fakepkg
    finally:
        sys.modules.pop("fakepkg", None)

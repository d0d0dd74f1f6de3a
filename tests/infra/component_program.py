"""Evaluate a small Pulumi program around one component through the real harness (CLI-like, offline cloud).

For behaviour the full stack does not exercise yet (or only indirectly), e.g. `Database.allow_from` with a
consumer of the test's choosing. The program body is real Python run as the CLI would run `__main__.py`,
with the project root on sys.path and the stack config validated by `load_stack_config`.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from infra.harness import PROJECT_ROOT, StackRun, run_stack
from tests.infra.conftest import ALERT_SECRETS

_PRELUDE = f"""
import sys
sys.path.insert(0, {str(PROJECT_ROOT)!r})
import pulumi
import pulumi_aws as aws
from infra.config import load_stack_config
from infra.naming import Naming
config = load_stack_config()
naming = Naming("shipyard", pulumi.get_stack(), getattr(config, "region", None))
provider = aws.Provider("aws", region=config.region)
with_provider = pulumi.ResourceOptions(provider=provider)
"""


def run_program(tmp_path: Path, stack: str, body: str) -> StackRun:
    """Run `body` (after the prelude: config, naming, provider, with_provider) against `Pulumi.<stack>.yaml`."""
    program = tmp_path / "program"
    program.mkdir()
    (program / "__main__.py").write_text(_PRELUDE + textwrap.dedent(body))
    (tmp_path / "Pulumi.yaml").write_text("name: shipyard\nruntime: python\nmain: program/\n")
    return run_stack(
        stack,
        config_file=PROJECT_ROOT / f"Pulumi.{stack}.yaml",
        secret_overrides=ALERT_SECRETS,
        root=tmp_path,
    )

"""Placeholder entry point so the infrastructure can package and wire the function; replaced on rebase.

It refuses to pretend: every invocation fails, so the event goes to the function's DLQ until the real
validator (lambdas/restore_validation/handler.py of the restore-validation branch) replaces this file.
"""

from __future__ import annotations

from typing import Any


def handler(event: Any, context: Any) -> dict[str, Any]:
    raise NotImplementedError("restore validation is not deployed yet: this is the placeholder package")

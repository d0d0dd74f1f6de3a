"""Fixtures for the auto-confirm tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .auto_confirm_support import Marketplace, open_market


@pytest.fixture
def market(migrated_database_url: str) -> Iterator[Marketplace]:
    """An empty marketplace (schema + seed) and a connection made the way the job makes one."""
    yield from open_market(migrated_database_url)

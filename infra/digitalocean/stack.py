"""DigitalOcean target (App Platform, managed PostgreSQL, Spaces). Built by issue 8."""

from __future__ import annotations

from typing import Any

from infra.config import ConfigError, DigitalOceanStack
from infra.naming import Naming


def build_digitalocean_stack(config: DigitalOceanStack, naming: Naming) -> dict[str, Any]:
    # Refusing loudly beats registering half a stack: the DO components do not exist yet.
    raise ConfigError([f"Pulumi.{naming.stack}.yaml: shipyard:cloud: 'digitalocean' is not implemented yet; use 'aws'"])

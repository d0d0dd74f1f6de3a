"""Every name the stack gives to the cloud is derived here, so renaming is one edit and names never clash.

Two kinds of names:
- logical names (Pulumi's, unique per type within a stack): `<component>-<part>`, e.g. `network-vpc`;
- physical names (what the console shows): `<project>-<stack>-<part>`, e.g. `shipyard-prod-api`,
  shortened with a stable hash suffix when a service limits length (ALB and target group: 32 chars).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_INVALID = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Naming:
    project: str
    stack: str

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stack}"

    def physical(self, *parts: str, max_length: int = 63) -> str:
        """`shipyard-prod-api-tg`, cut to `max_length` with a 6-char hash keeping cut names distinct."""
        name = _INVALID.sub("-", "-".join([self.prefix, *parts]).lower()).strip("-")
        if len(name) <= max_length:
            return name
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        return f"{name[: max_length - 7].rstrip('-')}-{digest}"

    def alarm(self, severity: str, resource: str, condition: str) -> str:
        """`<project>-<stack>-<severity>-<resource>-<condition>`: sortable by severity in the console, and the
        alert forwarder reads the severity back from the third segment."""
        return self.physical(severity, resource, condition, max_length=255)

    @property
    def tags(self) -> dict[str, str]:
        return {"project": self.project, "stack": self.stack}


def child_name(component: str, *parts: str) -> str:
    """Logical name of a component's child: `database-instance`."""
    return "-".join([component, *parts])

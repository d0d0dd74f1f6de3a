"""Base class of every platform component (one concern per file under infra/aws/ and infra/digitalocean/).

Conventions, taken from SST v3's components:
- the type token is `shipyard:<cloud>:<Kind>`, so `pulumi stack --show-urns` groups resources by concern;
- every child is created with `self.opts()` (parented to the component, so it inherits the provider
  and shows up under the component in previews) and named with `self.child_name()`;
- the constructor ends with `register_outputs` of the public attributes.
"""

from __future__ import annotations

from typing import Any

import pulumi

from infra.naming import Naming, child_name


class Component(pulumi.ComponentResource):
    def __init__(
        self,
        cloud: str,
        kind: str,
        name: str,
        naming: Naming,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"shipyard:{cloud}:{kind}", name, None, opts)
        self.component_name = name
        self.naming = naming

    def child_name(self, *parts: str) -> str:
        return child_name(self.component_name, *parts)

    def opts(self, **kwargs: Any) -> pulumi.ResourceOptions:
        """Options for a child resource: parented to this component, plus whatever is given."""
        return pulumi.ResourceOptions(parent=self, **kwargs)

"""Security-group rules written the same way by every component: TCP from one group to another on one port."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from infra.component import Component


def allow_tcp_egress(
    owner: Component,
    name: str,
    *,
    source_group: pulumi.Input[str],
    target_group: pulumi.Input[str],
    port: pulumi.Input[int],
    description: str,
) -> aws.vpc.SecurityGroupEgressRule:
    """Members of `source_group` may open TCP connections to members of `target_group` on `port`, and nothing
    wider: the referenced group, not a CIDR, so the rule follows the targets wherever they run."""
    return aws.vpc.SecurityGroupEgressRule(
        name,
        security_group_id=source_group,
        referenced_security_group_id=target_group,
        ip_protocol="tcp",
        from_port=port,
        to_port=port,
        description=description,
        opts=owner.opts(),
    )

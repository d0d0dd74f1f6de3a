"""Tier defaults (what staging and prod get when the stack file is silent) and the prod minimums."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.config.aws import AwsStack
from infra.config.digitalocean import DigitalOceanStack

# --------------------------------------------------------------------------------------------------------
# Tier defaults and prod minimums
# --------------------------------------------------------------------------------------------------------

TIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "staging": {
        "network": {"nat": "none", "vpcEndpoints": False, "flowLogs": False},
        "database": {"backupRetentionDays": 7, "multiAz": False, "deletionProtection": False},
        "service": {
            "desiredCount": 1,
            "minCount": 1,
            "maxCount": 2,
            "executeCommand": True,
            "frontDoor": "httpApi",
            "spot": True,
        },
        "backups": {"retentionDays": 7},
    },
    "prod": {
        "network": {"nat": "single", "vpcEndpoints": False, "flowLogs": True},
        "database": {
            "instanceClass": "db.t4g.small",
            "backupRetentionDays": 30,
            "multiAz": True,
            "deletionProtection": True,
            "customerManagedKey": True,
            "enhancedMonitoringInterval": 60,
            "logRetentionDays": 90,
        },
        "service": {
            "cpu": 512,
            "memory": 1024,
            "desiredCount": 2,
            "minCount": 2,
            "maxCount": 6,
            "executeCommand": False,
            "logRetentionDays": 90,
            "loadBalancerDeletionProtection": True,
            "loadBalancerAccessLogs": True,
            "frontDoor": "alb",
            "spot": False,
        },
        "frontend": {"accessLogs": True},
        "waf": {"enabled": True, "logRetentionDays": 90},
        "backups": {"retentionDays": 30, "restoreTesting": True},
    },
}
"""Defaults per tier, applied under what the stack file says (the stack file always wins)."""

DO_TIER_DEFAULTS: dict[str, dict[str, Any]] = {
    "staging": {
        "database": {"size": "db-s-1vcpu-1gb", "nodeCount": 1, "deletionProtection": False},
        "service": {"instanceSize": "apps-s-1vcpu-0.5gb", "desiredCount": 1, "minCount": 1, "maxCount": 1},
        "frontend": {"deployOnPush": True},
    },
    "prod": {
        # 2 GB: the 1 GB node's 22 connections are tight once two API instances and the worker connect.
        "database": {"size": "db-s-1vcpu-2gb", "nodeCount": 2, "deletionProtection": True, "poolSize": 20},
        "service": {"instanceSize": "apps-s-1vcpu-1gb", "desiredCount": 2, "minCount": 2, "maxCount": 2},
        "frontend": {"deployOnPush": False},
    },
}
"""The same, for `cloud: digitalocean` (its sections have other keys: size slugs instead of instance classes)."""


@dataclass(frozen=True)
class ProdMinimum:
    id: str
    key: str
    requirement: str

    def violated(self, config: AwsStack | DigitalOceanStack) -> bool:
        return _PROD_CHECKS[self.id](config)


_PROD_CHECKS: dict[str, Any] = {
    "database.multiAz": lambda c: isinstance(c, AwsStack) and not c.database.multi_az,
    "database.deletionProtection": lambda c: not c.database.deletion_protection,
    "database.backupRetentionDays": lambda c: isinstance(c, AwsStack) and c.database.backup_retention_days < 7,
    "service.minCount": lambda c: c.service.min_count < 2,
    "database.nodeCount": lambda c: isinstance(c, DigitalOceanStack) and c.database.node_count < 2,
    "network.nat": lambda c: isinstance(c, AwsStack) and c.network.nat == "none" and not c.network.vpc_endpoints,
    "network.flowLogs": lambda c: isinstance(c, AwsStack) and not c.network.flow_logs,
    "service.frontDoor": lambda c: isinstance(c, AwsStack) and c.service.front_door != "alb",
    "backups.enabled": lambda c: isinstance(c, AwsStack) and not c.backups.enabled,
    "alerts.routing.critical": lambda c: not c.alerts.routing.get("critical"),
    "alerts.oncallEmail": lambda c: c.alerts.oncall_email is None,
}

PROD_MINIMUMS: tuple[ProdMinimum, ...] = (
    ProdMinimum("database.multiAz", "shipyard:database.multiAz", "must be true in prod (survives an AZ outage)"),
    ProdMinimum("database.deletionProtection", "shipyard:database.deletionProtection", "must be true in prod"),
    ProdMinimum("database.backupRetentionDays", "shipyard:database.backupRetentionDays", "must be >= 7 in prod"),
    ProdMinimum("service.minCount", "shipyard:service.minCount", "must be >= 2 in prod (one task per AZ)"),
    ProdMinimum(
        "database.nodeCount",
        "shipyard:database.nodeCount",
        "must be >= 2 in prod (a standby node takes over when the primary fails)",
    ),
    ProdMinimum(
        "network.nat",
        "shipyard:network.nat",
        "prod tasks run in private subnets: needs 'single' or 'per_az' NAT, or vpcEndpoints: true",
    ),
    ProdMinimum("network.flowLogs", "shipyard:network.flowLogs", "must be true in prod (FSBP EC2.6)"),
    ProdMinimum(
        "service.frontDoor",
        "shipyard:service.frontDoor",
        "must be alb in prod (WAF, access logs and deletion protection need the load balancer)",
    ),
    ProdMinimum("backups.enabled", "shipyard:backups.enabled", "must be true in prod"),
    ProdMinimum(
        "alerts.routing.critical",
        "shipyard:alerts.routing.critical",
        "prod needs at least one channel for critical alerts",
    ),
    ProdMinimum(
        "alerts.oncallEmail",
        "shipyard:alerts.oncallEmail",
        "prod needs an on-call e-mail on the critical topic (reaches people if the forwarder breaks)",
    ),
)

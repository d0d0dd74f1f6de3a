"""Cache: an optional ElastiCache (Valkey by default) replication group for queues and caching.

Created only with `cache.enabled` (seed 001 runs BullMQ queues on Redis). Secure by default: TLS in transit
(required, not merely preferred), encryption at rest, an AUTH token generated here and kept in Secrets
Manager (the app reads it by ARN), the isolated subnets, and a security group that admits only what
`allow_from` names.

`maxmemory-policy` comes from `cache.maxmemoryPolicy` with the safe default `noeviction`: a queue (BullMQ, RQ,
Celery on Redis) keeps jobs as ordinary keys, and under any evicting policy (the seed asked for allkeys-lru)
a full cache silently deletes queued jobs; with noeviction writes fail loudly instead, which the app sees
and the memory alarm catches. Choose an LRU policy only for a pure cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from infra.aws.secrets import recovery_window_days
from infra.component import Component
from infra.config import CacheConfig, Tier
from infra.naming import Naming

PORT = 6379
ENGINE_VERSIONS: dict[str, tuple[str, str]] = {"valkey": ("8.2", "valkey8"), "redis": ("7.1", "redis7")}
"""Engine -> (version, parameter group family): the newest line ElastiCache offers for each that we tested."""
AUTH_TOKEN_LENGTH = 64
"""ElastiCache accepts 16-128 printable characters; alphanumerics only (special=False) avoid its exclusions."""
SNAPSHOT_RETENTION_DAYS: dict[str, int] = {"staging": 1, "prod": 7}
"""Daily snapshots kept; queue contents are transient, so a week is enough to recover from a bad deploy."""


@dataclass(frozen=True)
class CacheArgs:
    settings: CacheConfig
    """The `shipyard:cache` block: engine, node type, replicas, maxmemoryPolicy (infra/config.py)."""
    tier: Tier
    """Snapshot retention (see SNAPSHOT_RETENTION_DAYS)."""
    vpc_id: pulumi.Input[str]
    subnet_ids: list[pulumi.Output[str]]
    """The network's isolated subnets; replicas are spread over them."""
    maintenance_window: str = "sun:06:00-sun:07:00"
    """UTC, after the database's default maintenance hour so the two never restart together."""
    snapshot_window: str = "04:00-05:00"
    """UTC, after the database backup window (03:00-04:00)."""


class Cache(Component):
    replication_group: aws.elasticache.ReplicationGroup
    security_group: aws.ec2.SecurityGroup
    primary_endpoint: pulumi.Output[str]
    port: pulumi.Output[int]
    auth_secret_arn: pulumi.Output[str]
    env_secrets: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: CacheArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Cache", name, naming, opts)
        settings = args.settings
        version, family = ENGINE_VERSIONS[settings.engine]
        group_id = naming.physical("cache", max_length=40)  # ElastiCache limits replication group ids to 40

        auth_token = random.RandomPassword(
            self.child_name("auth-token"),
            length=AUTH_TOKEN_LENGTH,
            special=False,
            opts=self.opts(),
        )
        secret = aws.secretsmanager.Secret(
            self.child_name("auth-secret"),
            # A prefix: a fixed name stays taken for the recovery window after a destroy (infra/aws/secrets.py).
            name_prefix=naming.name_prefix("cache-auth"),
            description=f"AUTH token of the {settings.engine} replication group {group_id}",
            recovery_window_in_days=recovery_window_days(args.tier),
            opts=self.opts(),
        )
        aws.secretsmanager.SecretVersion(
            self.child_name("auth-value"),
            secret_id=secret.id,
            secret_string=auth_token.result,
            opts=self.opts(),
        )

        self.security_group = aws.ec2.SecurityGroup(
            self.child_name("sg"),
            vpc_id=args.vpc_id,
            description=f"{settings.engine} {group_id}: ingress only from consumers admitted by allow_from",
            # No inline rules: allow_from's standalone rules are the only ingress (see database.py).
            tags={"Name": naming.physical("cache")},
            opts=self.opts(),
        )
        subnet_group = aws.elasticache.SubnetGroup(
            self.child_name("subnets"),
            name=naming.physical("cache"),
            description=f"Isolated subnets of {group_id}",
            subnet_ids=args.subnet_ids,
            opts=self.opts(),
        )
        parameter_group = aws.elasticache.ParameterGroup(
            self.child_name("params"),
            name=naming.physical("cache", family),
            family=family,
            description=f"{group_id}: maxmemory-policy {settings.maxmemory_policy}",
            parameters=[
                aws.elasticache.ParameterGroupParameterArgs(name="maxmemory-policy", value=settings.maxmemory_policy)
            ],
            opts=self.opts(),
        )

        has_replicas = settings.replicas > 0
        self.replication_group = aws.elasticache.ReplicationGroup(
            self.child_name("group"),
            replication_group_id=group_id,
            description=f"{settings.engine} for queues and caching ({naming.prefix})",
            engine=settings.engine,
            engine_version=version,
            node_type=settings.node_type,
            port=PORT,
            num_cache_clusters=1 + settings.replicas,
            # Failover needs a replica to promote; multi-AZ places that replica in another AZ.
            automatic_failover_enabled=has_replicas,
            multi_az_enabled=has_replicas,
            parameter_group_name=parameter_group.name,
            subnet_group_name=subnet_group.name,
            security_group_ids=[self.security_group.id],
            at_rest_encryption_enabled=True,
            transit_encryption_enabled=True,
            transit_encryption_mode="required",
            auth_token=auth_token.result,
            auto_minor_version_upgrade=True,
            maintenance_window=args.maintenance_window,
            snapshot_window=args.snapshot_window,
            snapshot_retention_limit=SNAPSHOT_RETENTION_DAYS[args.tier],
            apply_immediately=False,
            opts=self.opts(),
        )

        self.primary_endpoint = self.replication_group.primary_endpoint_address
        self.port = self.replication_group.port.apply(lambda port: int(port) if port is not None else PORT)
        self.auth_secret_arn = secret.arn
        # The whole secret string is the token: ECS `valueFrom` takes the bare ARN.
        self.env_secrets = {"REDIS_AUTH_TOKEN": secret.arn}
        self.endpoint = pulumi.Output.concat(self.primary_endpoint, ":", self.port.apply(str))
        self.register_outputs(
            {"primaryEndpoint": self.primary_endpoint, "port": self.port, "authSecretArn": self.auth_secret_arn}
        )

    def allow_from(self, name: str, source_security_group_id: pulumi.Input[str], description: str) -> None:
        """Admit connections on the cache port from one security group (API tasks, workers)."""
        aws.vpc.SecurityGroupIngressRule(
            self.child_name("from", name),
            security_group_id=self.security_group.id,
            referenced_security_group_id=source_security_group_id,
            ip_protocol="tcp",
            from_port=PORT,
            to_port=PORT,
            description=description,
            tags={"Name": self.naming.physical("cache-from", name)},
            opts=self.opts(),
        )

"""Managed PostgreSQL: cluster, the product's database and user, a PgBouncer pool, and a firewall admitting only
the app.

Backups: DigitalOcean backs every cluster up daily and keeps 7 days of point-in-time recovery; neither can be
turned off or lengthened. Restoring makes a NEW cluster (`doctl databases create <name> --restore-from-cluster-name
<cluster> --restore-from-timestamp <UTC>`, or `backup_restore` on a DatabaseCluster); point `DATABASE_URL` at it with a
`pulumi up` after importing it. README "DigitalOcean target" has the steps.

The firewall is added after the app exists (`admit_app`): rules name the app's id, and a cluster without rules
admits anyone with the password, so the app's first deploy (and its migration job) can connect either way.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean

from infra.component import Component
from infra.config import DoDatabaseConfig
from infra.naming import Naming

DATABASE_NAME = "shipyard"
APP_USER = "shipyard_app"


@dataclass(frozen=True)
class DatabaseArgs:
    settings: DoDatabaseConfig
    """Version, size, node count, maintenance window, pool (`shipyard:database`)."""
    region: str
    """Region slug of the cluster (`shipyard:region`); the app runs in the same data-centre group."""
    tags: list[str]
    """DigitalOcean tags (flat strings) for the cluster."""


def postgres_url(user: str, password: str, host: str, port: int, database: str) -> str:
    """A libpq URL with TLS required: DigitalOcean accepts only TLS, and the app/worker refuse plaintext too."""
    from urllib.parse import quote

    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}?sslmode=require"


class Database(Component):
    def __init__(self, name: str, args: DatabaseArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("digitalocean", "Database", name, naming, opts)
        settings = args.settings
        self.cluster = digitalocean.DatabaseCluster(
            self.child_name("cluster"),
            name=naming.physical("pg"),
            engine="pg",
            version=settings.engine_version,
            size=settings.size,
            node_count=settings.node_count,
            region=args.region,
            maintenance_windows=[
                digitalocean.DatabaseClusterMaintenanceWindowArgs(
                    day=settings.maintenance_day, hour=f"{settings.maintenance_hour}:00"
                )
            ],
            tags=args.tags,
            # No deletion protection exists on DigitalOcean clusters; Pulumi's protect is the stand-in.
            opts=self.opts(protect=settings.deletion_protection),
        )
        self.database = digitalocean.DatabaseDb(
            self.child_name("db"), cluster_id=self.cluster.id, name=DATABASE_NAME, opts=self.opts()
        )
        # The app's own role, not doadmin: doadmin can drop the cluster's databases and manage users.
        self.user = digitalocean.DatabaseUser(
            self.child_name("user"), cluster_id=self.cluster.id, name=APP_USER, opts=self.opts()
        )
        self.pool = digitalocean.DatabaseConnectionPool(
            self.child_name("pool"),
            cluster_id=self.cluster.id,
            name=f"{DATABASE_NAME}-pool",
            db_name=self.database.name,
            user=self.user.name,
            mode=settings.pool_mode,
            size=settings.pool_size,
            opts=self.opts(),
        )
        self.host: pulumi.Output[str] = self.cluster.host
        self.port: pulumi.Output[int] = self.cluster.port
        self.direct_url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(self.user.name, self.user.password, self.cluster.host, self.cluster.port).apply(
                lambda v: postgres_url(v[0], v[1], v[2], int(v[3]), DATABASE_NAME)
            )
        )
        """The app user's TLS URL to the primary: session semantics (advisory locks for migrations)."""
        self.pool_url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(self.user.name, self.pool.password, self.pool.host, self.pool.port, self.pool.name).apply(
                lambda v: postgres_url(v[0], v[1], v[2], int(v[3]), v[4])
            )
        )
        """The same user through PgBouncer (the pool's name is the database name clients ask for)."""
        self.admin_url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.all(self.cluster.user, self.cluster.password, self.cluster.host, self.cluster.port).apply(
                lambda v: postgres_url(v[0], v[1], v[2], int(v[3]), DATABASE_NAME)
            )
        )
        """The cluster's admin (`doadmin`: the DatabaseCluster's `user`/`password` outputs) on the product's
        database, for the PRE_DEPLOY migrate job ONLY. Migrations create tables and roles (0003/0004): a user
        made through DO's API has no CREATEROLE and, on PostgreSQL >= 15, no CREATE on `public`, so the job
        cannot run as the app user (issue #14 item 3). doadmin is not a superuser either (like RDS's master):
        exactly what tests/app/test_app_roles.py migrates as. DigitalOcean: "a default administrative user
        (doadmin) ... New users receive minimal permissions by default"
        (https://docs.digitalocean.com/products/databases/postgresql/how-to/manage-users-and-databases/)."""
        self.app_user_name: pulumi.Output[str] = self.user.name
        """The app's login; the migrate job makes it a member of the `api` and `auto_confirm` roles."""
        self.firewall: digitalocean.DatabaseFirewall | None = None
        self.register_outputs({"host": self.host, "clusterId": self.cluster.id})

    def admit_app(self, app_id: pulumi.Input[str]) -> digitalocean.DatabaseFirewall:
        """Trusted sources = the app alone (App Platform has no fixed egress IPs; DigitalOcean matches the app)."""
        self.firewall = digitalocean.DatabaseFirewall(
            self.child_name("firewall"),
            cluster_id=self.cluster.id,
            rules=[digitalocean.DatabaseFirewallRuleArgs(type="app", value=app_id)],
            opts=self.opts(),
        )
        return self.firewall

"""The DigitalOcean stack: explicit providers, then one component per concern (same product as on AWS).

Credentials never sit in the stack file: the DigitalOcean token comes from `DIGITALOCEAN_TOKEN` (or the secret
`digitalocean:token`), and the Spaces keys the provider needs to manage buckets from `SPACES_ACCESS_KEY_ID` /
`SPACES_SECRET_ACCESS_KEY` (or the secrets `digitalocean:spacesAccessId` / `digitalocean:spacesSecretKey`).
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_digitalocean as digitalocean
import pulumi_docker as docker
import pulumi_random as random

from infra.config import DigitalOceanStack, rate_seconds
from infra.digitalocean.alerting import destinations
from infra.digitalocean.app import App, AppArgs
from infra.digitalocean.database import Database, DatabaseArgs
from infra.digitalocean.image import AppImage, ImageArgs
from infra.digitalocean.uploads import Uploads, UploadsArgs
from infra.digitalocean.uptime import Uptime, UptimeArgs
from infra.naming import Naming

DEFAULT_AUTO_CONFIRM_INTERVAL_SECONDS = 3600


def do_tags(config: DigitalOceanStack, naming: Naming) -> list[str]:
    """DigitalOcean tags are flat strings (letters, digits, `:-_`): `key:value` keeps them greppable."""
    return [f"{key}:{value}" for key, value in {**naming.tags, "tier": config.tier, "owner": config.owner}.items()]


def build_digitalocean_stack(config: DigitalOceanStack, naming: Naming) -> dict[str, Any]:
    provider_config = pulumi.Config("digitalocean")
    provider = digitalocean.Provider(
        "digitalocean",
        token=provider_config.get_secret("token"),
        spaces_access_id=provider_config.get_secret("spacesAccessId"),
        spaces_secret_key=provider_config.get_secret("spacesSecretKey"),
    )
    # Components hand these to every child by package, so no resource falls back to a default provider.
    with_providers = pulumi.ResourceOptions(providers=[provider, docker.Provider("docker"), random.Provider("random")])
    critical = destinations(config, "critical")
    warning = destinations(config, "warning")

    image = AppImage(
        "image",
        ImageArgs(registry=config.registry, registry_region=config.registry_region, tag=naming.stack),
        naming,
        with_providers,
    )
    database = Database(
        "database",
        DatabaseArgs(settings=config.database, region=config.region, tags=do_tags(config, naming)),
        naming,
        with_providers,
    )
    uploads = Uploads(
        "uploads", UploadsArgs(settings=config.uploads, region=config.spaces_region), naming, with_providers
    )
    app = App(
        "app",
        AppArgs(
            stack=naming.stack,
            region=config.app_region,
            service=config.service,
            worker=config.worker,
            auto_confirm=config.jobs.auto_confirm,
            auto_confirm_interval_seconds=rate_seconds(config.jobs.auto_confirm.schedule)
            or DEFAULT_AUTO_CONFIRM_INTERVAL_SECONDS,
            frontend=config.frontend,
            uploads=config.uploads,
            domain=config.domain,
            image_repository=image.repository,
            image_digest=image.digest,
            api_database_url=database.pool_url if config.service.database_connection == "pool" else database.direct_url,
            direct_database_url=database.direct_url,
            migrate_database_url=database.admin_url,
            app_login=database.app_user_name,
            uploads_bucket=uploads.bucket_name,
            uploads_endpoint=uploads.endpoint_url,
            uploads_region=uploads.region,
            uploads_access_key=uploads.key.access_key,
            uploads_secret_key=uploads.key.secret_key,
            secret_key=config.secret("appSecretKey"),
            jwt_secret_key=config.secret("jwtSecretKey"),
            sentry_dsn=config.secret("sentryDsn"),
            critical=critical,
            warning=warning,
        ),
        naming,
        with_providers,
    )
    database.admit_app(app.app_id)
    extra_origins = [origin.rstrip("/") for origin in config.service.cors_origins]
    uploads.allow_origins(
        app.frontend_url.apply(lambda origin: list(dict.fromkeys([origin.rstrip("/"), *extra_origins])))
    )
    Uptime(
        "uptime",
        UptimeArgs(
            settings=config.health_checks,
            frontend_url=app.frontend_url,
            api_url=app.api_url,
            critical=critical,
            warning=warning,
        ),
        naming,
        with_providers,
    )

    outputs: dict[str, Any] = {
        "tier": config.tier,
        "region": config.region,
        "frontendUrl": app.frontend_url,
        "apiUrl": app.api_url,
        "appId": app.app_id,
        "appDefaultIngress": app.default_ingress,
        "databaseHost": database.host,
        "databasePort": database.port,
        "databaseCluster": database.cluster.name,
        "uploadsBucket": uploads.bucket_name,
        "uploadsEndpoint": uploads.endpoint_url,
        "imageName": image.image.image_name,
    }
    if config.domain is not None:
        # Without a DigitalOcean-managed zone, these are the records to create at the DNS host.
        domain = config.domain
        outputs["dnsRecords"] = app.default_ingress.apply(
            lambda ingress: [
                {"name": host, "type": "CNAME", "value": ingress.removeprefix("https://")}
                for host in (domain.frontend_fqdn, domain.api_fqdn)
            ]
        )
    return outputs

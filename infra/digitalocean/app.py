"""The App Platform app: the API service, the SPA as a static site, the migration job, the auto-confirm worker,
domains, alerts and the routing between them.

- `api` (service): the image from the registry pinned by digest, readiness probe on `service.healthCheckPath`,
  a fixed instance count — or CPU autoscaling when `maxCount > minCount` (dedicated sizes only; config checks).
- `web` (static site): built by App Platform from the repository, `index.html` as catch-all so client-side routes
  load the SPA instead of a 404.
- `migrate` (PRE_DEPLOY job): `python -m app.migrate` before every rollout, as the cluster's admin (doadmin),
  which then makes the app user a member of the `api` and `auto_confirm` roles (DATABASE_APP_LOGINS); a
  failure stops the deploy and the old version keeps serving. The service and the worker use the app user.
- `auto-confirm` (worker): `python -m lambdas.auto_confirm.worker`, the hourly loop around the same core the
  AWS Lambda runs (App Platform has no scheduled jobs: terraform-provider-digitalocean #1529).
- Routing: `/api` goes to the service (path kept: the app serves `/api/...`), everything else to the SPA, on
  every domain of the app — so the SPA can always call the API as `/api` on its own origin.
- Secrets are env vars of type SECRET (App Platform encrypts them and never shows them back); every value that
  comes from a secret is typed SECRET here, and only plain settings are GENERAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_digitalocean as digitalocean
import pulumi_random as random

from infra.component import Component
from infra.config import (
    AutoConfirmJobConfig,
    DoFrontendConfig,
    DomainConfig,
    DoServiceConfig,
    DoUploadsConfig,
    DoWorkerConfig,
)
from infra.digitalocean.alerting import Destinations
from infra.naming import Naming

API = "api"
APP_PLATFORM_PROXY_CIDRS = ("10.0.0.0/8",)
"""Where App Platform's router connects to the container from (FORWARDED_ALLOW_IPS: gunicorn takes
X-Forwarded-Proto from these peers only). DigitalOcean does not publish that range; it is a private address
inside the platform (its support article "Where can I find the client IP address of a request connecting to
my app?" says X-Forwarded-For carries the ingress's address and `do-connecting-ip` the client's), and the
container has no public port, so no internet client connects from it. Only the scheme is taken from any
peer (app/gunicorn_conf.py): SCRIPT_NAME/PATH_INFO headers are trusted from nobody."""
WEB = "web"
MIGRATE = "migrate"
WORKER = "auto-confirm"
MIGRATE_COMMAND = "python -m app.migrate"
WORKER_COMMAND = "python -m lambdas.auto_confirm.worker"
JOB_INSTANCE_SIZE = "apps-s-1vcpu-0.5gb"
"""Migrations are short and light; the smallest size is billed for the seconds the job runs."""


@dataclass(frozen=True)
class Env:
    """One environment variable; `secret` decides the App Platform type (SECRET vs GENERAL)."""

    key: str
    value: pulumi.Input[str]
    secret: bool = False

    def args(self, cls: Any) -> Any:
        value = pulumi.Output.secret(self.value) if self.secret else self.value
        return cls(key=self.key, value=value, type="SECRET" if self.secret else "GENERAL", scope="RUN_TIME")


@dataclass(frozen=True)
class AppArgs:
    stack: str
    """Stack name; the `STACK` env var of every component (log and metric context)."""
    region: str
    """App Platform region (`fra`, from the `fra1` slug)."""
    service: DoServiceConfig
    """The API service's size, counts, probe, alert thresholds and plain env (`shipyard:service`)."""
    worker: DoWorkerConfig
    """Worker size and shutdown grace (`shipyard:worker`)."""
    auto_confirm: AutoConfirmJobConfig
    """Whether the worker exists, its batch size (`shipyard:jobs.autoConfirm`)."""
    auto_confirm_interval_seconds: int
    """Seconds between worker runs, from `jobs.autoConfirm.schedule` (`rate(1 hour)` -> 3600)."""
    frontend: DoFrontendConfig
    """Where App Platform builds the SPA from (`shipyard:frontend`)."""
    uploads: DoUploadsConfig
    """Upload size and types the API enforces (`shipyard:uploads`)."""
    domain: DomainConfig | None
    """Custom domain: frontend host PRIMARY, API host ALIAS; None serves on the generated ondigitalocean.app host."""
    image_repository: str
    """Repository in the account's container registry."""
    image_digest: pulumi.Input[str]
    """`sha256:...` every component runs."""
    api_database_url: pulumi.Input[str]
    """Secret URL the API uses (direct or pool, per `service.databaseConnection`)."""
    direct_database_url: pulumi.Input[str]
    """Secret URL of the primary (session semantics) for the worker, as the app user."""
    migrate_database_url: pulumi.Input[str]
    """Secret URL of the primary as the cluster's admin user, for the migration job only."""
    app_login: pulumi.Input[str]
    """The app user's name: the migrate job grants it the `api` and `auto_confirm` roles."""
    uploads_bucket: pulumi.Input[str]
    uploads_endpoint: str
    uploads_region: str
    uploads_access_key: pulumi.Input[str]
    uploads_secret_key: pulumi.Input[str]
    secret_key: str | None
    """Flask SECRET_KEY (`appSecretKey`); None generates one, kept in state (stable across deploys)."""
    jwt_secret_key: str | None
    """JWT signing key (`jwtSecretKey`); None generates one."""
    sentry_dsn: str | None
    critical: Destinations
    """DEPLOYMENT_FAILED, DOMAIN_FAILED and RESTART_COUNT go here."""
    warning: Destinations
    """CPU_UTILIZATION and MEM_UTILIZATION go here."""


def _destinations(cls: Any, slack_cls: Any, target: Destinations) -> Any:
    slack_url = target.secret_slack_url()
    return cls(
        emails=target.secret_emails() if target.emails else None,
        slack_webhooks=[slack_cls(channel=target.slack_channel, url=slack_url)] if slack_url is not None else None,
    )


def _component_alerts(
    alert_cls: Any, dest_cls: Any, slack_cls: Any, service: DoServiceConfig, args: AppArgs
) -> list[Any]:
    rules: list[tuple[str, int, Destinations]] = [
        ("CPU_UTILIZATION", service.cpu_alert_percent, args.warning),
        ("MEM_UTILIZATION", service.memory_alert_percent, args.warning),
        ("RESTART_COUNT", service.restart_alert_count, args.critical),
    ]
    return [
        alert_cls(
            rule=rule,
            operator="GREATER_THAN",
            value=value,
            window="FIVE_MINUTES",
            destinations=_destinations(dest_cls, slack_cls, target),
        )
        for rule, value, target in rules
        if not target.empty
    ]


class App(Component):
    def __init__(self, name: str, args: AppArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("digitalocean", "App", name, naming, opts)
        service = args.service
        self.frontend_origin: str | None = f"https://{args.domain.frontend_fqdn}" if args.domain else None
        cors_origins = [*([self.frontend_origin] if self.frontend_origin else []), *service.cors_origins]
        secret_key = args.secret_key if args.secret_key else self._generated_secret("secret-key")
        jwt_secret_key = args.jwt_secret_key if args.jwt_secret_key else self._generated_secret("jwt-secret-key")
        database_env = [Env("DATABASE_URL", args.direct_database_url, secret=True)]
        common_env = [Env("STACK", args.stack), Env("LOG_LEVEL", "INFO")]

        self.api_env: list[Env] = [
            *common_env,
            Env("PORT", str(service.port)),
            Env("WEB_CONCURRENCY", str(service.gunicorn_workers)),
            Env("FORWARDED_ALLOW_IPS", ",".join(APP_PLATFORM_PROXY_CIDRS)),
            Env("DATABASE_URL", args.api_database_url, secret=True),
            Env("SECRET_KEY", secret_key, secret=True),
            Env("JWT_SECRET_KEY", jwt_secret_key, secret=True),
            *([Env("SENTRY_DSN", args.sentry_dsn, secret=True)] if args.sentry_dsn else []),
            # Without a domain the SPA and the API share the app's host: same origin, nothing to allow.
            *([Env("CORS_ORIGINS", ",".join(cors_origins))] if cors_origins else []),
            Env("UPLOADS_BUCKET", args.uploads_bucket),
            Env("UPLOADS_PREFIX", args.uploads.prefix),
            # Spaces documents presigned URLs, not POST policies: the API signs a PUT (infra/digitalocean/uploads.py).
            Env("UPLOAD_METHOD", "PUT"),
            Env("UPLOAD_MAX_BYTES", str(args.uploads.max_size_mb * 1024 * 1024)),
            Env("UPLOAD_ALLOWED_TYPES", ",".join(args.uploads.allowed_types)),
            # Standard boto3 variables, so the app's S3 code talks to Spaces unchanged.
            Env("AWS_ENDPOINT_URL_S3", args.uploads_endpoint),
            Env("AWS_REGION", args.uploads_region),
            Env("AWS_ACCESS_KEY_ID", args.uploads_access_key, secret=True),
            Env("AWS_SECRET_ACCESS_KEY", args.uploads_secret_key, secret=True),
            *(Env(key, value) for key, value in sorted(service.environment.items())),
        ]
        self.migrate_env: list[Env] = [
            *common_env,
            Env("DATABASE_URL", args.migrate_database_url, secret=True),
            Env("DATABASE_APP_LOGINS", args.app_login),
        ]
        self.worker_env: list[Env] = [
            *common_env,
            *database_env,
            Env("AUTO_CONFIRM_INTERVAL_SECONDS", str(args.auto_confirm_interval_seconds)),
            Env("AUTO_CONFIRM_BATCH_SIZE", str(args.auto_confirm.batch_size)),
        ]

        image = {"registry_type": "DOCR", "repository": args.image_repository, "digest": args.image_digest}
        scaling: dict[str, Any] = (
            {
                "autoscaling": digitalocean.AppSpecServiceAutoscalingArgs(
                    min_instance_count=service.min_count,
                    max_instance_count=service.max_count,
                    metrics=digitalocean.AppSpecServiceAutoscalingMetricsArgs(
                        cpu=digitalocean.AppSpecServiceAutoscalingMetricsCpuArgs(percent=service.cpu_target_percent)
                    ),
                )
            }
            if service.autoscaling
            else {"instance_count": service.desired_count}
        )
        api = digitalocean.AppSpecServiceArgs(
            name=API,
            image=digitalocean.AppSpecServiceImageArgs(**image),
            http_port=service.port,
            instance_size_slug=service.instance_size,
            **scaling,
            health_check=digitalocean.AppSpecServiceHealthCheckArgs(
                http_path=service.health_check_path,
                initial_delay_seconds=service.health_check_grace_seconds,
                period_seconds=10,
                timeout_seconds=3,
                failure_threshold=3,
                success_threshold=1,
            ),
            envs=[env.args(digitalocean.AppSpecServiceEnvArgs) for env in self.api_env],
            alerts=_component_alerts(
                digitalocean.AppSpecServiceAlertArgs,
                digitalocean.AppSpecServiceAlertDestinationsArgs,
                digitalocean.AppSpecServiceAlertDestinationsSlackWebhookArgs,
                service,
                args,
            ),
        )
        frontend = args.frontend
        web = digitalocean.AppSpecStaticSiteArgs(
            name=WEB,
            github=digitalocean.AppSpecStaticSiteGithubArgs(
                repo=frontend.repo, branch=frontend.branch, deploy_on_push=frontend.deploy_on_push
            ),
            source_dir=frontend.source_dir,
            build_command=frontend.build_command,
            output_dir=frontend.output_dir,
            index_document="index.html",
            # Client-side routes (/orders/42) have no file: serve the SPA, which routes them itself.
            catchall_document="index.html",
        )
        migrate = digitalocean.AppSpecJobArgs(
            name=MIGRATE,
            kind="PRE_DEPLOY",
            image=digitalocean.AppSpecJobImageArgs(**image),
            run_command=MIGRATE_COMMAND,
            instance_size_slug=JOB_INSTANCE_SIZE,
            instance_count=1,
            envs=[env.args(digitalocean.AppSpecJobEnvArgs) for env in self.migrate_env],
        )
        workers: list[digitalocean.AppSpecWorkerArgs] = []
        if args.auto_confirm.enabled:
            workers.append(
                digitalocean.AppSpecWorkerArgs(
                    name=WORKER,
                    image=digitalocean.AppSpecWorkerImageArgs(**image),
                    run_command=WORKER_COMMAND,
                    instance_size_slug=args.worker.instance_size,
                    # Exactly one: two loops would just race for the same orders (the core is safe, but it is waste).
                    instance_count=1,
                    envs=[env.args(digitalocean.AppSpecWorkerEnvArgs) for env in self.worker_env],
                    termination=digitalocean.AppSpecWorkerTerminationArgs(
                        grace_period_seconds=args.worker.grace_period_seconds
                    ),
                    alerts=_component_alerts(
                        digitalocean.AppSpecWorkerAlertArgs,
                        digitalocean.AppSpecWorkerAlertDestinationsArgs,
                        digitalocean.AppSpecWorkerAlertDestinationsSlackWebhookArgs,
                        service,
                        args,
                    ),
                )
            )
        app_alert_rules = ["DEPLOYMENT_FAILED", *(["DOMAIN_FAILED"] if args.domain else [])]
        app_alerts: Sequence[digitalocean.AppSpecAlertArgs] = (
            []
            if args.critical.empty
            else [
                digitalocean.AppSpecAlertArgs(
                    rule=rule,
                    destinations=_destinations(
                        digitalocean.AppSpecAlertDestinationsArgs,
                        digitalocean.AppSpecAlertDestinationsSlackWebhookArgs,
                        args.critical,
                    ),
                )
                for rule in app_alert_rules
            ]
        )
        domains = (
            [
                digitalocean.AppSpecDomainNameArgs(name=args.domain.frontend_fqdn, type="PRIMARY"),
                digitalocean.AppSpecDomainNameArgs(name=args.domain.api_fqdn, type="ALIAS"),
            ]
            if args.domain
            else []
        )
        ingress = digitalocean.AppSpecIngressArgs(
            rules=[
                digitalocean.AppSpecIngressRuleArgs(
                    match=digitalocean.AppSpecIngressRuleMatchArgs(
                        path=digitalocean.AppSpecIngressRuleMatchPathArgs(prefix="/api")
                    ),
                    component=digitalocean.AppSpecIngressRuleComponentArgs(name=API, preserve_path_prefix=True),
                ),
                digitalocean.AppSpecIngressRuleArgs(
                    match=digitalocean.AppSpecIngressRuleMatchArgs(
                        path=digitalocean.AppSpecIngressRuleMatchPathArgs(prefix="/")
                    ),
                    component=digitalocean.AppSpecIngressRuleComponentArgs(name=WEB),
                ),
            ]
        )
        self.app = digitalocean.App(
            self.child_name("app"),
            spec=digitalocean.AppSpecArgs(
                name=naming.physical(max_length=32),
                region=args.region,
                services=[api],
                static_sites=[web],
                jobs=[migrate],
                workers=workers,
                alerts=list(app_alerts),
                domain_names=domains,
                ingress=ingress,
            ),
            opts=self.opts(),
        )
        self.app_id: pulumi.Output[str] = self.app.id
        self.default_ingress: pulumi.Output[str] = self.app.default_ingress
        self.frontend_url: pulumi.Output[str] = (
            pulumi.Output.from_input(self.frontend_origin) if self.frontend_origin else self.app.default_ingress
        )
        self.api_url: pulumi.Output[str] = (
            pulumi.Output.from_input(f"https://{args.domain.api_fqdn}") if args.domain else self.app.default_ingress
        )
        self.register_outputs({"appId": self.app.id, "defaultIngress": self.app.default_ingress})

    def _generated_secret(self, part: str) -> pulumi.Output[str]:
        # 64 alphanumerics (~380 bits): above the app's 32-character minimum, and safe in any env parser.
        return random.RandomPassword(self.child_name(part), length=64, special=False, opts=self.opts()).result

"""The AWS stack: one provider carrying the default tags, then one component per concern.

Order matters only through data: each component takes what it needs from earlier ones as typed args.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.access_logs import LoggedBucket, ServerAccessLogs, ServerAccessLogsArgs
from infra.aws.alerts import Alerts, AlertsArgs
from infra.aws.auto_confirm import AutoConfirmArgs, AutoConfirmJob
from infra.aws.backup import Backup, BackupArgs, RestoreTestingArgs
from infra.aws.cache import Cache, CacheArgs
from infra.aws.certificate import Certificate, CertificateArgs
from infra.aws.database import Database, DatabaseArgs
from infra.aws.frontend import Frontend, FrontendArgs
from infra.aws.function import LambdaDependencies, PythonFunction
from infra.aws.health_check import HealthCheck, HealthCheckArgs, PublicUrl
from infra.aws.http_api import HttpApiArgs, HttpApiFrontDoor
from infra.aws.kms import LogKey
from infra.aws.load_balancer import LoadBalancer, LoadBalancerArgs
from infra.aws.monitoring import (
    ApiWatch,
    CacheWatch,
    DatabaseWatch,
    EdgeDelivery,
    FrontendWatch,
    FunctionWatch,
    Monitoring,
    MonitoringArgs,
    QueueWatch,
)
from infra.aws.network import Network, NetworkArgs, subnet_blocks
from infra.aws.platform_events import PlatformEvents, PlatformEventsArgs
from infra.aws.scheduled_tasks import ScheduledTasks, ScheduledTasksArgs, ScheduledTaskTarget
from infra.aws.secrets import AppSecrets, AppSecretsArgs
from infra.aws.service import DatabaseAccess, Service, ServiceArgs, UploadsAccess
from infra.aws.uploads import Uploads, UploadsArgs
from infra.aws.waf import API_UPLOADS_PATH_PREFIX, WebAcl, WebAclArgs
from infra.config import AwsStack
from infra.naming import Naming


def default_tags(config: AwsStack, naming: Naming) -> dict[str, str]:
    """Tags every AWS resource gets through the provider (not per resource, so none can be forgotten)."""
    return {**naming.tags, "tier": config.tier, "owner": config.owner, "managed-by": "pulumi"}


EDGE_REGION = "us-east-1"
"""CloudFront reads its ACM certificate and its WAF web ACL (scope CLOUDFRONT) from this region only."""


def edge_provider(config: AwsStack, naming: Naming, regional: aws.Provider) -> aws.Provider:
    """The provider for CloudFront's certificate and web ACL: the stack's own when it already runs in
    us-east-1 (one provider, nothing to keep in step), else a second one there with the same default tags."""
    if config.region == EDGE_REGION:
        return regional
    return aws.Provider(
        f"aws-{EDGE_REGION}",
        region=EDGE_REGION,
        default_tags=aws.ProviderDefaultTagsArgs(tags=default_tags(config, naming)),
    )


def offsite_provider(config: AwsStack, naming: Naming, edge: aws.Provider) -> aws.Provider | None:
    """The provider of the offsite backup vault's region (same default tags), when backups are copied offsite.
    The edge provider when that region is us-east-1 (one provider per region, and a second would clash by name)."""
    offsite = config.backups.offsite
    if not config.backups.enabled or offsite is None:
        return None
    if offsite.region == EDGE_REGION:
        return edge
    return aws.Provider(
        f"aws-{offsite.region}",
        region=offsite.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=default_tags(config, naming)),
    )


def log_keys_wanted(config: AwsStack) -> bool:
    """Customer-managed keys on CloudWatch log groups in prod only: each key is 1 USD/month (more after its
    first rotations), and staging's logs hold nothing prod's do not, so there they keep AWS's own encryption
    (README "Security logging and encryption keys")."""
    return config.tier == "prod"


def build_aws_stack(config: AwsStack, naming: Naming) -> dict[str, Any]:
    provider = aws.Provider(
        "aws",
        region=config.region,
        default_tags=aws.ProviderDefaultTagsArgs(tags=default_tags(config, naming)),
    )
    # Children inherit the provider from their component, so passing it once here covers every resource.
    with_provider = pulumi.ResourceOptions(provider=provider)

    # One edge provider for everything CloudFront reads from us-east-1 (certificate, WAF web ACL).
    edge = edge_provider(config, naming, provider)

    # One log key per region with log groups (the stack's, and us-east-1 for the CloudFront WAF's logs).
    log_key: LogKey | None = None
    edge_log_key: LogKey | None = None
    if log_keys_wanted(config):
        log_key = LogKey("log-key", naming, with_provider)
        edge_log_key = (
            log_key if edge is provider else LogKey("log-key-edge", naming, pulumi.ResourceOptions(provider=edge))
        )
    log_key_arn = log_key.arn if log_key is not None else None

    network = Network(
        "network",
        NetworkArgs(settings=config.network, region=config.region, log_kms_key_arn=log_key_arn),
        naming,
        with_provider,
    )
    database = Database(
        "database",
        DatabaseArgs(
            settings=config.database,
            tier=config.tier,
            vpc_id=network.vpc.id,
            subnet_ids=network.isolated_subnet_ids,
            log_kms_key_arn=log_key_arn,
            continuous_backup=config.backups.enabled and config.backups.continuous,
        ),
        naming,
        with_provider,
    )
    app_secrets = AppSecrets("app-secrets", AppSecretsArgs(config=config), naming, with_provider)
    cache: Cache | None = None
    if config.cache.enabled:
        cache = Cache(
            "cache",
            CacheArgs(
                settings=config.cache,
                tier=config.tier,
                vpc_id=network.vpc.id,
                subnet_ids=network.isolated_subnet_ids,
            ),
            naming,
            with_provider,
        )

    regional_acl: WebAcl | None = None
    cloudfront_acl: WebAcl | None = None
    if config.waf.enabled:
        # The ALB's ACL lets bodies over 8 KB through to the upload routes only (the app limits them there).
        regional_acl = WebAcl(
            "waf-regional",
            WebAclArgs(
                scope="REGIONAL",
                rate_limit=config.waf.rate_limit,
                log_retention_days=config.waf.log_retention_days,
                log_kms_key_arn=log_key_arn,
                large_body_path_prefixes=(API_UPLOADS_PATH_PREFIX,),
            ),
            naming,
            with_provider,
        )
        cloudfront_acl = WebAcl(
            "waf-cloudfront",
            WebAclArgs(
                scope="CLOUDFRONT",
                rate_limit=config.waf.rate_limit,
                log_retention_days=config.waf.log_retention_days,
                # Its log group is in us-east-1 (the edge provider), so the key must be that region's.
                log_kms_key_arn=edge_log_key.arn if edge_log_key is not None else None,
            ),
            naming,
            pulumi.ResourceOptions(provider=edge),
        )

    frontend = Frontend(
        "frontend",
        FrontendArgs(
            settings=config.frontend,
            domain=config.domain,
            certificate_provider=edge,
            web_acl_arn=cloudfront_acl.arn if cloudfront_acl is not None else None,
            force_destroy_logs=config.tier != "prod",
        ),
        naming,
        with_provider,
    )

    # Browsers upload with presigned URLs from the origins the API answers (the SPA's, plus service.corsOrigins).
    extra_origins = [origin.rstrip("/") for origin in config.service.cors_origins]
    uploads = Uploads(
        "uploads",
        UploadsArgs(
            settings=config.uploads,
            allowed_origins=frontend.url.apply(lambda url: list(dict.fromkeys([url.rstrip("/"), *extra_origins]))),
            force_destroy=config.tier != "prod",
        ),
        naming,
        with_provider,
    )

    # FSBP S3.9: who read or deleted users' files (and the SPA's) is recorded in a log bucket of its own.
    access_logs = ServerAccessLogs(
        "s3-access-logs",
        ServerAccessLogsArgs(
            sources={
                "uploads": LoggedBucket(name=uploads.bucket.id, arn=uploads.bucket.arn),
                "frontend": LoggedBucket(name=frontend.bucket.id, arn=frontend.bucket.arn),
            },
            retention_days=config.uploads.access_log_retention_days,
            force_destroy=config.tier != "prod",
        ),
        naming,
        with_provider,
    )

    service, front_door, scheduled_tasks = _api_service(
        config,
        naming,
        with_provider,
        network,
        database,
        app_secrets,
        regional_acl,
        frontend,
        uploads,
        cache,
        log_key_arn,
    )

    lambda_deps = LambdaDependencies("lambda-deps", naming, with_provider)

    # Before anything that publishes: alarms, EventBridge rules and AWS Backup take `alerts.topic_arns`.
    alerts = Alerts("alerts", AlertsArgs.from_stack(config, lambda_deps.arn, log_key_arn), naming, with_provider)

    health: HealthCheck | None = None
    if config.health_checks.enabled:
        health = HealthCheck(
            "health-check",
            HealthCheckArgs(
                settings=config.health_checks,
                layer_arn=lambda_deps.arn,
                timezone=config.jobs.timezone,
                network=network,
                # CloudFront always serves HTTPS (its own certificate, or ours on the custom domain).
                frontend=PublicUrl(frontend.url, https=True),
                api=PublicUrl(front_door.url, https=front_door.https),
                database=database,
                log_kms_key_arn=log_key_arn,
            ),
            naming,
            with_provider,
        )

    auto_confirm: AutoConfirmJob | None = None
    if config.jobs.auto_confirm.enabled:
        auto_confirm = AutoConfirmJob(
            "auto-confirm",
            AutoConfirmArgs(
                settings=config.jobs.auto_confirm,
                timezone=config.jobs.timezone,
                layer_arn=lambda_deps.arn,
                network=network,
                database=database,
                log_kms_key_arn=log_key_arn,
            ),
            naming,
            with_provider,
        )

    backup: Backup | None = None
    if config.backups.enabled:
        backup = Backup(
            "backup",
            BackupArgs(
                settings=config.backups,
                tier=config.tier,
                region=config.region,
                database=database,
                alert_topic_arn=alerts.topic_arns["critical"],
                offsite_provider=offsite_provider(config, naming, edge),
                restore_testing=RestoreTestingArgs(
                    network=network, layer_arn=lambda_deps.arn, log_kms_key_arn=log_key_arn
                ),
            ),
            naming,
            with_provider,
        )

    # Derived, not configured: the Secrets Manager endpoint exists only while a Lambda in the VPC reads a secret.
    network.require_secrets_manager_endpoint(
        vpc_secret_readers(
            alerts.forwarder,
            *((health.public, health.vpc) if health is not None else ()),
            auto_confirm.function if auto_confirm is not None else None,
            *((backup.probe, backup.validator, backup.age_check) if backup is not None else ()),
        )
    )

    functions: list[FunctionWatch] = alerts.function_watches()
    queues: list[QueueWatch] = alerts.queue_watches()
    if auto_confirm is not None:
        functions.append(auto_confirm.function_watch())
        queues.append(auto_confirm.queue_watch())
    if health is not None:
        functions += health.function_watches()
        queues += health.queue_watches()
    if backup is not None:
        functions += backup.function_watches()
        queues += backup.queue_watches()
    if scheduled_tasks is not None:
        queues.append(QueueWatch(label="scheduled-tasks", queue_name=scheduled_tasks.dead_letter_queue_name))
    monitoring = Monitoring(
        "monitoring",
        MonitoringArgs(
            settings=config.monitoring,
            region=config.region,
            topic_arns=alerts.topic_arns,
            edge_provider=edge,
            edge_delivery=EdgeDelivery(alert_inbox_arn=alerts.inbox.arn, oncall_email=config.alerts.oncall_email),
            database=DatabaseWatch(
                identifier=database.identifier,
                allocated_storage_gb=config.database.allocated_storage_gb,
                instance_class=config.database.instance_class,
                max_connections=config.database.max_connections,
            ),
            cache=(
                CacheWatch(
                    node_ids=[
                        cache.replication_group.member_clusters.apply(lambda nodes, index=index: nodes[index])
                        for index in range(1 + config.cache.replicas)
                    ]
                )
                if cache is not None
                else None
            ),
            frontend=FrontendWatch(distribution_id=frontend.distribution_id),
            api=ApiWatch(
                load_balancer_arn_suffix=service.alb_arn_suffix,
                target_group_arn_suffix=service.target_group_arn_suffix,
                http_api_id=front_door.api_id if isinstance(front_door, HttpApiFrontDoor) else None,
                cluster_name=service.cluster_name,
                service_name=service.service_name,
                log_group_name=service.log_group_name,
            ),
            functions=functions,
            queues=queues,
            health=health.watch() if health is not None else None,
            auto_confirm=auto_confirm.watch() if auto_confirm is not None else None,
            backup=backup.watch() if backup is not None else None,
            alert_forwarder=True,
            alert_inbox_queue=alerts.inbox.name,
        ),
        naming,
        with_provider,
    )

    platform_events = PlatformEvents(
        "platform-events",
        PlatformEventsArgs(
            topic_arns=alerts.topic_arns,
            db_instance_identifier=database.identifier,
            cluster_arn=service.cluster.arn,
            service_arns=[service.ecs_service.arn, *(worker.arn for worker in service.workers.values())],
        ),
        naming,
        with_provider,
    )

    outputs: dict[str, Any] = {
        "region": config.region,
        "tier": config.tier,
        "vpcId": network.vpc.id,
        "privateSubnetIds": network.private_subnet_ids,
        "publicSubnetIds": network.public_subnet_ids,
        "isolatedSubnetIds": network.isolated_subnet_ids,
        # host:port only; the credentials stay in the RDS-managed secret below.
        "databaseEndpoint": database.endpoint,
        "databaseSecretArn": database.master_secret_arn,
        "databaseLogGroup": database.log_group_name,
        "appSecretArn": app_secrets.secret_arn,
        "frontendUrl": frontend.url,
        "frontendBucket": frontend.bucket_name,
        "cloudfrontDistributionId": frontend.distribution_id,
        "frontendImmutablePaths": list(config.frontend.immutable_paths),
        "uploadsBucket": uploads.bucket_name,
        "s3AccessLogBucket": access_logs.bucket_name,
        "alertTopicArns": alerts.topic_arns,
        "alertStateTable": alerts.table_name,
        "alertForwarderFunction": alerts.function_name,
        # Lambda's on-failure destination: alerts the forwarder could not deliver after every retry.
        "alertDlqUrl": alerts.dlq_url,
        # SNS's redrive queue: alerts SNS could not hand to the forwarder at all.
        "alertDeliveryDlqUrl": alerts.delivery_dlq.url,
    }
    outputs |= {
        "apiUrl": front_door.url,
        "frontDoor": config.service.front_door,
        "ecrRepositoryUrl": service.repository.repository_url,
        "apiLogGroup": service.log_group_name,
        "clusterName": service.cluster_name,
        "serviceName": service.service_name,
        # What infra/deploy.py needs to run the migrate task before rolling the service (docs/deploy.md).
        "migrateTaskDefinitionArn": service.migrate.task_definition.arn,
        "migrateLogGroup": service.migrate.log_group.name,
        "taskSubnetIds": network.workload_subnet_ids,
        "taskSecurityGroupId": service.tasks_security_group.id,
        "taskAssignPublicIp": network.tasks_in_public_subnets,
        "dbInstanceIdentifier": database.identifier,
    }
    if isinstance(front_door, LoadBalancer):
        outputs["albDnsName"] = front_door.dns_name
    else:
        outputs["httpApiId"] = front_door.api_id
        outputs["httpApiAccessLogGroup"] = front_door.access_logs.name
    if scheduled_tasks is not None:
        outputs["scheduledTasksDeadLetterQueue"] = scheduled_tasks.dead_letter_queue_name
    if cache is not None:
        outputs["cacheEndpoint"] = cache.endpoint
    outputs["platformEventRules"] = {part: rule.name for part, rule in platform_events.rules.items()}
    outputs["dashboardUrl"] = monitoring.dashboard_url
    outputs["alarmCount"] = monitoring.alarm_count
    if health is not None:
        outputs["healthCheckFunctions"] = health.function_names
    if auto_confirm is not None:
        outputs["autoConfirmFunction"] = auto_confirm.function_name
        outputs["autoConfirmLogGroup"] = auto_confirm.function.log_group_name
    if backup is not None:
        # Where recovery points are and what makes them: the restore runbook (docs/runbooks/restore.md) starts here.
        outputs["backupVaultName"] = backup.vault_name
        outputs["backupPlanId"] = backup.plan_id
        outputs["backupRoleArn"] = backup.role.arn  # `start-restore-job --iam-role-arn` in a manual restore
        if backup.offsite_vault is not None and backup.offsite_vault_arn is not None:
            outputs["backupOffsiteVaultArn"] = backup.offsite_vault_arn
            outputs["backupOffsiteVaultName"] = backup.offsite_vault.name
        if (
            backup.restore_testing_plan_name is not None
            and backup.validator is not None
            and backup.restored_db_security_group is not None
        ):
            outputs["restoreTestingPlanName"] = backup.restore_testing_plan_name
            outputs["restoreValidatorFunction"] = backup.validator.function_name
            # Attach to a manually restored copy so the validator can check it (docs/runbooks/restore.md).
            outputs["restoredDbSecurityGroupId"] = backup.restored_db_security_group.id
    if regional_acl is not None and cloudfront_acl is not None:
        outputs["wafRegionalAclArn"] = regional_acl.arn
        outputs["wafCloudFrontAclArn"] = cloudfront_acl.arn
        outputs["wafLogGroups"] = {"regional": regional_acl.log_group_name, "cloudfront": cloudfront_acl.log_group_name}
    if frontend.log_bucket is not None:
        outputs["frontendLogBucket"] = frontend.log_bucket.bucket
    if frontend.certificate is not None and config.domain is not None and config.domain.hosted_zone_id is None:
        # No zone of ours: whoever runs the DNS creates these, plus a CNAME from the host to CloudFront.
        outputs["frontendCertificateValidationRecords"] = frontend.certificate.validation_records
        outputs["frontendDnsTarget"] = frontend.distribution.domain_name
    return outputs


def vpc_secret_readers(*functions: PythonFunction | None) -> list[str]:
    """Labels of the functions that run inside the VPC and fetch a secret at run time (`*_SECRET_ARN`)."""
    return sorted(f.label for f in functions if f is not None and f.in_vpc and f.secret_arn_keys)


def _api_service(
    config: AwsStack,
    naming: Naming,
    with_provider: pulumi.ResourceOptions,
    network: Network,
    database: Database,
    app_secrets: AppSecrets,
    regional_acl: WebAcl | None,
    frontend: Frontend,
    uploads: Uploads,
    cache: Cache | None,
    log_key_arn: pulumi.Input[str] | None,
) -> tuple[Service, LoadBalancer | HttpApiFrontDoor, ScheduledTasks | None]:
    """The front door, the API/worker service on ECS and the scheduled jobs, wired to the database and secrets."""
    settings = config.service
    front_door = _front_door(config, naming, with_provider, network, regional_acl)
    secrets: dict[str, pulumi.Input[str]] = dict(app_secrets.env_secrets)
    cache_environment: dict[str, pulumi.Input[str]] = {}
    if cache is not None:
        secrets |= cache.env_secrets
        cache_environment = {
            "REDIS_HOST": cache.primary_endpoint,
            "REDIS_PORT": cache.port.apply(str),
            "REDIS_TLS": "true",  # in-transit encryption is on; the auth token is refused over plain TCP
        }
    service = Service(
        "api",
        ServiceArgs(
            settings=settings,
            tier=config.tier,
            region=config.region,
            vpc_id=network.vpc.id,
            subnet_ids=network.workload_subnet_ids,
            assign_public_ip=network.tasks_in_public_subnets,
            database=DatabaseAccess(
                address=database.address,
                port=database.port,
                name=database.db_name,
                master_secret_arn=database.master_secret_arn,
                security_group_id=database.security_group.id,
                instance_arn=database.arn,
                resource_id=database.instance.resource_id,
            ),
            app_secrets=secrets,
            front_door=front_door.target,
            uploads=UploadsAccess(
                bucket_name=uploads.bucket_name,
                prefix=uploads.prefix,
                max_size_bytes=uploads.max_size_bytes,
                allowed_types=uploads.allowed_types,
                policy_statements=uploads.app_policy_statements(),
            ),
            cors_origins=[frontend.url, *settings.cors_origins],
            extra_environment=cache_environment,
            # The ALB's nodes or the VPC link's interfaces: gunicorn trusts X-Forwarded-* from these only.
            proxy_cidrs=_front_door_cidrs(config, network),
            scheduled_tasks=config.jobs.scheduled_tasks,
            log_kms_key_arn=log_key_arn,
        ),
        naming,
        with_provider,
    )
    front_door.allow_egress_to("api", service.security_group.id, settings.port, "API tasks")
    database.allow_from("api", service.security_group.id, "API tasks")
    database.allow_from("tasks", service.tasks_security_group.id, "Workers, migrations and scheduled jobs")
    if cache is not None:
        service.allow_egress_to("cache", cache.security_group.id, cache.port, "Redis/Valkey")
        cache.allow_from("api", service.security_group.id, "API tasks")
        cache.allow_from("tasks", service.tasks_security_group.id, "Workers and scheduled jobs")

    scheduled_tasks: ScheduledTasks | None = None
    if config.jobs.scheduled_tasks:
        scheduled_tasks = ScheduledTasks(
            "jobs",
            ScheduledTasksArgs(
                tasks=config.jobs.scheduled_tasks,
                timezone=config.jobs.timezone,
                cluster_arn=service.cluster.arn,
                targets={
                    name: ScheduledTaskTarget(
                        task_definition_arn=bundle.task_definition.arn,
                        task_definition_family_arn=bundle.task_definition.arn_without_revision,
                    )
                    for name, bundle in service.scheduled_task_definitions.items()
                },
                subnet_ids=network.workload_subnet_ids,
                security_group_ids=[service.tasks_security_group.id],
                assign_public_ip=network.tasks_in_public_subnets,
                pass_role_arns=[service.task_role.arn, service.execution_role.arn],
            ),
            naming,
            with_provider,
        )
    return service, front_door, scheduled_tasks


def _front_door(
    config: AwsStack,
    naming: Naming,
    with_provider: pulumi.ResourceOptions,
    network: Network,
    regional_acl: WebAcl | None,
) -> LoadBalancer | HttpApiFrontDoor:
    """`service.frontDoor`: the ALB (prod; WAF, access logs) or the per-request HTTP API (staging default)."""
    settings = config.service
    domain = config.domain
    certificate = (
        Certificate(
            "api-certificate",
            CertificateArgs(domain_name=domain.api_fqdn, hosted_zone_id=domain.hosted_zone_id),
            naming,
            with_provider,  # an ALB and a regional API domain take certificates from their own region only
        )
        if domain is not None
        else None
    )
    if settings.front_door == "httpApi":
        return HttpApiFrontDoor(
            "api-gateway",
            HttpApiArgs(
                vpc_id=network.vpc.id,
                subnet_ids=network.workload_subnet_ids,
                target_port=settings.port,
                log_retention_days=settings.log_retention_days,
                certificate_arn=certificate.arn if certificate is not None else None,
                domain_name=domain.api_fqdn if domain is not None else None,
                hosted_zone_id=domain.hosted_zone_id if domain is not None else None,
            ),
            naming,
            with_provider,
        )
    return LoadBalancer(
        "api-lb",
        LoadBalancerArgs(
            region=config.region,
            vpc_id=network.vpc.id,
            subnet_ids=network.public_subnet_ids,
            target_port=settings.port,
            health_check_path=settings.health_check_path,
            deregistration_delay_seconds=settings.deregistration_delay_seconds,
            certificate_arn=certificate.arn if certificate is not None else None,
            domain_name=domain.api_fqdn if domain is not None else None,
            hosted_zone_id=domain.hosted_zone_id if domain is not None else None,
            web_acl_arn=regional_acl.arn if regional_acl is not None else None,
            deletion_protection=settings.load_balancer_deletion_protection,
            access_logs=settings.load_balancer_access_logs,
            access_log_retention_days=settings.access_log_retention_days,
            force_destroy_logs=config.tier != "prod",
        ),
        naming,
        with_provider,
    )


def _front_door_cidrs(config: AwsStack, network: Network) -> list[str]:
    """Where requests to the tasks come from: the ALB sits in the public subnets; the VPC link in the tasks'."""
    blocks = subnet_blocks(config.network.cidr, config.network.az_count)
    if config.service.front_door == "alb" or network.tasks_in_public_subnets:
        return blocks["public"]
    return blocks["private"]

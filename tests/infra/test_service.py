"""The API service on ECS Fargate: image, task definitions, service, autoscaling, IAM, workers and migrations."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from infra.aws.service import context_hash, secret_arn_of
from infra.aws.task_definition import CONTAINER_USER, TaskSpec, container_definition
from infra.config import _SECRETISH, ConfigError, parse_stack_config
from infra.harness import Resource, StackRun
from tests.app.app_support import load_gunicorn_conf
from tests.infra.conftest import evaluate

TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
ECS_SERVICE = "aws:ecs/service:Service"
IMAGE = "docker:index/image:Image"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
EGRESS = "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule"
SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
DIGEST_REF = re.compile(r"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/[a-z0-9-]+@sha256:[0-9a-f]{64}$")

WORKER_AND_JOB = {
    "shipyard:service": {
        "cpu": 256,
        "memory": 512,
        "desiredCount": 1,
        "minCount": 1,
        "maxCount": 2,
        "workers": [
            {"name": "bot", "command": ["python", "-m", "app.bot"], "desiredCount": 2, "cpu": 512, "memory": 1024}
        ],
    },
    "shipyard:jobs": {
        "timezone": "America/Sao_Paulo",
        "scheduledTasks": [
            {"name": "reminders", "schedule": "cron(0 9 * * ? *)", "command": ["python", "-m", "app.jobs.reminders"]},
            {"name": "cleanup", "schedule": "rate(6 hours)", "command": ["python", "-m", "app.jobs.cleanup"]},
        ],
    },
}


@pytest.fixture(scope="module")
def with_worker_and_jobs() -> StackRun:
    return evaluate("staging", config_overrides=WORKER_AND_JOB)


def _containers(task: Resource) -> list[dict[str, Any]]:
    containers: list[dict[str, Any]] = json.loads(task.inputs["containerDefinitions"])
    return containers


def _container(run: StackRun, name: str) -> dict[str, Any]:
    (container,) = _containers(run.one(TASK_DEFINITION, f"api-{name}-task"))
    return container


def _policy(run: StackRun, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(run.one(ROLE_POLICY, name).inputs["policy"])
    return document


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    (statement,) = [s for s in policy["Statement"] if s.get("Sid") == sid]
    return statement


def _api_service(run: StackRun) -> Resource:
    return run.one(ECS_SERVICE, "api-api")


# ------------------------------------------------------------------------------------------------- image


def test_image_is_built_from_app_for_the_task_architecture(any_stack: StackRun) -> None:
    image = any_stack.one(IMAGE)
    build = image.inputs["build"]
    assert build["context"] == "../app"  # relative to infra/, where the CLI runs the program
    assert build["dockerfile"] == "../app/Dockerfile"
    assert build["platform"] == "linux/arm64"
    repository = any_stack.one("aws:ecr/repository:Repository")
    url = repository.outputs["repositoryUrl"]
    from infra.aws.service import APP_DIR

    assert image.inputs["imageName"] == f"{url}:{context_hash(APP_DIR)[:16]}"
    registry = image.inputs["registry"]
    assert registry["server"] == url
    assert registry["username"] == "AWS"
    assert registry["password"].startswith("offline-ecr-password-")  # from ecr.getAuthorizationToken
    assert "registry" in image.secret_inputs  # the ECR password never lands in state in clear
    docker_provider = any_stack.one("pulumi:providers:docker")
    assert (image.provider or "").startswith(docker_provider.urn + "::")


def test_x86_architecture_builds_amd64_and_runs_x86_tasks() -> None:
    run = evaluate("staging", config_overrides={"shipyard:service": {"architecture": "x86_64"}})
    assert run.one(IMAGE).inputs["build"]["platform"] == "linux/amd64"
    for task in run.of_type(TASK_DEFINITION):
        assert task.inputs["runtimePlatform"] == {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"}


PREBUILT = "210987654321.dkr.ecr.us-east-1.amazonaws.com/shipyard-build-api@sha256:" + "ab" * 32


def test_a_prebuilt_image_by_digest_is_deployed_as_is_and_nothing_is_built() -> None:
    """`service.image` (scripts/deploy.py --image): prod runs the digest staging ran, no second build."""
    run = evaluate("staging", config_overrides={"shipyard:service": {"image": PREBUILT}})
    assert run.of_type(IMAGE) == []
    for task in run.of_type(TASK_DEFINITION):
        for container in _containers(task):
            assert container["image"] == PREBUILT
    # the execution role pulls from the image's repository (another stack's) as well as its own
    pull = _statement(_policy(run, "api-execution-policy"), "EcrPull")
    own = run.one("aws:ecr/repository:Repository").outputs["arn"]
    assert sorted(pull["Resource"]) == sorted([own, "arn:aws:ecr:us-east-1:210987654321:repository/shipyard-build-api"])


@pytest.mark.parametrize(
    "image",
    [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/shipyard-staging-api:latest",  # a tag can be re-pointed
        "docker.io/library/python@sha256:" + "ab" * 32,  # not ECR: the execution role could not pull it
    ],
)
def test_a_prebuilt_image_must_be_an_ecr_image_by_digest(image: str) -> None:
    with pytest.raises(ConfigError, match=r"Pulumi.staging.yaml: shipyard:service.image: .* has the wrong form"):
        parse_stack_config({"shipyard:service": {"image": image}}, source="Pulumi.staging.yaml")


def test_context_hash_changes_with_content_and_ignores_caches(tmp_path: Any) -> None:
    (tmp_path / "a.py").write_text("print(1)\n")
    first = context_hash(tmp_path)
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert context_hash(tmp_path) == first
    (tmp_path / "a.py").write_text("print(2)\n")
    assert context_hash(tmp_path) != first


def test_ecr_repository_is_immutable_scanned_encrypted_and_pruned(staging: StackRun, prod: StackRun) -> None:
    for run in (staging, prod):
        repository = run.one("aws:ecr/repository:Repository").inputs
        assert repository["imageTagMutability"] == "IMMUTABLE"
        assert repository["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repository["encryptionConfigurations"][0]["encryptionType"] in {"KMS", "AES256"}
        lifecycle = json.loads(run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["policy"])
        (rule,) = lifecycle["rules"]
        assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 20}
        assert rule["action"] == {"type": "expire"}
    assert staging.one("aws:ecr/repository:Repository").inputs["forceDelete"] is True
    assert prod.one("aws:ecr/repository:Repository").inputs["forceDelete"] is False


# ------------------------------------------------------------------------------------------------- tasks


def test_every_task_definition_pins_the_image_digest(any_stack: StackRun) -> None:
    digest = any_stack.one(IMAGE).outputs["repoDigest"]
    assert DIGEST_REF.match(digest), digest
    tasks = any_stack.of_type(TASK_DEFINITION)
    assert {t.name for t in tasks} >= {"api-api-task", "api-migrate-task"}
    for task in tasks:
        for container in _containers(task):
            assert container["image"] == digest


def test_containers_run_non_root_with_read_only_root_and_a_tmp_volume(any_stack: StackRun) -> None:
    for task in any_stack.of_type(TASK_DEFINITION):
        assert {"name": "tmp"} in task.inputs["volumes"]
        for container in _containers(task):
            assert container["readonlyRootFilesystem"] is True
            assert container["user"] == CONTAINER_USER
            assert container["user"].split(":")[0] not in {"0", "root"}
            assert {"sourceVolume": "tmp", "containerPath": "/tmp", "readOnly": False} in container["mountPoints"]  # noqa: S108


def test_task_sizes_and_platform_follow_the_tier(staging: StackRun, prod: StackRun) -> None:
    for run, cpu, memory in ((staging, "256", "512"), (prod, "512", "1024")):
        task = run.one(TASK_DEFINITION, "api-api-task").inputs
        assert (task["cpu"], task["memory"]) == (cpu, memory)
        assert task["requiresCompatibilities"] == ["FARGATE"]
        assert task["networkMode"] == "awsvpc"
        assert task["runtimePlatform"] == {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"}


def test_logs_go_to_a_log_group_with_retention(staging: StackRun, prod: StackRun) -> None:
    for run, days in ((staging, 30), (prod, 90)):
        group = run.one("aws:cloudwatch/logGroup:LogGroup", "api-api-logs")
        assert group.inputs["retentionInDays"] == days
        options = _container(run, "api")["logConfiguration"]
        assert options["logDriver"] == "awslogs"
        assert options["options"]["awslogs-group"] == group.outputs["name"] == run.outputs["apiLogGroup"]
        assert options["options"]["awslogs-region"] == "us-east-1"


def test_no_secret_is_a_plain_environment_value(any_stack: StackRun) -> None:
    for task in any_stack.of_type(TASK_DEFINITION):
        for container in _containers(task):
            names = {e["name"] for e in container["environment"]}
            assert not {n for n in names if _SECRETISH.search(n)}, names
            assert names.isdisjoint({s["name"] for s in container["secrets"]})
            values = " ".join(e["value"] for e in container["environment"])
            assert "PLACEHOLDER" not in values and "offline-ecr-password" not in values


def test_secrets_are_injected_by_secrets_manager_arn(any_stack: StackRun) -> None:
    container = _container(any_stack, "api")
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert {"SECRET_KEY", "JWT_SECRET_KEY"} <= set(secrets)
    master = any_stack.outputs["databaseSecretArn"]
    app_secret = any_stack.outputs["appSecretArn"]
    assert secrets["SECRET_KEY"] == f"{app_secret}:SECRET_KEY::"
    assert secrets["JWT_SECRET_KEY"] == f"{app_secret}:JWT_SECRET_KEY::"
    # The execution role reads exactly these secrets (the master one for the migrate task), nothing else.
    policy = _policy(any_stack, "api-execution-policy")
    assert sorted(_statement(policy, "InjectedSecrets")["Resource"]) == sorted({master, app_secret})
    assert _statement(policy, "InjectedSecrets")["Action"] == "secretsmanager:GetSecretValue"


def test_only_the_migrate_task_gets_the_master_secret(with_worker_and_jobs: StackRun) -> None:
    """Issue #14 item 1: ECS injects a secret only at task start, so a rotated master password would strand
    every running API task. The API, workers and jobs log in as `api` with IAM tokens instead."""
    run = with_worker_and_jobs
    master = run.outputs["databaseSecretArn"]
    migrate = {s["name"]: s["valueFrom"] for s in _container(run, "migrate")["secrets"]}
    assert migrate["DATABASE_USER"] == f"{master}:username::"
    assert migrate["DATABASE_PASSWORD"] == f"{master}:password::"
    migrate_env = {e["name"]: e["value"] for e in _container(run, "migrate")["environment"]}
    assert "DATABASE_AUTH" not in migrate_env  # password login, as the master
    for name in ("api", "worker-bot", "job-reminders", "job-cleanup"):
        container = _container(run, name)
        assert not [s for s in container["secrets"] if master in s["valueFrom"]], name
        env = {e["name"]: e["value"] for e in container["environment"]}
        assert (env["DATABASE_AUTH"], env["DATABASE_USER"]) == ("iam", "api"), name
        assert env["AWS_REGION"] == "us-east-1"


def test_task_role_may_log_in_to_the_database_as_api_only(any_stack: StackRun) -> None:
    """`rds-db:connect` names the DbiResourceId and one database user (AWS IAM DB auth policy format)."""
    instance = any_stack.one("aws:rds/instance:Instance").outputs
    _, partition, _, region, account = instance["arn"].split(":")[:5]
    login = _statement(_policy(any_stack, "api-task-policy"), "DatabaseLogin")
    assert login["Action"] == "rds-db:connect"
    assert login["Resource"] == f"arn:{partition}:rds-db:{region}:{account}:dbuser:{instance['resourceId']}/api"


def test_plain_settings_reach_the_app(staging: StackRun, prod: StackRun) -> None:
    for run, workers in ((staging, "2"), (prod, "3")):
        env = {e["name"]: e["value"] for e in _container(run, "api")["environment"]}
        host, port = run.outputs["databaseEndpoint"].rsplit(":", 1)
        assert env["DATABASE_HOST"] == host
        assert env["DATABASE_PORT"] == port
        assert env["DATABASE_NAME"]
        # the repository has no RDS CA bundle until `make rds-ca` (tests/infra/test_rds_ca_wiring.py: verify-full)
        assert env["DATABASE_SSLMODE"] == "require"
        assert env["WEB_CONCURRENCY"] == workers
        assert env["PORT"] == "8000"
        assert env["STACK"] == run.stack
        assert env["CORS_ORIGINS"] == run.outputs["frontendUrl"]  # the SPA's origin, nothing wider
        assert env["UPLOADS_BUCKET"] == run.outputs["uploadsBucket"]
        assert env["UPLOADS_PREFIX"] == "uploads/"
        assert env["UPLOAD_MAX_BYTES"] == str(10 * 1024 * 1024)
        assert env["UPLOAD_ALLOWED_TYPES"] == "jpg,jpeg,png,pdf,mp4"
    prod_env = {e["name"]: e["value"] for e in _container(prod, "api")["environment"]}
    assert prod_env["CORS_ORIGINS"] == "https://app.example.com"


def test_task_role_reaches_only_its_uploads_prefix(any_stack: StackRun) -> None:
    policy = _policy(any_stack, "api-task-policy")
    uploads = _statement(policy, "UploadsUnderPrefix")
    bucket = any_stack.one("aws:s3/bucket:Bucket", "uploads-bucket").outputs["arn"]
    assert uploads["Resource"] == f"{bucket}/uploads/*"
    # Exactly what app/uploads.py signs with: PutObject (presigned POST), GetObject (presigned GET, HeadObject).
    assert sorted(uploads["Action"]) == ["s3:GetObject", "s3:PutObject"]
    expected = {"UploadsUnderPrefix", "DatabaseLogin"} | ({"EcsExec"} if any_stack.stack == "staging" else set())
    assert {s["Sid"] for s in policy["Statement"]} == expected


def test_cache_settings_and_auth_token_reach_the_tasks_when_enabled() -> None:
    run = evaluate("staging", config_overrides={"shipyard:cache": {"enabled": True}})
    container = _container(run, "api")
    env = {e["name"]: e["value"] for e in container["environment"]}
    secrets = {s["name"]: s["valueFrom"] for s in container["secrets"]}
    assert env["REDIS_HOST"] and env["REDIS_PORT"] == "6379" and env["REDIS_TLS"] == "true"
    assert secrets["REDIS_AUTH_TOKEN"].startswith("arn:aws:secretsmanager:")
    assert "REDIS_AUTH_TOKEN" not in env
    (cache_sg,) = run.one("aws:elasticache/replicationGroup:ReplicationGroup").inputs["securityGroupIds"]
    api_sg = _api_service(run).inputs["networkConfiguration"]["securityGroups"][0]
    assert any(
        r.inputs["securityGroupId"] == api_sg and r.inputs.get("referencedSecurityGroupId") == cache_sg
        for r in run.of_type(EGRESS)
    )
    assert any(
        r.inputs["securityGroupId"] == cache_sg and r.inputs["referencedSecurityGroupId"] == api_sg
        for r in run.of_type(INGRESS)
    )


def test_cors_origins_add_configured_ones() -> None:
    run = evaluate("staging", config_overrides={"shipyard:service": {"corsOrigins": ["https://admin.example.org"]}})
    env = {e["name"]: e["value"] for e in _container(run, "api")["environment"]}
    assert "https://admin.example.org" in env["CORS_ORIGINS"].split(",")


def test_execution_role_pulls_from_this_repository_and_logs_only_here(any_stack: StackRun) -> None:
    policy = _policy(any_stack, "api-execution-policy")
    repository_arn = any_stack.one("aws:ecr/repository:Repository").outputs["arn"]
    assert _statement(policy, "EcrPull")["Resource"] == repository_arn
    assert _statement(policy, "Logs")["Resource"].endswith(f":log-group:/ecs/shipyard-{any_stack.stack}/*:*")
    assert {s["Sid"] for s in policy["Statement"]} == {"EcrLogin", "EcrPull", "Logs", "InjectedSecrets"}


# ------------------------------------------------------------------------------------------------- service


def test_service_deploys_safely(any_stack: StackRun) -> None:
    service = _api_service(any_stack).inputs
    assert service["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert service["deploymentMinimumHealthyPercent"] == 100
    assert service["deploymentMaximumPercent"] == 200
    assert service["taskDefinition"] == any_stack.one(TASK_DEFINITION, "api-api-task").outputs["arn"]
    if any_stack.outputs["frontDoor"] == "alb":
        assert service["healthCheckGracePeriodSeconds"] == 60
        assert service["launchType"] == "FARGATE"
        (attachment,) = service["loadBalancers"]
        assert attachment["containerName"] == "api" and attachment["containerPort"] == 8000
        assert attachment["targetGroupArn"] == any_stack.one("aws:lb/targetGroup:TargetGroup").outputs["arn"]
    else:  # the HTTP API finds the tasks in Cloud Map (tests/infra/test_front_door.py); staging runs on Spot
        assert "loadBalancers" not in service and service["serviceRegistries"]["containerPort"] == 8000
        assert service["capacityProviderStrategies"][0]["capacityProvider"] == "FARGATE_SPOT"
    assert "desiredCount" in _api_service(any_stack).ignore_changes  # autoscaling owns it after creation


def test_desired_count_and_placement_by_tier(staging: StackRun, prod: StackRun) -> None:
    assert _api_service(staging).inputs["desiredCount"] == 1
    assert _api_service(prod).inputs["desiredCount"] == 2
    # Staging has no NAT: tasks sit in public subnets with a public IP; prod in private subnets.
    staging_net = _api_service(staging).inputs["networkConfiguration"]
    assert staging_net["subnets"] == staging.outputs["publicSubnetIds"]
    assert staging_net["assignPublicIp"] is True
    prod_net = _api_service(prod).inputs["networkConfiguration"]
    assert prod_net["subnets"] == prod.outputs["privateSubnetIds"]
    assert prod_net["assignPublicIp"] is False
    assert len(prod_net["subnets"]) == 2  # one per AZ


def test_execute_command_is_on_in_staging_and_off_in_prod(staging: StackRun, prod: StackRun) -> None:
    assert _api_service(staging).inputs["enableExecuteCommand"] is True
    assert _api_service(prod).inputs["enableExecuteCommand"] is False
    exec_statement = _statement(_policy(staging, "api-task-policy"), "EcsExec")
    assert all(action.startswith("ssmmessages:") for action in exec_statement["Action"])
    prod_policies = " ".join(r.inputs["policy"] for r in prod.of_type(ROLE_POLICY) if r.name.startswith("api-"))
    assert "ssmmessages" not in prod_policies
    # ECS Exec's agent needs writable paths under a read-only root: only mounted where exec is on.
    assert any(m["containerPath"] == "/var/lib/amazon/ssm" for m in _container(staging, "api")["mountPoints"])
    assert all(m["containerPath"] == "/tmp" for m in _container(prod, "api")["mountPoints"])  # noqa: S108


def test_autoscaling_tracks_cpu_and_requests_per_target(staging: StackRun, prod: StackRun) -> None:
    staging_alb = evaluate("staging", config_overrides={"shipyard:service": {"maxCount": 2, "frontDoor": "alb"}})
    for run, low, high in ((staging_alb, 1, 2), (prod, 2, 6)):
        target = run.one("aws:appautoscaling/target:Target").inputs
        assert (target["minCapacity"], target["maxCapacity"]) == (low, high)
        assert target["resourceId"] == f"service/shipyard-{run.stack}-api/shipyard-{run.stack}-api"
        assert target["scalableDimension"] == "ecs:service:DesiredCount"
        policies = {p.name: p.inputs for p in run.of_type("aws:appautoscaling/policy:Policy")}
        cpu = policies["api-scale-cpu"]["targetTrackingScalingPolicyConfiguration"]
        assert cpu["targetValue"] == 60
        assert cpu["predefinedMetricSpecification"]["predefinedMetricType"] == "ECSServiceAverageCPUUtilization"
        requests = policies["api-scale-requests"]["targetTrackingScalingPolicyConfiguration"]
        assert requests["targetValue"] == 500
        spec = requests["predefinedMetricSpecification"]
        assert spec["predefinedMetricType"] == "ALBRequestCountPerTarget"
        alb = run.one("aws:lb/loadBalancer:LoadBalancer").outputs["arnSuffix"]
        group = run.one("aws:lb/targetGroup:TargetGroup").outputs["arnSuffix"]
        assert spec["resourceLabel"] == f"{alb}/{group}"


def test_cluster_has_enhanced_container_insights(any_stack: StackRun) -> None:
    cluster = any_stack.one("aws:ecs/cluster:Cluster").inputs
    assert {"name": "containerInsights", "value": "enhanced"} in cluster["settings"]


def test_task_security_groups_admit_only_the_load_balancer(any_stack: StackRun) -> None:
    groups = {g.name: g for g in any_stack.of_type(SECURITY_GROUP)}
    api_sg_id = _api_service(any_stack).inputs["networkConfiguration"]["securityGroups"][0]
    # The front door's group: the ALB's, or the HTTP API VPC link's.
    front_door_sg_id = groups["api-lb-sg" if any_stack.outputs["frontDoor"] == "alb" else "api-gateway-sg"].id
    assert not groups["api-sg"].inputs.get("ingress") and not groups["api-sg"].inputs.get("egress")
    into_api = [r.inputs for r in any_stack.of_type(INGRESS) if r.inputs["securityGroupId"] == api_sg_id]
    assert into_api == [
        {
            "securityGroupId": api_sg_id,
            "referencedSecurityGroupId": front_door_sg_id,
            "ipProtocol": "tcp",
            "fromPort": 8000,
            "toPort": 8000,
            "description": "API port from the front door (load balancer or HTTP API VPC link)",
        }
    ]
    tasks_sg_id = any_stack.outputs["taskSecurityGroupId"]
    assert not [r for r in any_stack.of_type(INGRESS) if r.inputs["securityGroupId"] == tasks_sg_id]
    (db_sg_id,) = any_stack.one("aws:rds/instance:Instance").inputs["vpcSecurityGroupIds"]
    for group_id in (api_sg_id, tasks_sg_id):
        out = sorted(
            (r.inputs["fromPort"], r.inputs.get("cidrIpv4") or r.inputs["referencedSecurityGroupId"])
            for r in any_stack.of_type(EGRESS)
            if r.inputs["securityGroupId"] == group_id
        )
        assert out == [(443, "0.0.0.0/0"), (5432, db_sg_id)]
        # ...and the database admits them.
        assert any(
            r.inputs["securityGroupId"] == db_sg_id and r.inputs["referencedSecurityGroupId"] == group_id
            for r in any_stack.of_type(INGRESS)
        )


def test_everything_is_parented_to_its_component(any_stack: StackRun) -> None:
    service = any_stack.one("shipyard:aws:Service")
    for type_ in (TASK_DEFINITION, ECS_SERVICE, IMAGE, "aws:ecr/repository:Repository", "aws:ecs/cluster:Cluster"):
        for resource in any_stack.of_type(type_):
            assert any_stack.component_of(resource) == service, resource.name


def test_stack_outputs_for_on_call(any_stack: StackRun) -> None:
    outputs = any_stack.outputs
    assert outputs["ecrRepositoryUrl"] == any_stack.one("aws:ecr/repository:Repository").outputs["repositoryUrl"]
    assert outputs["clusterName"] == f"shipyard-{any_stack.stack}-api"
    assert outputs["serviceName"] == _api_service(any_stack).outputs["name"]
    assert outputs["migrateTaskDefinitionArn"] == any_stack.one(TASK_DEFINITION, "api-migrate-task").outputs["arn"]
    if any_stack.stack == "prod":
        assert outputs["albDnsName"].endswith(".elb.amazonaws.com")
        assert outputs["apiUrl"] == "https://api.example.com"
    else:  # the HTTP API's own HTTPS host (no domain in Pulumi.staging.yaml)
        assert outputs["apiUrl"] == any_stack.one("aws:apigatewayv2/api:Api").outputs["apiEndpoint"]
        assert outputs["httpApiAccessLogGroup"].startswith("/aws/apigateway/")


# ------------------------------------------------------------------------------------------------- migrations


def test_migrate_task_runs_the_app_migrations_with_the_same_image_and_secrets(any_stack: StackRun) -> None:
    migrate = _container(any_stack, "migrate")
    api = _container(any_stack, "api")
    assert migrate["command"] == ["python", "-m", "app.migrate"]
    assert migrate["image"] == api["image"]
    # the API's secrets plus the master user's (only the migrate task logs in with a password)
    extra = [s for s in migrate["secrets"] if s not in api["secrets"]]
    assert sorted(s["name"] for s in extra) == ["DATABASE_PASSWORD", "DATABASE_USER"]
    assert "portMappings" not in migrate
    task = any_stack.one(TASK_DEFINITION, "api-migrate-task").inputs
    assert task["family"] == f"shipyard-{any_stack.stack}-migrate"
    # The migrate task is never a service: only the pipeline runs it (infra/deploy.py).
    assert all(
        s.inputs["taskDefinition"] != any_stack.outputs["migrateTaskDefinitionArn"]
        for s in any_stack.of_type(ECS_SERVICE)
    )


# ------------------------------------------------------------------------------------------------- workers, jobs


def test_worker_runs_its_command_without_a_load_balancer(with_worker_and_jobs: StackRun) -> None:
    run = with_worker_and_jobs
    worker = run.one(ECS_SERVICE, "api-worker-bot")
    assert "loadBalancers" not in worker.inputs
    assert "healthCheckGracePeriodSeconds" not in worker.inputs
    assert worker.inputs["desiredCount"] == 2
    assert worker.ignore_changes == ()  # not autoscaled: the config's count applies on every deploy
    assert worker.inputs["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert worker.inputs["networkConfiguration"]["securityGroups"] == [run.outputs["taskSecurityGroupId"]]
    task = run.one(TASK_DEFINITION, "api-worker-bot-task")
    assert worker.inputs["taskDefinition"] == task.outputs["arn"]
    assert (task.inputs["cpu"], task.inputs["memory"]) == ("512", "1024")
    (container,) = _containers(task)
    assert container["command"] == ["python", "-m", "app.bot"]
    assert container["readonlyRootFilesystem"] is True
    assert container["image"] == _container(run, "api")["image"]
    assert "portMappings" not in container


def test_scheduled_tasks_run_in_the_jobs_timezone_with_retries_and_a_dlq(with_worker_and_jobs: StackRun) -> None:
    run = with_worker_and_jobs
    schedules = {s.name: s.inputs for s in run.of_type("aws:scheduler/schedule:Schedule") if s.name.startswith("jobs-")}
    assert set(schedules) == {"jobs-reminders", "jobs-cleanup"}
    queue = run.one("aws:sqs/queue:Queue", "jobs-dlq")
    assert queue.inputs["sqsManagedSseEnabled"] is True
    cluster_arn = run.one("aws:ecs/cluster:Cluster").outputs["arn"]
    reminders = schedules["jobs-reminders"]
    assert reminders["scheduleExpression"] == "cron(0 9 * * ? *)"
    assert reminders["scheduleExpressionTimezone"] == "America/Sao_Paulo"
    target = reminders["target"]
    assert target["arn"] == cluster_arn
    assert target["deadLetterConfig"] == {"arn": queue.outputs["arn"]}
    assert target["retryPolicy"]["maximumRetryAttempts"] == 3
    task = run.one(TASK_DEFINITION, "api-job-reminders-task")
    assert target["ecsParameters"]["taskDefinitionArn"] == task.outputs["arn"]
    assert target["ecsParameters"]["launchType"] == "FARGATE"
    assert target["ecsParameters"]["networkConfiguration"]["securityGroups"] == [run.outputs["taskSecurityGroupId"]]
    assert _containers(task)[0]["command"] == ["python", "-m", "app.jobs.reminders"]


def test_scheduler_role_may_only_run_these_tasks_and_pass_the_two_roles(with_worker_and_jobs: StackRun) -> None:
    run = with_worker_and_jobs
    policy = _policy(run, "jobs-policy")
    run_task = _statement(policy, "RunScheduledTasks")
    families = sorted(
        f"{run.one(TASK_DEFINITION, f'api-job-{n}-task').outputs['arnWithoutRevision']}:*"
        for n in ("reminders", "cleanup")
    )
    assert run_task["Action"] == "ecs:RunTask"
    assert run_task["Resource"] == families
    assert run_task["Condition"] == {"ArnEquals": {"ecs:cluster": run.one("aws:ecs/cluster:Cluster").outputs["arn"]}}
    roles = sorted(run.one("aws:iam/role:Role", n).outputs["arn"] for n in ("api-task-role", "api-execution-role"))
    assert _statement(policy, "PassTaskRoles")["Resource"] == roles
    assert _statement(policy, "DeadLetter")["Resource"] == run.one("aws:sqs/queue:Queue", "jobs-dlq").outputs["arn"]
    assert {s["Sid"] for s in policy["Statement"]} == {"RunScheduledTasks", "PassTaskRoles", "DeadLetter"}


def test_no_scheduled_tasks_by_default(any_stack: StackRun) -> None:
    assert not [s for s in any_stack.of_type("aws:scheduler/schedule:Schedule") if s.name.startswith("jobs-")]


# ------------------------------------------------------------------------------------------------- pure helpers


def test_container_definition_refuses_a_name_both_plain_and_secret() -> None:
    spec = TaskSpec(name="api", cpu=256, memory=512)
    with pytest.raises(ValueError, match="SECRET_KEY set both"):
        container_definition(
            spec,
            image="x@sha256:0",
            environment={"SECRET_KEY": "plain"},
            secrets={"SECRET_KEY": "arn:aws:secretsmanager:r:1:secret:s-AbCdEf"},
            log_group="/ecs/x",
            region="us-east-1",
            execute_command=False,
        )


def test_secret_arn_of_strips_json_key_and_rejects_other_arns() -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1-AbCdEf"
    assert secret_arn_of(f"{arn}:password::") == arn
    assert secret_arn_of(arn) == arn
    with pytest.raises(ValueError, match="not a Secrets Manager valueFrom"):
        secret_arn_of("arn:aws:ssm:us-east-1:123456789012:parameter/x")


def test_the_deploy_scripts_targets_and_outputs_exist_in_the_program(any_stack: StackRun) -> None:
    """scripts/deploy.py targets resources by (type, logical name) and reads stack outputs: a rename here would
    make step 2 fail (or, before, pass for a first deploy), so the names are checked against the program."""
    from scripts.deploy import MIGRATE_TARGETS, REQUIRED_OUTPUTS

    for kind, name in MIGRATE_TARGETS:
        assert any_stack.one(kind, name)
    assert set(REQUIRED_OUTPUTS) <= set(any_stack.outputs)


def test_gunicorn_trusts_forwarded_headers_only_from_the_load_balancer_subnets(any_stack: StackRun) -> None:
    """Issue 22 item 2: FORWARDED_ALLOW_IPS is the ALB's subnets, never `*`, and gunicorn_conf accepts it."""
    env = {e["name"]: e["value"] for e in _container(any_stack, "api")["environment"]}
    trusted = env["FORWARDED_ALLOW_IPS"].split(",")
    # The ALB's subnets, or the HTTP API VPC link's (the tasks' own public subnets in staging).
    front_door = any_stack.of_type("aws:lb/loadBalancer:LoadBalancer") or any_stack.of_type(
        "aws:apigatewayv2/vpcLink:VpcLink"
    )
    alb_subnets = set(front_door[0].inputs.get("subnets") or front_door[0].inputs["subnetIds"])
    subnets = [s for s in any_stack.of_type("aws:ec2/subnet:Subnet") if s.id in alb_subnets]
    assert len(subnets) == len(alb_subnets) >= 2
    assert sorted(trusted) == sorted(s.inputs["cidrBlock"] for s in subnets)
    loaded = load_gunicorn_conf({"FORWARDED_ALLOW_IPS": env["FORWARDED_ALLOW_IPS"]})
    assert loaded.returncode == 0, loaded.stderr

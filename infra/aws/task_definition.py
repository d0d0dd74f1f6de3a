"""One way to describe a task of the app image, shared by the API, workers, the migrate task and cron jobs.

Every task definition the platform registers comes out of `TaskDefinitionFactory.create`, so the hardening
is stated once and cannot drift between the API and a worker someone adds later:
- the image is pinned by digest (`repo@sha256:...`), never by a tag that could be re-pointed;
- the container runs as the image's non-root user with a read-only root filesystem; `/tmp` is a task volume
  (gunicorn's heartbeat goes to /dev/shm, Python needs a writable temp dir for uploads it spools);
- secrets arrive through `secrets` (Secrets Manager ARNs resolved by the ECS agent at start), never as
  plain `environment` values that anyone with `ecs:DescribeTaskDefinition` could read;
- logs go to a CloudWatch log group per task family with a retention, through the non-blocking awslogs
  mode (a slow CloudWatch must not stall the app on stdout writes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from infra.component import Component
from infra.naming import Naming

CONTAINER_USER = "10001:10001"
"""uid:gid of the `app` user created in app/Dockerfile; stated here too so ECS refuses to start it as root
even if an image without a USER line were pushed (Security Hub ECS.20)."""

TMP_VOLUME = "tmp"

# ECS Exec's SSM agent writes its state and logs into the container; with a read-only root it crashes
# (AWS documents the two as incompatible). Writable task volumes at exactly these paths are the known
# workaround (aws/containers-roadmap#1359), so staging keeps both the read-only root and `execute-command`.
EXEC_AGENT_PATHS: dict[str, str] = {
    "ssm-managed-agents": "/managed-agents",
    "ssm-state": "/var/lib/amazon/ssm",
    "ssm-logs": "/var/log/amazon/ssm",
}

CpuArchitecture = Literal["ARM64", "X86_64"]


def cpu_architecture(architecture: str) -> CpuArchitecture:
    """`service.architecture` (arm64 | x86_64) as ECS's runtimePlatform spells it."""
    return "ARM64" if architecture == "arm64" else "X86_64"


def docker_platform(architecture: str) -> str:
    """`service.architecture` as `docker build --platform` spells it."""
    return "linux/arm64" if architecture == "arm64" else "linux/amd64"


@dataclass(frozen=True)
class ContainerRuntime:
    """What every task of the app shares."""

    image: pulumi.Input[str]
    """Digest-pinned image reference (`<repo>@sha256:<digest>`)."""
    architecture: str
    """`service.architecture`: arm64 | x86_64; must match the platform the image was built for."""
    execution_role_arn: pulumi.Input[str]
    """Role the ECS agent uses to pull the image, write logs and read `secrets`."""
    task_role_arn: pulumi.Input[str]
    """Role the app's own AWS calls run as (uploads bucket prefix, ECS Exec)."""
    region: str
    environment: Mapping[str, pulumi.Input[str]]
    """Plain, non-secret settings (DB host, CORS origins, upload limits...)."""
    secrets: Mapping[str, pulumi.Input[str]]
    """Env var name → Secrets Manager `valueFrom` (`<secret arn>` or `<secret arn>:<json key>::`)."""
    log_retention_days: int
    execute_command: bool
    """ECS Exec on: adds the writable volumes its agent needs (see EXEC_AGENT_PATHS)."""
    log_group_prefix: str
    """Log groups are `<prefix>/<task name>`; the execution role may write under this prefix only."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`); None keeps CloudWatch Logs' default encryption. The awslogs driver
    needs no KMS permission: CloudWatch Logs encrypts with the key on its side."""


@dataclass(frozen=True)
class TaskSpec:
    name: str
    """Short id: container name, log stream prefix and the family suffix (`api`, `migrate`, `worker-bot`)."""
    cpu: int
    memory: int
    command: Sequence[str] | None = None
    """None: the image's CMD (gunicorn for the API)."""
    port: int | None = None
    """Container port, for the service behind the load balancer; None for workers and jobs."""
    extra_environment: Mapping[str, str] = field(default_factory=dict)
    health_check: Sequence[str] | None = None
    """Container health check command (`CMD` form); ECS ignores the Dockerfile's HEALTHCHECK."""


@dataclass(frozen=True)
class TaskDefinitionBundle:
    task_definition: aws.ecs.TaskDefinition
    log_group: aws.cloudwatch.LogGroup
    container_name: str
    family: str


def container_definition(
    spec: TaskSpec,
    *,
    image: str,
    environment: Mapping[str, str],
    secrets: Mapping[str, str],
    log_group: str,
    region: str,
    execute_command: bool,
) -> dict[str, Any]:
    """The container definition (ECS JSON) for `spec`; pure, so the hardening rules are checked in one place."""
    clashes = sorted(set(environment) & set(secrets))
    if clashes:
        raise ValueError(f"{spec.name}: {', '.join(clashes)} set both as plain environment and as secret")
    mounts = [{"sourceVolume": TMP_VOLUME, "containerPath": "/tmp", "readOnly": False}]  # noqa: S108 - a task volume, not a shared host /tmp
    if execute_command:
        mounts += [{"sourceVolume": v, "containerPath": p, "readOnly": False} for v, p in EXEC_AGENT_PATHS.items()]
    definition: dict[str, Any] = {
        "name": spec.name,
        "image": image,
        "essential": True,
        "user": CONTAINER_USER,
        "readonlyRootFilesystem": True,
        "mountPoints": mounts,
        "environment": [{"name": k, "value": v} for k, v in sorted(environment.items())],
        "secrets": [{"name": k, "valueFrom": v} for k, v in sorted(secrets.items())],
        # An init process reaps gunicorn's and ECS Exec's zombies and forwards SIGTERM properly.
        "linuxParameters": {"initProcessEnabled": True},
        # Longer than gunicorn's graceful_timeout (20 s) so in-flight requests finish before SIGKILL.
        "stopTimeout": 30,
        "logConfiguration": {
            "logDriver": "awslogs",
            "options": {
                "awslogs-group": log_group,
                "awslogs-region": region,
                "awslogs-stream-prefix": spec.name,
                "mode": "non-blocking",
                "max-buffer-size": "25m",
            },
        },
    }
    if spec.command is not None:
        definition["command"] = list(spec.command)
    if spec.port is not None:
        definition["portMappings"] = [{"containerPort": spec.port, "protocol": "tcp", "name": "http"}]
    if spec.health_check is not None:
        definition["healthCheck"] = {
            "command": ["CMD", *spec.health_check],
            "interval": 30,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 30,
        }
    return definition


class TaskDefinitionFactory:
    """Registers task definitions of the app image under whichever component owns them."""

    def __init__(self, runtime: ContainerRuntime, naming: Naming) -> None:
        self.runtime = runtime
        self.naming = naming

    def create(self, owner: Component, spec: TaskSpec) -> TaskDefinitionBundle:
        runtime = self.runtime
        family = self.naming.physical(spec.name, max_length=255)
        log_group = aws.cloudwatch.LogGroup(
            owner.child_name(spec.name, "logs"),
            name=f"{runtime.log_group_prefix}/{spec.name}",
            retention_in_days=runtime.log_retention_days,
            kms_key_id=runtime.log_kms_key_arn,
            opts=owner.opts(),
        )
        environment = dict(runtime.environment) | dict(spec.extra_environment)
        env_names = sorted(environment)
        secret_names = sorted(runtime.secrets)
        rendered = pulumi.Output.all(
            runtime.image,
            log_group.name,
            *[environment[n] for n in env_names],
            *[runtime.secrets[n] for n in secret_names],
        ).apply(
            lambda values: json.dumps(
                [
                    container_definition(
                        spec,
                        image=values[0],
                        environment=dict(zip(env_names, values[2 : 2 + len(env_names)], strict=True)),
                        secrets=dict(zip(secret_names, values[2 + len(env_names) :], strict=True)),
                        log_group=values[1],
                        region=runtime.region,
                        execute_command=runtime.execute_command,
                    )
                ]
            )
        )
        volumes = [{"name": TMP_VOLUME}]
        if runtime.execute_command:
            volumes += [{"name": name} for name in EXEC_AGENT_PATHS]
        task_definition = aws.ecs.TaskDefinition(
            owner.child_name(spec.name, "task"),
            family=family,
            cpu=str(spec.cpu),
            memory=str(spec.memory),
            network_mode="awsvpc",
            requires_compatibilities=["FARGATE"],
            runtime_platform={
                "operating_system_family": "LINUX",
                "cpu_architecture": cpu_architecture(runtime.architecture),
            },
            execution_role_arn=runtime.execution_role_arn,
            task_role_arn=runtime.task_role_arn,
            container_definitions=rendered,
            volumes=volumes,
            opts=owner.opts(),
        )
        return TaskDefinitionBundle(task_definition, log_group, spec.name, family)

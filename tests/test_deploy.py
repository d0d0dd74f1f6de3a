"""scripts/deploy.py: argument building and the stop-on-failure order, with the CLIs answered by a scripted runner
(the pulumi and aws commands are the boundary; their JSON is shaped like the real tools')."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from scripts.deploy import (
    MIGRATE_TARGETS,
    DeployError,
    deploy,
    main,
    migrate_target_urns,
    migration_outcome,
    pulumi_up_command,
    run_task_command,
    snapshot_identifier,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
OUTPUTS = {
    "region": "us-east-1",
    "clusterName": "shipyard-prod-api",
    "migrateTaskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/shipyard-prod-migrate:7",
    "migrateLogGroup": "/ecs/shipyard-prod/migrate",
    "taskSubnetIds": ["subnet-a", "subnet-b"],
    "taskSecurityGroupId": "sg-tasks",
    "taskAssignPublicIp": False,
    "dbInstanceIdentifier": "shipyard-prod-db",
}
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/shipyard-prod-api/abc"
EXPORT = {
    "deployment": {
        "resources": [
            {"urn": f"urn:pulumi:prod::shipyard::shipyard:aws:Service${kind}::{name}", "type": kind}
            for kind, name in MIGRATE_TARGETS
        ]
        + [
            {
                "urn": "urn:pulumi:prod::shipyard::shipyard:aws:Service$aws:ecs/service:Service::api-api",
                "type": "aws:ecs/service:Service",
            }
        ]
    }
}


def _stopped(exit_code: int | None, reason: str = "") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "migrate", "lastStatus": "STOPPED"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    if reason:
        container["reason"] = reason
    return {
        "tasks": [
            {
                "taskArn": TASK_ARN,
                "lastStatus": "STOPPED",
                "stopCode": "EssentialContainerExited",
                "containers": [container],
            }
        ],
        "failures": [],
    }


class ScriptedCli:
    """Answers commands like the real CLIs would for one deploy, and records them in order."""

    def __init__(self, *, exit_code: int | None = 0, snapshot_exists: bool = False, first_deploy: bool = False):
        self.calls: list[list[str]] = []
        self.exit_code = exit_code
        self.snapshot_exists = snapshot_exists
        self.first_deploy = first_deploy
        self.polls = 0

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        head = argv[:3]
        if head == ["pulumi", "stack", "output"]:
            return "{}" if self.first_deploy else json.dumps(OUTPUTS)
        if head[:2] == ["pulumi", "up"]:
            if "--target" not in argv:
                self.first_deploy = False
            return "done"
        if head == ["pulumi", "stack", "export"]:
            return json.dumps(EXPORT)
        if head == ["aws", "rds", "describe-db-snapshots"]:
            if not self.snapshot_exists:
                raise subprocess.CalledProcessError(254, argv, stderr="DBSnapshotNotFound")
            return "{}"
        if head[:2] == ["aws", "rds"]:
            return "{}"
        if head == ["aws", "ecs", "run-task"]:
            return json.dumps({"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []})
        if head == ["aws", "ecs", "describe-tasks"]:
            self.polls += 1
            if self.polls < 3:
                return json.dumps({"tasks": [{"taskArn": TASK_ARN, "lastStatus": "RUNNING"}], "failures": []})
            return json.dumps(_stopped(self.exit_code))
        raise AssertionError(f"unexpected command {argv}")

    def steps(self) -> list[str]:
        return [" ".join(c[:3]) for c in self.calls if c[:3] != ["aws", "ecs", "describe-tasks"]]


def test_snapshot_identifier_names_the_commit_and_follows_rds_rules() -> None:
    assert snapshot_identifier("shipyard-prod-db", SHA) == "shipyard-prod-db-premigrate-0123456789ab"
    with pytest.raises(DeployError, match="--git-sha"):
        snapshot_identifier("shipyard-prod-db", "main; rm -rf /")


def test_run_task_command_uses_the_tasks_network_and_the_migrate_definition() -> None:
    command = run_task_command(OUTPUTS, "deploy-0123456789ab")
    assert command[:3] == ["aws", "ecs", "run-task"]
    assert command[command.index("--task-definition") + 1] == OUTPUTS["migrateTaskDefinitionArn"]
    assert command[command.index("--cluster") + 1] == "shipyard-prod-api"
    network = json.loads(command[command.index("--network-configuration") + 1])
    assert network == {
        "awsvpcConfiguration": {
            "subnets": ["subnet-a", "subnet-b"],
            "securityGroups": ["sg-tasks"],
            "assignPublicIp": "DISABLED",
        }
    }
    public = run_task_command({**OUTPUTS, "taskAssignPublicIp": True}, "x")
    assert '"assignPublicIp":"ENABLED"' in public[public.index("--network-configuration") + 1]


def test_only_exit_code_zero_is_a_successful_migration() -> None:
    assert migration_outcome(_stopped(0)).ok
    failed = migration_outcome(_stopped(1))
    assert not failed.ok and "exit 1" in failed.detail
    never_ran = migration_outcome(_stopped(None, "CannotPullContainerError"))
    assert not never_ran.ok and "CannotPullContainerError" in never_ran.detail
    assert not migration_outcome({"tasks": [{"lastStatus": "RUNNING", "containers": []}]}).ok
    assert not migration_outcome({"tasks": [], "failures": [{"reason": "MISSING"}]}).ok


def test_targeted_up_touches_only_the_image_and_migrate_task() -> None:
    urns = migrate_target_urns(EXPORT)
    assert len(urns) == 3 and not any("ecs/service" in urn for urn in urns)
    command = pulumi_up_command("prod", urns)
    assert command.count("--target") == 3
    with pytest.raises(DeployError, match="lacks"):
        migrate_target_urns({"deployment": {"resources": []}})


def test_a_deploy_snapshots_then_migrates_then_rolls_the_service() -> None:
    cli = ScriptedCli()
    lines = deploy("prod", SHA, run=cli, sleep=lambda _: None)
    assert cli.steps() == [
        "pulumi stack output",
        "aws rds describe-db-snapshots",
        "aws rds create-db-snapshot",
        "aws rds wait",
        "pulumi stack export",
        "pulumi up --yes",
        "pulumi stack output",
        "aws ecs run-task",
        "pulumi up --yes",
    ]
    create = next(c for c in cli.calls if c[:3] == ["aws", "rds", "create-db-snapshot"])
    assert create[create.index("--db-snapshot-identifier") + 1] == "shipyard-prod-db-premigrate-0123456789ab"
    targeted, full = [c for c in cli.calls if c[:2] == ["pulumi", "up"]]
    assert "--target" in targeted and "--target" not in full
    assert lines[-1] == "service rolled out"


def test_a_failed_migration_stops_before_the_service_changes() -> None:
    cli = ScriptedCli(exit_code=3)
    with pytest.raises(DeployError, match=r"step 3: migrations failed .*exit 3.*keeps serving the previous version"):
        deploy("prod", SHA, run=cli, sleep=lambda _: None)
    ups = [c for c in cli.calls if c[:2] == ["pulumi", "up"]]
    assert len(ups) == 1 and "--target" in ups[0]  # the full up (the service roll) never ran


def test_a_retry_of_the_same_commit_reuses_its_snapshot() -> None:
    cli = ScriptedCli(snapshot_exists=True)
    deploy("prod", SHA, run=cli, sleep=lambda _: None)
    assert not [c for c in cli.calls if c[:3] == ["aws", "rds", "create-db-snapshot"]]
    assert [c for c in cli.calls if c[:3] == ["aws", "rds", "wait"]]


def test_first_deploy_creates_everything_then_migrates() -> None:
    cli = ScriptedCli(first_deploy=True)
    deploy("staging", SHA, run=cli, sleep=lambda _: None)
    assert cli.steps() == ["pulumi stack output", "pulumi up --yes", "pulumi stack output", "aws ecs run-task"]


def test_main_rejects_a_bad_sha_with_exit_code_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "prod", "--git-sha", "not-a-sha"]) == 1
    assert "--git-sha" in capsys.readouterr().err

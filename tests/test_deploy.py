"""scripts/deploy.py: argument building and the stop-on-failure order, with the CLIs answered by a scripted runner
(the pulumi and aws commands are the boundary; their JSON is shaped like the real tools')."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Sequence
from typing import Any

import boto3
import pytest

from scripts.deploy import (
    MIGRATE_TARGETS,
    MIGRATION_TIMEOUT_SECONDS,
    POLL_SECONDS,
    RETRY_ATTEMPTS,
    ROLLOUT_TIMEOUT_SECONDS,
    SNAPSHOT_KEEP,
    SNAPSHOT_MAX_AGE_DAYS,
    DeployError,
    deploy,
    error_text,
    main,
    migrate_target_urns,
    migration_outcome,
    premigration_snapshots,
    prune_main,
    pulumi_up_command,
    run_command,
    run_streaming,
    run_task_command,
    snapshot_identifier,
    snapshot_tags,
    snapshots_to_prune,
)

SHA = "0123456789abcdef0123456789abcdef01234567"
OUTPUTS: dict[str, Any] = {
    "region": "us-east-1",
    "clusterName": "shipyard-prod-api",
    "serviceName": "shipyard-prod-api",
    "migrateTaskDefinitionArn": "arn:aws:ecs:us-east-1:123456789012:task-definition/shipyard-prod-migrate:7",
    "migrateLogGroup": "/ecs/shipyard-prod/migrate",
    "taskSubnetIds": ["subnet-a", "subnet-b"],
    "taskSecurityGroupId": "sg-tasks",
    "taskAssignPublicIp": False,
    "dbInstanceIdentifier": "shipyard-prod-db",
}
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/shipyard-prod-api/abc"
TD = "arn:aws:ecs:us-east-1:123456789012:task-definition/shipyard-prod-api"
OLD_TD, NEW_TD = f"{TD}:41", f"{TD}:42"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/shipyard-staging-api@sha256:" + "ab" * 32
PREFIX = "urn:pulumi:prod::shipyard::shipyard:aws:Service$"


def export(
    *,
    database: bool = True,
    task_definition: str = NEW_TD,
    image_resource: bool = True,
    service_name: str = "shipyard-prod-api",
) -> dict[str, Any]:
    """`pulumi stack export` shaped like the real one (the resources the script reads)."""
    resources: list[dict[str, Any]] = [
        {"urn": f"{PREFIX}{kind}::{name}", "type": kind}
        for kind, name in MIGRATE_TARGETS
        if image_resource or kind != "docker:index/image:Image"
    ]
    resources.append(
        {
            "urn": f"{PREFIX}aws:ecs/service:Service::api-api",
            "type": "aws:ecs/service:Service",
            "outputs": {"name": service_name, "taskDefinition": task_definition},
        }
    )
    resources.append(
        {
            "urn": "urn:pulumi:prod::shipyard::shipyard:aws:Service::api",
            "type": "shipyard:aws:Service",
            "outputs": {"imageDigest": IMAGE},
        }
    )
    if database:
        resources.append(
            {"urn": "urn:pulumi:prod::shipyard::aws:rds/instance:Instance::db", "type": "aws:rds/instance:Instance"}
        )
    return {"version": 3, "deployment": {"resources": resources}}


EXPORT = export()


def deployment(task_definition: str, status: str, rollout: str, reason: str = "", running: int = 2) -> dict[str, Any]:
    entry = {
        "status": status,
        "taskDefinition": task_definition,
        "rolloutState": rollout,
        "desiredCount": 2,
        "runningCount": running,
    }
    if reason:
        entry["rolloutStateReason"] = reason
    return entry


def services(*deployments: dict[str, Any]) -> dict[str, Any]:
    """`aws ecs describe-services` output for the API service."""
    return {"services": [{"serviceName": OUTPUTS["serviceName"], "deployments": list(deployments)}], "failures": []}


COMPLETED = services(deployment(NEW_TD, "PRIMARY", "COMPLETED"))
ROLLED_BACK = services(
    deployment(OLD_TD, "PRIMARY", "COMPLETED"),
    deployment(
        NEW_TD,
        "INACTIVE",
        "FAILED",
        "ECS deployment circuit breaker: tasks failed to start. Rolling back to the previous deployment.",
        running=0,
    ),
)


def throttled(argv: Sequence[str]) -> subprocess.CalledProcessError:
    return subprocess.CalledProcessError(
        254,
        list(argv),
        stderr="An error occurred (ThrottlingException) when calling the DescribeTasks operation: Rate exceeded",
    )


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


NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def described_snapshot(
    identifier: str, age_days: float | None, *, tags: dict[str, str] | None = None, status: str = "available"
) -> dict[str, Any]:
    """One entry of `aws rds describe-db-snapshots` output (the fields the script reads)."""
    entry: dict[str, Any] = {
        "DBSnapshotIdentifier": identifier,
        "DBInstanceIdentifier": "shipyard-prod-db",
        "SnapshotType": "manual",
        "Status": status,
        "TagList": [{"Key": key, "Value": value} for key, value in (tags or {}).items()],
    }
    if age_days is not None:  # RDS omits SnapshotCreateTime while the snapshot is being created
        entry["SnapshotCreateTime"] = (NOW - dt.timedelta(days=age_days)).isoformat(timespec="microseconds")
    return entry


def sha_of(index: int) -> str:
    return f"{index:02d}" * 20


def premigrate(index: int, age_days: float | None, **kwargs: Any) -> dict[str, Any]:
    sha = sha_of(index)
    tags = {"purpose": "pre-migration", "commit": sha, "stack": "prod"} | kwargs.pop("tags", {})
    return described_snapshot(f"shipyard-prod-db-premigrate-{sha[:12]}", age_days, tags=tags, **kwargs)


class ScriptedCli:
    """Answers commands like the real CLIs would for one deploy, and records them in order."""

    def __init__(
        self,
        *,
        exit_code: int | None = 0,
        snapshot_exists: bool = False,
        first_deploy: bool = False,
        snapshots: list[dict[str, Any]] | None = None,
        fail_listing: bool = False,
        outputs: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
        rollout: list[dict[str, Any]] | None = None,
        throttles: int = 0,
        task_stops_after: int = 3,
        fail: dict[str, str] | None = None,
        outputs_after_up: dict[str, Any] | None = None,
    ):
        self.calls: list[list[str]] = []
        self.exit_code = exit_code
        self.snapshot_exists = snapshot_exists
        self.first_deploy = first_deploy
        self.snapshots = snapshots or []
        self.fail_listing = fail_listing
        self.outputs = OUTPUTS if outputs is None else outputs
        self.state = state
        self.rollout = rollout or [COMPLETED]
        self.throttles = throttles
        self.task_stops_after = task_stops_after
        self.fail = fail or {}
        self.outputs_after_up = outputs_after_up
        self.polls = 0
        self.service_polls = 0

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        self.calls.append(argv)
        head = argv[:3]
        for prefix, stderr in self.fail.items():
            if " ".join(argv).startswith(prefix):
                raise subprocess.CalledProcessError(1, argv, stderr=stderr)
        if head == ["pulumi", "stack", "output"]:
            return "{}" if self.first_deploy else json.dumps(self.outputs)
        if head[:2] == ["pulumi", "up"]:
            if "--target" not in argv:
                self.first_deploy = False
                self.outputs = self.outputs_after_up or self.outputs
            return "done"
        if head == ["pulumi", "stack", "export"]:
            if self.state is not None:
                return json.dumps(self.state)
            return json.dumps(export(database=not self.first_deploy))
        if head == ["aws", "rds", "describe-db-snapshots"] and "--db-instance-identifier" in argv:
            if self.fail_listing:
                raise subprocess.CalledProcessError(254, argv, stderr="AccessDenied: rds:DescribeDBSnapshots")
            return json.dumps({"DBSnapshots": self.snapshots})
        if head == ["aws", "rds", "delete-db-snapshot"]:
            identifier = argv[argv.index("--db-snapshot-identifier") + 1]
            self.snapshots = [s for s in self.snapshots if s["DBSnapshotIdentifier"] != identifier]
            return "{}"
        if head == ["aws", "rds", "describe-db-snapshots"]:
            if not self.snapshot_exists:
                raise subprocess.CalledProcessError(
                    254, argv, stderr="An error occurred (DBSnapshotNotFound) when calling the DescribeDBSnapshots"
                )
            return "{}"
        if head[:2] == ["aws", "rds"]:
            return "{}"
        if head == ["aws", "ecs", "run-task"]:
            return json.dumps({"tasks": [{"taskArn": TASK_ARN, "lastStatus": "PROVISIONING"}], "failures": []})
        if head == ["aws", "ecs", "describe-tasks"]:
            if self.throttles:
                self.throttles -= 1
                raise throttled(argv)
            self.polls += 1
            if self.polls < self.task_stops_after:
                return json.dumps({"tasks": [{"taskArn": TASK_ARN, "lastStatus": "RUNNING"}], "failures": []})
            return json.dumps(_stopped(self.exit_code))
        if head == ["aws", "ecs", "stop-task"]:
            return json.dumps({"task": {"taskArn": TASK_ARN, "desiredStatus": "STOPPED"}})
        if head == ["aws", "ecs", "describe-services"]:
            answer = self.rollout[min(self.service_polls, len(self.rollout) - 1)]
            self.service_polls += 1
            return json.dumps(answer)
        raise AssertionError(f"unexpected command {argv}")

    def steps(self) -> list[str]:
        polls = (["aws", "ecs", "describe-tasks"], ["aws", "ecs", "describe-services"])
        return [" ".join(c[:3]) for c in self.calls if c[:3] not in polls]

    def ran(self, *head: str) -> list[list[str]]:
        return [c for c in self.calls if c[: len(head)] == list(head)]


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


def test_targeted_up_touches_only_the_image_its_pull_right_and_the_migrate_task() -> None:
    urns = migrate_target_urns(EXPORT)
    assert [urn.rsplit("::", 1)[1] for urn in urns] == [
        "api-image",
        "api-execution-policy",
        "api-migrate-task",
        "api-migrate-logs",
    ]
    assert not any("ecs/service" in urn for urn in urns)
    command = pulumi_up_command("prod", urns)
    assert command.count("--target") == 4
    with pytest.raises(DeployError, match="lacks"):
        migrate_target_urns({"deployment": {"resources": []}})


def test_a_deploy_snapshots_then_migrates_then_rolls_the_service_then_checks_ecs_then_prunes() -> None:
    cli = ScriptedCli()
    lines = deploy("prod", SHA, run=cli, sleep=lambda _: None, now=lambda: NOW)
    assert cli.steps() == [
        "pulumi stack output",
        "pulumi stack export",
        "aws rds describe-db-snapshots",
        "aws rds create-db-snapshot",
        "aws rds wait",
        "pulumi up --yes",
        "pulumi stack output",
        "aws ecs run-task",
        "pulumi up --yes",
        "pulumi stack export",
        "aws rds describe-db-snapshots",
    ]
    create = next(c for c in cli.calls if c[:3] == ["aws", "rds", "create-db-snapshot"])
    assert create[create.index("--db-snapshot-identifier") + 1] == "shipyard-prod-db-premigrate-0123456789ab"
    targeted, full = cli.ran("pulumi", "up")
    assert "--target" in targeted and "--target" not in full
    # step 5 asked ECS itself, after the full up
    assert cli.calls.index(full) < cli.calls.index(cli.ran("aws", "ecs", "describe-services")[0])
    assert lines[-2] == "service rolled out: shipyard-prod-api:42 serves, rollout COMPLETED"


def test_every_pulumi_up_carries_the_policy_pack_and_the_stacks_pack_config() -> None:
    cli = ScriptedCli()
    deploy("prod", SHA, run=cli, sleep=lambda _: None, now=lambda: NOW)
    first = ScriptedCli(first_deploy=True)
    deploy("staging", SHA, run=first, sleep=lambda _: None, now=lambda: NOW)
    ups = cli.ran("pulumi", "up") + first.ran("pulumi", "up")
    assert len(ups) == 3
    for up in ups:
        stack = up[up.index("--stack") + 1]
        assert up[up.index("--policy-pack") + 1] == "policy"
        assert up[up.index("--policy-pack-config") + 1] == f"policy/config/{stack}.json"


def test_a_prebuilt_image_is_deployed_by_digest_through_config_and_nothing_is_built() -> None:
    cli = ScriptedCli(state=export(image_resource=False))
    deploy("prod", SHA, run=cli, sleep=lambda _: None, image=IMAGE, prune=False)
    targeted, full = cli.ran("pulumi", "up")
    for up in (targeted, full):
        assert up[up.index("--config") + 1] == f"shipyard:service.image={IMAGE}"
        assert "--config-path" in up
    assert not any("docker:index/image:Image" in part for part in targeted)  # no image resource to target
    # the execution role's policy goes first: the promoted image sits in staging's repository
    assert [part.rsplit("::", 1)[1] for part in targeted if part.startswith("urn:")] == [
        "api-execution-policy",
        "api-migrate-task",
        "api-migrate-logs",
    ]


def test_main_rejects_an_image_by_tag_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    cli = ScriptedCli()
    with pytest.raises(SystemExit) as exited:
        main(["--stack", "prod", "--git-sha", SHA, "--image", IMAGE.split("@")[0] + ":latest"], run=cli)
    assert exited.value.code == 2
    assert "--image" in capsys.readouterr().err
    assert cli.calls == []  # nothing done


def test_the_snapshot_is_tagged_so_a_rollback_can_find_it() -> None:
    cli = ScriptedCli()
    deploy("prod", SHA.upper(), run=cli, sleep=lambda _: None, prune=False)
    create = next(c for c in cli.calls if c[:3] == ["aws", "rds", "create-db-snapshot"])
    # one argument per tag: the CLI's shorthand reads `Key=..,Value=..` words, not one string with spaces
    assert create[create.index("--tags") + 1 :] == [
        "Key=purpose,Value=pre-migration",
        f"Key=commit,Value={SHA}",
        "Key=stack,Value=prod",
    ]
    assert snapshot_tags("staging", SHA)[-1] == "Key=stack,Value=staging"


def test_retention_keeps_the_newest_and_deletes_only_what_is_also_old() -> None:
    described = {
        "DBSnapshots": [
            premigrate(1, 400),
            premigrate(2, 200),
            premigrate(3, 100),
            premigrate(4, 95, status="copying"),  # busy: never deleted
            premigrate(5, 80),  # outside the newest 2, but younger than 90 days
            premigrate(6, None, status="creating"),  # the one being made right now counts as the newest
            premigrate(7, 1),
            premigrate(8, 500, tags={"stack": "staging"}),  # another stack's
            premigrate(9, 600, tags={"purpose": "manual"}),  # someone's own snapshot, same name pattern
            described_snapshot("shipyard-prod-db-before-upgrade", 900, tags={"purpose": "pre-migration"}),
            described_snapshot(
                "shipyard-prod-db-premigrate-0000000000aa", 300, tags={"purpose": "pre-migration", "git-sha": "aa"}
            ),  # made before the stack tag existed: still ours
        ]
    }
    snapshots = premigration_snapshots(described, "shipyard-prod-db", "prod")
    assert [s.identifier[-2:] for s in snapshots] == ["06", "07", "05", "04", "03", "02", "aa", "01"]

    doomed = snapshots_to_prune(snapshots, keep=2, max_age_days=90, now=NOW)

    assert [s.identifier[-2:] for s in doomed] == ["03", "02", "aa", "01"]
    assert snapshots_to_prune(snapshots, keep=len(snapshots), max_age_days=1, now=NOW) == []
    with pytest.raises(DeployError, match="--keep must be at least 1"):
        snapshots_to_prune(snapshots, keep=0, max_age_days=90, now=NOW)


def test_a_deploy_prunes_with_the_default_retention() -> None:
    old = [premigrate(index, 100 + index) for index in range(1, SNAPSHOT_KEEP + 3)]  # 12, all past 90 days
    cli = ScriptedCli(snapshots=old)

    lines = deploy("prod", SHA, run=cli, sleep=lambda _: None, now=lambda: NOW)

    deleted = [c[c.index("--db-snapshot-identifier") + 1] for c in cli.calls if c[2] == "delete-db-snapshot"]
    assert deleted == [premigrate(index, 0)["DBSnapshotIdentifier"] for index in (SNAPSHOT_KEEP + 1, SNAPSHOT_KEEP + 2)]
    assert len(cli.snapshots) == SNAPSHOT_KEEP
    assert lines[-1] == (
        f"pre-migration snapshots of shipyard-prod-db: {SNAPSHOT_KEEP} kept "
        f"(newest {SNAPSHOT_KEEP}, or younger than {SNAPSHOT_MAX_AGE_DAYS} days), 2 deleted"
    )


def test_a_pruning_failure_does_not_fail_a_finished_deploy() -> None:
    cli = ScriptedCli(fail_listing=True)
    lines = deploy("prod", SHA, run=cli, sleep=lambda _: None, now=lambda: NOW)
    assert lines[-2].startswith("service rolled out")
    assert lines[-1].startswith("step 6: snapshot pruning skipped (AccessDenied: rds:DescribeDBSnapshots)")


def test_a_failed_deploy_prunes_nothing() -> None:
    cli = ScriptedCli(exit_code=1, snapshots=[premigrate(index, 400) for index in range(20)])
    with pytest.raises(DeployError):
        deploy("prod", SHA, run=cli, sleep=lambda _: None, now=lambda: NOW)
    assert not [c for c in cli.calls if c[2] == "delete-db-snapshot"]


def test_prune_snapshots_dry_run_lists_and_deletes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    cli = ScriptedCli(snapshots=[premigrate(index, 100 + index) for index in range(1, 5)])

    assert prune_main(["--stack", "prod", "--keep", "2", "--max-age-days", "30", "--dry-run"], run=cli) == 0

    assert not [c for c in cli.calls if c[2] == "delete-db-snapshot"]
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"would delete snapshot shipyard-prod-db-premigrate-{sha_of(3)[:12]} (commit {sha_of(3)[:12]}, 2026-08-14)",
        f"would delete snapshot shipyard-prod-db-premigrate-{sha_of(4)[:12]} (commit {sha_of(4)[:12]}, 2026-08-13)",
        "pre-migration snapshots of shipyard-prod-db: 2 kept (newest 2, or younger than 30 days), 2 to delete",
    ]
    listing = next(c for c in cli.calls if c[2] == "describe-db-snapshots")
    assert listing[listing.index("--db-instance-identifier") + 1] == "shipyard-prod-db"
    assert listing[listing.index("--region") + 1] == "us-east-1"


def test_prune_snapshots_deletes_and_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    cli = ScriptedCli(snapshots=[premigrate(index, 100 + index) for index in range(1, 5)])
    assert prune_main(["--stack", "prod", "--keep", "3"], run=cli) == 0
    assert [s["DBSnapshotIdentifier"][-2:] for s in cli.snapshots] == ["01", "02", "03"]
    with pytest.raises(SystemExit) as exited:
        prune_main(["--stack", "prod", "--keep", "0"], run=cli)
    assert exited.value.code == 2 and "--keep: must be at least 1" in capsys.readouterr().err
    assert prune_main(["--stack", "prod"], run=ScriptedCli(first_deploy=True)) == 1
    assert "has no output region, dbInstanceIdentifier" in capsys.readouterr().err


def test_a_failed_migration_stops_before_the_service_changes() -> None:
    cli = ScriptedCli(exit_code=3)
    with pytest.raises(DeployError, match=r"step 3: migrations failed .*exit 3.*keeps serving the previous version"):
        deploy("prod", SHA, run=cli, sleep=lambda _: None)
    ups = [c for c in cli.calls if c[:2] == ["pulumi", "up"]]
    assert len(ups) == 1 and "--target" in ups[0]  # the full up (the service roll) never ran


def test_a_retry_of_the_same_commit_reuses_its_snapshot() -> None:
    cli = ScriptedCli(snapshot_exists=True)
    deploy("prod", SHA, run=cli, sleep=lambda _: None, now=lambda: NOW)
    assert not [c for c in cli.calls if c[:3] == ["aws", "rds", "create-db-snapshot"]]
    assert [c for c in cli.calls if c[:3] == ["aws", "rds", "wait"]]


def test_first_deploy_creates_everything_then_migrates_then_checks_ecs() -> None:
    cli = ScriptedCli(first_deploy=True)
    lines = deploy("staging", SHA, run=cli, sleep=lambda _: None)
    assert cli.steps() == [
        "pulumi stack output",
        "pulumi stack export",
        "pulumi up --yes",
        "pulumi stack output",
        "aws ecs run-task",
        "pulumi stack export",
    ]
    assert cli.ran("aws", "ecs", "describe-services")
    assert lines[0].startswith("first deploy")


def test_a_missing_output_on_a_stack_with_a_database_stops_naming_it_and_does_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    renamed = {key: value for key, value in OUTPUTS.items() if key != "migrateTaskDefinitionArn"}
    cli = ScriptedCli(outputs=renamed)

    assert main(["--stack", "prod", "--git-sha", SHA], run=cli, sleep=lambda _: None) == 1

    err = capsys.readouterr().err
    assert "has a database but no output migrateTaskDefinitionArn" in err
    assert "nothing was done" in err
    assert cli.steps() == ["pulumi stack output", "pulumi stack export"]  # no up, no snapshot, no task


def test_first_deploy_only_when_the_state_holds_no_database() -> None:
    # outputs from a half-created stack, but no database in the state: this is a first deploy
    cli = ScriptedCli(outputs={"region": "us-east-1"}, state=export(database=False), outputs_after_up=OUTPUTS)
    lines = deploy("staging", SHA, run=cli, sleep=lambda _: None)
    assert lines[0].startswith("first deploy")
    # an empty output set on a stack whose state has a database is not a first deploy
    live = ScriptedCli(outputs={})
    with pytest.raises(DeployError, match="has a database but no output clusterName, serviceName"):
        deploy("prod", SHA, run=live, sleep=lambda _: None)
    assert not live.ran("pulumi", "up")


def test_a_rollback_by_the_circuit_breaker_fails_loudly_keeps_the_snapshot_and_says_what_serves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = [premigrate(index, 400) for index in range(20)]
    cli = ScriptedCli(rollout=[ROLLED_BACK], snapshots=old)

    assert main(["--stack", "prod", "--git-sha", SHA], run=cli, sleep=lambda _: None) == 1

    err = capsys.readouterr().err
    assert "step 5 (ECS rollout check): the circuit breaker rolled back" in err
    assert "PRIMARY runs shipyard-prod-api:41, not shipyard-prod-api:42" in err
    assert "tasks failed to start" in err
    assert "what serves now: task definition shipyard-prod-api:41 (2 of 2 tasks running" in err
    assert "snapshot shipyard-prod-db-premigrate-0123456789ab is kept" in err
    assert "Traceback" not in err
    assert "service rolled out" not in capsys.readouterr().out
    assert not cli.ran("aws", "rds", "delete-db-snapshot")  # nothing pruned
    assert len(cli.snapshots) == 20


def test_a_rollout_still_in_progress_is_awaited_and_a_failed_one_is_a_failure() -> None:
    in_progress = services(deployment(NEW_TD, "PRIMARY", "IN_PROGRESS"), deployment(OLD_TD, "ACTIVE", "COMPLETED"))
    waited = ScriptedCli(rollout=[in_progress, in_progress, COMPLETED])
    lines = deploy("prod", SHA, run=waited, sleep=lambda _: None, prune=False)
    assert lines[-1].startswith("service rolled out") and waited.service_polls == 3

    failed = services(deployment(NEW_TD, "PRIMARY", "FAILED", "tasks failed health checks", running=0))
    with pytest.raises(DeployError, match=r"rollout of shipyard-prod-api:42 FAILED \(tasks failed health checks\)"):
        deploy("prod", SHA, run=ScriptedCli(rollout=[failed]), sleep=lambda _: None)

    stuck = ScriptedCli(rollout=[in_progress])
    with pytest.raises(DeployError, match="still IN_PROGRESS after 30 minutes"):
        deploy("prod", SHA, run=stuck, sleep=lambda _: None)
    assert stuck.service_polls == ROLLOUT_TIMEOUT_SECONDS // POLL_SECONDS  # bounded


def test_a_migration_past_its_deadline_is_stopped_and_named(capsys: pytest.CaptureFixture[str]) -> None:
    cli = ScriptedCli(task_stops_after=10**9, snapshots=[premigrate(index, 400) for index in range(20)])
    assert main(["--stack", "prod", "--git-sha", SHA], run=cli, sleep=lambda _: None) == 1
    message = capsys.readouterr().err
    assert "Traceback" not in message and not cli.ran("aws", "rds", "delete-db-snapshot")  # nothing pruned
    assert f"migrate task {TASK_ARN} still RUNNING after 30 minutes: stopped it" in message
    assert "what serves now: the previous version: the ECS service was not touched" in message
    (stop,) = cli.ran("aws", "ecs", "stop-task")
    assert stop[stop.index("--task") + 1] == TASK_ARN
    assert len(cli.ran("pulumi", "up")) == 1  # the service roll never ran
    assert cli.polls == MIGRATION_TIMEOUT_SECONDS // POLL_SECONDS


def test_a_task_that_cannot_be_stopped_is_named_with_the_command_to_stop_it() -> None:
    cli = ScriptedCli(task_stops_after=10**9, fail={"aws ecs stop-task": "AccessDeniedException: ecs:StopTask"})
    with pytest.raises(DeployError, match=f"could NOT stop it .*aws ecs stop-task --task {TASK_ARN}"):
        deploy("prod", SHA, run=cli, sleep=lambda _: None)


def test_throttled_polls_are_retried_with_bounded_backoff(capsys: pytest.CaptureFixture[str]) -> None:
    slept: list[float] = []
    cli = ScriptedCli(throttles=4)
    deploy("prod", SHA, run=cli, sleep=slept.append, prune=False)
    backoff = [s for s in slept if s != POLL_SECONDS]
    assert backoff == [2.0, 4.0, 8.0, 16.0]

    always = ScriptedCli(throttles=10**6, snapshots=[premigrate(index, 400) for index in range(20)])
    assert main(["--stack", "prod", "--git-sha", SHA], run=always, sleep=lambda _: None) == 1
    err = capsys.readouterr().err
    assert "stopped at step 3" in err and "ThrottlingException" in err and "Traceback" not in err
    assert "what serves now: the previous version" in err and "how to go back: " in err
    assert len(always.ran("aws", "ecs", "describe-tasks")) == RETRY_ATTEMPTS  # gave up, bounded
    assert not always.ran("aws", "rds", "delete-db-snapshot")


@pytest.mark.parametrize(
    ("failing", "step", "serving", "back"),
    [
        ("aws rds create-db-snapshot", "step 1", "the ECS service was not touched", "nothing to undo"),
        ("pulumi up --yes --skip-preview --stack prod", "step 2", "not touched", "nothing to undo"),
        ("aws ecs run-task", "step 3", "not touched", "snapshot shipyard-prod-db-premigrate-0123456789ab is kept"),
    ],
)
def test_every_cloud_error_becomes_the_scripts_own_message(
    failing: str, step: str, serving: str, back: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cli = ScriptedCli(fail={failing: "An error occurred (AccessDeniedException): not authorized"})
    assert main(["--stack", "prod", "--git-sha", SHA], run=cli, sleep=lambda _: None) == 1
    err = capsys.readouterr().err
    assert f"stopped at {step}" in err and "AccessDeniedException" in err
    assert "what serves now: " in err and serving in err
    assert "how to go back: " in err and back in err
    assert "Traceback" not in err


def test_a_failed_service_roll_says_what_ecs_serves_and_how_to_go_back() -> None:
    cli = ScriptedCli(rollout=[ROLLED_BACK])
    cli.fail = {}
    original = cli.__call__

    def failing_full_up(argv: Sequence[str]) -> str:
        if list(argv[:2]) == ["pulumi", "up"] and "--target" not in argv:
            cli.calls.append(list(argv))
            raise subprocess.CalledProcessError(255, list(argv), stderr="error: update failed")
        return original(argv)

    with pytest.raises(DeployError) as failed:
        deploy("prod", SHA, run=failing_full_up, sleep=lambda _: None)
    message = str(failed.value)
    assert message.startswith(
        "step 4 (full pulumi up: roll the service): `pulumi up --yes` failed: error: update failed"
    )
    assert "what serves now: task definition shipyard-prod-api:41" in message
    assert "python -m scripts.deploy --stack prod --git-sha <previous sha> --image" in message


def test_a_locked_stack_says_how_to_unlock_it() -> None:
    cli = ScriptedCli(fail={"pulumi up": "error: [409] Conflict: Another update is currently in progress."})
    with pytest.raises(DeployError, match=r"pulumi cancel --stack prod"):
        deploy("prod", SHA, run=cli, sleep=lambda _: None)


def test_a_missing_cli_is_a_message_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    def no_pulumi(argv: Sequence[str]) -> str:
        raise FileNotFoundError(2, "No such file or directory", argv[0])

    assert main(["--stack", "prod", "--git-sha", SHA], run=no_pulumi, sleep=lambda _: None) == 1
    assert "command not found: pulumi" in capsys.readouterr().err


def test_main_rejects_a_bad_sha_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--stack", "prod", "--git-sha", "not-a-sha"], run=ScriptedCli())
    assert exited.value.code == 2
    assert "--git-sha" in capsys.readouterr().err


def test_preview_uses_the_pack_and_the_image_a_deploy_would_use(capsys: pytest.CaptureFixture[str]) -> None:
    cli = ScriptedCli(state=export(image_resource=False))  # deployed by digest: the state holds no built image

    def answer(argv: Sequence[str]) -> str:
        if list(argv[:2]) == ["pulumi", "preview"]:
            cli.calls.append(list(argv))
            return "Previewing update (prod): 1 to update"
        return cli(argv)

    assert main(["preview", "--stack", "prod", "--image", IMAGE], run=answer) == 0
    assert main(["preview", "--stack", "prod", "--deployed-image", "--refresh", "--expect-no-changes"], run=answer) == 0
    given, drift = cli.ran("pulumi", "preview")
    for preview in (given, drift):
        assert preview[preview.index("--policy-pack") + 1] == "policy"
        assert preview[preview.index("--config") + 1] == f"shipyard:service.image={IMAGE}"  # state's imageDigest
    assert "--expect-no-changes" in drift and "--refresh" in drift and "--expect-no-changes" not in given
    assert "1 to update" in capsys.readouterr().out

    # a stack that builds its own image (deployed by hand, without --image) is previewed the same way: no config
    cli.state = export(image_resource=True)
    assert main(["preview", "--stack", "prod", "--deployed-image"], run=answer) == 0
    assert "--config" not in cli.ran("pulumi", "preview")[-1]


def test_a_preview_that_finds_drift_exits_1_with_its_output(capsys: pytest.CaptureFixture[str]) -> None:
    def drifted(argv: Sequence[str]) -> str:
        if list(argv[:2]) == ["pulumi", "preview"]:
            raise subprocess.CalledProcessError(
                255,
                list(argv),
                output="~ aws:ecs/service:Service api-api update",
                stderr="error: no changes were expected",
            )
        return ScriptedCli()(argv)

    assert main(["preview", "--stack", "prod", "--deployed-image", "--expect-no-changes"], run=drifted) == 1
    captured = capsys.readouterr()
    assert "api-api update" in captured.out and "no changes were expected" in captured.err


# ------------------------------------------------------------------ the real AWS CLI against moto on 127.0.0.1
AWS_CLI = shutil.which("aws")


class MotoCloud:
    """The RDS and ECS calls go to the real `aws` CLI against moto on 127.0.0.1; `pulumi` (which cannot run here)
    is answered like the CLI, and its full `up` updates the ECS service as the provider does. The migrate task's
    run/describe/stop stay scripted: moto 5.2's RunTask with awsvpc networking fails inside moto."""

    def __init__(self, endpoint: str, name: str, *, service_task_definition: str, deployed_task_definition: str):
        self.endpoint = endpoint
        self.outputs: dict[str, Any] = {
            **OUTPUTS,
            "clusterName": name,
            "serviceName": name,
            "dbInstanceIdentifier": f"{name}-db",
        }
        self.deployed_task_definition = deployed_task_definition
        self.scripted = ScriptedCli(outputs=self.outputs)
        self.ecs = boto3.client("ecs", endpoint_url=endpoint, region_name="us-east-1")
        self.rds = boto3.client("rds", endpoint_url=endpoint, region_name="us-east-1")
        self.rds.create_db_instance(
            DBInstanceIdentifier=f"{name}-db",
            DBInstanceClass="db.t4g.micro",
            Engine="postgres",
            MasterUsername="app",
            MasterUserPassword="not-a-real-password",
            AllocatedStorage=20,
        )
        self.ecs.create_cluster(clusterName=name)
        self.ecs.create_service(
            cluster=name,
            serviceName=name,
            taskDefinition=self.register(service_task_definition),
            desiredCount=2,
            launchType="FARGATE",
        )
        self.deleted: list[str] = []

    def register(self, family_revision: str) -> str:
        family = family_revision.split(":")[0]
        container = {"name": "api", "image": IMAGE, "essential": True, "cpu": 256, "memory": 512}
        arn = ""
        for _ in range(int(family_revision.split(":")[1]) - self._revisions(family)):
            arn = self.ecs.register_task_definition(family=family, containerDefinitions=[container])["taskDefinition"][
                "taskDefinitionArn"
            ]
        return arn or f"arn:aws:ecs:us-east-1:123456789012:task-definition/{family_revision}"

    def _revisions(self, family: str) -> int:
        return len(self.ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"])

    def __call__(self, argv: Sequence[str]) -> str:
        argv = list(argv)
        head = argv[:3]
        if argv[0] == "pulumi":
            if head == ["pulumi", "stack", "export"]:
                return json.dumps(
                    export(task_definition=self.deployed_task_definition, service_name=self.outputs["serviceName"])
                )
            if head[:2] == ["pulumi", "up"] and "--target" not in argv:
                # what the provider does in step 4 (the rollout itself is ECS's business)
                self.ecs.update_service(
                    cluster=self.outputs["clusterName"],
                    service=self.outputs["serviceName"],
                    taskDefinition=self.deployed_task_definition,
                )
            return self.scripted(argv)
        if head[:2] == ["aws", "ecs"] and head[2] in {"run-task", "describe-tasks", "stop-task"}:
            return self.scripted(argv)
        if head == ["aws", "rds", "delete-db-snapshot"]:
            self.deleted.append(argv[argv.index("--db-snapshot-identifier") + 1])
        return run_command([*argv, "--endpoint-url", self.endpoint])

    def snapshots(self) -> list[str]:
        described = self.rds.describe_db_snapshots(
            DBInstanceIdentifier=self.outputs["dbInstanceIdentifier"], SnapshotType="manual"
        )  # moto also keeps an automated `rds:` snapshot, which pruning must (and does) leave alone
        return sorted(s["DBSnapshotIdentifier"] for s in described["DBSnapshots"])


@pytest.fixture
def aws_cli_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    if AWS_CLI is None:
        pytest.skip("the AWS CLI is not installed (GitHub's runners have it)")
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        "AWS_EC2_METADATA_DISABLED": "true",
        "MOTO_ECS_SERVICE_RUNNING": "2",  # moto reports a service's deployment COMPLETED once running >= desired
    }.items():
        monkeypatch.setenv(key, value)
    return moto_endpoint


def test_against_moto_a_completed_rollout_is_verified_then_old_snapshots_are_pruned(aws_cli_env: str) -> None:
    name = f"shipyard-ok-{uuid.uuid4().hex[:8]}"
    cloud = MotoCloud(aws_cli_env, name, service_task_definition=f"{name}:42", deployed_task_definition=f"{name}:42")
    for index in range(SNAPSHOT_KEEP + 2):  # 12 earlier pre-migration snapshots of this stack
        cloud.rds.create_db_snapshot(
            DBInstanceIdentifier=f"{name}-db",
            DBSnapshotIdentifier=f"{name}-db-premigrate-{sha_of(index)[:12]}",
            Tags=[{"Key": "purpose", "Value": "pre-migration"}, {"Key": "stack", "Value": "prod"}],
        )
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=SNAPSHOT_MAX_AGE_DAYS + 1)  # all of them old by then

    lines = deploy("prod", SHA, run=cloud, sleep=lambda _: None, now=lambda: later)

    assert f"service rolled out: {name}:42 serves, rollout COMPLETED" in lines
    taken = f"{name}-db-premigrate-{SHA[:12]}"
    assert taken in cloud.snapshots()  # created through the real CLI, tags and all
    assert len(cloud.deleted) == 3 and taken not in cloud.deleted  # 13 -> the newest 10 kept
    assert len(cloud.snapshots()) == SNAPSHOT_KEEP


def test_against_moto_a_rolled_back_rollout_fails_and_keeps_every_snapshot(aws_cli_env: str) -> None:
    name = f"shipyard-rb-{uuid.uuid4().hex[:8]}"
    # ECS keeps the previous task definition PRIMARY after the update: what a circuit-breaker rollback leaves
    cloud = MotoCloud(aws_cli_env, name, service_task_definition=f"{name}:41", deployed_task_definition=f"{name}:42")
    cloud.register(f"{name}:42")

    with pytest.raises(DeployError) as failed:
        deploy("prod", SHA, run=cloud, sleep=lambda _: None)

    message = str(failed.value)
    assert f"the circuit breaker rolled back: PRIMARY runs {name}:41, not {name}:42" in message
    assert f"what serves now: task definition {name}:41 (2 of 2 tasks running, rollout COMPLETED)" in message
    assert f"snapshot {name}-db-premigrate-{SHA[:12]} is kept" in message
    assert cloud.snapshots() == [f"{name}-db-premigrate-{SHA[:12]}"] and cloud.deleted == []


def test_a_long_pulumi_up_streams_its_output_and_keeps_it_for_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A real child process: its lines reach stderr as they come (CI shows progress), the error names its cause."""
    script = (
        "import sys; print('Updating (prod)'); print('error: update failed: RDS modification timed out'); "
        "print('Resources: 3 unchanged'); print('Duration: 1h20m'); sys.exit(255)"
    )
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run_streaming([sys.executable, "-c", script])
    assert "Updating (prod)" in capsys.readouterr().err
    assert error_text(failed.value).endswith("failed: error: update failed: RDS modification timed out")
    assert run_streaming([sys.executable, "-c", "print('done')"]) == "done\n"

"""scripts/deploy.py: argument building and the stop-on-failure order, with the CLIs answered by a scripted runner
(the pulumi and aws commands are the boundary; their JSON is shaped like the real tools')."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Sequence
from typing import Any

import pytest

from scripts.deploy import (
    MIGRATE_TARGETS,
    SNAPSHOT_KEEP,
    SNAPSHOT_MAX_AGE_DAYS,
    DeployError,
    deploy,
    main,
    migrate_target_urns,
    migration_outcome,
    premigration_snapshots,
    prune_main,
    pulumi_up_command,
    run_task_command,
    snapshot_identifier,
    snapshot_tags,
    snapshots_to_prune,
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
    ):
        self.calls: list[list[str]] = []
        self.exit_code = exit_code
        self.snapshot_exists = snapshot_exists
        self.first_deploy = first_deploy
        self.snapshots = snapshots or []
        self.fail_listing = fail_listing
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


def test_a_deploy_snapshots_then_migrates_then_rolls_the_service_then_prunes() -> None:
    cli = ScriptedCli()
    lines = deploy("prod", SHA, run=cli, sleep=lambda _: None, now=lambda: NOW)
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
        "aws rds describe-db-snapshots",
    ]
    create = next(c for c in cli.calls if c[:3] == ["aws", "rds", "create-db-snapshot"])
    assert create[create.index("--db-snapshot-identifier") + 1] == "shipyard-prod-db-premigrate-0123456789ab"
    targeted, full = [c for c in cli.calls if c[:2] == ["pulumi", "up"]]
    assert "--target" in targeted and "--target" not in full
    assert lines[-2] == "service rolled out"


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
    assert lines[-2] == "service rolled out"
    assert lines[-1].startswith("step 5: snapshot pruning skipped (AccessDenied: rds:DescribeDBSnapshots)")


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


def test_first_deploy_creates_everything_then_migrates() -> None:
    cli = ScriptedCli(first_deploy=True)
    deploy("staging", SHA, run=cli, sleep=lambda _: None)
    assert cli.steps() == ["pulumi stack output", "pulumi up --yes", "pulumi stack output", "aws ecs run-task"]


def test_main_rejects_a_bad_sha_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    # A bad --git-sha is a bad argument: exit 2, as the module docstring says (issue 17), before any step runs.
    with pytest.raises(SystemExit) as exit_:
        main(["--stack", "prod", "--git-sha", "not-a-sha"])
    assert exit_.value.code == 2
    assert "--git-sha" in capsys.readouterr().err

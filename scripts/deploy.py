"""Deploy with migrations: snapshot, new image + migrate task only, run the migrations once, then roll the service.

    python -m scripts.deploy --stack prod --git-sha "$GITHUB_SHA"

Steps (docs/deploy.md explains why this order):
1. `create-db-snapshot <prefix>-premigrate-<sha>` and wait until it is available (reused when a retry of the
   same commit finds it) — the seed's rule: a backup before every migration, named so a rollback finds it;
2. `pulumi up --target` the app image and the migrate task definition (and its log group) only: the running
   service is untouched and keeps serving the old version;
3. ECS RunTask of the migrate task (same image, same secrets, the tasks' subnets and security group) and wait
   for it to stop; anything but exit code 0 stops the deploy here, with the old version still serving;
4. a full `pulumi up`: the service rolls to the new task definition (circuit breaker with rollback).

On a stack's first deploy there is nothing to snapshot yet: one full `pulumi up` creates everything, then the
migrate task runs (requests that touch the schema fail until it has).

Exit codes: 0 deployed; 1 a step failed (the message says which and what still serves); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIGRATE_TARGETS = (
    ("docker:index/image:Image", "api-image"),
    ("aws:ecs/taskDefinition:TaskDefinition", "api-migrate-task"),
    ("aws:cloudwatch/logGroup:LogGroup", "api-migrate-logs"),
)
"""Resources step 2 may touch (type, logical name): everything else, the service above all, stays as is."""
REQUIRED_OUTPUTS = (
    "clusterName",
    "migrateTaskDefinitionArn",
    "taskSubnetIds",
    "taskSecurityGroupId",
    "taskAssignPublicIp",
    "dbInstanceIdentifier",
    "region",
)
MIGRATION_TIMEOUT_SECONDS = 30 * 60
POLL_SECONDS = 10

Runner = Callable[[Sequence[str]], str]
"""Runs a command, returns its stdout; raises `subprocess.CalledProcessError` on a non-zero exit."""


class DeployError(RuntimeError):
    """A step failed; the message names the step and what still serves traffic."""


def run_command(argv: Sequence[str]) -> str:
    print("+", " ".join(argv), file=sys.stderr, flush=True)
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout  # noqa: S603


def snapshot_identifier(db_instance: str, git_sha: str) -> str:
    """`<db instance>-premigrate-<sha12>`: letters, digits, single hyphens, starts with a letter (RDS rules)."""
    sha = git_sha.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{7,40}", sha):
        raise DeployError(f"--git-sha: {git_sha!r} is not a git commit hash (7-40 hex characters)")
    identifier = re.sub(r"-{2,}", "-", f"{db_instance}-premigrate-{sha[:12]}")
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9-]{0,254}", identifier) or identifier.endswith("-"):
        raise DeployError(f"snapshot identifier {identifier!r} breaks RDS naming rules")
    return identifier


def stack_outputs(run: Runner, stack: str) -> dict[str, Any]:
    outputs: dict[str, Any] = json.loads(run(["pulumi", "stack", "output", "--json", "--stack", stack]) or "{}")
    return outputs


def missing_outputs(outputs: Mapping[str, Any]) -> list[str]:
    return [key for key in REQUIRED_OUTPUTS if key not in outputs]


def migrate_target_urns(deployment: Mapping[str, Any]) -> list[str]:
    """URNs of MIGRATE_TARGETS in a `pulumi stack export` document (URNs carry parents' types, so look them up)."""
    resources = deployment.get("deployment", {}).get("resources", []) or []
    by_key = {(r.get("type"), r["urn"].rsplit("::", 1)[-1]): r["urn"] for r in resources}
    missing = [f"{kind} {name}" for kind, name in MIGRATE_TARGETS if (kind, name) not in by_key]
    if missing:
        raise DeployError(f"stack state lacks {', '.join(missing)}; run a full `pulumi up` first")
    return [by_key[key] for key in MIGRATE_TARGETS]


def pulumi_up_command(stack: str, targets: Sequence[str] = ()) -> list[str]:
    command = ["pulumi", "up", "--yes", "--skip-preview", "--stack", stack]
    for urn in targets:
        command += ["--target", urn]
    return command


def run_task_command(outputs: Mapping[str, Any], started_by: str) -> list[str]:
    network = {
        "awsvpcConfiguration": {
            "subnets": list(outputs["taskSubnetIds"]),
            "securityGroups": [outputs["taskSecurityGroupId"]],
            "assignPublicIp": "ENABLED" if outputs["taskAssignPublicIp"] else "DISABLED",
        }
    }
    return [
        "aws",
        "ecs",
        "run-task",
        "--region",
        str(outputs["region"]),
        "--cluster",
        str(outputs["clusterName"]),
        "--task-definition",
        str(outputs["migrateTaskDefinitionArn"]),
        "--launch-type",
        "FARGATE",
        "--count",
        "1",
        "--started-by",
        started_by[:128],
        "--network-configuration",
        json.dumps(network, separators=(",", ":")),
        "--output",
        "json",
    ]


@dataclass(frozen=True)
class MigrationOutcome:
    ok: bool
    detail: str


def migration_outcome(describe_tasks: Mapping[str, Any]) -> MigrationOutcome:
    """Judge a stopped migrate task from `aws ecs describe-tasks` output: only exit code 0 is success.

    A missing exit code means the container never ran (image pull, secrets, network): a failure too.
    """
    failures = describe_tasks.get("failures") or []
    if failures:
        return MigrationOutcome(False, f"ECS could not describe the task: {failures}")
    tasks = describe_tasks.get("tasks") or []
    if len(tasks) != 1:
        return MigrationOutcome(False, f"expected one migrate task, ECS returned {len(tasks)}")
    task = tasks[0]
    if task.get("lastStatus") != "STOPPED":
        return MigrationOutcome(False, f"task still {task.get('lastStatus')} after the timeout")
    containers = task.get("containers") or []
    codes = [c.get("exitCode") for c in containers]
    if containers and all(code == 0 for code in codes):
        return MigrationOutcome(True, "migrations applied (exit code 0)")
    reasons = "; ".join(
        f"{c.get('name')}: exit {c.get('exitCode')}{' (' + c['reason'] + ')' if c.get('reason') else ''}"
        for c in containers
    )
    return MigrationOutcome(False, f"{task.get('stopCode', '')} {task.get('stoppedReason', '')} {reasons}".strip())


def wait_for_task(run: Runner, outputs: Mapping[str, Any], task_arn: str, sleep: Callable[[float], None]) -> dict:
    deadline = MIGRATION_TIMEOUT_SECONDS // POLL_SECONDS
    described: dict[str, Any] = {}
    for _ in range(deadline):  # bounded: at most MIGRATION_TIMEOUT_SECONDS
        described = json.loads(
            run(
                [
                    "aws",
                    "ecs",
                    "describe-tasks",
                    "--region",
                    str(outputs["region"]),
                    "--cluster",
                    str(outputs["clusterName"]),
                    "--tasks",
                    task_arn,
                    "--output",
                    "json",
                ]
            )
        )
        tasks = described.get("tasks") or []
        if tasks and tasks[0].get("lastStatus") == "STOPPED":
            break
        sleep(POLL_SECONDS)
    return described


def snapshot(run: Runner, outputs: Mapping[str, Any], git_sha: str) -> str:
    region, instance = str(outputs["region"]), str(outputs["dbInstanceIdentifier"])
    identifier = snapshot_identifier(instance, git_sha)
    try:
        run(["aws", "rds", "describe-db-snapshots", "--region", region, "--db-snapshot-identifier", identifier])
        print(f"snapshot {identifier} already exists (retry of this commit): reusing it", file=sys.stderr)
    except subprocess.CalledProcessError:
        run(
            [
                "aws",
                "rds",
                "create-db-snapshot",
                "--region",
                region,
                "--db-instance-identifier",
                instance,
                "--db-snapshot-identifier",
                identifier,
                "--tags",
                f"Key=purpose,Value=pre-migration Key=git-sha,Value={git_sha}",
            ]
        )
    run(["aws", "rds", "wait", "db-snapshot-available", "--region", region, "--db-snapshot-identifier", identifier])
    return identifier


def run_migrations(run: Runner, outputs: Mapping[str, Any], git_sha: str, sleep: Callable[[float], None]) -> str:
    started = json.loads(run(run_task_command(outputs, f"deploy-{git_sha[:12]}")))
    if started.get("failures") or not started.get("tasks"):
        raise DeployError(f"step 3: ECS did not start the migrate task: {started.get('failures')}")
    task_arn = started["tasks"][0]["taskArn"]
    outcome = migration_outcome(wait_for_task(run, outputs, task_arn, sleep))
    if not outcome.ok:
        raise DeployError(
            f"step 3: migrations failed ({outcome.detail}); the service was not touched and keeps serving the "
            f"previous version. Logs: {outputs.get('migrateLogGroup', 'the migrate log group')}, task {task_arn}"
        )
    return outcome.detail


def deploy(
    stack: str, git_sha: str, run: Runner = run_command, sleep: Callable[[float], None] = time.sleep
) -> list[str]:
    """The whole sequence; returns a line per step done. Raises DeployError at the first failure."""
    done: list[str] = []
    outputs = stack_outputs(run, stack)
    if missing_outputs(outputs):
        run(pulumi_up_command(stack))
        done.append("first deploy: full pulumi up (no database to snapshot yet)")
        outputs = stack_outputs(run, stack)
        done.append(run_migrations(run, outputs, git_sha, sleep))
        return done
    try:
        done.append(f"snapshot {snapshot(run, outputs, git_sha)} available")
    except subprocess.CalledProcessError as error:
        raise DeployError(f"step 1: pre-migration snapshot failed ({error.stderr or error}); nothing changed") from None
    targets = migrate_target_urns(json.loads(run(["pulumi", "stack", "export", "--stack", stack])))
    try:
        run(pulumi_up_command(stack, targets))
    except subprocess.CalledProcessError as error:
        raise DeployError(f"step 2: targeted pulumi up failed ({error.stderr or error}); service untouched") from None
    done.append("image and migrate task definition updated")
    outputs = stack_outputs(run, stack)  # the new migrate task definition revision
    done.append(run_migrations(run, outputs, git_sha, sleep))
    try:
        run(pulumi_up_command(stack))
    except subprocess.CalledProcessError as error:
        raise DeployError(
            f"step 4: pulumi up failed ({error.stderr or error}); migrations are applied, the circuit breaker "
            "rolled the service back if new tasks never got healthy"
        ) from None
    done.append("service rolled out")
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.deploy", description=__doc__.split("\n")[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--git-sha", required=True, help="commit being deployed (names the snapshot)")
    args = parser.parse_args(argv)
    try:
        snapshot_identifier("x", args.git_sha)
        for line in deploy(args.stack, args.git_sha):
            print(line)
    except DeployError as error:
        print(f"deploy stopped: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

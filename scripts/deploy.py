"""Deploy with migrations: snapshot, new image + migrate task only, run the migrations once, then roll the service.

    python -m scripts.deploy --stack prod --git-sha "$GITHUB_SHA"

Steps (docs/deploy.md explains why this order):
1. `create-db-snapshot <prefix>-premigrate-<sha>` and wait until it is available (reused when a retry of the
   same commit finds it) — the seed's rule: a backup before every migration, named so a rollback finds it;
2. `pulumi up --target` the app image and the migrate task definition (and its log group) only: the running
   service is untouched and keeps serving the old version;
3. ECS RunTask of the migrate task (same image, same secrets, the tasks' subnets and security group) and wait
   for it to stop; anything but exit code 0 stops the deploy here, with the old version still serving;
4. a full `pulumi up`: the service rolls to the new task definition (circuit breaker with rollback);
5. prune old pre-migration snapshots (see below); a failure here is reported, never fails the deploy.

Pre-migration snapshots are tagged `purpose=pre-migration`, `commit=<full sha>`, `stack=<stack>` (and RDS copies
the instance's tags too), so `aws rds describe-db-snapshots` finds the one for a commit. Retention: the newest
`--keep-snapshots` (10) are always kept; older ones are deleted once they are older than
`--snapshot-max-age-days` (90). Both must hold, so a burst of deploys never deletes last week's snapshot and a
stack that rarely deploys keeps its last ten whatever their age. The daily AWS Backup recovery points and
point-in-time restore (docs/runbooks/restore.md) are separate and unaffected. By hand:

    python -m scripts.deploy prune-snapshots --stack prod [--keep 10] [--max-age-days 90] [--dry-run]

On a stack's first deploy there is nothing to snapshot yet: one full `pulumi up` creates everything, then the
migrate task runs (requests that touch the schema fail until it has).

Exit codes: 0 deployed (or pruned); 1 a step failed (the message says which and what still serves); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
SNAPSHOT_KEEP = 10
"""Pre-migration snapshots always kept per stack (the newest ones): a rollback of the last deploys finds its own."""
SNAPSHOT_MAX_AGE_DAYS = 90
"""Older than this and outside the newest SNAPSHOT_KEEP, a pre-migration snapshot is deleted (manual snapshots are
billed per GB-month and never expire on their own)."""
SNAPSHOT_PURPOSE = "pre-migration"
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


def snapshot_tags(stack: str, git_sha: str) -> list[str]:
    """`--tags` values for create-db-snapshot, one argument each (the CLI's shorthand takes one tag per word)."""
    return [
        f"Key=purpose,Value={SNAPSHOT_PURPOSE}",
        f"Key=commit,Value={git_sha.strip().lower()}",
        f"Key=stack,Value={stack}",
    ]


def snapshot(run: Runner, outputs: Mapping[str, Any], git_sha: str, stack: str) -> str:
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
                *snapshot_tags(stack, git_sha),
            ]
        )
    run(["aws", "rds", "wait", "db-snapshot-available", "--region", region, "--db-snapshot-identifier", identifier])
    return identifier


@dataclass(frozen=True)
class PremigrationSnapshot:
    identifier: str
    created: dt.datetime | None
    """None while RDS is still creating it (no SnapshotCreateTime yet): never pruned."""
    status: str
    commit: str


def premigration_snapshots(described: Mapping[str, Any], instance: str, stack: str) -> list[PremigrationSnapshot]:
    """This stack's pre-migration snapshots in `aws rds describe-db-snapshots` output, newest first.

    Matched by name (`<instance>-premigrate-`) AND tag `purpose=pre-migration`, and not tagged for another stack
    (snapshots from before the `stack` tag have none): a hand-made snapshot is never touched.
    """
    found = []
    for item in described.get("DBSnapshots") or []:
        identifier = str(item.get("DBSnapshotIdentifier", ""))
        tags = {tag.get("Key"): tag.get("Value") for tag in item.get("TagList") or []}
        if not identifier.startswith(f"{instance}-premigrate-") or item.get("SnapshotType", "manual") != "manual":
            continue
        if tags.get("purpose") != SNAPSHOT_PURPOSE or tags.get("stack", stack) != stack:
            continue
        raw_created = item.get("SnapshotCreateTime")
        created = dt.datetime.fromisoformat(str(raw_created).replace("Z", "+00:00")) if raw_created else None
        found.append(
            PremigrationSnapshot(
                identifier=identifier,
                created=created,
                status=str(item.get("Status", "")),
                commit=str(tags.get("commit") or tags.get("git-sha") or ""),
            )
        )
    newest_first = dt.datetime.max.replace(tzinfo=dt.UTC)
    return sorted(found, key=lambda snap: snap.created or newest_first, reverse=True)


def snapshots_to_prune(
    snapshots: Sequence[PremigrationSnapshot], *, keep: int, max_age_days: int, now: dt.datetime
) -> list[PremigrationSnapshot]:
    """Outside the newest `keep` AND older than `max_age_days` AND available (not being created or copied)."""
    if keep < 1:
        raise DeployError("--keep must be at least 1: the newest pre-migration snapshot is what a rollback needs")
    if max_age_days < 1:
        raise DeployError("--max-age-days must be at least 1")
    cutoff = now - dt.timedelta(days=max_age_days)
    return [
        snap
        for snap in snapshots[keep:]
        if snap.created is not None and snap.created < cutoff and snap.status == "available"
    ]


def prune_snapshots(
    run: Runner,
    outputs: Mapping[str, Any],
    stack: str,
    *,
    keep: int = SNAPSHOT_KEEP,
    max_age_days: int = SNAPSHOT_MAX_AGE_DAYS,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> list[str]:
    """Apply the retention to the stack's pre-migration snapshots; a line per snapshot deleted (or that would be)."""
    region, instance = str(outputs["region"]), str(outputs["dbInstanceIdentifier"])
    described = json.loads(
        run(
            [
                "aws",
                "rds",
                "describe-db-snapshots",
                "--region",
                region,
                "--db-instance-identifier",
                instance,
                "--snapshot-type",
                "manual",
                "--output",
                "json",
            ]
        )
        or "{}"
    )
    snapshots = premigration_snapshots(described, instance, stack)
    doomed = snapshots_to_prune(snapshots, keep=keep, max_age_days=max_age_days, now=now or dt.datetime.now(dt.UTC))
    lines = []
    for snap in doomed:
        created = snap.created.date().isoformat() if snap.created else "?"
        if dry_run:
            lines.append(f"would delete snapshot {snap.identifier} (commit {snap.commit[:12]}, {created})")
            continue
        run(["aws", "rds", "delete-db-snapshot", "--region", region, "--db-snapshot-identifier", snap.identifier])
        lines.append(f"deleted snapshot {snap.identifier} (commit {snap.commit[:12]}, {created})")
    lines.append(
        f"pre-migration snapshots of {instance}: {len(snapshots) - len(doomed)} kept "
        f"(newest {keep}, or younger than {max_age_days} days), {len(doomed)} "
        f"{'to delete' if dry_run else 'deleted'}"
    )
    return lines


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
    stack: str,
    git_sha: str,
    run: Runner = run_command,
    sleep: Callable[[float], None] = time.sleep,
    *,
    prune: bool = True,
    keep_snapshots: int = SNAPSHOT_KEEP,
    snapshot_max_age_days: int = SNAPSHOT_MAX_AGE_DAYS,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
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
        done.append(f"snapshot {snapshot(run, outputs, git_sha, stack)} available")
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
    if prune:
        try:
            done += prune_snapshots(
                run, outputs, stack, keep=keep_snapshots, max_age_days=snapshot_max_age_days, now=now()
            )
        except (subprocess.CalledProcessError, ValueError, KeyError) as error:
            # the deploy itself succeeded; an unpruned snapshot costs cents, a failed deploy report costs trust
            detail = error.stderr if isinstance(error, subprocess.CalledProcessError) else error
            done.append(
                f"step 5: snapshot pruning skipped ({detail}); run `python -m scripts.deploy prune-snapshots "
                f"--stack {stack} --dry-run` to see why"
            )
    return done


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def prune_main(argv: Sequence[str], run: Runner = run_command) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.deploy prune-snapshots",
        description="Delete a stack's old pre-migration snapshots (newest --keep always kept).",
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument(
        "--keep", type=_positive, default=SNAPSHOT_KEEP, help=f"newest to keep (default {SNAPSHOT_KEEP})"
    )
    parser.add_argument(
        "--max-age-days",
        type=_positive,
        default=SNAPSHOT_MAX_AGE_DAYS,
        help=f"delete only snapshots older than this (default {SNAPSHOT_MAX_AGE_DAYS})",
    )
    parser.add_argument("--dry-run", action="store_true", help="list what would be deleted; delete nothing")
    args = parser.parse_args(argv)
    try:
        outputs = stack_outputs(run, args.stack)
        missing = [key for key in ("region", "dbInstanceIdentifier") if key not in outputs]
        if missing:
            raise DeployError(f"stack {args.stack} has no output {', '.join(missing)}: nothing deployed to prune")
        lines = prune_snapshots(
            run, outputs, args.stack, keep=args.keep, max_age_days=args.max_age_days, dry_run=args.dry_run
        )
    except subprocess.CalledProcessError as error:
        print(f"prune stopped: {' '.join(error.cmd[:3])} failed: {error.stderr or error}", file=sys.stderr)
        return 1
    except DeployError as error:
        print(f"prune stopped: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["prune-snapshots"]:
        return prune_main(arguments[1:])
    parser = argparse.ArgumentParser(
        prog="python -m scripts.deploy",
        description=__doc__.split("\n")[0],
        epilog="Also: python -m scripts.deploy prune-snapshots --stack <stack> [--keep N] [--max-age-days D] "
        "[--dry-run]",
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--git-sha", required=True, help="commit being deployed (names the snapshot)")
    parser.add_argument("--keep-snapshots", type=_positive, default=SNAPSHOT_KEEP)
    parser.add_argument("--snapshot-max-age-days", type=_positive, default=SNAPSHOT_MAX_AGE_DAYS)
    parser.add_argument("--no-prune", action="store_true", help="skip step 5 (pruning old pre-migration snapshots)")
    args = parser.parse_args(arguments)
    try:
        snapshot_identifier("x", args.git_sha)
    except DeployError as error:
        parser.error(str(error))  # a bad argument: exit 2
    try:
        for line in deploy(
            args.stack,
            args.git_sha,
            prune=not args.no_prune,
            keep_snapshots=args.keep_snapshots,
            snapshot_max_age_days=args.snapshot_max_age_days,
        ):
            print(line)
    except DeployError as error:
        print(f"deploy stopped: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Deploy with migrations: snapshot, new image + migrate task only, run the migrations once, roll the service,
then check with ECS itself that the new version is what serves.

    python -m scripts.deploy --stack prod --git-sha "$GITHUB_SHA" [--image <repo>@sha256:<digest>]

This is the ONE deploy path: the CI workflow (.github/workflows/deploy.yml), a manual run and the README all
call it, and every `pulumi up` it runs carries the policy pack (`--policy-pack policy` with the stack's
`policy/config/<stack>.json`), the same pack CI previews with.

Steps (docs/deploy.md explains why this order):
1. `create-db-snapshot <prefix>-premigrate-<sha>` and wait until it is available (reused when a retry of the
   same commit finds it) — the seed's rule: a backup before every migration, named so a rollback finds it;
2. `pulumi up --target` the app image, the execution role's policy (a promoted image's repository) and the
   migrate task definition (and its log group) only: the running service is untouched and keeps serving the
   old version;
3. ECS RunTask of the migrate task (same image, same secrets, the tasks' subnets and security group) and wait
   for it to stop; anything but exit code 0 stops the deploy here, with the old version still serving. At the
   deadline the task is stopped (`aws ecs stop-task`) and named, never left running unseen;
4. a full `pulumi up`: the service rolls to the new task definition (circuit breaker with rollback);
5. `aws ecs describe-services`: the PRIMARY deployment must run the task definition just deployed with
   rolloutState COMPLETED. The provider reports success even when the circuit breaker rolled back
   (terraform-provider-aws #20858, terraform-aws-modules/terraform-aws-ecs #325), so this is the only proof;
6. prune old pre-migration snapshots (see below), only after step 5 passed; a failure here is reported, never
   fails the deploy.

`--image <registry>/<repo>@sha256:<64 hex>` deploys an image built once for the commit (CI builds it, pushes it
by digest, deploys it to staging and promotes the same reference to prod). It reaches the program as config
`shipyard:service.image` (`pulumi up --config-path --config ...`), so nothing is built by `pulumi up`.

First deploy: only when the stack's state holds no RDS instance yet (decided from `pulumi stack export`, not
from missing outputs). Then one full `pulumi up` creates everything and the migrate task runs. A stack that
has a database but lacks an output this script reads stops here, naming the output, with nothing done.

Polls (`describe-tasks`, `describe-services`, `describe-db-snapshots`) retry throttling and transient errors
with bounded exponential backoff. Every failure, cloud errors included, ends as this script's own message:
which step, what still serves, how to go back. No traceback.

Pre-migration snapshots are tagged `purpose=pre-migration`, `commit=<full sha>`, `stack=<stack>` (and RDS copies
the instance's tags too), so `aws rds describe-db-snapshots` finds the one for a commit. Retention: the newest
`--keep-snapshots` (10) are always kept; older ones are deleted once they are older than
`--snapshot-max-age-days` (90). Both must hold, so a burst of deploys never deletes last week's snapshot and a
stack that rarely deploys keeps its last ten whatever their age. The daily AWS Backup recovery points and
point-in-time restore (docs/runbooks/restore.md) are separate and unaffected. By hand:

    python -m scripts.deploy prune-snapshots --stack prod [--keep 10] [--max-age-days 90] [--dry-run]

A preview with the same pack and image handling (the prod approver's view, PR previews, the drift check):

    python -m scripts.deploy preview --stack prod (--image <ref> | --deployed-image) [--refresh] [--expect-no-changes]

Exit codes: 0 deployed (or pruned, or previewed); 1 a step failed (the message says which, what still serves and
how to go back); 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
POLICY_PACK = PROJECT_ROOT / "policy"
"""The policy pack CI previews with; every `pulumi up`/`preview` here carries it too (one pack, every path)."""

MIGRATE_TARGETS = (
    ("docker:index/image:Image", "api-image"),
    ("aws:iam/rolePolicy:RolePolicy", "api-execution-policy"),
    ("aws:ecs/taskDefinition:TaskDefinition", "api-migrate-task"),
    ("aws:cloudwatch/logGroup:LogGroup", "api-migrate-logs"),
)
"""Resources step 2 may touch (type, logical name): everything else, the service above all, stays as is. The
execution role's policy is among them because a promoted image lives in another repository (staging's): without
its pull right the migrate task could not start. It only ever adds a repository, so running tasks keep theirs."""
OPTIONAL_MIGRATE_TARGETS = frozenset(
    {("docker:index/image:Image", "api-image"), ("aws:iam/rolePolicy:RolePolicy", "api-execution-policy")}
)
"""The image is absent when the stack deploys a prebuilt one (`--image`); the policy in states from before it
existed as a target."""
DATABASE_TYPE = "aws:rds/instance:Instance"
SERVICE_TYPE = "aws:ecs/service:Service"
SERVICE_COMPONENT_TYPE = "shipyard:aws:Service"
REQUIRED_OUTPUTS = (
    "clusterName",
    "serviceName",
    "migrateTaskDefinitionArn",
    "taskSubnetIds",
    "taskSecurityGroupId",
    "taskAssignPublicIp",
    "dbInstanceIdentifier",
    "region",
)
IMAGE_CONFIG_KEY = "shipyard:service.image"
IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9.-]*(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$")
"""`<registry>/<repository>@sha256:<64 hex>`: by digest only, so staging and prod run byte-identical images."""
SNAPSHOT_KEEP = 10
"""Pre-migration snapshots always kept per stack (the newest ones): a rollback of the last deploys finds its own."""
SNAPSHOT_MAX_AGE_DAYS = 90
"""Older than this and outside the newest SNAPSHOT_KEEP, a pre-migration snapshot is deleted (manual snapshots are
billed per GB-month and never expire on their own)."""
SNAPSHOT_PURPOSE = "pre-migration"
MIGRATION_TIMEOUT_SECONDS = 30 * 60
ROLLOUT_TIMEOUT_SECONDS = 30 * 60
"""After `pulumi up` (which already waits for steady state) the rollout is normally settled; this bounds the wait
for a rollback still in flight."""
POLL_SECONDS = 10
RETRY_ATTEMPTS = 6
RETRY_BASE_SECONDS = 2.0
RETRY_MAX_SECONDS = 30.0
"""Backoff for throttled/transient polls: 2, 4, 8, 16, 30 s — at most ~1 minute, then the error stands."""
TRANSIENT_ERROR = re.compile(
    r"Throttl|TooManyRequests|RequestLimitExceeded|Rate exceeded|SlowDown|ServiceUnavailable|InternalError|"
    r"InternalFailure|RequestTimeout|ServerException|Could not connect to the endpoint|Connection was closed|"
    r"Read timeout|EndpointConnectionError",
    re.IGNORECASE,
)
"""Error codes AWS documents as retryable (throttling, 5xx) and the CLI's connection failures."""

Runner = Callable[[Sequence[str]], str]
"""Runs a command, returns its stdout; raises `subprocess.CalledProcessError` on a non-zero exit."""
Sleep = Callable[[float], None]


class DeployError(RuntimeError):
    """A step failed; the message names the step, what still serves traffic and how to go back."""

    def __init__(self, detail: str, *, serving: str | None = None, back: str | None = None):
        self.detail, self.serving, self.back = detail, serving, back
        lines = [detail]
        if serving:
            lines.append(f"what serves now: {serving}")
        if back:
            lines.append(f"how to go back: {back}")
        super().__init__("\n".join(lines))


def run_command(argv: Sequence[str]) -> str:
    print("+", " ".join(argv), file=sys.stderr, flush=True)
    if list(argv[:2]) == ["pulumi", "up"]:
        return run_streaming(argv)
    return subprocess.run(list(argv), check=True, capture_output=True, text=True).stdout  # noqa: S603


def run_streaming(argv: Sequence[str]) -> str:
    """Run a long command (`pulumi up` can take an hour on an RDS change) showing its output as it comes, on
    stderr, and keep it for the error message; raises `CalledProcessError` on a non-zero exit."""
    lines: list[str] = []
    with subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process:  # noqa: S603
        assert process.stdout is not None  # stdout=PIPE
        for line in process.stdout:
            sys.stderr.write(line)
            lines.append(line)
    text = "".join(lines)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, list(argv), output=text, stderr=text)
    return text


def error_text(error: BaseException) -> str:
    """One line for any failure: a command's stderr, or the exception's own text."""
    if isinstance(error, subprocess.CalledProcessError):
        command = " ".join(str(part) for part in list(error.cmd)[:3])
        lines = [line.strip() for line in (error.stderr or error.stdout or "").splitlines() if line.strip()]
        # pulumi ends with a summary after its `error:` lines; the AWS CLI ends with its error
        errors = [line for line in lines if line.lower().startswith(("error", "an error occurred"))]
        detail = (errors or lines or [f"exit code {error.returncode}"])[-1]
        return f"`{command}` failed: {detail}"
    if isinstance(error, FileNotFoundError):
        return f"command not found: {error.filename} (install it and make sure it is on PATH)"
    return f"{type(error).__name__}: {error}"


def is_transient(error: subprocess.CalledProcessError) -> bool:
    return bool(TRANSIENT_ERROR.search(f"{error.stderr or ''} {error.stdout or ''}"))


def run_retrying(run: Runner, argv: Sequence[str], sleep: Sleep) -> str:
    """`run`, retrying throttling and transient errors with bounded exponential backoff (polls are idempotent)."""
    for attempt in range(RETRY_ATTEMPTS):
        try:
            return run(argv)
        except subprocess.CalledProcessError as error:
            if attempt == RETRY_ATTEMPTS - 1 or not is_transient(error):
                raise
            sleep(min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2**attempt))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def run_json(run: Runner, argv: Sequence[str], sleep: Sleep) -> dict[str, Any]:
    text = run_retrying(run, argv, sleep)
    data = json.loads(text or "{}")
    if not isinstance(data, dict):
        raise ValueError(f"`{' '.join(argv[:3])}` did not answer a JSON object")
    return data


def validate_image(reference: str) -> str:
    if not IMAGE_REFERENCE.fullmatch(reference):
        raise DeployError(
            f"--image: {reference!r} is not an image by digest (<registry>/<repository>@sha256:<64 hex>); "
            "a tag could be re-pointed, a digest cannot"
        )
    return reference


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


def stack_state(run: Runner, stack: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(run(["pulumi", "stack", "export", "--stack", stack]) or "{}")
    return state


def state_resources(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list((state.get("deployment") or {}).get("resources") or [])


def missing_outputs(outputs: Mapping[str, Any]) -> list[str]:
    return [key for key in REQUIRED_OUTPUTS if key not in outputs]


def has_database(state: Mapping[str, Any]) -> bool:
    """True once the stack's state holds an RDS instance: from then on a deploy must snapshot and migrate first."""
    return any(resource.get("type") == DATABASE_TYPE for resource in state_resources(state))


def is_first_deploy(stack: str, outputs: Mapping[str, Any], state: Mapping[str, Any]) -> bool:
    """First deploy only when the stack has no database yet; a live stack missing an output is an error."""
    missing = missing_outputs(outputs)
    if not has_database(state):
        return True
    if missing:
        raise DeployError(
            f"stack {stack} has a database but no output {', '.join(missing)}: a renamed or removed output is "
            "not a first deploy; nothing was done (restore the output, or run the steps by hand, docs/deploy.md)",
            serving="the previous version: nothing was touched",
            back="nothing to undo",
        )
    return False


def deployed_image(state: Mapping[str, Any]) -> str | None:
    """The image reference the service runs, for a preview that must show no change when nothing drifted.

    None when the stack builds its own image (its state holds the `api-image` docker image: deployed without
    `--image`, e.g. by hand): the preview then builds nothing either way and shows the same resources.
    """
    resources = state_resources(state)
    if any((r.get("type"), r.get("urn", "").rsplit("::", 1)[-1]) == MIGRATE_TARGETS[0] for r in resources):
        return None
    for resource in resources:
        if resource.get("type") == SERVICE_COMPONENT_TYPE:
            reference = str((resource.get("outputs") or {}).get("imageDigest") or "")
            if reference:
                return reference
    raise DeployError("the stack's state records no deployed image (no Service component with imageDigest)")


def migrate_target_urns(deployment: Mapping[str, Any]) -> list[str]:
    """URNs of MIGRATE_TARGETS in a `pulumi stack export` document (URNs carry parents' types, so look them up)."""
    by_key = {(r.get("type"), r["urn"].rsplit("::", 1)[-1]): r["urn"] for r in state_resources(deployment)}
    missing = [
        f"{kind} {name}"
        for kind, name in MIGRATE_TARGETS
        if (kind, name) not in by_key and (kind, name) not in OPTIONAL_MIGRATE_TARGETS
    ]
    if missing:
        raise DeployError(f"stack state lacks {', '.join(missing)}; run a full `pulumi up` first")
    return [by_key[key] for key in MIGRATE_TARGETS if key in by_key]


def policy_pack_arguments(stack: str) -> list[str]:
    """`--policy-pack policy` plus the stack's pack config: the same pack and settings CI previews with."""
    pack = os.path.relpath(POLICY_PACK)
    arguments = ["--policy-pack", pack]
    config = POLICY_PACK / "config" / f"{stack}.json"
    if config.exists():
        arguments += ["--policy-pack-config", os.path.relpath(config)]
    return arguments


def image_arguments(image: str | None) -> list[str]:
    """Deploy a prebuilt image: config `shipyard:service.image` for this update (the program builds nothing)."""
    return [] if image is None else ["--config-path", "--config", f"{IMAGE_CONFIG_KEY}={image}"]


def pulumi_up_command(stack: str, targets: Sequence[str] = (), *, image: str | None = None) -> list[str]:
    command = ["pulumi", "up", "--yes", "--skip-preview", "--stack", stack, *policy_pack_arguments(stack)]
    command += image_arguments(image)
    for urn in targets:
        command += ["--target", urn]
    return command


def pulumi_preview_command(
    stack: str, *, image: str | None, refresh: bool = False, expect_no_changes: bool = False
) -> list[str]:
    command = ["pulumi", "preview", "--diff", "--stack", stack, *policy_pack_arguments(stack), *image_arguments(image)]
    if refresh:
        command.append("--refresh")
    if expect_no_changes:
        command.append("--expect-no-changes")
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


def describe_tasks_command(outputs: Mapping[str, Any], task_arn: str) -> list[str]:
    return [
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


def wait_for_task(run: Runner, outputs: Mapping[str, Any], task_arn: str, sleep: Sleep) -> dict[str, Any]:
    """Poll until the task stops, at most MIGRATION_TIMEOUT_SECONDS; the last answer either way."""
    described: dict[str, Any] = {}
    for _ in range(MIGRATION_TIMEOUT_SECONDS // POLL_SECONDS):
        described = run_json(run, describe_tasks_command(outputs, task_arn), sleep)
        tasks = described.get("tasks") or []
        if tasks and tasks[0].get("lastStatus") == "STOPPED":
            break
        sleep(POLL_SECONDS)
    return described


def stop_task(run: Runner, outputs: Mapping[str, Any], task_arn: str, sleep: Sleep) -> str:
    """Stop a migrate task that outlived the deadline; say whether it worked (the caller names the task)."""
    try:
        run_retrying(
            run,
            [
                "aws",
                "ecs",
                "stop-task",
                "--region",
                str(outputs["region"]),
                "--cluster",
                str(outputs["clusterName"]),
                "--task",
                task_arn,
                "--reason",
                f"scripts.deploy: migration exceeded {MIGRATION_TIMEOUT_SECONDS // 60} minutes",
            ],
            sleep,
        )
    except (subprocess.CalledProcessError, OSError) as error:
        return f"could NOT stop it ({error_text(error)}): stop it by hand with `aws ecs stop-task --task {task_arn}`"
    return "stopped it (app.migrate holds an advisory lock and runs each version in a transaction)"


def snapshot_tags(stack: str, git_sha: str) -> list[str]:
    """`--tags` values for create-db-snapshot, one argument each (the CLI's shorthand takes one tag per word)."""
    return [
        f"Key=purpose,Value={SNAPSHOT_PURPOSE}",
        f"Key=commit,Value={git_sha.strip().lower()}",
        f"Key=stack,Value={stack}",
    ]


def snapshot(run: Runner, outputs: Mapping[str, Any], git_sha: str, stack: str, sleep: Sleep = time.sleep) -> str:
    region, instance = str(outputs["region"]), str(outputs["dbInstanceIdentifier"])
    identifier = snapshot_identifier(instance, git_sha)
    try:
        run_retrying(
            run,
            ["aws", "rds", "describe-db-snapshots", "--region", region, "--db-snapshot-identifier", identifier],
            sleep,
        )
        print(f"snapshot {identifier} already exists (retry of this commit): reusing it", file=sys.stderr)
    except subprocess.CalledProcessError as error:
        # Only "not found" means "take it"; any other error (access denied, throttled past the retries) stops here.
        if "DBSnapshotNotFound" not in f"{error.stderr or ''}{error.stdout or ''}":
            raise
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


def run_migrations(run: Runner, outputs: Mapping[str, Any], git_sha: str, sleep: Sleep) -> str:
    started = json.loads(run(run_task_command(outputs, f"deploy-{git_sha[:12]}")) or "{}")
    if started.get("failures") or not started.get("tasks"):
        raise DeployError(f"ECS did not start the migrate task: {started.get('failures')}")
    task_arn = str(started["tasks"][0]["taskArn"])
    logs = outputs.get("migrateLogGroup", "the migrate log group")
    described = wait_for_task(run, outputs, task_arn, sleep)
    tasks = described.get("tasks") or []
    if not tasks or tasks[0].get("lastStatus") != "STOPPED":
        status = tasks[0].get("lastStatus") if tasks else "unknown"
        raise DeployError(
            f"migrate task {task_arn} still {status} after {MIGRATION_TIMEOUT_SECONDS // 60} minutes: "
            f"{stop_task(run, outputs, task_arn, sleep)}. Logs: {logs}"
        )
    outcome = migration_outcome(described)
    if not outcome.ok:
        raise DeployError(
            f"migrations failed ({outcome.detail}); the service was not touched and keeps serving the previous "
            f"version. Logs: {logs}, task {task_arn}"
        )
    return outcome.detail


# ------------------------------------------------------------------------------------------- rollout (step 5)
def task_definition_name(arn: str) -> str:
    """`family:revision` of a task definition ARN (the state may hold either form)."""
    return str(arn).rsplit("/", 1)[-1]


def expected_task_definition(state: Mapping[str, Any], service_name: str) -> str:
    """The task definition Pulumi just set on the API service (from `pulumi stack export`)."""
    for resource in state_resources(state):
        outputs = resource.get("outputs") or {}
        if resource.get("type") == SERVICE_TYPE and outputs.get("name") == service_name:
            return str(outputs["taskDefinition"])
    raise DeployError(f"the stack's state has no ECS service named {service_name}")


def describe_services_command(outputs: Mapping[str, Any]) -> list[str]:
    return [
        "aws",
        "ecs",
        "describe-services",
        "--region",
        str(outputs["region"]),
        "--cluster",
        str(outputs["clusterName"]),
        "--services",
        str(outputs["serviceName"]),
        "--output",
        "json",
    ]


@dataclass(frozen=True)
class Rollout:
    state: str
    """completed | failed | in_progress"""
    detail: str
    serving: str


def primary_deployment(described: Mapping[str, Any]) -> dict[str, Any] | None:
    services = described.get("services") or []
    if described.get("failures") or len(services) != 1:
        return None
    primary = [d for d in services[0].get("deployments") or [] if d.get("status") == "PRIMARY"]
    return primary[0] if len(primary) == 1 else None


def describe_serving(described: Mapping[str, Any]) -> str:
    primary = primary_deployment(described)
    if primary is None:
        return f"unknown: ECS describes no single PRIMARY deployment ({described.get('failures') or 'no service'})"
    return (
        f"task definition {task_definition_name(primary.get('taskDefinition', '?'))} "
        f"({primary.get('runningCount', '?')} of {primary.get('desiredCount', '?')} tasks running, "
        f"rollout {primary.get('rolloutState', '?')})"
    )


def rollout_verdict(described: Mapping[str, Any], expected: str) -> Rollout:
    """Judge the service from `aws ecs describe-services`: done only when the PRIMARY deployment runs `expected`
    and its rolloutState is COMPLETED. A rollback makes the previous task definition PRIMARY again, which is how
    a rollback the provider reported as success is caught (terraform-provider-aws #20858)."""
    serving = describe_serving(described)
    primary = primary_deployment(described)
    wanted = task_definition_name(expected)
    if primary is None:
        return Rollout("failed", f"cannot tell what serves: {serving}", serving)
    running = task_definition_name(primary.get("taskDefinition", ""))
    if running != wanted:
        deployments = (described.get("services") or [{}])[0].get("deployments") or []
        ours: dict[str, Any] = next(
            (d for d in deployments if task_definition_name(d.get("taskDefinition", "")) == wanted), {}
        )
        reason = ours.get("rolloutStateReason") or "the new tasks never became healthy"
        return Rollout(
            "failed",
            f"the circuit breaker rolled back: PRIMARY runs {running}, not {wanted} just deployed ({reason})",
            serving,
        )
    state = primary.get("rolloutState")
    if state == "COMPLETED":
        return Rollout("completed", f"{wanted} serves, rollout COMPLETED", serving)
    if state == "FAILED":
        return Rollout(
            "failed", f"rollout of {wanted} FAILED ({primary.get('rolloutStateReason', 'no reason')})", serving
        )
    return Rollout("in_progress", f"rollout of {wanted} still {state}", serving)


def verify_rollout(run: Runner, outputs: Mapping[str, Any], state: Mapping[str, Any], sleep: Sleep) -> Rollout:
    expected = expected_task_definition(state, str(outputs["serviceName"]))
    rollout = Rollout("in_progress", "not described yet", "unknown")
    for _ in range(ROLLOUT_TIMEOUT_SECONDS // POLL_SECONDS):
        rollout = rollout_verdict(run_json(run, describe_services_command(outputs), sleep), expected)
        if rollout.state != "in_progress":
            return rollout
        sleep(POLL_SECONDS)
    return Rollout("failed", f"{rollout.detail} after {ROLLOUT_TIMEOUT_SECONDS // 60} minutes", rollout.serving)


# ------------------------------------------------------------------------------------------------ the flow
@dataclass
class Progress:
    """How far a deploy got: what serves and how to go back follow from it."""

    stack: str
    outputs: Mapping[str, Any] = field(default_factory=dict)
    snapshot: str | None = None
    migrations_started: bool = False
    service_touched: bool = False

    def back(self) -> str:
        if not self.migrations_started:
            return "nothing to undo: fix the cause and deploy again (a retry of the same commit reuses its snapshot)"
        restore = (
            f"snapshot {self.snapshot} is kept; if the schema must go back, restore it (docs/runbooks/restore.md)"
            if self.snapshot
            else "there is no pre-migration snapshot (first deploy): restore from AWS Backup if needed"
        )
        if not self.service_touched:
            return f"the service never changed and migrations are backward compatible, so nothing to roll; {restore}"
        return (
            f"deploy the previous release again: python -m scripts.deploy --stack {self.stack} --git-sha <previous "
            f"sha> --image <the image it ran> (the deploy workflow's `image` input does the same; `aws ecs "
            f"describe-task-definition --task-definition <family:revision>` shows a revision's image); {restore}"
        )

    def serving(self, run: Runner, sleep: Sleep) -> str:
        if not self.service_touched:
            return "the previous version: the ECS service was not touched"
        if any(key not in self.outputs for key in ("region", "clusterName", "serviceName")):
            return "unknown: the stack's outputs do not name the service"
        try:
            return describe_serving(run_json(run, describe_services_command(self.outputs), sleep))
        except (subprocess.CalledProcessError, OSError, ValueError) as error:
            return f"unknown ({error_text(error)}); ask ECS: aws ecs describe-services --services <serviceName>"


LOCKED = re.compile(r"currently locked|another update is currently in progress|\[409\] Conflict", re.IGNORECASE)


def unlock_hint(error: BaseException, stack: str) -> str:
    """A killed or parallel `pulumi up` leaves the stack locked: say how to unlock it, and when not to."""
    text = f"{getattr(error, 'stderr', '') or ''}{getattr(error, 'stdout', '') or ''}"
    if not LOCKED.search(text):
        return ""
    return (
        f" (the stack is locked; if no update is really running, e.g. a CI job was killed, unlock it with "
        f"`pulumi cancel --stack {stack}`, then deploy again)"
    )


@contextmanager
def step(progress: Progress, run: Runner, sleep: Sleep, name: str) -> Iterator[None]:
    """Turn any failure inside a step into a DeployError saying the step, what serves and how to go back."""
    try:
        yield
    except DeployError as error:
        raise DeployError(
            f"{name}: {error.detail}",
            serving=error.serving or progress.serving(run, sleep),
            back=error.back or progress.back(),
        ) from None
    except (subprocess.CalledProcessError, OSError, ValueError, KeyError, TypeError, IndexError) as error:
        raise DeployError(
            f"{name}: {error_text(error)}{unlock_hint(error, progress.stack)}",
            serving=progress.serving(run, sleep),
            back=progress.back(),
        ) from None


def read_outputs(run: Runner, stack: str) -> dict[str, Any]:
    outputs = stack_outputs(run, stack)
    missing = missing_outputs(outputs)
    if missing:
        raise DeployError(f"after `pulumi up` the stack has no output {', '.join(missing)}")
    return outputs


def check_rollout(run: Runner, progress: Progress, sleep: Sleep) -> str:
    rollout = verify_rollout(run, progress.outputs, stack_state(run, progress.stack), sleep)
    if rollout.state != "completed":
        raise DeployError(rollout.detail, serving=rollout.serving)
    return f"service rolled out: {rollout.detail}"


def first_deploy(run: Runner, progress: Progress, git_sha: str, sleep: Sleep, image: str | None) -> list[str]:
    """No database yet: create everything, then migrate (the schema is empty until then)."""
    done = []
    progress.service_touched = True
    with step(progress, run, sleep, "first deploy (full pulumi up)"):
        run(pulumi_up_command(progress.stack, image=image))
        progress.outputs = read_outputs(run, progress.stack)
    done.append("first deploy: full pulumi up (no database in the stack's state yet, nothing to snapshot)")
    progress.migrations_started = True
    with step(progress, run, sleep, "first deploy (migrations)"):
        done.append(run_migrations(run, progress.outputs, git_sha, sleep))
    with step(progress, run, sleep, "first deploy (rollout check)"):
        done.append(check_rollout(run, progress, sleep))
    return done


def deploy(
    stack: str,
    git_sha: str,
    run: Runner = run_command,
    sleep: Sleep = time.sleep,
    *,
    image: str | None = None,
    prune: bool = True,
    keep_snapshots: int = SNAPSHOT_KEEP,
    snapshot_max_age_days: int = SNAPSHOT_MAX_AGE_DAYS,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> list[str]:
    """The whole sequence; returns a line per step done. Raises DeployError at the first failure."""
    progress = Progress(stack)
    with step(progress, run, sleep, "step 0 (read the stack)"):
        outputs, state = stack_outputs(run, stack), stack_state(run, stack)
        first = is_first_deploy(stack, outputs, state)
    if first:
        return first_deploy(run, progress, git_sha, sleep, image)
    progress.outputs = outputs
    done: list[str] = []
    with step(progress, run, sleep, "step 1"):
        progress.snapshot = snapshot(run, outputs, git_sha, stack, sleep)
    done.append(f"snapshot {progress.snapshot} available")
    with step(progress, run, sleep, "step 2 (targeted pulumi up: image and migrate task only)"):
        run(pulumi_up_command(stack, migrate_target_urns(state), image=image))
        progress.outputs = read_outputs(run, stack)  # the new migrate task definition revision
    done.append("image and migrate task definition updated")
    progress.migrations_started = True
    with step(progress, run, sleep, "step 3"):
        done.append(run_migrations(run, progress.outputs, git_sha, sleep))
    progress.service_touched = True
    with step(progress, run, sleep, "step 4 (full pulumi up: roll the service)"):
        run(pulumi_up_command(stack, image=image))
    with step(progress, run, sleep, "step 5 (ECS rollout check)"):
        done.append(check_rollout(run, progress, sleep))
    if prune:
        done += prune_after_deploy(run, progress, keep_snapshots, snapshot_max_age_days, now())
    return done


def prune_after_deploy(run: Runner, progress: Progress, keep: int, max_age_days: int, now: dt.datetime) -> list[str]:
    """Step 6, only after a verified rollout; a failure is reported and never fails the finished deploy."""
    try:
        return prune_snapshots(run, progress.outputs, progress.stack, keep=keep, max_age_days=max_age_days, now=now)
    except (subprocess.CalledProcessError, OSError, ValueError, KeyError) as error:
        # the deploy itself succeeded; an unpruned snapshot costs cents, a failed deploy report costs trust
        detail = error.stderr if isinstance(error, subprocess.CalledProcessError) else error
        return [
            f"step 6: snapshot pruning skipped ({detail}); run `python -m scripts.deploy prune-snapshots "
            f"--stack {progress.stack} --dry-run` to see why"
        ]


# ------------------------------------------------------------------------------------------------ the CLI
def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


def _git_sha(value: str) -> str:
    try:
        snapshot_identifier("x", value)
    except DeployError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--git-sha: ")) from None
    return value


def _image(value: str) -> str:
    try:
        return validate_image(value)
    except DeployError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("--image: ")) from None


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
    except (subprocess.CalledProcessError, OSError, ValueError) as error:
        print(f"prune stopped: {error_text(error)}", file=sys.stderr)
        return 1
    except DeployError as error:
        print(f"prune stopped: {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def preview_main(argv: Sequence[str], run: Runner = run_command, sleep: Sleep = time.sleep) -> int:
    """`pulumi preview` with the policy pack and the image a deploy would use: what the approver and drift see."""
    parser = argparse.ArgumentParser(
        prog="python -m scripts.deploy preview",
        description="Preview a stack with the policy pack and a given (or the deployed) image.",
    )
    parser.add_argument("--stack", required=True)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--image", type=_image, help="the image a deploy would roll out (<repo>@sha256:<digest>)")
    which.add_argument("--deployed-image", action="store_true", help="the image the stack runs now (drift, PRs)")
    parser.add_argument("--refresh", action="store_true", help="compare with the cloud, not the recorded state")
    parser.add_argument("--expect-no-changes", action="store_true", help="fail on any change (the drift check)")
    args = parser.parse_args(argv)
    try:
        image = args.image or deployed_image(stack_state(run, args.stack))
        output = run(
            pulumi_preview_command(
                args.stack, image=image, refresh=args.refresh, expect_no_changes=args.expect_no_changes
            )
        )
    except subprocess.CalledProcessError as error:
        print(error.stdout or "")
        print(f"preview of {args.stack} failed: {error_text(error)}{unlock_hint(error, args.stack)}", file=sys.stderr)
        return 1
    except (DeployError, OSError, ValueError) as error:
        text = str(error) if isinstance(error, DeployError) else error_text(error)
        print(f"preview of {args.stack} stopped: {text}", file=sys.stderr)
        return 1
    print(output)
    return 0


def deploy_main(argv: Sequence[str], run: Runner = run_command, sleep: Sleep = time.sleep) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.deploy",
        description=(__doc__ or "").split("\n")[0],
        epilog="Also: python -m scripts.deploy prune-snapshots --stack <stack> [--keep N] [--max-age-days D] "
        "[--dry-run]; python -m scripts.deploy preview --stack <stack> (--image REF | --deployed-image)",
    )
    parser.add_argument("--stack", required=True)
    parser.add_argument("--git-sha", required=True, type=_git_sha, help="commit being deployed (names the snapshot)")
    parser.add_argument(
        "--image", type=_image, help="deploy this prebuilt image (<repo>@sha256:<digest>) instead of building app/"
    )
    parser.add_argument("--keep-snapshots", type=_positive, default=SNAPSHOT_KEEP)
    parser.add_argument("--snapshot-max-age-days", type=_positive, default=SNAPSHOT_MAX_AGE_DAYS)
    parser.add_argument("--no-prune", action="store_true", help="skip step 6 (pruning old pre-migration snapshots)")
    args = parser.parse_args(argv)
    try:
        lines = deploy(
            args.stack,
            args.git_sha,
            run,
            sleep,
            image=args.image,
            prune=not args.no_prune,
            keep_snapshots=args.keep_snapshots,
            snapshot_max_age_days=args.snapshot_max_age_days,
        )
    except DeployError as error:
        print(f"deploy of {args.stack} stopped at {error}", file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def main(argv: Sequence[str] | None = None, run: Runner = run_command, sleep: Sleep = time.sleep) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["prune-snapshots"]:
        return prune_main(arguments[1:], run)
    if arguments[:1] == ["preview"]:
        return preview_main(arguments[1:], run, sleep)
    return deploy_main(arguments, run, sleep)


if __name__ == "__main__":
    raise SystemExit(main())

"""GitHub Actions workflows: valid against GitHub's schema (check-jsonschema's vendored copy, offline), every
action pinned to a full commit SHA (GitHub's security hardening guide), least-privilege permissions, no
pull_request_target, OIDC to AWS with one role per environment; every deploy through scripts/deploy.py with the
policy pack; one image built once and promoted by digest; per-stack concurrency; drift alerts through the alert
pipeline; Dependabot keeping the pins current."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import AwsStack, parse_stack_config
from infra.harness import PROJECT_ROOT, engine_config, stack_file
from infra.rds_ca import APP_BUNDLE_RELATIVE
from scripts.deploy import MIGRATION_TIMEOUT_SECONDS, ROLLOUT_TIMEOUT_SECONDS, pulumi_preview_command, pulumi_up_command

WORKFLOWS = sorted((PROJECT_ROOT / ".github" / "workflows").glob("*.yml"))
CHECK_JSONSCHEMA = Path(sys.executable).with_name("check-jsonschema")
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the bare key `on` as the boolean True.
    if True in document:
        document["on"] = document.pop(True)
    return document


def _check_schema(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _steps(document: dict[Any, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_id, step) for job_id, job in document["jobs"].items() for step in job.get("steps", [])]


def test_the_workflows_exist() -> None:
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "preview.yml", "deploy.yml", "drift.yml"}


def test_workflows_match_githubs_schema() -> None:
    result = _check_schema(*WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: push\njobs:\n  build:\n    steps:\n      - run: true\n    permisions: {}\n")
    result = _check_schema(broken)
    assert result.returncode != 0
    assert "broken.yml" in result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path: Path) -> None:
    text = path.read_text()
    for job_id, step in _steps(_load(path)):
        uses = step.get("uses")
        if uses is None or uses.startswith("./"):
            continue
        assert PINNED.match(uses), f"{path.name} job {job_id}: {uses} is not pinned to a full commit SHA"
        line = next(line for line in text.splitlines() if uses in line)
        assert re.search(r"#\s*v\d+\.\d+\.\d+", line), f"{path.name}: say which release {uses} is (# vX.Y.Z)"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_least_privilege_and_no_untrusted_checkout(path: Path) -> None:
    document = _load(path)
    assert "pull_request_target" not in document["on"], "pull_request_target with PR code is how repos get owned"
    top = document.get("permissions")
    assert top is not None, f"{path.name}: set top-level permissions (default token is too broad)"
    assert top in ({}, {"contents": "read"}), f"{path.name}: top-level permissions must be read-only or empty"
    for job_id, job in document["jobs"].items():
        permissions = job.get("permissions", top)
        assert permissions != "write-all" and "write-all" not in str(permissions)
        uses = [step.get("uses", "") for step in job.get("steps", [])]
        assumes_role = any(u.startswith("aws-actions/configure-aws-credentials@") for u in uses)
        assert (permissions.get("id-token") == "write") == assumes_role, f"{path.name} {job_id}: id-token only for OIDC"
        for step in job.get("steps", []):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step.get("with", {}).get("persist-credentials") is False, f"{path.name} {job_id}"


WORKFLOW_DIR = PROJECT_ROOT / ".github" / "workflows"
DEPLOY_ENVIRONMENTS = {"staging": "staging", "production": "prod"}
"""Environments whose role may change a stack (main only; `production` with required reviewers) -> its stack."""
READ_ONLY_ENVIRONMENTS = {"staging-preview", "staging-readonly", "production-preview", "production-readonly"}
DEPLOY_SCRIPT = re.compile(r"\.venv/bin/python -m scripts\.deploy --stack (\w+) ")


def _document(name: str) -> dict[Any, Any]:
    return _load(WORKFLOW_DIR / name)


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job.get("steps", []))


def _jobs() -> list[tuple[str, str, dict[str, Any]]]:
    return [(path.name, job_id, job) for path in WORKFLOWS for job_id, job in _load(path)["jobs"].items()]


def _role_steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in job.get("steps", []) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]


def test_aws_access_is_oidc_with_one_role_per_environment() -> None:
    """A role from a repository variable serves any branch that names an environment; an environment variable is
    only given to jobs the environment admits (main only), so each environment brings its own role."""
    for path in WORKFLOWS:
        text = path.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
        assert "AWS_DEPLOY_ROLE_ARN" not in text and "AWS_PREVIEW_ROLE_ARN" not in text  # the old shared roles
    for name, job_id, job in _jobs():
        for step in _role_steps(job):
            assert step["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}", f"{name} {job_id}"
            environment = job.get("environment")
            assert environment, f"{name} {job_id}: a role without an environment would come from the repository"
            environments = {"staging-readonly", "production-readonly"} if "matrix" in environment else {environment}
            assert environments <= set(DEPLOY_ENVIRONMENTS) | READ_ONLY_ENVIRONMENTS, f"{name} {job_id}"


def test_every_deploy_runs_the_migrate_first_script_with_the_policy_pack_and_never_a_bare_up() -> None:
    deploy_jobs = []
    for name, job_id, job in _jobs():
        runs = _runs(job)
        assert not re.search(r"\bpulumi\s+(up|update)\b", runs), f"{name} {job_id}: `pulumi up` outside scripts.deploy"
        for step in job.get("steps", []):
            if "pulumi/actions@" in step.get("uses", ""):
                assert "command" not in step.get("with", {}), f"{name} {job_id}: pulumi/actions only installs the CLI"
        stacks = DEPLOY_SCRIPT.findall(runs)
        if job.get("environment") in DEPLOY_ENVIRONMENTS and _role_steps(job) and job_id != "build":
            deploy_jobs.append(job_id)
            assert stacks == [DEPLOY_ENVIRONMENTS[job["environment"]]], f"{name} {job_id}: deploy via scripts.deploy"
        else:
            assert not stacks, f"{name} {job_id}: deploys run only in a deploy environment"
    assert sorted(deploy_jobs) == ["prod", "staging"]
    # ...and every `pulumi up`/`preview` the script runs carries the pack with the stack's config
    for stack in ("staging", "prod"):
        commands = (
            pulumi_up_command(stack),
            pulumi_up_command(stack, ["urn:x"]),
            pulumi_preview_command(stack, image=None),
        )
        for command in commands:
            assert command[command.index("--policy-pack") + 1] == "policy"
            config = command[command.index("--policy-pack-config") + 1]
            assert config == f"policy/config/{stack}.json" and (PROJECT_ROOT / config).exists()


def test_one_image_is_built_once_and_the_same_digest_goes_to_staging_then_prod() -> None:
    jobs = _document("deploy.yml")["jobs"]
    build = jobs["build"]
    assert build["outputs"]["image"] == "${{ steps.image.outputs.image }}"
    script = _runs(build)
    assert "docker buildx build app" in script and "--push" in script
    assert 'echo "image=$repo@$digest"' in script  # by digest, never by tag
    assert "describe-images" in script.split("docker buildx build")[0]  # a re-run reuses the commit's image
    for name, job_id, job in _jobs():
        if (name, job_id) != ("deploy.yml", "build"):
            steps = _runs(job).replace("docker buildx imagetools create", "")  # copies a manifest, builds nothing
            assert "docker build" not in steps and "buildx" not in steps, f"{name} {job_id} builds"
    promoted = "${{ needs.build.outputs.image }}"
    for job_id in ("staging", "prod-preview", "prod"):
        (step,) = [s for s in jobs[job_id]["steps"] if "scripts.deploy" in s.get("run", "")]
        expected = "${{ steps.promote.outputs.image }}" if job_id == "prod" else promoted
        assert step["env"]["IMAGE"] == expected, job_id
        assert '--image "$IMAGE"' in step["run"], job_id
    # Prod runs its own copy of that digest: staging's repository goes when staging is destroyed.
    (copy,) = [s for s in jobs["prod"]["steps"] if s.get("id") == "promote"]
    assert copy["env"]["IMAGE"] == promoted
    assert "ecrRepositoryUrl --stack prod" in copy["run"]
    assert 'docker buildx imagetools create --tag "$repo:$GITHUB_SHA" "$IMAGE"' in copy["run"]
    assert 'echo "image=$repo@${IMAGE#*@}"' in copy["run"]  # the same digest, in prod's repository
    assert "staging" in jobs["prod"]["needs"] and "staging" in jobs["prod-preview"]["needs"]
    # the arm64 build matches what both stacks' task definitions run
    for stack in ("staging", "prod"):
        config, secrets, _ = engine_config(stack_file(stack), "shipyard", placeholders_for_missing_secrets=True)
        parsed = parse_stack_config(config, source=stack_file(stack).name, secret_keys=secrets)
        assert isinstance(parsed, AwsStack)
        assert parsed.service.architecture == "arm64", stack
    assert "--platform linux/arm64" in script and build["runs-on"] == "ubuntu-24.04-arm"


def test_the_image_build_carries_the_rds_ca_bundle_the_deploys_point_the_api_at() -> None:
    """The deploy jobs run `make rds-ca`, so the program finds app/certs/rds-ca-bundle.pem and sets
    DATABASE_SSLMODE=verify-full with DATABASE_CA_FILE inside the image (infra/aws/service.py
    `_tls_environment`). The image those jobs deploy is the one the `build` job built: without the bundle in
    its build context the API and the migrate task cannot load the CA file and every connection fails (the
    bundle is fetched, not committed: infra/rds_ca.py). So the build fetches it before `docker buildx build`."""
    jobs = _document("deploy.yml")["jobs"]
    for job_id in ("staging", "prod-preview", "prod"):
        assert "make rds-ca" in _runs(jobs[job_id]), job_id  # the premise: deploys set verify-full
    steps = [step.get("run", "") for step in jobs["build"]["steps"]]
    fetch = next((i for i, run in enumerate(steps) if "-m infra.rds_ca" in run or "make rds-ca" in run), None)
    build = next(i for i, run in enumerate(steps) if "docker buildx build app" in run)
    assert fetch is not None and fetch < build
    if "make rds-ca" not in steps[fetch]:  # the fetcher alone: it must write the file the image carries
        assert f"--output app/{APP_BUNDLE_RELATIVE}" in steps[fetch]
        assert "cryptography==" in steps[fetch] or "requirements-dev.txt" in steps[fetch]
    assert any(s.get("uses", "").startswith("actions/setup-python@") for s in jobs["build"]["steps"][: fetch + 1])


def test_prod_waits_for_a_prod_preview_and_its_approvers() -> None:
    jobs = _document("deploy.yml")["jobs"]
    assert jobs["prod"]["environment"] == "production"
    assert "prod-preview" in jobs["prod"]["needs"]
    preview = jobs["prod-preview"]
    assert preview["environment"] == "production-preview"
    script = _runs(preview)
    assert 'python -m scripts.deploy preview --stack prod --image "$IMAGE"' in script
    assert "$GITHUB_STEP_SUMMARY" in script  # where the approver reads it on the run page
    assert set(_document("deploy.yml")["on"]) == {"push", "workflow_dispatch"}
    assert _document("deploy.yml")["on"]["push"]["branches"] == ["main"]


def _groups(job: dict[str, Any]) -> list[str]:
    group = job["concurrency"]["group"]
    stacks = [entry["stack"] for entry in job.get("strategy", {}).get("matrix", {}).get("include", [])]
    return [group.replace("${{ matrix.stack }}", stack) for stack in stacks] if stacks else [group]


def test_concurrency_a_group_per_stack_and_drift_never_cancels_a_deploy() -> None:
    deploy, drift = _document("deploy.yml"), _document("drift.yml")
    assert "concurrency" not in deploy and "concurrency" not in drift  # no workflow-wide group to share
    jobs = deploy["jobs"]
    assert jobs["staging"]["concurrency"] == {"group": "deploy-staging", "cancel-in-progress": False}
    assert jobs["prod"]["concurrency"] == {"group": "deploy-prod", "cancel-in-progress": False}
    deploy_groups = {g for job in jobs.values() if "concurrency" in job for g in _groups(job)}
    drift_groups = set(_groups(drift["jobs"]["drift"]))
    assert drift_groups == {"drift-staging", "drift-prod"}
    assert not drift_groups & deploy_groups
    preview = _document("preview.yml")["jobs"]["pulumi-preview"]
    assert not set(_groups(preview)) & deploy_groups


def test_a_failed_drift_check_alerts_through_the_stacks_alert_topic() -> None:
    from infra.aws.alerts import SEVERITIES

    drift = _document("drift.yml")
    assert drift["on"]["schedule"]
    job = drift["jobs"]["drift"]
    assert {e["stack"]: e["environment"] for e in job["strategy"]["matrix"]["include"]} == {
        "staging": "staging-readonly",
        "prod": "production-readonly",
    }
    check = next(s for s in job["steps"] if "scripts.deploy preview" in s.get("run", ""))
    assert "--deployed-image --refresh" in check["run"] and "--expect-no-changes" in check["run"]
    (alert,) = [s for s in job["steps"] if "sns publish" in s.get("run", "")]
    assert alert["if"] == "failure()"
    assert "pulumi stack output alertTopicArns" in alert["run"] and "jq -r .warning" in alert["run"]
    # the output and the severity exist in the program
    assert '"alertTopicArns": alerts.topic_arns' in (PROJECT_ROOT / "infra" / "aws" / "stack.py").read_text()
    assert "warning" in SEVERITIES


def test_pull_requests_preview_staging_only_with_an_environment_scoped_token() -> None:
    preview = _document("preview.yml")["jobs"]["pulumi-preview"]
    assert preview["environment"] == "staging-preview"
    assert "--stack staging" in _runs(preview) and "prod" not in _runs(preview)
    assert "matrix" not in str(preview)
    for name, job_id, job in _jobs():
        if "secrets.PULUMI_ACCESS_TOKEN" in str(job):
            assert job.get("environment"), f"{name} {job_id}: the Pulumi token is an environment secret"


def test_jobs_and_sessions_outlast_a_long_rds_change() -> None:
    """Pulumi waits up to 80 min for an RDS instance update (pulumi-aws rds.Instance default update timeout), then
    migrations (30 min) and the rollout check (30 min): a job or session ending first leaves a locked stack."""
    needed_minutes = 80 + MIGRATION_TIMEOUT_SECONDS // 60 + ROLLOUT_TIMEOUT_SECONDS // 60
    jobs = _document("deploy.yml")["jobs"]
    for job_id in ("staging", "prod"):
        minutes = jobs[job_id]["timeout-minutes"]
        (role,) = _role_steps(jobs[job_id])
        assert minutes >= needed_minutes + 30, job_id
        assert role["with"]["role-duration-seconds"] >= minutes * 60, f"{job_id}: the session must outlast the job"


def test_dependabot_bumps_the_base_image_digest_the_hashed_lock_and_the_actions() -> None:
    path = PROJECT_ROOT / ".github" / "dependabot.yml"
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.dependabot", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    updates = {u["package-ecosystem"]: u for u in yaml.safe_load(path.read_text())["updates"]}
    assert updates["docker"]["directory"] == "/app"
    assert "/app" in updates["pip"]["directories"] and "/" in updates["pip"]["directories"]
    assert updates["github-actions"]["directory"] == "/"


def test_the_pulumi_cli_matches_the_python_sdk() -> None:
    requirements = (PROJECT_ROOT / "requirements.txt").read_text()
    (sdk,) = re.findall(r"^pulumi==([\d.]+)$", requirements, re.M)
    for path in WORKFLOWS:
        document = _load(path)
        for job_id, step in _steps(document):
            if "pulumi/actions@" not in step.get("uses", ""):
                continue
            version = step["with"]["pulumi-version"]
            if version == "${{ env.PULUMI_VERSION }}":
                version = document["env"]["PULUMI_VERSION"]
            assert version == sdk, f"{path.name} {job_id}: CLI {version} != Python SDK {sdk}"


def test_preview_comments_the_offline_plan_and_forks_need_no_secrets() -> None:
    preview = _load(PROJECT_ROOT / ".github" / "workflows" / "preview.yml")
    assert list(preview["on"]) == ["pull_request"]
    offline = preview["jobs"]["offline-plan"]
    assert "permissions" not in offline  # inherits contents: read
    script = "\n".join(step.get("run", "") for step in offline["steps"])
    assert "--diff" in script and "--format markdown" in script
    assert "secrets." not in str(offline)
    for job_id in ("comment", "pulumi-preview"):
        assert "github.event.pull_request.head.repo.full_name == github.repository" in preview["jobs"][job_id]["if"]
    fork = _load(PROJECT_ROOT / ".github" / "workflows" / "preview-comment.yml")
    assert list(fork["on"]) == ["workflow_run"]
    assert not any("actions/checkout@" in step.get("uses", "") for _, step in _steps(fork))


def test_a_pull_request_whose_plan_fails_still_gets_its_comment(tmp_path: Path) -> None:
    """Issue 18: a broken stack file writes a comment listing its problems; the jobs must still post it, and
    the empty base the workflow falls back to must pass --diff's checks (a plan of this project and stack)."""
    from infra import plan

    preview = _load(PROJECT_ROOT / ".github" / "workflows" / "preview.yml")
    offline = preview["jobs"]["offline-plan"]
    script = "\n".join(step.get("run", "") for step in offline["steps"])
    fallback = re.search(r"printf '(\{\"stack\": \"%s\".*?\})\\n' \"\$stack\"", script)
    assert fallback is not None, script
    base = tmp_path / "base-staging.json"
    base.write_text(fallback.group(1).replace("%s", "staging"))
    assert plan.load_base(base, "staging", "shipyard")["resources"] == []
    assert "|| failed=1" in script  # each stack's comment part is written before the job fails
    names = [step.get("name", step.get("uses", "")) for step in offline["steps"]]
    upload = next(i for i, n in enumerate(names) if "upload-artifact" in n)
    assert any(i > upload and "Fail when" in n for i, n in enumerate(names))
    assert "!cancelled()" in preview["jobs"]["comment"]["if"]
    fork = _load(PROJECT_ROOT / ".github" / "workflows" / "preview-comment.yml")
    assert "conclusion == 'failure'" in fork["jobs"]["comment"]["if"]


def test_ci_fails_either_stack_over_its_budget() -> None:
    """Both tiers are within budget since issue 14 removed staging's Secrets Manager endpoint (issue 19)."""
    workflow = yaml.safe_load((WORKFLOW_DIR / "ci.yml").read_text())
    runs = "\n".join(str(step.get("run", "")) for job in workflow["jobs"].values() for step in job["steps"])
    for stack in ("staging", "prod"):
        assert f"make plan STACK={stack} ARGS=--fail-over-budget" in runs

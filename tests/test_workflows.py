"""GitHub Actions workflows: valid against GitHub's schema (check-jsonschema's vendored copy, offline), every
action pinned to a full commit SHA, least-privilege permissions, no pull_request_target, OIDC to AWS."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.harness import PROJECT_ROOT

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
    assert {p.name for p in WORKFLOWS} >= {"ci.yml", "preview.yml", "deploy.yml"}


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


def test_aws_access_is_oidc_with_the_role_from_a_repository_variable() -> None:
    for path in WORKFLOWS:
        text = path.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
        for _, step in _steps(_load(path)):
            if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@"):
                assert step["with"]["role-to-assume"].startswith("${{ vars.")


def test_deploy_goes_staging_then_approved_prod_and_checks_drift_nightly() -> None:
    document = _load(PROJECT_ROOT / ".github" / "workflows" / "deploy.yml")
    assert document["on"]["push"]["branches"] == ["main"] and document["on"]["schedule"]
    jobs = document["jobs"]
    assert jobs["prod"]["needs"] == "staging" and jobs["prod"]["environment"] == "production"
    commands = {
        job_id: [s["with"] for s in job["steps"] if "pulumi/actions@" in s.get("uses", "")]
        for job_id, job in jobs.items()
    }
    assert commands["staging"][0]["command"] == "up" and commands["staging"][0]["stack-name"] == "staging"
    assert commands["prod"][0]["command"] == "up" and commands["prod"][0]["stack-name"] == "prod"
    (drift,) = commands["drift"]
    assert drift["command"] == "preview" and drift["expect-no-changes"] is True
    assert jobs["drift"]["if"] == "github.event_name == 'schedule'"
    assert jobs["drift"]["strategy"]["matrix"]["stack"] == ["staging", "prod"]


def test_previews_run_the_policy_pack_with_each_stacks_config() -> None:
    requirements = (PROJECT_ROOT / "requirements.txt").read_text()
    (sdk,) = re.findall(r"^pulumi==([\d.]+)$", requirements, re.M)
    for path in WORKFLOWS:
        document = _load(path)
        for _, step in _steps(document):
            if "pulumi/actions@" not in step.get("uses", ""):
                continue
            inputs = step["with"]
            assert inputs["policyPacks"] == "policy"
            stack = inputs["stack-name"]
            config = (
                inputs["policyPackConfigs"]
                .replace("${{ matrix.stack }}", "staging")
                .replace("${{ env.PULUMI_VERSION }}", "")
            )
            assert (PROJECT_ROOT / config).exists(), config
            version = inputs["pulumi-version"]
            if version == "${{ env.PULUMI_VERSION }}":
                version = document["env"]["PULUMI_VERSION"]
            assert version == sdk, f"{path.name}: CLI {version} != Python SDK {sdk} ({stack})"


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

"""Physical names that must be unique beyond the stack, audited on every resource of every stack file and example.

- S3 buckets are global across all AWS accounts of a partition: no bucket may have a fixed name without an
  account-unique part; autonamed ones (`bucket_prefix`) must respect the provider's 37-character limit and S3's
  naming rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
- Spaces buckets are shared by every DigitalOcean customer: a random part drawn once per stack.
- Secrets Manager keeps a deleted secret's name for its recovery window: no fixed secret names.
- IAM roles, CloudFront policies/functions/OACs and CLOUDFRONT-scope WAF ACLs are unique per account across
  regions: their names carry the stack's region.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.harness import PROJECT_ROOT, Resource, StackRun, run_stack
from infra.mock_cloud import ACCOUNT_ID
from infra.naming import BUCKET_PREFIX_MAX_LENGTH, Naming, bucket_name_problems
from tests.infra.conftest import ALERT_SECRETS, evaluate

S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
SPACES_BUCKET = "digitalocean:index/spacesBucket:SpacesBucket"
SECRET = "aws:secretsmanager/secret:Secret"
ACCOUNT_WIDE = {
    "aws:iam/role:Role": ("name", 64),
    "aws:cloudfront/originAccessControl:OriginAccessControl": ("name", 64),
    "aws:cloudfront/cachePolicy:CachePolicy": ("name", 128),
    "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy": ("name", 128),
    "aws:cloudfront/function:Function": ("name", 64),
    "aws:cloudwatch/dashboard:Dashboard": ("dashboardName", 255),
}
"""Account-global (not regional) types: the input that names them, and the longest name the service accepts."""

KNOWN_OUT_OF_REGION_EXCEPTIONS = {"aws:cloudwatch/metricAlarm:MetricAlarm"}
"""CloudFront alarms live in us-east-1 whatever the stack's region; their names keep the forwarder's
`<project>-<stack>-<severity>-...` format (it reads the severity from the third segment), so they do not carry
the region: two same-named stacks in two regions of one account would overwrite each other's edge alarms."""

EXAMPLE_FILES = sorted((PROJECT_ROOT / "examples").glob("*/Pulumi.*.yaml"))


def _stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


@pytest.fixture(scope="module")
def every_plan(stack_runs: dict[str, StackRun]) -> dict[str, StackRun]:
    """staging, prod, staging-do and every example's stack file, evaluated by the real program."""
    plans = {f"Pulumi.{name}.yaml": run for name, run in stack_runs.items()}
    plans["Pulumi.staging-do.yaml"] = evaluate("staging-do")
    for path in EXAMPLE_FILES:
        plans[str(path.relative_to(PROJECT_ROOT))] = run_stack(
            _stack_name(path), config_file=path, secret_overrides=ALERT_SECRETS
        )
    return plans


def _region(run: StackRun) -> str:
    return str(run.one("pulumi:providers:aws", "aws").inputs["region"])


def s3_bucket_name_problems(bucket: Resource, region: str) -> list[str]:
    """Why this bucket's name could collide with another account's, or breaks S3's rules."""
    inputs: dict[str, Any] = bucket.inputs
    fixed = inputs.get("bucket")
    if fixed is not None:
        # A fixed name is acceptable only with an account-unique part (and the region: one account, two regions).
        unique = ACCOUNT_ID in fixed and region in fixed
        return ([] if unique else [f"{bucket.name}: fixed name {fixed!r} has no account id + region"]) + [
            f"{bucket.name}: {p}" for p in bucket_name_problems(fixed)
        ]
    prefix = inputs.get("bucketPrefix")
    if not prefix:
        return [f"{bucket.name}: neither bucket nor bucketPrefix (Pulumi would name it after the logical name)"]
    problems = [f"{bucket.name}: {p}" for p in bucket_name_problems(str(bucket.outputs["bucket"]))]
    if len(prefix) > BUCKET_PREFIX_MAX_LENGTH:
        problems.append(f"{bucket.name}: bucketPrefix {prefix!r} is longer than {BUCKET_PREFIX_MAX_LENGTH}")
    return problems


def test_every_plan_was_walked(every_plan: dict[str, StackRun]) -> None:
    assert len(EXAMPLE_FILES) >= 5
    aws_plans = [run for run in every_plan.values() if run.of_type("pulumi:providers:aws")]
    assert len(aws_plans) == len(every_plan) - 1  # all but staging-do
    assert all(any(run.of_type(t) for t in S3_BUCKETS) for run in aws_plans)


def test_no_s3_bucket_has_a_fixed_name_without_an_account_unique_part(every_plan: dict[str, StackRun]) -> None:
    problems = [
        f"{plan}: {problem}"
        for plan, run in every_plan.items()
        for bucket_type in S3_BUCKETS
        for bucket in run.of_type(bucket_type)
        for problem in s3_bucket_name_problems(bucket, _region(run))
    ]
    assert problems == []


def test_bucket_check_catches_the_old_fixed_log_bucket_name() -> None:
    """The check above is not vacuous: the name the ALB log bucket used to have fails it."""
    old = Resource(
        urn="urn:x",
        type="aws:s3/bucket:Bucket",
        name="api-lb-logs",
        parent=None,
        custom=True,
        inputs={"bucket": "shipyard-prod-api-lb-access-logs"},
        secret_inputs=frozenset(),
        outputs={"bucket": "shipyard-prod-api-lb-access-logs"},
        protect=False,
        provider=None,
        depends_on=(),
        ignore_changes=(),
        retain_on_delete=False,
        delete_before_replace=False,
    )
    assert s3_bucket_name_problems(old, "us-east-1") == [
        "api-lb-logs: fixed name 'shipyard-prod-api-lb-access-logs' has no account id + region"
    ]


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        ("shipyard-prod-api-logs-20260101000000000000000001", False),
        ("ab", True),
        ("Shipyard-prod", True),
        ("shipyard_prod", True),
        ("shipyard.prod", True),
        ("-shipyard", True),
        ("shipyard-", True),
        ("xn--shipyard", True),
        ("sthree-shipyard", True),
        ("shipyard-s3alias", True),
        ("shipyard--ol-s3", True),
        ("a" * 64, True),
    ],
)
def test_bucket_name_rules(name: str, broken: bool) -> None:
    assert bool(bucket_name_problems(name)) is broken


def test_bucket_prefixes_fit_the_provider_limit_for_long_stack_names() -> None:
    prefix = Naming("shipyard", "customer-acceptance-environment-eu").bucket_prefix("frontend", "logs")
    assert len(prefix) <= BUCKET_PREFIX_MAX_LENGTH and prefix.endswith("-")
    assert not bucket_name_problems(prefix + "2" * 26)


def test_spaces_buckets_have_a_random_part(every_plan: dict[str, StackRun]) -> None:
    spaces = [(plan, b) for plan, run in every_plan.items() for b in run.of_type(SPACES_BUCKET)]
    assert spaces, "staging-do has an uploads Space"
    for plan, bucket in spaces:
        run = every_plan[plan]
        suffixes = {r.outputs["hex"] for r in run.of_type("random:index/randomId:RandomId")}
        assert any(bucket.inputs["name"].endswith(f"-{s}") for s in suffixes), (plan, bucket.inputs["name"])


def test_no_secret_has_a_fixed_name(every_plan: dict[str, StackRun]) -> None:
    """A deleted secret keeps its name for its recovery window (7-30 days): a fixed name blocks a re-create."""
    fixed = [
        f"{plan}: {secret.name} = {secret.inputs['name']}"
        for plan, run in every_plan.items()
        for secret in run.of_type(SECRET)
        if "name" in secret.inputs
    ]
    assert fixed == []
    assert all(s.inputs.get("namePrefix") for run in every_plan.values() for s in run.of_type(SECRET))


def _provider_region(run: StackRun, resource: Resource) -> str | None:
    if resource.provider is None:
        return None
    provider_urn = resource.provider.rsplit("::", 1)[0]
    try:
        return str(run.by_urn(provider_urn).inputs.get("region"))
    except LookupError:
        return None


def test_account_wide_names_carry_the_region(every_plan: dict[str, StackRun]) -> None:
    problems = []
    for plan, run in every_plan.items():
        if not run.of_type("pulumi:providers:aws"):
            continue
        region = _region(run)
        for type_, (key, limit) in ACCOUNT_WIDE.items():
            for resource in run.of_type(type_):
                name = resource.inputs.get(key)
                if name is None:
                    continue  # autonamed by Pulumi: unique already
                if f"-{region}-" not in name:
                    problems.append(f"{plan}: {resource.name}: {name!r} lacks the region {region}")
                if len(name) > limit:
                    problems.append(f"{plan}: {resource.name}: {name!r} is longer than {limit}")
        for acl in run.of_type("aws:wafv2/webAcl:WebAcl"):
            if acl.inputs["scope"] == "CLOUDFRONT" and f"-{region}-" not in acl.inputs["name"]:
                problems.append(f"{plan}: {acl.name}: CLOUDFRONT-scope ACL {acl.inputs['name']!r} lacks the region")
    assert problems == []


def test_names_made_outside_the_stacks_region_carry_the_region(every_plan: dict[str, StackRun]) -> None:
    """Edge (us-east-1) and offsite resources of stacks in other regions share those regions with same-named
    stacks elsewhere: their names carry the stack's own region."""
    checked = 0
    problems = []
    for plan, run in every_plan.items():
        if not run.of_type("pulumi:providers:aws"):
            continue
        region = _region(run)
        for resource in run.resources:
            elsewhere = _provider_region(run, resource)
            if elsewhere in (None, region) or resource.type in KNOWN_OUT_OF_REGION_EXCEPTIONS:
                continue
            name = resource.inputs.get("name")
            if not isinstance(name, str):
                continue
            checked += 1
            if region not in name:
                problems.append(f"{plan}: {resource.type} {resource.name}: {name!r} (in {elsewhere}) lacks {region}")
    assert checked > 0  # prod copies backups to us-west-2
    assert problems == []

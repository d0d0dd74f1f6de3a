"""Uploads bucket: private, encrypted, versioned, TLS-only, CORS for the frontend, lifecycle, prefix-only app."""

from __future__ import annotations

import json
from pathlib import Path

from infra.harness import Resource, StackRun
from tests.infra.component_program import run_program
from tests.infra.conftest import evaluate

BUCKET = "aws:s3/bucket:Bucket"


def _part(run: StackRun, kind: str, part: str) -> Resource:
    resource = run.one(f"aws:s3/{kind}", f"uploads-{part}")
    assert run.component_of(resource) == run.one("shipyard:aws:Uploads")
    return resource


def _bucket(run: StackRun) -> Resource:
    return run.one(BUCKET, "uploads-bucket")


def test_every_part_targets_the_uploads_bucket(any_stack: StackRun) -> None:
    bucket = _bucket(any_stack)
    name = bucket.outputs["bucket"]
    # Autonamed from a prefix: S3 names are global across accounts (infra/naming.py).
    assert "bucket" not in bucket.inputs and bucket.inputs["bucketPrefix"] == f"shipyard-{any_stack.stack}-uploads-"
    assert name.startswith(bucket.inputs["bucketPrefix"])
    assert any_stack.outputs["uploadsBucket"] == name
    # Prod: users' files, a destroy must fail on a non-empty bucket. Staging is re-created routinely.
    assert bucket.inputs["forceDestroy"] is (any_stack.stack != "prod")
    parts = [
        ("bucketPublicAccessBlock:BucketPublicAccessBlock", "public-access"),
        ("bucketOwnershipControls:BucketOwnershipControls", "ownership"),
        ("bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration", "encryption"),
        ("bucketVersioning:BucketVersioning", "versioning"),
        ("bucketPolicy:BucketPolicy", "policy"),
        ("bucketCorsConfiguration:BucketCorsConfiguration", "cors"),
        ("bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lifecycle"),
    ]
    for kind, part in parts:
        assert _part(any_stack, kind, part).inputs["bucket"] == name  # a bucket's id is its name


def test_private_and_owner_enforced(any_stack: StackRun) -> None:
    block = _part(any_stack, "bucketPublicAccessBlock:BucketPublicAccessBlock", "public-access").inputs
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[flag] is True, flag
    ownership = _part(any_stack, "bucketOwnershipControls:BucketOwnershipControls", "ownership").inputs
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"


def test_encrypted_with_sse_s3_and_versioned(any_stack: StackRun) -> None:
    sse_kind = "bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    (rule,) = _part(any_stack, sse_kind, "encryption").inputs["rules"]
    assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert rule["blockedEncryptionTypes"] == ["SSE-C"]
    versioning = _part(any_stack, "bucketVersioning:BucketVersioning", "versioning").inputs
    assert versioning["versioningConfiguration"]["status"] == "Enabled"


def test_bucket_policy_denies_requests_without_tls(any_stack: StackRun) -> None:
    policy_resource = _part(any_stack, "bucketPolicy:BucketPolicy", "policy")
    statements = json.loads(policy_resource.inputs["policy"])["Statement"]
    arn = _bucket(any_stack).outputs["arn"]
    assert arn == f"arn:aws:s3:::{_bucket(any_stack).outputs['bucket']}"
    insecure = next(s for s in statements if s["Sid"] == "DenyInsecureTransport")
    assert insecure["Effect"] == "Deny" and insecure["Principal"] == "*" and insecure["Action"] == "s3:*"
    assert insecure["Resource"] == [arn, f"{arn}/*"]
    assert insecure["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    outdated = next(s for s in statements if s["Sid"] == "DenyOutdatedTls")
    assert outdated["Condition"] == {"NumericLessThan": {"s3:TlsVersion": "1.2"}}
    assert all(s["Effect"] == "Deny" for s in statements)  # the policy never grants anything
    public_access = _part(any_stack, "bucketPublicAccessBlock:BucketPublicAccessBlock", "public-access")
    assert public_access.urn in policy_resource.depends_on


def test_cors_allows_the_frontend_origin_only(prod: StackRun) -> None:
    (rule,) = _part(prod, "bucketCorsConfiguration:BucketCorsConfiguration", "cors").inputs["corsRules"]
    assert rule["allowedOrigins"] == ["https://app.example.com"]
    # What app/uploads.py hands browsers on AWS: a presigned POST form and a presigned GET; nothing else.
    assert sorted(rule["allowedMethods"]) == ["GET", "POST"]
    assert rule["allowedHeaders"] == ["content-type"]
    assert rule["exposeHeaders"] == ["ETag", "Location"]


def test_cors_origin_follows_the_frontend_url(staging: StackRun) -> None:
    (rule,) = _part(staging, "bucketCorsConfiguration:BucketCorsConfiguration", "cors").inputs["corsRules"]
    assert rule["allowedOrigins"] == [staging.outputs["frontendUrl"]]
    assert rule["allowedOrigins"][0].startswith("https://") and "*" not in rule["allowedOrigins"][0]


def test_cors_origins_are_the_apis_origins() -> None:
    """The bucket admits the same browser origins as the API's CORS_ORIGINS: a URL the API signs is usable."""
    run = evaluate("staging", config_overrides={"shipyard:service": {"corsOrigins": ["http://localhost:5173/"]}})
    (rule,) = _part(run, "bucketCorsConfiguration:BucketCorsConfiguration", "cors").inputs["corsRules"]
    assert rule["allowedOrigins"] == [run.outputs["frontendUrl"], "http://localhost:5173"]


def test_lifecycle_expires_noncurrent_versions_and_aborts_multipart(any_stack: StackRun) -> None:
    lifecycle = _part(any_stack, "bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lifecycle")
    rules = {r["id"]: r for r in lifecycle.inputs["rules"]}
    assert rules["expire-noncurrent-versions"]["status"] == "Enabled"
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7
    versioning = _part(any_stack, "bucketVersioning:BucketVersioning", "versioning")
    assert versioning.urn in lifecycle.depends_on


def test_lifecycle_days_come_from_config() -> None:
    run = evaluate(
        "staging", config_overrides={"shipyard:uploads": {"noncurrentVersionDays": 90, "abortMultipartDays": 2}}
    )
    lifecycle = _part(run, "bucketLifecycleConfiguration:BucketLifecycleConfiguration", "lifecycle")
    rules = {r["id"]: r for r in lifecycle.inputs["rules"]}
    assert rules["expire-noncurrent-versions"]["noncurrentVersionExpiration"]["noncurrentDays"] == 90
    assert rules["abort-incomplete-multipart-uploads"]["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 2


def test_app_interface_limits_and_prefix_only_statements(tmp_path: Path) -> None:
    run = run_program(
        tmp_path,
        "staging",
        """
        from infra.aws.uploads import Uploads, UploadsArgs
        uploads = Uploads("uploads", UploadsArgs(settings=config.uploads, allowed_origins=["https://app.test"]),
                          naming, with_provider)
        pulumi.export("statements", uploads.app_policy_statements())
        pulumi.export("limits", {"prefix": uploads.prefix, "maxSizeBytes": uploads.max_size_bytes,
                                 "allowedTypes": uploads.allowed_types, "bucket": uploads.bucket_name})
        """,
    )
    arn = _bucket(run).outputs["arn"]
    assert run.outputs["statements"] == [
        {
            "Sid": "UploadsUnderPrefix",
            "Effect": "Allow",
            "Action": ["s3:PutObject", "s3:GetObject"],
            "Resource": f"{arn}/uploads/*",
        }
    ]
    assert run.outputs["limits"] == {
        "prefix": "uploads/",
        "maxSizeBytes": 10 * 1024 * 1024,
        "allowedTypes": ["jpg", "jpeg", "png", "pdf", "mp4"],
        "bucket": _bucket(run).outputs["bucket"],
    }

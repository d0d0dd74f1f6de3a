"""Uploads: the private bucket user files go to through presigned URLs, and the app's least-privilege access.

Browsers upload straight to S3 with a URL the API presigns (the API never streams the bytes), so the bucket
needs CORS for the frontend origin only; everything else about it is closed:
- all four public-access blocks and BucketOwnerEnforced (ACLs off): nothing can be made public by a stray
  ACL or policy;
- SSE-S3 (AES256) by default. Not SSE-KMS on purpose: with a KMS key every presigned PUT and GET would need
  kms:GenerateDataKey / kms:Decrypt on the signer's role and would bill a KMS request per object, while the
  access boundary that matters here is the bucket policy + the app role's prefix, not the key;
- versioning on (AWS Backup for S3 requires it, and an overwrite or delete by the app is recoverable), with
  noncurrent versions expired after `uploads.noncurrentVersionDays` so the history does not grow forever;
- a bucket policy refusing any request not made over TLS (1.2+);
- the app may put and get objects under its prefix and nothing else: exactly what app/uploads.py signs
  (a presigned POST needs s3:PutObject, a presigned GET and its HeadObject check need s3:GetObject). A
  presigned URL carries the signer's permissions, so a grant the app does not use is a grant a leaked task
  credential could use; no delete, no listing, no versions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.buckets import block_public_access, encrypt_with_s3_keys, enforce_bucket_owner
from infra.aws.database import backup_selection_tag
from infra.component import Component
from infra.config import UploadsConfig
from infra.naming import Naming

CORS_METHODS = ("POST", "GET")
"""The presigned POST form upload and the presigned GET download (app/uploads.py); no PUT, no DELETE."""
CORS_HEADERS = ("content-type",)
"""A form POST of FormData needs no preflight; `content-type` covers a client that sets it explicitly."""
CORS_MAX_AGE_SECONDS = 3000
"""Browsers cache the preflight ~50 minutes instead of asking before every upload."""
APP_ACTIONS = ("s3:PutObject", "s3:GetObject")
"""What the API signs with (issue 15): PutObject for the presigned POST, GetObject for the presigned GET."""


@dataclass(frozen=True)
class UploadsArgs:
    settings: UploadsConfig
    """The `shipyard:uploads` block: size limit, allowed types, prefix and lifecycle days (infra/config/)."""
    allowed_origins: pulumi.Input[Sequence[str]]
    """Browser origins allowed to upload: the same origins the API answers (`CORS_ORIGINS`: the frontend's URL
    plus `service.corsOrigins`), so the API never hands a browser a URL it may not use; no wildcard."""
    force_destroy: bool = False
    """Whether `pulumi destroy` may delete a non-empty bucket: staging (test files, destroyed and re-created
    routinely) yes; prod no — users' files, the destroy must fail rather than delete them."""


def tls_only_policy(bucket_arn: str) -> str:
    """Deny every request over plain HTTP or TLS older than 1.2, whoever makes it."""
    resources = [bucket_arn, f"{bucket_arn}/*"]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": resources,
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                },
                {
                    "Sid": "DenyOutdatedTls",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": resources,
                    "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
                },
            ],
        }
    )


class Uploads(Component):
    bucket: aws.s3.Bucket
    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    prefix: str
    max_size_bytes: int
    allowed_types: list[str]

    def __init__(self, name: str, args: UploadsArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Uploads", name, naming, opts)
        settings = args.settings
        self.prefix = settings.prefix
        self.max_size_bytes = settings.max_size_mb * 1024 * 1024
        self.allowed_types = list(settings.allowed_types)

        # Bucket names are global across all AWS accounts and a guessable one (even with the account id,
        # which is no secret) can be taken first: a prefix, and the provider makes the name unique.
        self.bucket = aws.s3.Bucket(
            self.child_name("bucket"),
            bucket_prefix=naming.bucket_prefix("uploads"),
            force_destroy=args.force_destroy,
            # Selected by the AWS Backup plan (infra/aws/backup.py), which needs the versioning below.
            tags={backup_selection_tag[0]: backup_selection_tag[1]},
            opts=self.opts(),
        )
        bucket_id = self.bucket.id
        public_access = block_public_access(self, self.child_name("public-access"), bucket_id)
        enforce_bucket_owner(self, self.child_name("ownership"), bucket_id)
        # Customer-provided keys (SSE-C) would leave objects AWS Backup cannot read.
        encrypt_with_s3_keys(self, self.child_name("encryption"), bucket_id, blocked_encryption_types=["SSE-C"])
        versioning = aws.s3.BucketVersioning(
            self.child_name("versioning"),
            bucket=bucket_id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=self.opts(),
        )
        aws.s3.BucketPolicy(
            self.child_name("policy"),
            bucket=bucket_id,
            policy=self.bucket.arn.apply(tls_only_policy),
            # With BlockPublicPolicy in place first, a policy that would open the bucket is refused by S3.
            opts=self.opts(depends_on=[public_access]),
        )
        aws.s3.BucketCorsConfiguration(
            self.child_name("cors"),
            bucket=bucket_id,
            cors_rules=[
                aws.s3.BucketCorsConfigurationCorsRuleArgs(
                    id="presigned-from-frontend",
                    allowed_origins=args.allowed_origins,
                    allowed_methods=list(CORS_METHODS),
                    allowed_headers=list(CORS_HEADERS),
                    # The upload's answer names the stored object (ETag, Location) for the SPA to keep.
                    expose_headers=["ETag", "Location"],
                    max_age_seconds=CORS_MAX_AGE_SECONDS,
                )
            ],
            opts=self.opts(),
        )
        aws.s3.BucketLifecycleConfiguration(
            self.child_name("lifecycle"),
            bucket=bucket_id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-noncurrent-versions",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=settings.noncurrent_version_days
                    ),
                    # Once its history has expired, a lone delete marker is clutter; drop it.
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(expired_object_delete_marker=True),
                ),
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="abort-incomplete-multipart-uploads",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    # Parts of uploads a browser abandoned are billed until aborted.
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=settings.abort_multipart_days
                    ),
                ),
            ],
            # Lifecycle rules on noncurrent versions need versioning to exist first.
            opts=self.opts(depends_on=[versioning]),
        )

        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.register_outputs({"bucketName": self.bucket_name, "bucketArn": self.bucket_arn, "prefix": self.prefix})

    def app_policy_statements(self) -> pulumi.Output[list[dict[str, Any]]]:
        """IAM statements for the app's task role: objects under its prefix only, no listing, no versions."""
        prefix = self.prefix
        return self.bucket_arn.apply(
            lambda arn: [
                {
                    "Sid": "UploadsUnderPrefix",
                    "Effect": "Allow",
                    "Action": list(APP_ACTIONS),
                    "Resource": f"{arn}/{prefix}*",
                }
            ]
        )

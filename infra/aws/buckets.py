"""The controls every bucket of the stack carries, in one place: no public access, no ACLs (the bucket owner owns
every object), and SSE-S3 by default. Each caller says why its bucket needs no more than SSE-S3 (log delivery
services write only to SSE-S3 buckets; CloudFront serves the SPA's files publicly anyway).

Each helper takes the child's full name, so the resources keep the names (and URNs) they were created with.
"""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from infra.component import Component


def block_public_access(owner: Component, name: str, bucket: pulumi.Input[str]) -> aws.s3.BucketPublicAccessBlock:
    return aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=owner.opts(),
    )


def enforce_bucket_owner(owner: Component, name: str, bucket: pulumi.Input[str]) -> aws.s3.BucketOwnershipControls:
    """ACLs off: access is the bucket policy's and IAM's alone (S3.12)."""
    return aws.s3.BucketOwnershipControls(
        name,
        bucket=bucket,
        rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
        opts=owner.opts(),
    )


def encrypt_with_s3_keys(
    owner: Component, name: str, bucket: pulumi.Input[str], *, blocked_encryption_types: Sequence[str] = ()
) -> aws.s3.BucketServerSideEncryptionConfiguration:
    default = aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
        sse_algorithm="AES256"
    )
    return aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        bucket=bucket,
        rules=[
            aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                apply_server_side_encryption_by_default=default,
                blocked_encryption_types=list(blocked_encryption_types) or None,
            )
        ],
        opts=owner.opts(),
    )

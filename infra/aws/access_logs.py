"""S3 server access logs (FSBP S3.9): one log bucket per stack region, and the logging of each source bucket.

Who read, wrote or deleted which object of the uploads bucket (users' files) and the SPA bucket is otherwise
recorded nowhere: CloudTrail logs object-level calls only as paid data events. Server access logging costs
nothing but the log objects' storage (AWS: "There is no extra charge for enabling server access logging...
log files accrue the usual charges for storage":
https://docs.aws.amazon.com/AmazonS3/latest/userguide/ServerAccessLogs.html), so staging has it too.

The log bucket follows the AWS-recommended, ACL-less set-up
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/enable-server-access-logging.html#grant-log-delivery-permissions-general):
- a bucket policy grants `logging.s3.amazonaws.com` s3:PutObject under each source's prefix only, held to
  that source bucket (`aws:SourceArn`) of this account (`aws:SourceAccount`), plus the stack-wide TLS-only
  denials; BucketOwnerEnforced, so no ACL grant to the old Log Delivery group is needed or possible;
- all four public-access blocks; SSE-S3 (the only default encryption S3 log delivery is documented to
  write under without a key grant);
- lifecycle expiry after `retention_days` (logs are evidence for an incident window, not an archive);
- no logging of its own: logging a log bucket into itself writes a log record for each delivered log
  object, a loop that never settles (S3 docs advise a separate destination bucket).
The log bucket must be in the sources' region and account (S3 delivers nowhere else).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.aws.buckets import block_public_access, encrypt_with_s3_keys, enforce_bucket_owner
from infra.aws.uploads import tls_only_policy
from infra.component import Component
from infra.naming import Naming

LOGGING_SERVICE = "logging.s3.amazonaws.com"


@dataclass(frozen=True)
class LoggedBucket:
    """A bucket whose requests are logged: its name (BucketLogging's `bucket`) and ARN (the policy's SourceArn)."""

    name: pulumi.Input[str]
    arn: pulumi.Input[str]


@dataclass(frozen=True)
class ServerAccessLogsArgs:
    sources: Mapping[str, LoggedBucket]
    """Label → bucket; each bucket logs under `<label>/` in the log bucket (labels: lower case, digits, '-')."""
    retention_days: int = 90
    """Days before log objects expire (`shipyard:uploads.accessLogRetentionDays`)."""
    force_destroy: bool = False
    """Let `pulumi destroy` empty the log bucket (staging); prod keeps the evidence."""


def log_bucket_policy(log_bucket_arn: str, account_id: str, sources: Mapping[str, str]) -> str:
    """TLS-only denials + one S3-logging grant per source (label → source bucket ARN)."""
    statements: list[dict[str, Any]] = json.loads(tls_only_policy(log_bucket_arn))["Statement"]
    for label, source_arn in sorted(sources.items()):
        statements.append(
            {
                "Sid": f"S3ServerAccessLogs{''.join(part.title() for part in label.split('-'))}",
                "Effect": "Allow",
                "Principal": {"Service": LOGGING_SERVICE},
                "Action": "s3:PutObject",
                "Resource": f"{log_bucket_arn}/{label}/*",
                "Condition": {
                    "ArnLike": {"aws:SourceArn": source_arn},
                    "StringEquals": {"aws:SourceAccount": account_id},
                },
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements})


class ServerAccessLogs(Component):
    bucket: aws.s3.Bucket
    bucket_name: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServerAccessLogsArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "ServerAccessLogs", name, naming, opts)
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        # Bucket names are global across all AWS accounts: a prefix, and the provider makes the name unique
        # (infra/naming.py), like every other bucket of the stack.
        self.bucket = aws.s3.Bucket(
            self.child_name("bucket"),
            bucket_prefix=naming.bucket_prefix("s3-access-logs"),
            force_destroy=args.force_destroy,
            opts=self.opts(),
        )
        public_access = self._lock_down()
        aws.s3.BucketLifecycleConfiguration(
            self.child_name("lifecycle"),
            bucket=self.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=args.retention_days),
                )
            ],
            opts=self.opts(),
        )
        labels = sorted(args.sources)
        policy = aws.s3.BucketPolicy(
            self.child_name("policy"),
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, account_id, *[args.sources[label].arn for label in labels]).apply(
                lambda values: log_bucket_policy(values[0], values[1], dict(zip(labels, values[2:], strict=True)))
            ),
            opts=self.opts(depends_on=[public_access]),
        )
        for label in labels:
            aws.s3.BucketLogging(
                self.child_name(label),
                bucket=args.sources[label].name,
                target_bucket=self.bucket.id,
                target_prefix=f"{label}/",
                # S3 checks the destination's permission when logging is switched on: the grant comes first.
                opts=self.opts(depends_on=[policy]),
            )
        self.bucket_name = self.bucket.bucket
        self.register_outputs({"bucketName": self.bucket_name})

    def _lock_down(self) -> aws.s3.BucketPublicAccessBlock:
        """Private, ACL-less and SSE-S3: what S3 log delivery writes into without any key grant."""
        public_access = block_public_access(self, self.child_name("public-access"), self.bucket.id)
        enforce_bucket_owner(self, self.child_name("ownership"), self.bucket.id)
        encrypt_with_s3_keys(self, self.child_name("encryption"), self.bucket.id)
        return public_access

"""Every name the stack gives to the cloud is derived here, so renaming is one edit and names never clash.

Two kinds of names:
- logical names (Pulumi's, unique per type within a stack): `<component>-<part>`, e.g. `network-vpc`;
- physical names (what the console shows): `<project>-<stack>-<part>`, e.g. `shipyard-prod-api`,
  shortened with a stable hash suffix when a service limits length (ALB and target group: 32 chars).

How unique a physical name must be depends on the service, and that decides which method names it:
- `physical`: names unique per account *and region* (log groups, SQS, SNS, DynamoDB, ALB, RDS, Backup
  vaults, KMS aliases, ECS...): the stack name alone keeps them apart.
- `bucket_prefix`: S3 bucket names are global across *all accounts* of a partition, and a deleted name can
  stay taken (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html). A fixed name
  (`shipyard-prod-api-lb-access-logs`) fails with BucketAlreadyExists for the second copy of this project
  anywhere, and a guessable one can be claimed first by someone else. So buckets get a prefix and the
  provider appends a unique suffix (`bucket_prefix`, <= 37 chars; the provider adds 26).
- `name_prefix`: names that a delete does not free at once — Secrets Manager keeps a deleted secret's
  name for its recovery window (7-30 days), so a fixed name blocks re-creating the stack that long
  (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_DeleteSecret.html).
- `account_wide`: names unique per account across regions (IAM roles, CloudFront policies, functions and
  origin access controls, CLOUDFRONT-scope WAF ACLs, and what every stack pins to us-east-1): the stack's
  region is part of the name, so the same stack name deployed in two regions of one account cannot clash.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_INVALID = re.compile(r"[^a-z0-9-]+")

BUCKET_PREFIX_MAX_LENGTH = 37
"""terraform-provider-aws `bucket_prefix`: at most 37 characters; the provider appends a 26-character unique
id (`id.PrefixedUniqueId`), which keeps the whole name within S3's 63."""

BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
"""S3 general purpose bucket names as this program makes them: 3-63 chars, lowercase letters, digits and
hyphens (no periods: they break TLS on virtual-hosted URLs), starting and ending with a letter or digit."""

RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3", "-an")
"""S3's reserved prefixes and suffixes (bucketnamingrules.html; `-an` marks the account regional namespace)."""


def bucket_name_problems(name: str) -> list[str]:
    """What breaks S3's naming rules in a full bucket name (empty when it is valid)."""
    problems = []
    if not BUCKET_NAME.match(name):
        problems.append(f"{name!r}: 3-63 lowercase letters, digits or hyphens, starting and ending alphanumeric")
    if "--" in name:
        problems.append(f"{name!r}: no two hyphens in a row (reserved forms use them)")
    problems += [f"{name!r}: starts with reserved {p!r}" for p in RESERVED_BUCKET_PREFIXES if name.startswith(p)]
    problems += [f"{name!r}: ends with reserved {s!r}" for s in RESERVED_BUCKET_SUFFIXES if name.endswith(s)]
    return problems


@dataclass(frozen=True)
class Naming:
    project: str
    stack: str
    region: str | None = None
    """The stack's AWS region (None on DigitalOcean): part of `account_wide` names."""

    @property
    def prefix(self) -> str:
        return f"{self.project}-{self.stack}"

    def physical(self, *parts: str, max_length: int = 63) -> str:
        """`shipyard-prod-api-tg`, cut to `max_length` with a 6-char hash keeping cut names distinct."""
        name = _INVALID.sub("-", "-".join([self.prefix, *parts]).lower()).strip("-")
        if len(name) <= max_length:
            return name
        digest = hashlib.sha256(name.encode()).hexdigest()[:6]
        return f"{name[: max_length - 7].rstrip('-')}-{digest}"

    def bucket_prefix(self, *parts: str) -> str:
        """`shipyard-prod-api-logs-`: an S3 `bucket_prefix`; the provider makes the name unique (see module doc)."""
        return self.physical(*parts, max_length=BUCKET_PREFIX_MAX_LENGTH - 1) + "-"

    def name_prefix(self, *parts: str, max_length: int = 256) -> str:
        """`shipyard-staging-app-`: a `name_prefix` for names a delete keeps taken for a while (secrets)."""
        return self.physical(*parts, max_length=max_length - 1) + "-"

    def account_wide(self, *parts: str, max_length: int = 63) -> str:
        """`shipyard-prod-sa-east-1-api-task`: for names unique per account across regions (see module doc).
        The region goes right after the stack so that a cut keeps it."""
        if self.region is None:
            raise ValueError(f"{self.prefix}: an account-wide name ({'-'.join(parts)}) needs the stack's region")
        return self.physical(self.region, *parts, max_length=max_length)

    def alarm(self, severity: str, resource: str, condition: str) -> str:
        """`<project>-<stack>-<severity>-<resource>-<condition>`: sortable by severity in the console, and the
        alert forwarder reads the severity back from the third segment."""
        return self.physical(severity, resource, condition, max_length=255)

    @property
    def tags(self) -> dict[str, str]:
        return {"project": self.project, "stack": self.stack}


def child_name(component: str, *parts: str) -> str:
    """Logical name of a component's child: `database-instance`."""
    return "-".join([component, *parts])

"""Upload a built SPA to the stack's frontend bucket and refresh CloudFront.

    python scripts/deploy_frontend.py --dist web/dist --bucket <frontendBucket> \\
        --distribution-id <cloudfrontDistributionId> [--immutable-paths '["/assets/*"]'] [--wait] [--dry-run]

(`make deploy-frontend STACK=prod DIST=web/dist` fills the three values in from `pulumi stack output`.)

What it does, in this order, and why:
1. lists the bucket once and compares each local file's MD5 with the object's ETag (single-part uploads to an
   SSE-S3 bucket have ETag = MD5), so only changed files are sent;
2. uploads content-hashed files first (`Cache-Control: public, max-age=31536000, immutable`), then the other
   files (`no-cache`: browsers keep them but revalidate), and index.html last — so no index.html is ever live
   before the assets it names;
3. invalidates `/index.html`, `/` and any other changed file outside the immutable paths (a changed hashed
   file has a new name and needs none).

Old hashed files are never deleted: a browser still running the previous index.html lazy-loads its chunks
by their old names. Noncurrent versions expire through the bucket's lifecycle rule.
"""

from __future__ import annotations

import argparse
import base64
import fnmatch
import hashlib
import json
import mimetypes
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"
REVALIDATE_CACHE_CONTROL = "no-cache"
DEFAULT_IMMUTABLE_PATHS = ("/assets/*",)
INDEX = "index.html"
MAX_INVALIDATION_PATHS = 15
"""Beyond this many changed pages, one `/*` is cheaper (CloudFront bills each path past 1,000 a month)."""
SKIPPED_NAMES = frozenset({".DS_Store", "Thumbs.db"})

# Types the platform's mimetypes table gets wrong or lacks (it varies with /etc/mime.types).
_CONTENT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".js": "text/javascript",  # RFC 9239
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".wasm": "application/wasm",
    ".txt": "text/plain",
    ".xml": "application/xml",
    ".pdf": "application/pdf",
    ".mp4": "video/mp4",
}
_TEXT_TYPES = ("text/", "application/json", "application/manifest+json", "application/xml", "image/svg+xml")


class DeployError(Exception):
    """Bad input; the message names the option or file at fault."""


@dataclass(frozen=True)
class FileUpload:
    key: str
    path: Path
    md5_hex: str
    cache_control: str
    content_type: str

    @property
    def immutable(self) -> bool:
        return self.cache_control == IMMUTABLE_CACHE_CONTROL


@dataclass(frozen=True)
class DeployReport:
    uploaded: list[str]
    unchanged: list[str]
    invalidation_paths: list[str]
    invalidation_id: str | None


# ---------------------------------------------------------------------------------------------------------
# Pure decisions
# ---------------------------------------------------------------------------------------------------------


def is_immutable(key: str, immutable_paths: tuple[str, ...]) -> bool:
    """Same matching as a CloudFront path pattern: case-sensitive, `*` spans `/`, `?` one character."""
    return any(fnmatch.fnmatchcase(f"/{key}", pattern) for pattern in immutable_paths)


def cache_control_for(key: str, immutable_paths: tuple[str, ...]) -> str:
    if key != INDEX and is_immutable(key, immutable_paths):
        return IMMUTABLE_CACHE_CONTROL
    return REVALIDATE_CACHE_CONTROL


def content_type_for(key: str) -> str:
    suffix = PurePosixPath(key).suffix.lower()
    content_type = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(key, strict=False)[0]
    if content_type is None:
        return "application/octet-stream"
    if content_type.startswith(_TEXT_TYPES):
        return f"{content_type}; charset=utf-8"
    return content_type


def upload_order(upload: FileUpload) -> tuple[int, str]:
    """Hashed assets, then other files, then index.html: what a page names is always there before it."""
    if upload.key == INDEX:
        return (2, upload.key)
    return (0 if upload.immutable else 1, upload.key)


def parse_immutable_paths(text: str) -> tuple[str, ...]:
    """`["/assets/*"]` (as `pulumi stack output --json` prints it) or `/assets/*,/static/*`."""
    text = text.strip()
    if not text:
        raise DeployError("--immutable-paths is empty (did `pulumi stack output frontendImmutablePaths` fail?)")
    if text[0] in '[{"':  # JSON, as `pulumi stack output --json` prints it
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DeployError(f"--immutable-paths: not a JSON list ({exc})") from None
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            raise DeployError("--immutable-paths: must be a JSON list of strings")
        patterns = [p.strip() for p in value]
    else:
        patterns = [p.strip() for p in text.split(",") if p.strip()]
    for pattern in patterns:
        if not pattern.startswith("/"):
            raise DeployError(f"--immutable-paths: {pattern!r} must start with '/' (a CloudFront path pattern)")
        if pattern in {"/*", "/**"}:
            raise DeployError(f"--immutable-paths: {pattern!r} would make index.html immutable")
    if not patterns:
        raise DeployError("--immutable-paths: no patterns given")
    return tuple(patterns)


def collect_files(dist: Path, immutable_paths: tuple[str, ...]) -> list[FileUpload]:
    """Every file under `dist` with its key, MD5 and headers, in upload order."""
    if not dist.is_dir():
        raise DeployError(f"--dist {dist}: not a directory (build the SPA first)")
    if not (dist / INDEX).is_file():
        raise DeployError(f"--dist {dist}: has no {INDEX}; is this the build output folder?")
    uploads = []
    for path in sorted(p for p in dist.rglob("*") if p.is_file() and p.name not in SKIPPED_NAMES):
        key = path.relative_to(dist).as_posix()
        uploads.append(
            FileUpload(
                key=key,
                path=path,
                md5_hex=hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest(),
                cache_control=cache_control_for(key, immutable_paths),
                content_type=content_type_for(key),
            )
        )
    return sorted(uploads, key=upload_order)


def invalidation_paths(changed: list[FileUpload]) -> list[str]:
    """`/index.html` and `/` always (cheap, and a rerun after a failed invalidation still refreshes), plus any
    other changed file outside the immutable paths; `/*` once that list grows past the free-tier-friendly cap."""
    paths = ["/", f"/{INDEX}"]
    paths += sorted(f"/{u.key}" for u in changed if not u.immutable and u.key != INDEX)
    if len(paths) > MAX_INVALIDATION_PATHS:
        return ["/*"]
    return paths


# ---------------------------------------------------------------------------------------------------------
# Talking to AWS (clients passed in, so tests point them at moto on 127.0.0.1)
# ---------------------------------------------------------------------------------------------------------


def existing_etags(s3: Any, bucket: str) -> dict[str, str]:
    etags: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            etags[item["Key"]] = item["ETag"].strip('"')
    return etags


def wait_for_invalidation(
    cloudfront: Any,
    distribution_id: str,
    invalidation_id: str,
    poll_seconds: float,
    max_polls: int,
    sleep: Callable[[float], None],
) -> None:
    """Poll at most `max_polls` times (default 10 minutes); invalidations usually finish in a minute or two.

    Compares the status case-insensitively: CloudFront says "Completed", some emulators "COMPLETED" (which
    is why botocore's own waiter is not used).
    """
    for attempt in range(max_polls):
        status = cloudfront.get_invalidation(DistributionId=distribution_id, Id=invalidation_id)["Invalidation"][
            "Status"
        ]
        if status.lower() == "completed":
            return
        if attempt + 1 < max_polls:
            sleep(poll_seconds)
    raise DeployError(
        f"invalidation {invalidation_id} on {distribution_id} still not complete after {max_polls} checks; "
        "the files are uploaded, the edge will catch up"
    )


def deploy(
    s3: Any,
    cloudfront: Any,
    *,
    bucket: str,
    distribution_id: str,
    dist: Path,
    immutable_paths: tuple[str, ...] = DEFAULT_IMMUTABLE_PATHS,
    dry_run: bool = False,
    wait: bool = False,
    caller_reference: str | None = None,
    poll_seconds: float = 10.0,
    max_polls: int = 60,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployReport:
    files = collect_files(dist, immutable_paths)
    current = existing_etags(s3, bucket)
    changed = [f for f in files if current.get(f.key) != f.md5_hex]
    paths = invalidation_paths(changed)
    if dry_run:
        return DeployReport([f.key for f in changed], [f.key for f in files if f not in changed], paths, None)
    for upload in changed:
        body = upload.path.read_bytes()
        s3.put_object(
            Bucket=bucket,
            Key=upload.key,
            Body=body,
            ContentType=upload.content_type,
            CacheControl=upload.cache_control,
            # S3 rejects the upload if the bytes arrive damaged, instead of serving them for a year.
            ContentMD5=base64.b64encode(bytes.fromhex(upload.md5_hex)).decode(),
        )
    reference = (
        caller_reference or f"deploy-{int(time.time())}-{hashlib.sha256(''.join(paths).encode()).hexdigest()[:8]}"
    )
    response = cloudfront.create_invalidation(
        DistributionId=distribution_id,
        InvalidationBatch={"Paths": {"Quantity": len(paths), "Items": paths}, "CallerReference": reference},
    )
    invalidation_id = response["Invalidation"]["Id"]
    if wait:
        wait_for_invalidation(cloudfront, distribution_id, invalidation_id, poll_seconds, max_polls, sleep)
    return DeployReport(
        uploaded=[f.key for f in changed],
        unchanged=[f.key for f in files if f not in changed],
        invalidation_paths=paths,
        invalidation_id=invalidation_id,
    )


# ---------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------


def _endpoint_url(value: str) -> str:
    """botocore refuses anything but an http(s) URL with a host, with a ValueError: say so as a bad argument."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {value!r} (e.g. http://127.0.0.1:4566)")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", required=True, type=Path, help="the SPA build output (holds index.html)")
    parser.add_argument("--bucket", required=True, help="stack output frontendBucket")
    parser.add_argument("--distribution-id", required=True, help="stack output cloudfrontDistributionId")
    parser.add_argument(
        "--immutable-paths",
        default=json.dumps(list(DEFAULT_IMMUTABLE_PATHS)),
        help="stack output frontendImmutablePaths (JSON list or comma-separated); default %(default)s",
    )
    parser.add_argument(
        "--endpoint-url", type=_endpoint_url, help="S3 and CloudFront endpoint (tests, LocalStack); default AWS"
    )
    parser.add_argument("--region", help="AWS region of the bucket; default from the AWS profile/environment")
    parser.add_argument("--wait", action="store_true", help="wait (at most 10 minutes) for the invalidation")
    parser.add_argument("--dry-run", action="store_true", help="list what would be uploaded and invalidated")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        for option, value in (("--bucket", args.bucket), ("--distribution-id", args.distribution_id)):
            if not value.strip():
                raise DeployError(f"{option} is empty (did `pulumi stack output` fail? is the stack deployed?)")
        immutable_paths = parse_immutable_paths(args.immutable_paths)
        import boto3  # only now: --help and bad arguments answer without loading it

        session = boto3.session.Session(region_name=(args.region or "").strip() or None)
        report = deploy(
            session.client("s3", endpoint_url=args.endpoint_url),
            session.client("cloudfront", endpoint_url=args.endpoint_url),
            bucket=args.bucket.strip(),
            distribution_id=args.distribution_id.strip(),
            dist=args.dist,
            immutable_paths=immutable_paths,
            dry_run=args.dry_run,
            wait=args.wait,
        )
    except DeployError as exc:
        print(f"deploy-frontend: {exc}", file=sys.stderr)
        return 2
    verb = "would upload" if args.dry_run else "uploaded"
    print(f"{verb} {len(report.uploaded)} file(s), {len(report.unchanged)} unchanged")
    for key in report.uploaded:
        print(f"  {key}")
    if report.invalidation_id:
        print(f"invalidation {report.invalidation_id}: {' '.join(report.invalidation_paths)}")
    else:
        print(f"would invalidate: {' '.join(report.invalidation_paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

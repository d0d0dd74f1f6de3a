"""The uploads Space: private, versioned, expiring old versions and abandoned multipart uploads, CORS for the
frontend's origin only, and an access key limited to this one bucket for the API.

Spaces has no bucket-level "block public access": objects stay private because the bucket ACL is private and
the API hands out presigned URLs. Spaces encrypts data at rest on its own (no setting).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_digitalocean as digitalocean
import pulumi_random as random

from infra.component import Component
from infra.config import DoUploadsConfig
from infra.naming import Naming

BROWSER_METHODS = ["GET", "PUT"]
"""What a browser does with the URLs app/uploads.py signs here: PUT to upload, GET to download.

Not POST: DigitalOcean's S3 compatibility page documents presigned URLs (SigV2 and SigV4) but not browser POST
policies (https://docs.digitalocean.com/products/spaces/reference/s3-compatibility/), so the API runs with
UPLOAD_METHOD=PUT on this cloud: a presigned PUT whose signature covers Content-Type and Content-Length, which
enforces the exact type and the declared (limit-checked) size, as the POST policy's conditions do on AWS."""
BROWSER_HEADERS = ["Content-Type"]
"""The one header the SPA sets on the PUT (Content-Length is set by the browser and needs no preflight)."""


@dataclass(frozen=True)
class UploadsArgs:
    settings: DoUploadsConfig
    """Size, types, prefix and lifecycle days (`shipyard:uploads`, same keys as on AWS)."""
    region: str
    """Spaces region slug (`uploads.spacesRegion`, default the stack's region)."""


class Uploads(Component):
    def __init__(self, name: str, args: UploadsArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("digitalocean", "Uploads", name, naming, opts)
        settings = args.settings
        self.region = args.region
        # Spaces names are shared by every DigitalOcean customer (`<name>.<region>.digitaloceanspaces.com`), so
        # a fixed `shipyard-staging-do-uploads` fails for the second copy of this project anywhere. The provider
        # has no name prefix: a random suffix drawn once per stack (kept in state) does the same.
        suffix = random.RandomId(self.child_name("bucket-suffix"), byte_length=4, opts=self.opts())
        self.bucket = digitalocean.SpacesBucket(
            self.child_name("bucket"),
            name=suffix.hex.apply(lambda hex_suffix: f"{naming.physical('uploads', max_length=54)}-{hex_suffix}"),
            region=args.region,
            acl="private",
            versioning=digitalocean.SpacesBucketVersioningArgs(enabled=True),
            lifecycle_rules=[
                digitalocean.SpacesBucketLifecycleRuleArgs(
                    id="expire-old-versions-and-abandoned-uploads",
                    enabled=True,
                    abort_incomplete_multipart_upload_days=settings.abort_multipart_days,
                    noncurrent_version_expiration=digitalocean.SpacesBucketLifecycleRuleNoncurrentVersionExpirationArgs(
                        days=settings.noncurrent_version_days
                    ),
                )
            ],
            # A non-empty bucket is data: `pulumi destroy` must fail rather than delete uploads.
            force_destroy=False,
            opts=self.opts(),
        )
        # A key that can read and write this bucket only (not every Space on the account).
        self.key = digitalocean.SpacesKey(
            self.child_name("api-key"),
            name=naming.physical("uploads-api"),
            grants=[digitalocean.SpacesKeyGrantArgs(bucket=self.bucket.name, permission="readwrite")],
            opts=self.opts(),
        )
        self.endpoint_url = f"https://{args.region}.digitaloceanspaces.com"
        self.bucket_name: pulumi.Output[str] = self.bucket.name
        self.cors: digitalocean.SpacesBucketCorsConfiguration | None = None
        self.register_outputs({"bucket": self.bucket.name, "endpoint": self.endpoint_url})

    def allow_origins(self, origins: pulumi.Input[list[str]]) -> None:
        """CORS for the origins the API answers: the frontend (its origin may be the app's generated host, known
        only after the app) plus `service.corsOrigins`."""
        self.cors = digitalocean.SpacesBucketCorsConfiguration(
            self.child_name("cors"),
            bucket=self.bucket.name,
            region=self.region,
            cors_rules=[
                digitalocean.SpacesBucketCorsConfigurationCorsRuleArgs(
                    allowed_origins=origins,
                    allowed_methods=BROWSER_METHODS,
                    allowed_headers=BROWSER_HEADERS,
                    expose_headers=["ETag"],
                    max_age_seconds=3600,
                )
            ],
            opts=self.opts(),
        )

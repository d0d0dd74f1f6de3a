"""Frontend: the SPA in a private S3 bucket, served by CloudFront through Origin Access Control.

What a request meets, in order:
- viewer: HTTPS only (HTTP is redirected), TLS 1.2 (2021 ciphers) or newer with our ACM certificate when a
  domain is set, HTTP/2 and HTTP/3, IPv6, optionally the WAF web ACL;
- cache behaviours: content-hashed build output (`frontend.immutablePaths`, default `/assets/*`) is cached
  for a year and marked immutable; everything else, index.html first, is never held at the edge, so a deploy
  is visible on the next page load;
- origin: the bucket, which answers CloudFront alone (bucket policy bound to this distribution's ARN);
- every response: HSTS, CSP, nosniff, frame DENY, strict referrer policy (response headers policy).

SPA routing: the browser asks for `/orders/42`, which is no object. A CloudFront Function on viewer request
(infra/aws/spa_routing.js) sends every extension-less path to `/index.html` and the client router takes over.
There are no custom error responses: those apply to every 403/404 of the distribution, WAF's blocks included,
and turned a blocked client's 403 into "200 + index.html". A missing file (`/assets/gone.js`) is a 404: the
bucket policy lets CloudFront list the bucket, because without s3:ListBucket S3 answers a missing key with 403
(https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws

from infra.aws.buckets import block_public_access, encrypt_with_s3_keys
from infra.aws.certificate import Certificate, CertificateArgs
from infra.component import Component
from infra.config import DomainConfig, FrontendConfig
from infra.naming import Naming

# AWS managed cache policy (same id in every account): TTL 0, nothing cached. index.html must reach browsers
# the moment it is uploaded; it is a few KB, so skipping the edge cache costs almost nothing. (CloudFront
# does not compress under a zero-TTL policy; for one small HTML file that is a fair trade.)
CACHING_DISABLED_POLICY_ID = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"

ONE_YEAR_SECONDS = 31_536_000
HSTS_MAX_AGE_SECONDS = 63_072_000  # two years: what the HSTS preload list asks for
IMMUTABLE_CACHE_CONTROL = f"public, max-age={ONE_YEAR_SECONDS}, immutable"
REVALIDATE_CACHE_CONTROL = "no-cache"
LOG_PREFIX = "cloudfront/"
SPA_ORIGIN_ID = "spa-bucket"
SPA_ROUTING_RUNTIME = "cloudfront-js-2.0"
SPA_ROUTING_FILE = Path(__file__).with_name("spa_routing.js")
SPA_ROUTING_CODE = SPA_ROUTING_FILE.read_text()


@dataclass(frozen=True)
class _PrivateBucket:
    bucket: aws.s3.Bucket
    public_access_block: aws.s3.BucketPublicAccessBlock
    versioning: aws.s3.BucketVersioning


@dataclass(frozen=True)
class FrontendArgs:
    settings: FrontendConfig
    """The `shipyard:frontend` block (priceClass, contentSecurityPolicy, immutablePaths, accessLogs...)."""
    domain: DomainConfig | None
    """`shipyard:domain`. Set: the SPA answers on `domain.frontend_fqdn` with an ACM certificate (issued in
    us-east-1 through `certificate_provider`) and, with a hosted zone, A/AAAA alias records. None: the
    CloudFront host name and its default certificate."""
    certificate_provider: aws.Provider | None = None
    """Provider in us-east-1 for the certificate (CloudFront reads certificates from there only). None: the
    component's own provider, right only when the stack runs in us-east-1."""
    web_acl_arn: pulumi.Input[str] | None = None
    """WAFv2 web ACL (scope CLOUDFRONT, us-east-1) to attach; None: no WAF on the distribution."""
    force_destroy_logs: bool = False
    """Whether `pulumi destroy` may delete a non-empty access-log bucket (staging: yes; prod: no, evidence)."""


def security_headers(content_security_policy: str) -> aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigArgs:
    """The headers every response carries; `override` so an object's own metadata cannot weaken them."""
    return aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigArgs(
        strict_transport_security=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigStrictTransportSecurityArgs(
            access_control_max_age_sec=HSTS_MAX_AGE_SECONDS,
            include_subdomains=True,
            preload=True,
            override=True,
        ),
        content_security_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentSecurityPolicyArgs(
            content_security_policy=content_security_policy,
            override=True,
        ),
        content_type_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigContentTypeOptionsArgs(
            override=True
        ),
        frame_options=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigFrameOptionsArgs(
            frame_option="DENY", override=True
        ),
        referrer_policy=aws.cloudfront.ResponseHeadersPolicySecurityHeadersConfigReferrerPolicyArgs(
            referrer_policy="strict-origin-when-cross-origin", override=True
        ),
    )


def tls_only_statement(bucket_arn: str) -> dict[str, object]:
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def spa_bucket_policy(bucket_arn: str, distribution_arn: str) -> str:
    """TLS only; objects readable, and the bucket listable, by CloudFront on behalf of this one distribution.

    s3:ListBucket makes S3 answer a missing key with 404 instead of 403, so a missing asset is a 404 and a 403
    means a block (WAF). Nobody can list the bucket through the CDN: no cache behaviour forwards a query string,
    and `/` is rewritten to /index.html by the routing function, so no request reaches the bucket root.
    """
    source = {"StringEquals": {"AWS:SourceArn": distribution_arn}}
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                tls_only_statement(bucket_arn),
                {
                    "Sid": "AllowCloudFrontOriginAccessControl",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudfront.amazonaws.com"},
                    "Action": "s3:GetObject",
                    "Resource": f"{bucket_arn}/*",
                    "Condition": source,
                },
                {
                    "Sid": "AllowCloudFrontMissingKeysAs404",
                    "Effect": "Allow",
                    "Principal": {"Service": "cloudfront.amazonaws.com"},
                    "Action": "s3:ListBucket",
                    "Resource": bucket_arn,
                    "Condition": source,
                },
            ],
        }
    )


@dataclass(frozen=True)
class _EdgePolicies:
    """What the distribution's cache behaviours reference."""

    origin_access: aws.cloudfront.OriginAccessControl
    immutable_cache: aws.cloudfront.CachePolicy
    page_headers: aws.cloudfront.ResponseHeadersPolicy
    asset_headers: aws.cloudfront.ResponseHeadersPolicy
    spa_routing: aws.cloudfront.Function


class Frontend(Component):
    bucket: aws.s3.Bucket
    bucket_name: pulumi.Output[str]
    distribution: aws.cloudfront.Distribution
    distribution_id: pulumi.Output[str]
    distribution_arn: pulumi.Output[str]
    domain_name: pulumi.Output[str]
    """Where users reach the SPA: the custom host when a domain is set, else the CloudFront host."""
    url: pulumi.Output[str]
    certificate: Certificate | None
    log_bucket: aws.s3.Bucket | None

    def __init__(self, name: str, args: FrontendArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Frontend", name, naming, opts)
        self.args = args
        spa = self._spa_bucket()
        self.bucket = spa.bucket
        self.log_bucket = None
        log_dependencies: list[pulumi.Resource] = []
        if args.settings.access_logs:
            self.log_bucket, log_dependencies = self._log_bucket(args.settings, naming)
        self.certificate = self._certificate()
        self.distribution = self._distribution(self._edge_policies(), log_dependencies)
        self._bucket_policy(spa)
        self._alias_records()
        self._export()

    # ------------------------------------------------------------------------------------------- steps

    def _spa_bucket(self) -> _PrivateBucket:
        """The build output's bucket. It holds only what the deploy uploads (rebuilt from git every time), so
        destroying the stack may empty it."""
        spa = self._private_bucket("bucket", self.naming.bucket_prefix("frontend"), force_destroy=True)
        aws.s3.BucketOwnershipControls(
            self.child_name("bucket-ownership"),
            bucket=spa.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),  # no ACLs at all
            opts=self.opts(),
        )
        aws.s3.BucketLifecycleConfiguration(
            self.child_name("bucket-lifecycle"),
            bucket=spa.bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-replaced-builds",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
                    # Versioning keeps every overwritten index.html; a month is enough to roll back by hand.
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=30
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                )
            ],
            opts=self.opts(depends_on=[spa.versioning]),
        )
        return spa

    def _certificate(self) -> Certificate | None:
        """An ACM certificate for the custom host, issued in us-east-1 (the only region CloudFront reads)."""
        domain = self.args.domain
        if domain is None:
            return None
        certificate_opts = (
            pulumi.ResourceOptions(parent=self, provider=self.args.certificate_provider)
            if self.args.certificate_provider is not None
            else self.opts()
        )
        return Certificate(
            self.child_name("cert"),
            CertificateArgs(domain_name=domain.frontend_fqdn, hosted_zone_id=domain.hosted_zone_id),
            self.naming,
            certificate_opts,
        )

    def _edge_policies(self) -> _EdgePolicies:
        """Origin access, cache and response-header policies and the routing function. CloudFront names are
        unique per account (not per region), hence `account_wide` names."""
        naming = self.naming
        origin_access = aws.cloudfront.OriginAccessControl(
            self.child_name("oac"),
            name=naming.account_wide("frontend-oac", max_length=64),
            description="CloudFront signs every request to the SPA bucket (SigV4)",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=self.opts(),
        )
        immutable_cache = aws.cloudfront.CachePolicy(
            self.child_name("immutable-cache"),
            name=naming.account_wide("frontend-immutable", max_length=128),
            comment="Content-hashed build output: a changed file gets a new name, so a year at the edge is safe",
            # Custom rather than the managed CachingOptimized: that one keeps an object only a day when the
            # origin sends no Cache-Control (a file uploaded by hand); here a year applies either way.
            min_ttl=0,
            default_ttl=ONE_YEAR_SECONDS,
            max_ttl=ONE_YEAR_SECONDS,
            parameters_in_cache_key_and_forwarded_to_origin=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginArgs(
                # Nothing varies the bytes of a hashed file, so nothing but the encoding enters the cache key.
                cookies_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginCookiesConfigArgs(
                    cookie_behavior="none"
                ),
                headers_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginHeadersConfigArgs(
                    header_behavior="none"
                ),
                query_strings_config=aws.cloudfront.CachePolicyParametersInCacheKeyAndForwardedToOriginQueryStringsConfigArgs(
                    query_string_behavior="none"
                ),
                enable_accept_encoding_gzip=True,
                enable_accept_encoding_brotli=True,
            ),
            opts=self.opts(),
        )
        # Cache-Control below is a fallback (override=False): the deploy script sets it per file.
        page_headers = self._headers_policy(
            "page-headers",
            "frontend-pages",
            "Security headers; pages revalidate on every load",
            REVALIDATE_CACHE_CONTROL,
        )
        asset_headers = self._headers_policy(
            "asset-headers",
            "frontend-assets",
            "Security headers; hashed assets immutable in browsers",
            IMMUTABLE_CACHE_CONTROL,
        )
        spa_routing = aws.cloudfront.Function(
            self.child_name("spa-routing"),
            # Function names: up to 64 letters, digits, hyphens and underscores, unique per account.
            name=naming.account_wide("frontend-spa-routing", max_length=64),
            runtime=SPA_ROUTING_RUNTIME,
            comment="Extension-less paths are SPA routes: serve /index.html; files pass through (404 stays 404)",
            code=SPA_ROUTING_CODE,
            # Publish on every change: the distribution uses the LIVE stage's ARN.
            publish=True,
            opts=self.opts(),
        )
        return _EdgePolicies(origin_access, immutable_cache, page_headers, asset_headers, spa_routing)

    def _headers_policy(
        self, part: str, physical_part: str, comment: str, cache_control: str
    ) -> aws.cloudfront.ResponseHeadersPolicy:
        return aws.cloudfront.ResponseHeadersPolicy(
            self.child_name(part),
            name=self.naming.account_wide(physical_part, max_length=128),
            comment=comment,
            security_headers_config=security_headers(self.args.settings.content_security_policy),
            custom_headers_config=aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigArgs(
                items=[
                    aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(
                        header="Cache-Control", value=cache_control, override=False
                    )
                ]
            ),
            opts=self.opts(),
        )

    def _viewer_certificate(self) -> aws.cloudfront.DistributionViewerCertificateArgs:
        if self.certificate is not None:
            return aws.cloudfront.DistributionViewerCertificateArgs(
                acm_certificate_arn=self.certificate.arn,
                ssl_support_method="sni-only",  # a dedicated-IP certificate costs 600 USD/month
                minimum_protocol_version="TLSv1.2_2021",
            )
        # The *.cloudfront.net certificate; CloudFront then fixes the minimum at TLSv1 and ignores ours.
        return aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True)

    def _distribution(
        self, policies: _EdgePolicies, log_dependencies: list[pulumi.Resource]
    ) -> aws.cloudfront.Distribution:
        """The CDN. No custom error responses: they apply to every 403/404 of the distribution, WAF's blocks
        included, and would answer a blocked client with "200 + index.html". SPA routes are rewritten before
        the origin by the viewer-request function instead, on the default behaviour only (hashed assets
        always have an extension)."""
        settings = self.args.settings
        domain = self.args.domain
        logging_config = None
        if self.log_bucket is not None:
            logging_config = aws.cloudfront.DistributionLoggingConfigArgs(
                bucket=self.log_bucket.bucket_domain_name, prefix=LOG_PREFIX, include_cookies=False
            )
        return aws.cloudfront.Distribution(
            self.child_name("cdn"),
            enabled=True,
            comment=f"{self.naming.prefix} SPA",
            aliases=[domain.frontend_fqdn] if domain is not None else None,
            default_root_object="index.html",
            http_version="http2and3",
            is_ipv6_enabled=True,
            price_class=settings.price_class,
            web_acl_id=self.args.web_acl_arn,
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=SPA_ORIGIN_ID,
                    domain_name=self.bucket.bucket_regional_domain_name,
                    origin_access_control_id=policies.origin_access.id,
                )
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=SPA_ORIGIN_ID,
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS"],
                cached_methods=["GET", "HEAD"],
                compress=True,
                cache_policy_id=CACHING_DISABLED_POLICY_ID,
                response_headers_policy_id=policies.page_headers.id,
                function_associations=[
                    aws.cloudfront.DistributionDefaultCacheBehaviorFunctionAssociationArgs(
                        event_type="viewer-request", function_arn=policies.spa_routing.arn
                    )
                ],
            ),
            ordered_cache_behaviors=[
                aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
                    path_pattern=pattern,
                    target_origin_id=SPA_ORIGIN_ID,
                    viewer_protocol_policy="redirect-to-https",
                    allowed_methods=["GET", "HEAD", "OPTIONS"],
                    cached_methods=["GET", "HEAD"],
                    compress=True,
                    cache_policy_id=policies.immutable_cache.id,
                    response_headers_policy_id=policies.asset_headers.id,
                )
                for pattern in settings.immutable_paths
            ],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")
            ),
            viewer_certificate=self._viewer_certificate(),
            logging_config=logging_config,
            tags={"Name": self.naming.physical("frontend")},
            opts=self.opts(depends_on=log_dependencies),
        )

    def _bucket_policy(self, spa: _PrivateBucket) -> None:
        aws.s3.BucketPolicy(
            self.child_name("bucket-policy"),
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, self.distribution.arn).apply(
                lambda arns: spa_bucket_policy(arns[0], arns[1])
            ),
            # S3 rejects a policy while Block Public Policy is being applied concurrently; order them.
            opts=self.opts(depends_on=[spa.public_access_block]),
        )

    def _alias_records(self) -> None:
        domain = self.args.domain
        if domain is None or domain.hosted_zone_id is None:
            return
        for record_type in ("A", "AAAA"):
            aws.route53.Record(
                self.child_name("alias", record_type.lower()),
                zone_id=domain.hosted_zone_id,
                name=domain.frontend_fqdn,
                type=record_type,
                aliases=[
                    aws.route53.RecordAliasArgs(
                        name=self.distribution.domain_name,
                        zone_id=self.distribution.hosted_zone_id,
                        evaluate_target_health=False,  # CloudFront cannot be health-evaluated by Route 53
                    )
                ],
                opts=self.opts(),
            )

    def _export(self) -> None:
        self.bucket_name = self.bucket.bucket
        self.distribution_id = self.distribution.id
        self.distribution_arn = self.distribution.arn
        domain = self.args.domain
        self.domain_name = (
            pulumi.Output.from_input(domain.frontend_fqdn) if domain is not None else self.distribution.domain_name
        )
        self.url = self.domain_name.apply(lambda host: f"https://{host}")
        self.register_outputs(
            {
                "bucketName": self.bucket_name,
                "distributionId": self.distribution_id,
                "distributionArn": self.distribution_arn,
                "url": self.url,
            }
        )

    # -------------------------------------------------------------------------------------------------------

    def _private_bucket(self, part: str, bucket_prefix: str, force_destroy: bool) -> _PrivateBucket:
        """A bucket with every public-access block, default encryption and versioning. Named from a prefix:
        S3 names are global across all accounts (infra/naming.py)."""
        bucket = aws.s3.Bucket(
            self.child_name(part),
            bucket_prefix=bucket_prefix,
            force_destroy=force_destroy,
            tags={"Name": bucket_prefix.rstrip("-")},
            opts=self.opts(),
        )
        public_access_block = block_public_access(self, self.child_name(part, "public-access"), bucket.id)
        # SSE-S3: CloudFront legacy log delivery cannot write to SSE-KMS buckets without a key policy for it, and
        # the SPA files are public through the CDN anyway.
        encrypt_with_s3_keys(self, self.child_name(part, "encryption"), bucket.id)
        versioning = aws.s3.BucketVersioning(
            self.child_name(part, "versioning"),
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=self.opts(),
        )
        return _PrivateBucket(bucket, public_access_block, versioning)

    def _log_bucket(self, settings: FrontendConfig, naming: Naming) -> tuple[aws.s3.Bucket, list[pulumi.Resource]]:
        """Where CloudFront standard logs land.

        Standard logging (legacy), not v2 (CloudWatch vended-log delivery): it is one property on the
        distribution, and it is what AWS Config's cloudfront-accesslogs-enabled and Security Hub
        CloudFront.5 check. Its price: the bucket must accept ACLs, because CloudFront's log-delivery
        account (awslogsdelivery) writes through an ACL grant. So this bucket, and only this one, uses
        BucketOwnerPreferred (objects written with bucket-owner-full-control become ours) and grants
        FULL_CONTROL to that account; public-access blocks still forbid any public ACL.

        Returns the bucket and what the distribution must wait for (CloudFront refuses a log bucket whose
        ACLs are not enabled yet).
        """
        # Prod: no force_destroy, access logs are evidence and `pulumi destroy` stops until someone empties the
        # bucket. Staging is destroyed and re-created routinely, so its logs may go with it.
        logs = self._private_bucket(
            "logs", naming.bucket_prefix("frontend-logs"), force_destroy=self.args.force_destroy_logs
        )
        bucket = logs.bucket
        ownership = aws.s3.BucketOwnershipControls(
            self.child_name("logs-ownership"),
            bucket=bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerPreferred"),
            opts=self.opts(),
        )
        owner = aws.s3.get_canonical_user_id(opts=pulumi.InvokeOptions(parent=self))
        log_delivery = aws.cloudfront.get_log_delivery_canonical_user_id(opts=pulumi.InvokeOptions(parent=self))
        acl = aws.s3.BucketAcl(
            self.child_name("logs-acl"),
            bucket=bucket.id,
            access_control_policy=aws.s3.BucketAclAccessControlPolicyArgs(
                owner=aws.s3.BucketAclAccessControlPolicyOwnerArgs(id=owner.id),
                grants=[
                    aws.s3.BucketAclAccessControlPolicyGrantArgs(
                        grantee=aws.s3.BucketAclAccessControlPolicyGrantGranteeArgs(type="CanonicalUser", id=owner.id),
                        permission="FULL_CONTROL",
                    ),
                    aws.s3.BucketAclAccessControlPolicyGrantArgs(
                        grantee=aws.s3.BucketAclAccessControlPolicyGrantGranteeArgs(
                            type="CanonicalUser", id=log_delivery.id
                        ),
                        permission="FULL_CONTROL",
                    ),
                ],
            ),
            opts=self.opts(depends_on=[ownership, logs.public_access_block]),
        )
        aws.s3.BucketLifecycleConfiguration(
            self.child_name("logs-lifecycle"),
            bucket=bucket.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=LOG_PREFIX),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=settings.log_retention_days),
                    # Versioning guards logs against a stray delete; the copies it keeps go a week later.
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=7
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=7
                    ),
                )
            ],
            opts=self.opts(),
        )
        aws.s3.BucketPolicy(
            self.child_name("logs-policy"),
            bucket=bucket.id,
            policy=bucket.arn.apply(
                lambda arn: json.dumps({"Version": "2012-10-17", "Statement": [tls_only_statement(arn)]})
            ),
            opts=self.opts(depends_on=[logs.public_access_block]),
        )
        return bucket, [ownership, acl]

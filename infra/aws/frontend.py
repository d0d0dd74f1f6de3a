"""Frontend: the SPA in a private S3 bucket, served by CloudFront through Origin Access Control.

What a request meets, in order:
- viewer: HTTPS only (HTTP is redirected), TLS 1.2 (2021 ciphers) or newer with our ACM certificate when a
  domain is set, HTTP/2 and HTTP/3, IPv6, optionally the WAF web ACL;
- cache behaviours: content-hashed build output (`frontend.immutablePaths`, default `/assets/*`) is cached
  for a year and marked immutable; everything else, index.html first, is never held at the edge, so a deploy
  is visible on the next page load;
- origin: the bucket, which answers CloudFront alone (bucket policy bound to this distribution's ARN);
- every response: HSTS, CSP, nosniff, frame DENY, strict referrer policy (response headers policy).

SPA routing: the browser asks for `/orders/42`, which is no object. Behind OAC without s3:ListBucket, S3
answers a missing key with 403 (not 404 — it will not reveal whether a key exists to a caller that cannot
list), so both 403 and 404 are turned into `/index.html` with status 200 and the client router takes over.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

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
    """TLS only; objects readable by CloudFront on behalf of this one distribution, nobody else.

    No s3:ListBucket on purpose: listing would let anyone enumerate the build through the CDN (and would turn
    missing keys into 404s, which the error responses handle either way).
    """
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
                    "Condition": {"StringEquals": {"AWS:SourceArn": distribution_arn}},
                },
            ],
        }
    )


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
        settings = args.settings
        account_id = aws.get_caller_identity(opts=pulumi.InvokeOptions(parent=self)).account_id
        # Bucket names are global across all AWS accounts: the account id keeps ours from colliding.
        # The SPA bucket holds only build output, rebuilt from git on every deploy: destroying the stack may
        # empty it.
        spa = self._private_bucket("bucket", f"{naming.physical('frontend')}-{account_id}", force_destroy=True)
        self.bucket = spa.bucket
        aws.s3.BucketOwnershipControls(
            self.child_name("bucket-ownership"),
            bucket=self.bucket.id,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),  # no ACLs at all
            opts=self.opts(),
        )
        aws.s3.BucketLifecycleConfiguration(
            self.child_name("bucket-lifecycle"),
            bucket=self.bucket.id,
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

        self.log_bucket = None
        log_dependencies: list[pulumi.Resource] = []
        if settings.access_logs:
            self.log_bucket, log_dependencies = self._log_bucket(settings, naming, account_id)

        self.certificate = None
        aliases: list[str] = []
        if args.domain is not None:
            aliases = [args.domain.frontend_fqdn]
            certificate_opts = (
                pulumi.ResourceOptions(parent=self, provider=args.certificate_provider)
                if args.certificate_provider is not None
                else self.opts()
            )
            self.certificate = Certificate(
                self.child_name("cert"),
                CertificateArgs(domain_name=args.domain.frontend_fqdn, hosted_zone_id=args.domain.hosted_zone_id),
                naming,
                certificate_opts,
            )

        origin_access = aws.cloudfront.OriginAccessControl(
            self.child_name("oac"),
            name=naming.physical("frontend-oac"),
            description="CloudFront signs every request to the SPA bucket (SigV4)",
            origin_access_control_origin_type="s3",
            signing_behavior="always",
            signing_protocol="sigv4",
            opts=self.opts(),
        )
        immutable_cache = aws.cloudfront.CachePolicy(
            self.child_name("immutable-cache"),
            name=naming.physical("frontend-immutable"),
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
        headers = security_headers(settings.content_security_policy)
        # Cache-Control below is a fallback (override=False): the deploy script sets it per file, and an
        # error response (index.html served for a missing key) keeps its own no-cache rather than turning
        # into a year-long immutable entry in a browser.
        page_headers = aws.cloudfront.ResponseHeadersPolicy(
            self.child_name("page-headers"),
            name=naming.physical("frontend-pages"),
            comment="Security headers; pages revalidate on every load",
            security_headers_config=headers,
            custom_headers_config=aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigArgs(
                items=[
                    aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(
                        header="Cache-Control", value=REVALIDATE_CACHE_CONTROL, override=False
                    )
                ]
            ),
            opts=self.opts(),
        )
        asset_headers = aws.cloudfront.ResponseHeadersPolicy(
            self.child_name("asset-headers"),
            name=naming.physical("frontend-assets"),
            comment="Security headers; hashed assets immutable in browsers",
            security_headers_config=headers,
            custom_headers_config=aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigArgs(
                items=[
                    aws.cloudfront.ResponseHeadersPolicyCustomHeadersConfigItemArgs(
                        header="Cache-Control", value=IMMUTABLE_CACHE_CONTROL, override=False
                    )
                ]
            ),
            opts=self.opts(),
        )

        if self.certificate is not None:
            viewer_certificate = aws.cloudfront.DistributionViewerCertificateArgs(
                acm_certificate_arn=self.certificate.arn,
                ssl_support_method="sni-only",  # a dedicated-IP certificate costs 600 USD/month
                minimum_protocol_version="TLSv1.2_2021",
            )
        else:
            # The *.cloudfront.net certificate; CloudFront then fixes the minimum at TLSv1 and ignores ours.
            viewer_certificate = aws.cloudfront.DistributionViewerCertificateArgs(cloudfront_default_certificate=True)

        logging_config = None
        if self.log_bucket is not None:
            logging_config = aws.cloudfront.DistributionLoggingConfigArgs(
                bucket=self.log_bucket.bucket_domain_name, prefix=LOG_PREFIX, include_cookies=False
            )

        self.distribution = aws.cloudfront.Distribution(
            self.child_name("cdn"),
            enabled=True,
            comment=f"{naming.prefix} SPA",
            aliases=aliases or None,
            default_root_object="index.html",
            http_version="http2and3",
            is_ipv6_enabled=True,
            price_class=settings.price_class,
            web_acl_id=args.web_acl_arn,
            origins=[
                aws.cloudfront.DistributionOriginArgs(
                    origin_id=SPA_ORIGIN_ID,
                    domain_name=self.bucket.bucket_regional_domain_name,
                    origin_access_control_id=origin_access.id,
                )
            ],
            default_cache_behavior=aws.cloudfront.DistributionDefaultCacheBehaviorArgs(
                target_origin_id=SPA_ORIGIN_ID,
                viewer_protocol_policy="redirect-to-https",
                allowed_methods=["GET", "HEAD", "OPTIONS"],
                cached_methods=["GET", "HEAD"],
                compress=True,
                cache_policy_id=CACHING_DISABLED_POLICY_ID,
                response_headers_policy_id=page_headers.id,
            ),
            ordered_cache_behaviors=[
                aws.cloudfront.DistributionOrderedCacheBehaviorArgs(
                    path_pattern=pattern,
                    target_origin_id=SPA_ORIGIN_ID,
                    viewer_protocol_policy="redirect-to-https",
                    allowed_methods=["GET", "HEAD", "OPTIONS"],
                    cached_methods=["GET", "HEAD"],
                    compress=True,
                    cache_policy_id=immutable_cache.id,
                    response_headers_policy_id=asset_headers.id,
                )
                for pattern in settings.immutable_paths
            ],
            custom_error_responses=[
                aws.cloudfront.DistributionCustomErrorResponseArgs(
                    error_code=code,
                    response_code=200,
                    response_page_path="/index.html",
                    # The edge caches an error response under the requested path (/orders/42), which the
                    # deploy's /index.html invalidation does not reach; caching it 0 s keeps deep links on
                    # the new build right after a deploy.
                    error_caching_min_ttl=0,
                )
                for code in (403, 404)
            ],
            restrictions=aws.cloudfront.DistributionRestrictionsArgs(
                geo_restriction=aws.cloudfront.DistributionRestrictionsGeoRestrictionArgs(restriction_type="none")
            ),
            viewer_certificate=viewer_certificate,
            logging_config=logging_config,
            tags={"Name": naming.physical("frontend")},
            opts=self.opts(depends_on=log_dependencies),
        )

        aws.s3.BucketPolicy(
            self.child_name("bucket-policy"),
            bucket=self.bucket.id,
            policy=pulumi.Output.all(self.bucket.arn, self.distribution.arn).apply(
                lambda arns: spa_bucket_policy(arns[0], arns[1])
            ),
            # S3 rejects a policy while Block Public Policy is being applied concurrently; order them.
            opts=self.opts(depends_on=[spa.public_access_block]),
        )

        if args.domain is not None and args.domain.hosted_zone_id is not None:
            for record_type in ("A", "AAAA"):
                aws.route53.Record(
                    self.child_name("alias", record_type.lower()),
                    zone_id=args.domain.hosted_zone_id,
                    name=args.domain.frontend_fqdn,
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

        self.bucket_name = self.bucket.bucket
        self.distribution_id = self.distribution.id
        self.distribution_arn = self.distribution.arn
        self.domain_name = (
            pulumi.Output.from_input(args.domain.frontend_fqdn)
            if args.domain is not None
            else self.distribution.domain_name
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

    def _private_bucket(self, part: str, bucket_name: str, force_destroy: bool) -> _PrivateBucket:
        """A bucket with every public-access block, default encryption and versioning."""
        bucket = aws.s3.Bucket(
            self.child_name(part),
            bucket=bucket_name,
            force_destroy=force_destroy,
            tags={"Name": bucket_name},
            opts=self.opts(),
        )
        public_access_block = aws.s3.BucketPublicAccessBlock(
            self.child_name(part, "public-access"),
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self.opts(),
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            self.child_name(part, "encryption"),
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    # SSE-S3: CloudFront legacy log delivery cannot write to SSE-KMS buckets without a key
                    # policy for it, and the SPA files are public through the CDN anyway.
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="AES256"
                    ),
                )
            ],
            opts=self.opts(),
        )
        versioning = aws.s3.BucketVersioning(
            self.child_name(part, "versioning"),
            bucket=bucket.id,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=self.opts(),
        )
        return _PrivateBucket(bucket, public_access_block, versioning)

    def _log_bucket(
        self, settings: FrontendConfig, naming: Naming, account_id: str
    ) -> tuple[aws.s3.Bucket, list[pulumi.Resource]]:
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
        # No force_destroy: access logs are evidence; `pulumi destroy` stops until someone empties the bucket.
        logs = self._private_bucket("logs", f"{naming.physical('frontend-logs')}-{account_id}", force_destroy=False)
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

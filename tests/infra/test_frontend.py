"""The SPA on S3 + CloudFront, read from the resources the real program registers for both stacks.

staging: no domain (CloudFront host and default certificate), no access logs.
prod:    app.example.com in a Route 53 zone (ACM in us-east-1, alias records), access logs on.
Variants: a domain without a zone, another region (the us-east-1 provider for the certificate), custom
settings (CSP, price class, immutable paths, log retention).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from infra.aws.frontend import SPA_ROUTING_FILE
from infra.config import ConfigError
from infra.harness import Resource, StackRun
from tests.infra.conftest import evaluate

DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
BUCKET = "aws:s3/bucket:Bucket"
OAC = "aws:cloudfront/originAccessControl:OriginAccessControl"
CACHE_POLICY = "aws:cloudfront/cachePolicy:CachePolicy"
HEADERS_POLICY = "aws:cloudfront/responseHeadersPolicy:ResponseHeadersPolicy"
FUNCTION = "aws:cloudfront/function:Function"
CERTIFICATE = "aws:acm/certificate:Certificate"
VALIDATION = "aws:acm/certificateValidation:CertificateValidation"
RECORD = "aws:route53/record:Record"
PROVIDER = "pulumi:providers:aws"

CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
LOG_DELIVERY_CANONICAL_ID = "c4c1ede66af53448b93c283ce9448c4ba468c9432aa01d700d3878632f77d2d0"
ONE_YEAR = 31_536_000


@pytest.fixture(scope="module")
def zoneless() -> StackRun:
    """Staging with a domain but no hosted zone, plus every frontend setting changed from its default."""
    return evaluate(
        "staging",
        config_overrides={
            "shipyard:domain": {"name": "example.com", "frontendHost": "shop"},
            "shipyard:frontend": {
                "priceClass": "PriceClass_All",
                "contentSecurityPolicy": "default-src 'self'; connect-src 'self' https://api.example.com",
                "immutablePaths": ["/static/*", "/fonts/*"],
                "accessLogs": True,
                "logRetentionDays": 30,
            },
        },
    )


@pytest.fixture(scope="module")
def eu_prod() -> StackRun:
    return evaluate("prod", config_overrides={"aws:region": "eu-west-1"})


def _distribution(run: StackRun) -> Resource:
    return run.one(DISTRIBUTION)


def _bucket_part(run: StackRun, type_: str, name: str) -> dict[str, Any]:
    return run.one(type_, name).inputs


def _behaviours(run: StackRun) -> list[dict[str, Any]]:
    inputs = _distribution(run).inputs
    return [inputs["defaultCacheBehavior"], *inputs.get("orderedCacheBehaviors", [])]


def _provider_region(run: StackRun, resource: Resource) -> str:
    assert resource.provider is not None
    provider_urn = resource.provider.split("::" + resource.provider.rsplit("::", 1)[1])[0]
    return str(run.by_urn(provider_urn).inputs["region"])


def _by_id(run: StackRun, type_: str, resource_id: str) -> Resource:
    (found,) = [r for r in run.of_type(type_) if r.id == resource_id]
    return found


# ---------------------------------------------------------------------------------------------------------
# The bucket
# ---------------------------------------------------------------------------------------------------------


def test_spa_bucket_is_private_encrypted_versioned_and_owner_enforced(any_stack: StackRun) -> None:
    bucket = any_stack.one(BUCKET, "frontend-bucket")
    # Autonamed from a prefix: S3 names are global across accounts (infra/naming.py).
    assert "bucket" not in bucket.inputs
    assert bucket.inputs["bucketPrefix"] == f"shipyard-{any_stack.stack}-frontend-"
    assert bucket.outputs["bucket"].startswith(bucket.inputs["bucketPrefix"])
    block = _bucket_part(
        any_stack, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "frontend-bucket-public-access"
    )
    assert block["bucket"] == bucket.outputs["bucket"]
    for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"):
        assert block[flag] is True, flag
    ownership = _bucket_part(
        any_stack, "aws:s3/bucketOwnershipControls:BucketOwnershipControls", "frontend-bucket-ownership"
    )
    assert ownership["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    encryption = _bucket_part(
        any_stack,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "frontend-bucket-encryption",
    )
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    versioning = _bucket_part(any_stack, "aws:s3/bucketVersioning:BucketVersioning", "frontend-bucket-versioning")
    assert versioning["versioningConfiguration"]["status"] == "Enabled"
    lifecycle = _bucket_part(
        any_stack, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "frontend-bucket-lifecycle"
    )
    (rule,) = lifecycle["rules"]
    assert rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30
    assert rule["abortIncompleteMultipartUpload"]["daysAfterInitiation"] == 7


def test_bucket_policy_is_tls_only_and_readable_only_by_this_distribution(any_stack: StackRun) -> None:
    bucket = any_stack.one(BUCKET, "frontend-bucket")
    policy_resource = any_stack.one("aws:s3/bucketPolicy:BucketPolicy", "frontend-bucket-policy")
    policy = json.loads(policy_resource.inputs["policy"])
    arn = bucket.outputs["arn"]
    deny, allow, list_bucket = policy["Statement"]
    assert deny == {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    distribution_arn = _distribution(any_stack).outputs["arn"]
    assert distribution_arn.startswith("arn:aws:cloudfront::123456789012:distribution/E")
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert allow["Resource"] == f"{arn}/*"
    assert allow["Condition"] == {"StringEquals": {"AWS:SourceArn": distribution_arn}}
    # ListBucket on the bucket (not its objects), for this distribution only: a missing key is then a 404, not
    # a 403 that looks like a WAF block.
    assert list_bucket["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert (list_bucket["Action"], list_bucket["Resource"]) == ("s3:ListBucket", arn)
    assert list_bucket["Condition"] == {"StringEquals": {"AWS:SourceArn": distribution_arn}}
    # The policy waits for the public-access block (S3 rejects policies while it is being applied).
    block = any_stack.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "frontend-bucket-public-access")
    assert block.urn in policy_resource.depends_on


def test_cloudfront_reads_the_bucket_through_origin_access_control(any_stack: StackRun) -> None:
    oac = any_stack.one(OAC)
    assert oac.inputs["originAccessControlOriginType"] == "s3"
    assert oac.inputs["signingBehavior"] == "always"
    assert oac.inputs["signingProtocol"] == "sigv4"
    (origin,) = _distribution(any_stack).inputs["origins"]
    assert origin["originAccessControlId"] == oac.id
    bucket = any_stack.one(BUCKET, "frontend-bucket")
    assert origin["domainName"] == bucket.outputs["bucketRegionalDomainName"]
    assert "s3OriginConfig" not in origin and "customOriginConfig" not in origin  # no legacy OAI, no website


# ---------------------------------------------------------------------------------------------------------
# The distribution
# ---------------------------------------------------------------------------------------------------------


def test_no_custom_error_response_swallows_a_403_or_404(any_stack: StackRun) -> None:
    """Custom error responses apply to every 403/404 of the distribution, WAF's blocks included: none may
    turn them into a page (they used to map both to 200 + /index.html)."""
    inputs = _distribution(any_stack).inputs
    assert inputs["defaultRootObject"] == "index.html"
    swallowing = [r for r in inputs.get("customErrorResponses") or [] if r["errorCode"] in (403, 404, 429)]
    assert swallowing == []


def test_spa_routing_is_a_viewer_request_function_on_the_default_behaviour_only(any_stack: StackRun) -> None:
    function = any_stack.one(FUNCTION)
    assert function.inputs["runtime"] == "cloudfront-js-2.0"
    assert function.inputs["code"] == SPA_ROUTING_FILE.read_text()
    assert function.inputs["publish"] is True  # the distribution runs the LIVE stage
    assert function.inputs["name"] == f"shipyard-{any_stack.stack}-us-east-1-frontend-spa-routing"
    default, *ordered = _behaviours(any_stack)
    assert default["functionAssociations"] == [{"eventType": "viewer-request", "functionArn": function.outputs["arn"]}]
    # Hashed assets always have an extension: their behaviours need no rewrite (a missing one is a 404).
    assert ordered and all(not b.get("functionAssociations") for b in ordered)


def _run_spa_routing(tmp_path: Path, uris: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Run the function's own source with node on viewer-request events shaped as CloudFront sends them
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html)."""
    events = [
        {
            "version": "1.0",
            "context": {"eventType": "viewer-request"},
            "viewer": {"ip": "198.51.100.7"},
            "request": {"method": "GET", "uri": uri, "querystring": query, "headers": {}, "cookies": {}},
        }
        for uri, query in uris
    ]
    script = tmp_path / "run.js"
    script.write_text(
        SPA_ROUTING_FILE.read_text()
        + "\nconst events = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        + "\nprocess.stdout.write(JSON.stringify(events.map(handler)));\n"
    )
    node = shutil.which("node")
    assert node is not None, "node is needed to run the CloudFront Function's JavaScript"
    done = subprocess.run(
        [node, str(script)], input=json.dumps(events), capture_output=True, text=True, timeout=30, check=True
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/", "/index.html"),
        ("/orders/12", "/index.html"),
        ("/orders/12/", "/index.html"),
        ("/settings", "/index.html"),
        ("/index.html", "/index.html"),
        ("/assets/app.1234.js", "/assets/app.1234.js"),
        ("/assets/missing.css", "/assets/missing.css"),
        ("/favicon.ico", "/favicon.ico"),
        ("/robots.txt", "/robots.txt"),
        ("/.well-known/x", "/.well-known/x"),
        ("/.well-known/security.txt", "/.well-known/security.txt"),
    ],
)
def test_spa_routing_function_rewrites_only_extensionless_paths(tmp_path: Path, uri: str, expected: str) -> None:
    (request,) = _run_spa_routing(tmp_path, [(uri, {})])
    assert request["uri"] == expected
    assert request["method"] == "GET"


def test_spa_routing_function_keeps_the_query_string(tmp_path: Path) -> None:
    query = {"tab": {"value": "items"}, "utm_source": {"value": "mail", "multiValue": [{"value": "mail"}]}}
    route, asset = _run_spa_routing(tmp_path, [("/orders/12", query), ("/assets/app.1234.js", {"v": {"value": "2"}})])
    assert (route["uri"], route["querystring"]) == ("/index.html", query)
    assert (asset["uri"], asset["querystring"]) == ("/assets/app.1234.js", {"v": {"value": "2"}})


def test_https_only_http2_and_3_ipv6_and_compression(any_stack: StackRun) -> None:
    inputs = _distribution(any_stack).inputs
    assert inputs["enabled"] is True
    assert inputs["httpVersion"] == "http2and3"
    assert inputs["isIpv6Enabled"] is True
    for behaviour in _behaviours(any_stack):
        assert behaviour["viewerProtocolPolicy"] == "redirect-to-https"
        assert behaviour["compress"] is True
        assert behaviour["targetOriginId"] == inputs["origins"][0]["originId"]


def test_index_html_is_never_cached_and_hashed_assets_are_cached_a_year(any_stack: StackRun) -> None:
    default, *ordered = _behaviours(any_stack)
    assert default["cachePolicyId"] == CACHING_DISABLED
    (assets,) = ordered
    assert assets["pathPattern"] == "/assets/*"
    policy = _by_id(any_stack, CACHE_POLICY, assets["cachePolicyId"]).inputs
    assert policy["defaultTtl"] == ONE_YEAR and policy["maxTtl"] == ONE_YEAR
    key = policy["parametersInCacheKeyAndForwardedToOrigin"]
    assert key["cookiesConfig"]["cookieBehavior"] == "none"
    assert key["headersConfig"]["headerBehavior"] == "none"
    assert key["queryStringsConfig"]["queryStringBehavior"] == "none"
    assert key["enableAcceptEncodingGzip"] is True and key["enableAcceptEncodingBrotli"] is True
    # Browsers: assets immutable, pages revalidated; a fallback that never overrides what the deploy set.
    asset_headers = _by_id(any_stack, HEADERS_POLICY, assets["responseHeadersPolicyId"]).inputs
    page_headers = _by_id(any_stack, HEADERS_POLICY, default["responseHeadersPolicyId"]).inputs
    assert asset_headers["customHeadersConfig"]["items"] == [
        {"header": "Cache-Control", "value": "public, max-age=31536000, immutable", "override": False}
    ]
    assert page_headers["customHeadersConfig"]["items"] == [
        {"header": "Cache-Control", "value": "no-cache", "override": False}
    ]


def test_every_response_carries_the_security_headers(any_stack: StackRun) -> None:
    policies = any_stack.of_type(HEADERS_POLICY)
    used = {b["responseHeadersPolicyId"] for b in _behaviours(any_stack)}
    assert used == {p.id for p in policies}  # every behaviour has one, and both policies are in use
    for policy in policies:
        headers = policy.inputs["securityHeadersConfig"]
        assert headers["strictTransportSecurity"] == {
            "accessControlMaxAgeSec": 63_072_000,
            "includeSubdomains": True,
            "preload": True,
            "override": True,
        }
        csp = headers["contentSecurityPolicy"]
        assert csp["override"] is True
        assert csp["contentSecurityPolicy"].startswith("default-src 'self';")
        assert "frame-ancestors 'none'" in csp["contentSecurityPolicy"]
        assert headers["contentTypeOptions"] == {"override": True}
        assert headers["frameOptions"] == {"frameOption": "DENY", "override": True}
        assert headers["referrerPolicy"] == {"referrerPolicy": "strict-origin-when-cross-origin", "override": True}


def test_price_class_comes_from_config(any_stack: StackRun, zoneless: StackRun) -> None:
    assert _distribution(any_stack).inputs["priceClass"] == "PriceClass_100"
    assert _distribution(zoneless).inputs["priceClass"] == "PriceClass_All"


def test_settings_reach_the_distribution(zoneless: StackRun) -> None:
    patterns = [b["pathPattern"] for b in _distribution(zoneless).inputs["orderedCacheBehaviors"]]
    assert patterns == ["/static/*", "/fonts/*"]
    assert zoneless.outputs["frontendImmutablePaths"] == ["/static/*", "/fonts/*"]
    for policy in zoneless.of_type(HEADERS_POLICY):
        csp = policy.inputs["securityHeadersConfig"]["contentSecurityPolicy"]["contentSecurityPolicy"]
        assert csp == "default-src 'self'; connect-src 'self' https://api.example.com"


def test_a_catch_all_immutable_path_is_rejected_naming_the_key() -> None:
    with pytest.raises(ConfigError) as error:
        evaluate("staging", config_overrides={"shipyard:frontend": {"immutablePaths": ["/*"]}})
    assert error.value.problems == [
        "Pulumi.staging.yaml: shipyard:frontend.immutablePaths[0]: '/*' would make every file, index.html "
        "included, immutable; name the hashed-asset folder"
    ]
    assert error.value.registered == []


# ---------------------------------------------------------------------------------------------------------
# Certificates and DNS
# ---------------------------------------------------------------------------------------------------------


def test_staging_without_a_domain_uses_the_cloudfront_host_and_default_certificate(staging: StackRun) -> None:
    inputs = _distribution(staging).inputs
    assert inputs["viewerCertificate"] == {"cloudfrontDefaultCertificate": True}
    assert "aliases" not in inputs
    assert staging.of_type(CERTIFICATE) == [] and staging.of_type(RECORD) == []
    host = _distribution(staging).outputs["domainName"]
    assert host.endswith(".cloudfront.net")
    assert staging.outputs["frontendUrl"] == f"https://{host}"


def test_prod_serves_its_domain_with_a_validated_us_east_1_certificate(prod: StackRun) -> None:
    inputs = _distribution(prod).inputs
    assert inputs["aliases"] == ["app.example.com"]
    certificate = prod.one(CERTIFICATE, "frontend-cert-cert")
    assert certificate.inputs["domainName"] == "app.example.com"
    assert certificate.inputs["validationMethod"] == "DNS"
    validation = prod.one(VALIDATION, "frontend-cert-validation")
    assert validation.inputs["certificateArn"] == certificate.outputs["arn"]
    # The distribution uses the ARN that resolves only after validation, so it never waits on a pending cert.
    assert inputs["viewerCertificate"] == {
        "acmCertificateArn": validation.outputs["certificateArn"],
        "sslSupportMethod": "sni-only",
        "minimumProtocolVersion": "TLSv1.2_2021",
    }
    assert validation.urn in _distribution(prod).depends_on
    assert certificate.outputs["arn"].startswith("arn:aws:acm:us-east-1:")
    # The stack runs in us-east-1, so its one provider is the right one for the certificate.
    assert _provider_region(prod, certificate) == "us-east-1"
    # (The only other provider is the offsite backup region's.)
    assert [p.name for p in prod.of_type(PROVIDER) if p.inputs["region"] == "us-east-1"] == ["aws"]
    assert prod.outputs["frontendUrl"] == "https://app.example.com"


def test_prod_creates_the_validation_record_and_alias_records_in_its_zone(prod: StackRun) -> None:
    certificate = prod.one(CERTIFICATE, "frontend-cert-cert")
    (option,) = certificate.outputs["domainValidationOptions"]
    validation_record = prod.one(RECORD, "frontend-cert-validation-app-example-com").inputs
    assert validation_record["zoneId"] == "Z0123456789EXAMPLE"
    assert (validation_record["name"], validation_record["type"], validation_record["records"]) == (
        option["resourceRecordName"],
        "CNAME",
        [option["resourceRecordValue"]],
    )
    assert prod.one(VALIDATION, "frontend-cert-validation").inputs["validationRecordFqdns"] == [
        option["resourceRecordName"].rstrip(".")
    ]
    distribution = _distribution(prod).outputs
    for record_type in ("A", "AAAA"):
        record = prod.one(RECORD, f"frontend-alias-{record_type.lower()}").inputs
        assert record["zoneId"] == "Z0123456789EXAMPLE"
        assert (record["name"], record["type"]) == ("app.example.com", record_type)
        assert record["aliases"] == [
            {"name": distribution["domainName"], "zoneId": "Z2FDTNDATAQYW2", "evaluateTargetHealth": False}
        ]


def test_outside_us_east_1_the_certificate_goes_through_the_us_east_1_provider(eu_prod: StackRun) -> None:
    providers = {p.name: p for p in eu_prod.of_type(PROVIDER)}
    assert providers["aws"].inputs["region"] == "eu-west-1"
    edge = providers["aws-us-east-1"]
    assert edge.inputs["region"] == "us-east-1"
    assert edge.inputs["defaultTags"] == providers["aws"].inputs["defaultTags"]  # same tags in both regions
    certificate = eu_prod.one(CERTIFICATE, "frontend-cert-cert")
    for resource in [
        certificate,
        eu_prod.one(VALIDATION, "frontend-cert-validation"),
        eu_prod.one(RECORD, "frontend-cert-validation-app-example-com"),
    ]:
        assert resource.provider is not None and resource.provider.startswith(edge.urn + "::"), resource.name
    assert certificate.outputs["arn"].startswith("arn:aws:acm:us-east-1:")
    # Everything else stays in the stack's region.
    for resource in (_distribution(eu_prod), eu_prod.one(BUCKET, "frontend-bucket")):
        assert resource.provider is not None and resource.provider.startswith(providers["aws"].urn + "::")
    assert (
        eu_prod.one(BUCKET, "frontend-bucket")
        .outputs["bucketRegionalDomainName"]
        .endswith(".s3.eu-west-1.amazonaws.com")
    )


def test_a_domain_without_a_zone_reports_the_records_to_create(zoneless: StackRun) -> None:
    certificate = zoneless.one(CERTIFICATE, "frontend-cert-cert")
    assert certificate.inputs["domainName"] == "shop.example.com"
    assert zoneless.of_type(VALIDATION) == [] and zoneless.of_type(RECORD) == []
    viewer = _distribution(zoneless).inputs["viewerCertificate"]
    assert viewer["acmCertificateArn"] == certificate.outputs["arn"]
    assert viewer["minimumProtocolVersion"] == "TLSv1.2_2021"
    (option,) = certificate.outputs["domainValidationOptions"]
    assert zoneless.outputs["frontendCertificateValidationRecords"] == [
        {"name": option["resourceRecordName"], "type": "CNAME", "value": option["resourceRecordValue"]}
    ]
    assert zoneless.outputs["frontendDnsTarget"] == _distribution(zoneless).outputs["domainName"]
    assert zoneless.outputs["frontendUrl"] == "https://shop.example.com"


# ---------------------------------------------------------------------------------------------------------
# Access logs, WAF, outputs, structure
# ---------------------------------------------------------------------------------------------------------


def test_prod_writes_access_logs_to_an_acl_enabled_log_bucket(prod: StackRun) -> None:
    log_bucket = prod.one(BUCKET, "frontend-logs")
    assert log_bucket.inputs["forceDestroy"] is False
    logging = _distribution(prod).inputs["loggingConfig"]
    assert logging == {
        "bucket": log_bucket.outputs["bucketDomainName"],
        "prefix": "cloudfront/",
        "includeCookies": False,
    }
    ownership = prod.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls", "frontend-logs-ownership")
    assert ownership.inputs["rule"]["objectOwnership"] == "BucketOwnerPreferred"
    acl = prod.one("aws:s3/bucketAcl:BucketAcl", "frontend-logs-acl")
    grants = {(g["grantee"]["id"], g["permission"]) for g in acl.inputs["accessControlPolicy"]["grants"]}
    assert (LOG_DELIVERY_CANONICAL_ID, "FULL_CONTROL") in grants
    assert (acl.inputs["accessControlPolicy"]["owner"]["id"], "FULL_CONTROL") in grants
    # CloudFront refuses a log bucket whose ACLs are not enabled yet.
    assert {ownership.urn, acl.urn} <= set(_distribution(prod).depends_on)
    block = _bucket_part(prod, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", "frontend-logs-public-access")
    assert all(
        block[f] is True for f in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    (rule,) = _bucket_part(
        prod, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "frontend-logs-lifecycle"
    )["rules"]
    assert rule["expiration"]["days"] == 90
    assert rule["filter"] == {"prefix": "cloudfront/"}
    policy = json.loads(prod.one("aws:s3/bucketPolicy:BucketPolicy", "frontend-logs-policy").inputs["policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    encryption = _bucket_part(
        prod,
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "frontend-logs-encryption",
    )
    assert encryption["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    assert prod.outputs["frontendLogBucket"] == log_bucket.outputs["bucket"]


def test_log_retention_comes_from_config(zoneless: StackRun) -> None:
    lifecycle = zoneless.one(
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", "frontend-logs-lifecycle"
    )
    assert lifecycle.inputs["rules"][0]["expiration"]["days"] == 30


def test_staging_has_no_access_logs(staging: StackRun) -> None:
    assert "loggingConfig" not in _distribution(staging).inputs
    assert [b.name for b in staging.of_type(BUCKET) if b.name.startswith("frontend")] == ["frontend-bucket"]
    assert staging.of_type("aws:s3/bucketAcl:BucketAcl") == []
    assert "frontendLogBucket" not in staging.outputs


def test_stack_outputs_name_the_bucket_distribution_and_url(any_stack: StackRun) -> None:
    distribution = _distribution(any_stack)
    assert any_stack.outputs["cloudfrontDistributionId"] == distribution.id
    assert any_stack.outputs["frontendBucket"] == any_stack.one(BUCKET, "frontend-bucket").outputs["bucket"]
    assert any_stack.outputs["frontendUrl"].startswith("https://")
    assert any_stack.outputs["frontendImmutablePaths"] == ["/assets/*"]


def test_every_frontend_resource_sits_under_the_component(any_stack: StackRun) -> None:
    component = any_stack.one("shipyard:aws:Frontend")
    frontend_types = (DISTRIBUTION, OAC, CACHE_POLICY, HEADERS_POLICY, CERTIFICATE, VALIDATION, RECORD)
    for resource in any_stack.resources:
        # The API's certificate and alias record (names `api-...`) belong to the load balancer.
        if (resource.type in frontend_types and not resource.name.startswith("api-")) or resource.name.startswith(
            "frontend-"
        ):
            assert resource in any_stack.descendants(component), resource.name
    for certificate in any_stack.of_type(CERTIFICATE):
        if certificate.name.startswith("api-"):
            continue
        owner = any_stack.component_of(certificate)
        assert owner is not None and owner.type == "shipyard:aws:Certificate"
        assert owner.parent == component.urn


def test_the_cloudfront_web_acl_guards_the_distribution_when_waf_is_on(prod: StackRun, staging: StackRun) -> None:
    (acl,) = [a for a in prod.of_type("aws:wafv2/webAcl:WebAcl") if a.inputs["scope"] == "CLOUDFRONT"]
    assert _distribution(prod).inputs["webAclId"] == acl.outputs["arn"]
    assert acl.outputs["arn"] == prod.outputs["wafCloudFrontAclArn"]
    assert "webAclId" not in _distribution(staging).inputs  # waf.enabled is off in staging

"""Answers the Pulumi engine would get from the cloud, for running the program offline.

This stands in for the cloud API only: it echoes a resource's inputs and adds the attributes the provider
would compute (ids, ARNs, endpoints, DNS names) in their real shapes, so code that parses or joins them
(`arn.split(':')`, `f"{endpoint}:5432"`) behaves as it will against AWS and DigitalOcean. Values are
derived from the resource's type and logical name only, so two runs give the same answers (diffable plans).

To teach it a new resource type, add an entry to `_COMPUTED` returning the extra output properties.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks, rpc

ACCOUNT_ID = "123456789012"


def _hex(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


class CloudMocks(Mocks):
    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.calls: list[MockCallArgs] = []
        self.provider_regions: dict[str, str] = {}
        """Explicit providers' regions by resource id (e.g. the us-east-1 one CloudFront certificates need)."""

    # ---------------------------------------------------------------------------------------------- invokes
    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]  # SDK accepts a bare dict
        self.calls.append(args)
        handler = _INVOKES.get(args.token)
        if handler is None:
            raise NotImplementedError(
                f"the offline cloud does not answer invoke {args.token!r}; add it to infra/mock_cloud.py"
            )
        arguments = dict(args.args)
        if handler is _region and not arguments.get("region"):
            # An invoke through an explicit provider (e.g. the offsite one) answers with that provider's region.
            arguments["region"] = self.provider_regions.get((args.provider or "").rpartition("::")[2], self.region)
        return handler(self, arguments)

    # ---------------------------------------------------------------------------------------------- resources
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:
            return "", {}
        state = dict(args.inputs)
        resource_id = args.resource_id or self._id(args.typ, args.name)
        if args.typ in _IDS_FROM_INPUT and args.inputs.get(_IDS_FROM_INPUT[args.typ]):
            resource_id = str(args.inputs[_IDS_FROM_INPUT[args.typ]])
        if args.typ == "pulumi:providers:aws" and args.inputs.get("region"):
            self.provider_regions[resource_id] = str(args.inputs["region"])
        computed = _COMPUTED.get(args.typ)
        if computed is not None:
            state.update(computed(self, args, resource_id))
        if args.typ in _IDS_FROM_STATE:
            # An autonamed resource (bucket_prefix) gets its id from the name the cloud chose.
            resource_id = str(state[_IDS_FROM_STATE[args.typ]])
        if args.typ.startswith("aws:"):
            state.setdefault("arn", self._arn(args.typ, resource_id, self.region_of(args)))
            state.setdefault("tagsAll", {**state.get("tags", {})})
        return resource_id, state

    def _id(self, typ: str, name: str) -> str:
        if typ in _OPAQUE_IDS:
            # Services whose ids are an uppercase letter and 13 characters (CloudFront: E2QWRUHAPOMQZL).
            return _OPAQUE_IDS[typ] + _hex(typ, name, length=13).upper()
        prefix = _ID_PREFIXES.get(typ)
        if prefix:
            return f"{prefix}-{_hex(typ, name)}"
        if typ in _UUID_IDS:
            return _uuid(typ, name)
        return f"{name}-{_hex(typ, name, length=7)}"

    def _arn(self, typ: str, resource_id: str, region: str) -> str:
        service = typ.split(":")[1].split("/")[0]
        kind = typ.split(":")[-1].lower()
        return f"arn:aws:{service}:{region}:{ACCOUNT_ID}:{kind}/{resource_id}"

    def region_of(self, args: MockResourceArgs) -> str:
        """The region a resource lands in: its provider's (a provider reference is `<urn>::<id>`)."""
        provider_id = (args.provider or "").rpartition("::")[2]
        return self.provider_regions.get(provider_id, self.region)

    def arn(self, service: str, resource: str, region: str | None = None) -> str:
        return f"arn:aws:{service}:{self.region if region is None else region}:{ACCOUNT_ID}:{resource}"


_ID_PREFIXES = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/flowLog:FlowLog": "fl",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
}

# Resources whose id is the name the caller chose (an S3 bucket's id is its name).
_IDS_FROM_INPUT = {
    "aws:cloudwatch/metricAlarm:MetricAlarm": "name",
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": "alarmName",
    "aws:cloudwatch/dashboard:Dashboard": "dashboardName",
    "aws:s3/bucket:Bucket": "bucket",
    "aws:s3/bucketV2:BucketV2": "bucket",
    "aws:ses/emailIdentity:EmailIdentity": "email",
}

# Resources whose id is their name, also when the provider chose it (from a prefix).
_IDS_FROM_STATE = {
    "aws:s3/bucket:Bucket": "bucket",
    "aws:s3/bucketV2:BucketV2": "bucket",
}

_OPAQUE_IDS = {
    "aws:cloudfront/distribution:Distribution": "E",
    "aws:cloudfront/originAccessControl:OriginAccessControl": "E",
}


def _uuid(*parts: str) -> str:
    digest = _hex(*parts, length=32)
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


# DigitalOcean identifies apps, database clusters, uptime checks... by UUID.
_UUID_IDS = {
    "aws:backup/plan:Plan",
    "aws:backup/selection:Selection",
    "digitalocean:index/app:App",
    "digitalocean:index/databaseCluster:DatabaseCluster",
    "digitalocean:index/databaseFirewall:DatabaseFirewall",
    "digitalocean:index/uptimeCheck:UptimeCheck",
    "digitalocean:index/uptimeAlert:UptimeAlert",
}


def _availability_zones(mocks: CloudMocks, _args: dict[str, Any]) -> dict[str, Any]:
    suffixes = "abcdef"
    return {
        "names": [f"{mocks.region}{s}" for s in suffixes[:3]],
        "zoneIds": [f"use1-az{i + 1}" for i in range(3)],
        "state": "available",
        "id": mocks.region,
    }


def _caller_identity(_mocks: CloudMocks, _args: dict[str, Any]) -> dict[str, Any]:
    return {
        "accountId": ACCOUNT_ID,
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:user/offline-plan",
        "userId": "AIDAOFFLINEPLAN",
        "id": ACCOUNT_ID,
    }


def _region(mocks: CloudMocks, args: dict[str, Any]) -> dict[str, Any]:
    region = args.get("region") or mocks.region
    return {
        "region": region,
        "name": region,
        "id": region,
        "endpoint": f"ec2.{region}.amazonaws.com",
        "description": region,
    }


def _partition(_mocks: CloudMocks, _args: dict[str, Any]) -> dict[str, Any]:
    return {
        "partition": "aws",
        "dnsSuffix": "amazonaws.com",
        "id": "aws",
        "reverseDnsPrefix": "com.amazonaws",
    }


def _policy_document(_mocks: CloudMocks, args: dict[str, Any]) -> dict[str, Any]:
    """The real invoke renders statements to JSON; do the same so `.json` is never None offline."""
    statements = []
    for statement in args.get("statements", []):
        rendered: dict[str, Any] = {"Effect": statement.get("effect", "Allow")}
        if "actions" in statement:
            rendered["Action"] = statement["actions"]
        if "resources" in statement:
            rendered["Resource"] = statement["resources"]
        for principal in statement.get("principals", []):
            rendered.setdefault("Principal", {})[principal["type"]] = principal["identifiers"]
        for condition in statement.get("conditions", []):
            rendered.setdefault("Condition", {}).setdefault(condition["test"], {})[condition["variable"]] = condition[
                "values"
            ]
        statements.append(rendered)
    document = json.dumps({"Version": "2012-10-17", "Statement": statements})
    return {"json": document, "minifiedJson": document, "id": _hex(document)}


def _ecr_authorization_token(mocks: CloudMocks, args: dict[str, Any]) -> dict[str, Any]:
    """ECR hands out a 12-hour docker login: user `AWS`, a password, and base64("AWS:<password>")."""
    registry = args.get("registryId") or ACCOUNT_ID
    password = f"offline-ecr-password-{_hex(registry, length=12)}"
    return {
        "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
        "userName": "AWS",
        "password": password,
        "proxyEndpoint": f"https://{registry}.dkr.ecr.{mocks.region}.amazonaws.com",
        "expiresAt": "2030-01-01T12:00:00Z",
        "registryId": registry,
        "id": mocks.region,
    }


def _canonical_user_id(_mocks: CloudMocks, _args: dict[str, Any]) -> dict[str, Any]:
    return {"id": _hex("canonical", ACCOUNT_ID, length=64), "displayName": "offline-plan"}


def _log_delivery_canonical_user_id(mocks: CloudMocks, args: dict[str, Any]) -> dict[str, Any]:
    # The awslogsdelivery account's canonical id, the same in every commercial region.
    region = args.get("region") or mocks.region
    return {"id": "c4c1ede66af53448b93c283ce9448c4ba468c9432aa01d700d3878632f77d2d0", "region": region}


def _do_container_registry(_mocks: CloudMocks, args: dict[str, Any]) -> dict[str, Any]:
    name = args["name"]
    return {
        "name": name,
        "id": name,
        "endpoint": f"registry.digitalocean.com/{name}",
        "serverUrl": "registry.digitalocean.com",
        "subscriptionTierSlug": "starter",
        "region": "fra1",
        "storageUsageBytes": 0,
    }


_INVOKES: dict[str, Callable[[CloudMocks, dict[str, Any]], dict[str, Any]]] = {
    "aws:s3/getCanonicalUserId:getCanonicalUserId": _canonical_user_id,
    "aws:cloudfront/getLogDeliveryCanonicalUserId:getLogDeliveryCanonicalUserId": _log_delivery_canonical_user_id,
    "digitalocean:index/getContainerRegistry:getContainerRegistry": _do_container_registry,
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:index/getRegion:getRegion": _region,
    "aws:index/getPartition:getPartition": _partition,
    "aws:iam/getPolicyDocument:getPolicyDocument": _policy_document,
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": _ecr_authorization_token,
}


# ---------------------------------------------------------------------------------------------------------
# Computed attributes per resource type
# ---------------------------------------------------------------------------------------------------------

Computed = Callable[[CloudMocks, MockResourceArgs, str], dict[str, Any]]


def _log_group(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or f"{args.name}-{_hex(args.name, length=7)}"
    # A log group lives in its provider's region (the CloudFront WAF's us-east-1 group of an eu-west-1 stack):
    # a policy or destination built from its ARN must name that region, as it would against AWS.
    return {"name": name, "arn": mocks.arn("logs", f"log-group:{name}", mocks.region_of(args))}


def _iam_role(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or resource_id
    return {
        "name": name,
        "arn": f"arn:aws:iam::{ACCOUNT_ID}:role/{name}",
        "uniqueId": f"AROA{_hex(name).upper()}",
    }


def _vpc(_mocks: CloudMocks, _args: MockResourceArgs, _id: str) -> dict[str, Any]:
    return {
        "defaultSecurityGroupId": f"sg-{_hex('default', _id)}",
        "mainRouteTableId": f"rtb-{_hex('main', _id)}",
    }


def _eip(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    digest = int(_hex(args.name, length=4), 16)
    return {"publicIp": f"203.0.113.{digest % 250 + 1}", "allocationId": _id}


def _sqs_queue(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or f"{args.name}-{_hex(args.name, length=7)}"
    return {
        "name": name,
        "arn": mocks.arn("sqs", name),
        "url": f"https://sqs.{mocks.region}.amazonaws.com/{ACCOUNT_ID}/{name}",
        "id": f"https://sqs.{mocks.region}.amazonaws.com/{ACCOUNT_ID}/{name}",
    }


def _sns_topic(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or f"{args.name}-{_hex(args.name, length=7)}"
    # A topic lives in its provider's region (the us-east-1 edge topics of an eu-west-1 stack, say).
    return {"name": name, "arn": mocks.arn("sns", name, mocks.region_of(args))}


def _lambda_function(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or f"{args.name}-{_hex(args.name, length=7)}"
    arn = mocks.arn("lambda", f"function:{name}")
    return {
        "name": name,
        "arn": arn,
        "qualifiedArn": f"{arn}:$LATEST",
        "invokeArn": f"arn:aws:apigateway:{mocks.region}:lambda:path/2015-03-31/functions/{arn}/invocations",
        "version": "$LATEST",
    }


def _layer_version(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("layerName") or args.name
    return {
        "arn": mocks.arn("lambda", f"layer:{name}:1"),
        "layerArn": mocks.arn("lambda", f"layer:{name}"),
        "version": "1",
    }


def _dynamodb_table(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or f"{args.name}-{_hex(args.name, length=7)}"
    return {"name": name, "arn": mocks.arn("dynamodb", f"table/{name}")}


def _kms_key(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    key_id = (
        f"{_hex(args.name, length=8)}-{_hex(args.name, 'a', length=4)}-{_hex(args.name, 'b', length=4)}-"
        f"{_hex(args.name, 'c', length=4)}-{_hex(args.name, 'd', length=12)}"
    )
    return {"keyId": key_id, "arn": mocks.arn("kms", f"key/{key_id}", mocks.region_of(args))}


def _backup_vault(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    """A vault's id is its name; its ARN says `backup-vault:<name>` in the vault's (provider's) region."""
    name = args.inputs.get("name") or args.name
    return {
        "name": name,
        "id": name,
        "arn": mocks.arn("backup", f"backup-vault:{name}", mocks.region_of(args)),
        "recoveryPoints": 0,
    }


def _backup_plan(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    """Plans are identified by a UUID; `version` is an opaque string AWS Backup changes on every update."""
    return {
        "arn": mocks.arn("backup", f"backup-plan:{resource_id}", mocks.region_of(args)),
        "version": base64.b64encode(_hex("plan-version", args.name, length=24).encode()).decode()[:32],
    }


def _restore_testing_plan(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    """AWS appends a 6-character suffix to a restore testing plan's name in its ARN."""
    name = args.inputs.get("name") or args.name
    return {
        "name": name,
        "id": name,
        "arn": mocks.arn("backup", f"restore-testing-plan:{name}-{_hex(name, length=6)}", mocks.region_of(args)),
    }


def _event_rule(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or args.name
    return {"name": name, "arn": mocks.arn("events", f"rule/{name}", mocks.region_of(args))}


def _ses_email_identity(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    return {"arn": mocks.arn("ses", f"identity/{args.inputs['email']}")}


def _schedule(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or args.name
    return {"name": name, "arn": mocks.arn("scheduler", f"schedule/default/{name}")}


def _acm_certificate(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    """ACM answers one validation option per name; a wildcard shares its base name's CNAME."""
    names = [args.inputs["domainName"], *args.inputs.get("subjectAlternativeNames", [])]
    options = []
    for name in names:
        base = name.removeprefix("*.")
        token = _hex("acm-name", base, length=32)
        target = f"_{_hex('acm-value', base, length=32)}.{_hex('acm', length=10)}.acm-validations.aws."
        options.append(
            {
                "domainName": name,
                "resourceRecordName": f"_{token}.{base}.",
                "resourceRecordType": "CNAME",
                "resourceRecordValue": target,
            }
        )
    uuid = _hex(resource_id, length=32)
    certificate_id = f"{uuid[:8]}-{uuid[8:12]}-{uuid[12:16]}-{uuid[16:20]}-{uuid[20:]}"
    return {
        "arn": mocks.arn("acm", f"certificate/{certificate_id}", mocks.region_of(args)),
        "domainValidationOptions": options,
        "status": "PENDING_VALIDATION",
        "subjectAlternativeNames": names,
    }


def _route53_record(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    return {"fqdn": str(args.inputs["name"]).rstrip(".").lower()}


def _cloudfront_distribution(_mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    return {
        "domainName": f"d{_hex('cloudfront', args.name, length=13)}.cloudfront.net",
        "hostedZoneId": "Z2FDTNDATAQYW2",  # the one zone every CloudFront alias target lives in
        "arn": f"arn:aws:cloudfront::{ACCOUNT_ID}:distribution/{resource_id}",
        "status": "Deployed",
        "etag": f"E{_hex('etag', args.name, length=13).upper()}",
        "callerReference": f"terraform-{_hex('ref', args.name, length=26)}",
    }


def _cloudfront_function(_mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    """CloudFront functions are global: no region in the ARN, the name is the id."""
    name = args.inputs.get("name") or resource_id
    etag = f"E{_hex('etag', name, length=13).upper()}"
    return {"arn": f"arn:aws:cloudfront::{ACCOUNT_ID}:function/{name}", "etag": etag, "liveStageEtag": etag}


def _unique_id(*seed: str) -> str:
    """terraform-provider-aws's `id.PrefixedUniqueId` suffix: 26 characters (a timestamp and a counter), here
    a stable stand-in of the same length and alphabet."""
    return _hex("unique-id", *seed, length=26)


def _s3_bucket(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    prefix = args.inputs.get("bucketPrefix")
    name = args.inputs.get("bucket") or (f"{prefix}{_unique_id(args.name)}" if prefix else resource_id)
    region = mocks.region_of(args)
    return {
        "bucket": name,
        "arn": f"arn:aws:s3:::{name}",
        "bucketDomainName": f"{name}.s3.amazonaws.com",
        "bucketRegionalDomainName": f"{name}.s3.{region}.amazonaws.com",
        "region": region,
        "hostedZoneId": "Z3AQBSTGFYJSTF",
    }


def _ecr_repository(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or resource_id
    return {
        "name": name,
        "arn": mocks.arn("ecr", f"repository/{name}"),
        "registryId": ACCOUNT_ID,
        "repositoryUrl": f"{ACCOUNT_ID}.dkr.ecr.{mocks.region}.amazonaws.com/{name}",
    }


def _docker_image(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    """What pulumi-docker reports after a push: the manifest digest pinned to the repository."""
    image_name = str(args.inputs.get("imageName", args.name))
    repository = image_name.rsplit(":", 1)[0] if ":" in image_name.rsplit("/", 1)[-1] else image_name
    build = args.inputs.get("build") or {}
    outputs = {
        "baseImageName": image_name,
        "registryServer": repository.split("/", 1)[0],
        "repoDigest": f"{repository}@sha256:{_hex('docker-image', image_name, length=64)}",
        "context": build.get("context", "."),
        "dockerfile": build.get("dockerfile", "Dockerfile"),
        "platform": build.get("platform", "linux/amd64"),
    }
    if args.inputs.get("skipPush"):
        del outputs["repoDigest"]  # a local-only build has no registry digest
    return outputs


def _load_balancer(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or args.name[:32]
    suffix = f"app/{name}/{_hex(args.name, length=16)}"
    internal = "internal-" if args.inputs.get("internal") else ""
    return {
        "name": name,
        "arn": mocks.arn("elasticloadbalancing", f"loadbalancer/{suffix}"),
        "arnSuffix": suffix,
        "dnsName": f"{internal}{name}-{int(_hex(args.name, length=8), 16) % 10**10}.{mocks.region}.elb.amazonaws.com",
        "zoneId": "Z35SXDOTRQ7X7K",  # the ELB hosted zone of us-east-1 (alias records point at it)
    }


def _http_api(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    # API ids are 10 lowercase alphanumerics; the default endpoint is https://<id>.execute-api.<region>.amazonaws.com.
    api_id = _hex(args.name, length=10)
    return {
        "apiEndpoint": f"https://{api_id}.execute-api.{mocks.region}.amazonaws.com",
        "arn": mocks.arn("apigateway", f"/apis/{api_id}"),
        "executionArn": f"arn:aws:execute-api:{mocks.region}:{ACCOUNT_ID}:{api_id}",
    }


def _api_domain_name(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    configuration = dict(args.inputs.get("domainNameConfiguration") or {})
    configuration |= {
        "targetDomainName": f"d-{_hex(args.name, length=10)}.execute-api.{mocks.region}.amazonaws.com",
        "hostedZoneId": "Z1UJRXOUMOOFQ8",  # API Gateway's regional zone in us-east-1 (alias records point at it)
    }
    return {"domainNameConfiguration": configuration}


def _discovery_service(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    return {"arn": mocks.arn("servicediscovery", f"service/srv-{_hex(args.name, length=16)}")}


def _target_group(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or args.name[:32]
    suffix = f"targetgroup/{name}/{_hex(args.name, length=16)}"
    return {"name": name, "arn": mocks.arn("elasticloadbalancing", suffix), "arnSuffix": suffix}


def _listener(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    return {"arn": mocks.arn("elasticloadbalancing", f"listener/app/{_hex(args.name, length=16)}")}


def _ecs_cluster(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or resource_id
    return {"name": name, "arn": mocks.arn("ecs", f"cluster/{name}")}


def _ecs_service(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or resource_id
    cluster = str(args.inputs.get("cluster", "cluster")).rsplit("/", 1)[-1]
    return {"name": name, "arn": mocks.arn("ecs", f"service/{cluster}/{name}")}


def _task_definition(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    family = args.inputs.get("family", args.name)
    return {
        "arn": mocks.arn("ecs", f"task-definition/{family}:1"),
        "arnWithoutRevision": mocks.arn("ecs", f"task-definition/{family}"),
        "revision": 1,
    }


def _web_acl(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or resource_id
    scope = "global" if args.inputs.get("scope") == "CLOUDFRONT" else "regional"
    acl_id = f"{_hex(name, length=8)}-{_hex(name, 'a', length=4)}-{_hex(name, 'b', length=4)}"
    region = "us-east-1" if scope == "global" else None
    return {"name": name, "arn": mocks.arn("wafv2", f"{scope}/webacl/{name}/{acl_id}", region), "capacity": 1000}


def _rds_instance(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    identifier = args.inputs.get("identifier") or f"{args.name}-{_hex(args.name, length=7)}"
    port = int(args.inputs.get("port") or 5432)
    address = f"{identifier}.c{_hex('rds', mocks.region, length=11)}.{mocks.region}.rds.amazonaws.com"
    state: dict[str, Any] = {
        "identifier": identifier,
        "address": address,
        "port": port,
        "endpoint": f"{address}:{port}",
        "arn": mocks.arn("rds", f"db:{identifier}"),
        "resourceId": f"db-{_hex('resource', identifier, length=26).upper()}",
        "hostedZoneId": "Z2R2ITUGPM61AM",
        "status": "available",
    }
    if args.inputs.get("manageMasterUserPassword"):
        # RDS names the secret it creates `rds!db-<uuid>`; Secrets Manager appends 6 random characters.
        uuid = f"{_hex(identifier, length=8)}-{_hex(identifier, '1', length=4)}-{_hex(identifier, '2', length=4)}"
        state["masterUserSecrets"] = [
            {
                "secretArn": mocks.arn("secretsmanager", f"secret:rds!db-{uuid}-{_hex(identifier, length=6)}"),
                "kmsKeyId": args.inputs.get("masterUserSecretKmsKeyId")
                or mocks.arn("kms", f"key/{_hex('aws/secretsmanager', length=8)}"),
                "secretStatus": "active",
            }
        ]
    return state


def _secret(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    prefix = args.inputs.get("namePrefix")
    name = args.inputs.get("name") or (
        f"{prefix}{_unique_id(args.name)}" if prefix else f"{args.name}-{_hex(args.name, length=7)}"
    )
    arn = mocks.arn("secretsmanager", f"secret:{name}-{_hex('suffix', name, length=6)}")
    return {"name": name, "arn": arn, "id": arn}


def _random_password(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    """A stable stand-in of the requested length (alphanumerics, as with `special=False`)."""
    length = int(args.inputs.get("length") or 16)
    seed = hashlib.sha256(f"random-password/{args.name}".encode()).hexdigest()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    result = "".join(alphabet[(int(seed[i % 64], 16) * 4 + i) % len(alphabet)] for i in range(length))
    return {"result": result, "bcryptHash": f"$2a$10${_hex('bcrypt', args.name, length=53)}"}


def _random_id(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    """A stable stand-in of `byte_length` random bytes in the provider's encodings."""
    raw = hashlib.sha256(f"random-id/{args.name}".encode()).digest()[: int(args.inputs.get("byteLength") or 8)]
    b64 = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return {"hex": raw.hex(), "dec": str(int.from_bytes(raw, "big")), "b64Url": b64, "b64Std": b64, "id": b64}


_DIRECTIONS = {
    "northeast": "ne",
    "southeast": "se",
    "east": "e",
    "west": "w",
    "north": "n",
    "south": "s",
    "central": "c",
}


def _short_region(region: str) -> str:
    """ElastiCache's host-name form of a region: us-east-1 -> use1, ap-southeast-1 -> apse1."""
    area, direction, number = region.split("-")[0], region.split("-")[1], region.split("-")[-1]
    return f"{area}{_DIRECTIONS.get(direction, direction[:1])}{number}"


def _replication_group(mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    group_id = args.inputs.get("replicationGroupId") or resource_id
    cluster_hash = f"{_hex('elasticache', group_id, length=6)}.{_hex('cache', mocks.region, length=6)}"
    suffix = f"{cluster_hash}.{_short_region(mocks.region)}.cache.amazonaws.com"
    count = int(args.inputs.get("numCacheClusters") or 1)
    return {
        "replicationGroupId": group_id,
        "arn": mocks.arn("elasticache", f"replicationgroup:{group_id}"),
        "primaryEndpointAddress": f"master.{group_id}.{suffix}",
        "readerEndpointAddress": f"replica.{group_id}.{suffix}",
        "port": int(args.inputs.get("port") or 6379),
        "memberClusters": [f"{group_id}-{i + 1:03d}" for i in range(count)],
        "clusterEnabled": False,
    }


def _metric_alarm(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    """CloudWatch alarm ARNs end in `alarm:<name>` (composite alarms too); the id is the name."""
    name = args.inputs.get("name") or args.inputs.get("alarmName") or args.name
    return {"arn": mocks.arn("cloudwatch", f"alarm:{name}", mocks.region_of(args)), "id": name}


def _dashboard(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("dashboardName") or args.name
    return {"dashboardArn": f"arn:aws:cloudwatch::{ACCOUNT_ID}:dashboard/{name}"}


def _log_metric_filter(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    return {"id": args.inputs.get("name") or args.name}


# ---------------------------------------------------------------------------------------------------------
# DigitalOcean
# ---------------------------------------------------------------------------------------------------------

_DO_DB_DOMAIN = "db.ondigitalocean.com"


def _plain(value: Any) -> Any:
    """An input as the cloud API sees it: secret-wrapped values arrive unwrapped there."""
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def _do_registry(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs["name"]
    return {
        "endpoint": f"registry.digitalocean.com/{name}",
        "serverUrl": "registry.digitalocean.com",
        "storageUsageBytes": 0,
        "createdAt": "2026-01-01T00:00:00Z",
    }


def _do_registry_credentials(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    token = _hex("token", args.name, length=64)
    auth = base64.b64encode(f"{token}:{token}".encode()).decode()
    return {
        "dockerCredentials": json.dumps({"auths": {"registry.digitalocean.com": {"auth": auth}}}),
        "credentialExpirationTime": "2026-02-01T00:00:00Z",
    }


def _do_database_cluster(_mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    name = args.inputs["name"]
    host = f"{name}-do-user-1234567-0.l.{_DO_DB_DOMAIN}"
    password = f"AVNS_{_hex('password', name, length=20)}"
    return {
        "host": host,
        "privateHost": f"private-{host}",
        "port": 25060,
        "database": "defaultdb",
        "user": "doadmin",
        "password": password,
        "uri": f"postgresql://doadmin:{password}@{host}:25060/defaultdb?sslmode=require",
        "privateUri": f"postgresql://doadmin:{password}@private-{host}:25060/defaultdb?sslmode=require",
        "urn": f"do:dbaas:{resource_id}",
        "privateNetworkUuid": _uuid("vpc", args.inputs.get("region", "")),
    }


def _do_database_user(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    return {"password": f"AVNS_{_hex('password', args.name, length=20)}", "role": "normal"}


def _do_connection_pool(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    host = f"{args.name}-do-user-1234567-0.l.{_DO_DB_DOMAIN}"
    user = args.inputs.get("user", "doadmin")
    password = f"AVNS_{_hex('password', args.name, length=20)}"
    name = args.inputs["name"]
    return {
        "host": host,
        "privateHost": f"private-{host}",
        "port": 25061,
        "password": password,
        "uri": f"postgresql://{user}:{password}@{host}:25061/{name}?sslmode=require",
        "privateUri": f"postgresql://{user}:{password}@private-{host}:25061/{name}?sslmode=require",
    }


def _do_app(_mocks: CloudMocks, args: MockResourceArgs, resource_id: str) -> dict[str, Any]:
    spec = _plain(args.inputs.get("spec")) or {}
    host = f"{spec.get('name', args.name)}-{_hex('ingress', args.name, length=5)}.ondigitalocean.app"
    domains = [d["name"] for d in spec.get("domainNames") or [] if d.get("type", "DEFAULT") == "PRIMARY"]
    live = domains[0] if domains else host
    return {
        "defaultIngress": f"https://{host}",
        "liveUrl": f"https://{live}",
        "liveDomain": live,
        "urn": f"do:app:{resource_id}",
        "activeDeploymentId": _uuid("deployment", args.name),
        "createdAt": "2026-01-01T00:00:00Z",
        "updatedAt": "2026-01-01T00:00:00Z",
    }


def _do_spaces_bucket(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs["name"]
    region = args.inputs.get("region", "nyc3")
    return {
        "bucketDomainName": f"{name}.{region}.digitaloceanspaces.com",
        "endpoint": f"{region}.digitaloceanspaces.com",
        "urn": f"do:space:{name}",
    }


def _do_spaces_key(_mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    return {
        "accessKey": f"DO00{_hex('access', args.name, length=16).upper()}",
        "secretKey": _hex("secret", args.name, length=43),
        "createdAt": "2026-01-01T00:00:00Z",
    }


_COMPUTED: dict[str, Computed] = {
    "aws:elasticache/replicationGroup:ReplicationGroup": _replication_group,
    "aws:cloudwatch/metricAlarm:MetricAlarm": _metric_alarm,
    "aws:cloudwatch/compositeAlarm:CompositeAlarm": _metric_alarm,
    "aws:cloudwatch/dashboard:Dashboard": _dashboard,
    "aws:cloudwatch/logMetricFilter:LogMetricFilter": _log_metric_filter,
    "digitalocean:index/containerRegistry:ContainerRegistry": _do_registry,
    "digitalocean:index/containerRegistryDockerCredentials:ContainerRegistryDockerCredentials": (
        _do_registry_credentials
    ),
    "digitalocean:index/databaseCluster:DatabaseCluster": _do_database_cluster,
    "digitalocean:index/databaseUser:DatabaseUser": _do_database_user,
    "digitalocean:index/databaseConnectionPool:DatabaseConnectionPool": _do_connection_pool,
    "digitalocean:index/app:App": _do_app,
    "digitalocean:index/spacesBucket:SpacesBucket": _do_spaces_bucket,
    "digitalocean:index/spacesKey:SpacesKey": _do_spaces_key,
    "aws:rds/instance:Instance": _rds_instance,
    "aws:secretsmanager/secret:Secret": _secret,
    "random:index/randomPassword:RandomPassword": _random_password,
    "random:index/randomId:RandomId": _random_id,
    "aws:sqs/queue:Queue": _sqs_queue,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:lambda/function:Function": _lambda_function,
    "aws:lambda/layerVersion:LayerVersion": _layer_version,
    "aws:dynamodb/table:Table": _dynamodb_table,
    "aws:kms/key:Key": _kms_key,
    "aws:backup/vault:Vault": _backup_vault,
    "aws:backup/plan:Plan": _backup_plan,
    "aws:backup/restoreTestingPlan:RestoreTestingPlan": _restore_testing_plan,
    "aws:cloudwatch/eventRule:EventRule": _event_rule,
    "aws:scheduler/schedule:Schedule": _schedule,
    "aws:ses/emailIdentity:EmailIdentity": _ses_email_identity,
    "aws:acm/certificate:Certificate": _acm_certificate,
    "aws:route53/record:Record": _route53_record,
    "aws:cloudfront/distribution:Distribution": _cloudfront_distribution,
    "aws:cloudfront/function:Function": _cloudfront_function,
    "aws:s3/bucket:Bucket": _s3_bucket,
    "aws:s3/bucketV2:BucketV2": _s3_bucket,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:iam/role:Role": _iam_role,
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/eip:Eip": _eip,
    "aws:ecr/repository:Repository": _ecr_repository,
    "docker:index/image:Image": _docker_image,
    "aws:lb/loadBalancer:LoadBalancer": _load_balancer,
    "aws:apigatewayv2/api:Api": _http_api,
    "aws:apigatewayv2/domainName:DomainName": _api_domain_name,
    "aws:servicediscovery/service:Service": _discovery_service,
    "aws:lb/targetGroup:TargetGroup": _target_group,
    "aws:lb/listener:Listener": _listener,
    "aws:ecs/cluster:Cluster": _ecs_cluster,
    "aws:ecs/service:Service": _ecs_service,
    "aws:ecs/taskDefinition:TaskDefinition": _task_definition,
    "aws:wafv2/webAcl:WebAcl": _web_acl,
}

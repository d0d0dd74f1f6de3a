"""The guardrail rules, as data: what each checks, which FSBP control it enforces, and how strictly per tier.

A rule reads engine property names (camelCase, as the CLI hands them to a policy pack and as the offline
harness records them) and yields one message per problem. Checks only read through `Mapping`/`Sequence`
(never `isinstance(x, dict)`): under the CLI the values are pulumi_policy proxies that raise on unknowns.

Levels are per tier: `mandatory` blocks a deployment, `advisory` reports, `disabled` skips. Prod is never
weaker than staging. Rules whose control only makes sense with money or HA behind it (multi-AZ, deletion
protection, public IPs for tasks in a NAT-less staging VPC) are advisory in staging and mandatory in prod.

FSBP ids follow the Security Hub control reference (e.g. RDS.8 is deletion protection on *instances*,
RDS.7 on clusters). Rules of our own say `fsbp="shipyard"`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Level = Literal["advisory", "mandatory", "disabled"]
Tier = Literal["staging", "prod"]

OWN = "shipyard"
"""`fsbp` of rules that are our own conventions, not an FSBP control."""

FSBP_REFERENCE = "https://docs.aws.amazon.com/securityhub/latest/userguide/fsbp-standard.html"

REQUIRED_TAGS = ("project", "stack", "tier", "owner")
"""Tags every AWS resource carries (infra/aws/stack.py puts them on the provider as default tags)."""

PLACEHOLDER_PREFIX = "PLACEHOLDER-NOT-A-SECRET"
"""The offline harness's stand-in for a secret config value: seeing it in plain inputs means a secret leaked."""


@dataclass(frozen=True)
class ProviderView:
    """The bits of a resource's provider a rule may need (the CLI passes the provider's inputs)."""

    type: str
    name: str
    props: Mapping[str, Any]


@dataclass(frozen=True)
class ResourceView:
    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    provider: ProviderView | None = None


Check = Callable[[ResourceView], Iterable[str]]


@dataclass(frozen=True)
class Rule:
    id: str
    """The CrossGuard policy name; also the key for `shipyard:policy.exceptions`."""
    fsbp: str
    """FSBP control id (e.g. "RDS.2"), or "shipyard" for our own conventions."""
    title: str
    """The requirement, stated positively."""
    types: tuple[str, ...]
    """Engine type tokens this rule looks at; `*aws` means every AWS resource."""
    fields: tuple[str, ...]
    """Top-level engine properties read (tests check each exists on the pulumi-aws type)."""
    staging: Level
    prod: Level
    check: Check
    remediation: str

    @property
    def description(self) -> str:
        source = f"FSBP {self.fsbp}" if self.fsbp != OWN else "shipyard convention"
        return f"[{source}] {self.title}"

    def level(self, tier: str) -> Level:
        return self.prod if tier == "prod" else self.staging

    def applies_to(self, resource_type: str) -> bool:
        if "*aws" in self.types:
            return resource_type.startswith("aws:")
        return resource_type in self.types


StackCheck = Callable[[Sequence["StackResourceView"]], Iterable[tuple[str, str]]]


@dataclass(frozen=True)
class StackResourceView:
    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    dependencies: tuple[str, ...] = field(default_factory=tuple)
    """URNs this resource's inputs depend on (how a bucket policy is tied to its bucket, even in preview)."""


@dataclass(frozen=True)
class StackRule:
    """A rule over the whole stack (e.g. "every bucket has a public access block"): yields (urn, message)."""

    id: str
    fsbp: str
    title: str
    staging: Level
    prod: Level
    check: StackCheck
    remediation: str

    @property
    def description(self) -> str:
        source = f"FSBP {self.fsbp}" if self.fsbp != OWN else "shipyard convention"
        return f"[{source}] {self.title}"

    def level(self, tier: str) -> Level:
        return self.prod if tier == "prod" else self.staging


# ---------------------------------------------------------------------------------------------------------
# Reading properties
# ---------------------------------------------------------------------------------------------------------


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if _is_list(value):
        return list(value)
    return [value]


def as_mapping(value: Any) -> Mapping[str, Any]:
    """A nested block: a mapping, a one-element list of one (how some providers shape blocks), or JSON text."""
    if isinstance(value, Mapping):
        return value
    if _is_list(value) and len(value) == 1 and isinstance(value[0], Mapping):
        return value[0]
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, Mapping) else {}
    return {}


def parse_json(value: Any) -> Any:
    """A JSON document given as text (policies, container definitions) or already structured."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return value


def _is_true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _is_false(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() == "false")


def policy_statements(document: Any) -> list[Mapping[str, Any]]:
    parsed = parse_json(document)
    if not isinstance(parsed, Mapping):
        return []
    return [s for s in as_list(parsed.get("Statement")) if isinstance(s, Mapping)]


def _actions(statement: Mapping[str, Any]) -> list[str]:
    return [str(a) for a in as_list(statement.get("Action"))]


def _resources(statement: Mapping[str, Any]) -> list[str]:
    return [str(r) for r in as_list(statement.get("Resource"))]


def _is_public_principal(principal: Any) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, Mapping):
        return any(value == "*" or (_is_list(value) and "*" in value) for value in principal.values())
    return False


def containers(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    parsed = parse_json(props.get("containerDefinitions"))
    return [c for c in as_list(parsed) if isinstance(c, Mapping)]


_SECRET_NAME = re.compile(r"(SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE_KEY|API_KEY|ACCESS_KEY|DSN|AUTH_DATA)", re.I)
_REFERENCE_SUFFIX = re.compile(r"_(ARN|ARNS|SECRET_ID|SECRET_NAME|PARAMETER|PARAMETER_NAME)$", re.I)
FSBP_ECS8_NAMES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "ECS_ENGINE_AUTH_DATA")


def secret_like_variables(variables: Mapping[str, Any]) -> list[str]:
    """Names of plain environment variables that carry a secret: by name, or by a secret's placeholder value."""
    found = []
    for name, value in variables.items():
        by_name = name.upper() in FSBP_ECS8_NAMES or (
            _SECRET_NAME.search(name) is not None and _REFERENCE_SUFFIX.search(name) is None
        )
        by_value = isinstance(value, str) and value.startswith(PLACEHOLDER_PREFIX)
        if by_name or by_value:
            found.append(name)
    return sorted(found)


def _container_env(container: Mapping[str, Any]) -> dict[str, Any]:
    return {
        str(entry.get("name")): entry.get("value")
        for entry in as_list(container.get("environment"))
        if isinstance(entry, Mapping)
    }


WORLD = ("0.0.0.0/0", "::/0")
HIGH_RISK_PORTS: tuple[int, ...] = (
    20,
    21,
    22,
    23,
    25,
    110,
    135,
    143,
    445,
    1433,
    1434,
    3000,
    3306,
    3389,
    4333,
    5000,
    5432,
    5500,
    5601,
    8080,
    8088,
    8888,
    9200,
    9300,
)
"""FSBP EC2.19's list of high-risk ports."""
AUTHORIZED_PUBLIC_PORTS = (80, 443)
"""FSBP EC2.18's default: the only ports that may be open to the world."""


@dataclass(frozen=True)
class IngressRule:
    protocol: str
    from_port: int
    to_port: int
    sources: tuple[str, ...]

    @property
    def world_open(self) -> bool:
        return any(source in WORLD for source in self.sources)

    def ports(self) -> range:
        if self.protocol in ("-1", "all"):
            return range(0, 65536)
        return range(self.from_port, self.to_port + 1)

    def label(self) -> str:
        if self.protocol in ("-1", "all"):
            return "all traffic"
        span = str(self.from_port) if self.from_port == self.to_port else f"{self.from_port}-{self.to_port}"
        return f"{self.protocol}/{span}"


def _port(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def shown(value: Any) -> Any:
    """A property value as a message shows it: the engine sends every number as a double, 80 reads as 80."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def ingress_rules(resource: ResourceView) -> list[IngressRule]:
    """Ingress from the three ways pulumi-aws expresses it: inline, SecurityGroupRule, SecurityGroupIngressRule."""
    props = resource.props
    if resource.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        sources = tuple(str(s) for s in (props.get("cidrIpv4"), props.get("cidrIpv6")) if s)
        return [
            IngressRule(str(props.get("ipProtocol")), _port(props.get("fromPort")), _port(props.get("toPort")), sources)
        ]
    if resource.type == "aws:ec2/securityGroupRule:SecurityGroupRule":
        if props.get("type") != "ingress":
            return []
        blocks = [*as_list(props.get("cidrBlocks")), *as_list(props.get("ipv6CidrBlocks"))]
        return [
            IngressRule(
                str(props.get("protocol")),
                _port(props.get("fromPort")),
                _port(props.get("toPort")),
                tuple(map(str, blocks)),
            )
        ]
    rules = []
    for entry in as_list(props.get("ingress")):
        if not isinstance(entry, Mapping):
            continue
        blocks = [*as_list(entry.get("cidrBlocks")), *as_list(entry.get("ipv6CidrBlocks"))]
        rules.append(
            IngressRule(
                str(entry.get("protocol")),
                _port(entry.get("fromPort")),
                _port(entry.get("toPort")),
                tuple(map(str, blocks)),
            )
        )
    return rules


def effective_tags(resource: ResourceView) -> dict[str, str]:
    """Provider default tags overlaid with the resource's own, as AWS will apply them (tagsAll)."""
    tags: dict[str, str] = {}
    if resource.provider is not None:
        tags.update(provider_default_tags(resource.provider.props))
    for key in ("tagsAll", "tags"):
        value = resource.props.get(key)
        if isinstance(value, Mapping):
            tags.update({str(k): str(v) for k, v in value.items()})
    return tags


def provider_default_tags(props: Mapping[str, Any]) -> dict[str, str]:
    default_tags = as_mapping(props.get("defaultTags"))
    tags = default_tags.get("tags")
    if isinstance(tags, str):
        tags = parse_json(tags)
    if not isinstance(tags, Mapping):
        return {}
    return {str(k): str(v) for k, v in tags.items()}


def is_default_provider(provider: ProviderView | None) -> bool:
    return provider is None or provider.name.startswith("default")


# ---------------------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------------------

RDS_INSTANCE = "aws:rds/instance:Instance"
RDS_CLUSTER = "aws:rds/cluster:Cluster"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
DISTRIBUTION = "aws:cloudfront/distribution:Distribution"
LOAD_BALANCERS = ("aws:lb/loadBalancer:LoadBalancer", "aws:alb/loadBalancer:LoadBalancer")
LISTENERS = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
ECS_CLUSTER = "aws:ecs/cluster:Cluster"
ECS_SERVICE = "aws:ecs/service:Service"
TASK_DEFINITION = "aws:ecs/taskDefinition:TaskDefinition"
LAMBDA = "aws:lambda/function:Function"
LAMBDA_PERMISSION = "aws:lambda/permission:Permission"
IAM_POLICY_TYPES = (
    "aws:iam/policy:Policy",
    "aws:iam/rolePolicy:RolePolicy",
    "aws:iam/userPolicy:UserPolicy",
    "aws:iam/groupPolicy:GroupPolicy",
)
IAM_ROLE = "aws:iam/role:Role"
SECURITY_GROUP_TYPES = (
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/securityGroupRule:SecurityGroupRule",
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
)
VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
SECRET = "aws:secretsmanager/secret:Secret"  # noqa: S105  (a type token, not a password)
SECRET_ROTATION = "aws:secretsmanager/secretRotation:SecretRotation"  # noqa: S105
ALARMS = ("aws:cloudwatch/metricAlarm:MetricAlarm", "aws:cloudwatch/compositeAlarm:CompositeAlarm")
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
AWS_PROVIDER = "pulumi:providers:aws"


def _rds_not_public(r: ResourceView) -> Iterator[str]:
    if _is_true(r.props.get("publiclyAccessible")):
        yield "publiclyAccessible is true: the database gets a public DNS name and address"


def _rds_encrypted(r: ResourceView) -> Iterator[str]:
    if not _is_true(r.props.get("storageEncrypted")):
        yield "storageEncrypted is not true: storage, snapshots and backups would be unencrypted"


def _rds_multi_az(r: ResourceView) -> Iterator[str]:
    if not _is_true(r.props.get("multiAz")):
        yield "multiAz is not true: an AZ outage takes the database down"


def _deletion_protection(r: ResourceView) -> Iterator[str]:
    if not _is_true(r.props.get("deletionProtection")):
        yield "deletionProtection is not true: one `pulumi destroy` or replacement deletes the data"


def _rds_backups(r: ResourceView) -> Iterator[str]:
    if r.props.get("replicateSourceDb"):
        return
    days = _port(r.props.get("backupRetentionPeriod"))
    if days < 7:
        yield f"backupRetentionPeriod is {days} days; automated backups need at least 7"


def _rds_minor_upgrades(r: ResourceView) -> Iterator[str]:
    if _is_false(r.props.get("autoMinorVersionUpgrade")):
        yield "autoMinorVersionUpgrade is false: security patches are never applied"


def _rds_log_exports(r: ResourceView) -> Iterator[str]:
    engine = str(r.props.get("engine") or "")
    exports = [str(e) for e in as_list(r.props.get("enabledCloudwatchLogsExports"))]
    wanted = "postgresql" if "postgres" in engine else None
    if wanted and wanted not in exports:
        yield f"enabledCloudwatchLogsExports {exports} lacks '{wanted}': slow queries and errors stay on the host"
    elif not wanted and not exports:
        yield "enabledCloudwatchLogsExports is empty: database logs stay on the host"


def _rds_enhanced_monitoring(r: ResourceView) -> Iterator[str]:
    if _port(r.props.get("monitoringInterval")) <= 0:
        yield "monitoringInterval is 0: no OS-level metrics (memory, swap, IO) when the database misbehaves"


def _rds_force_ssl(r: ResourceView) -> Iterator[str]:
    if "postgres" not in str(r.props.get("family") or ""):
        return
    for parameter in as_list(r.props.get("parameters")):
        if (
            isinstance(parameter, Mapping)
            and parameter.get("name") == "rds.force_ssl"
            and str(parameter.get("value")) != "1"
        ):
            yield f"rds.force_ssl is {parameter.get('value')!r}: clients may connect without TLS"


def _public_access_block(r: ResourceView) -> Iterator[str]:
    flags = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    off = [flag for flag in flags if not _is_true(r.props.get(flag))]
    if off:
        yield f"{', '.join(off)} not true: the bucket can still be made public"


def _no_public_acl(r: ResourceView) -> Iterator[str]:
    acl = r.props.get("acl")
    if acl in ("public-read", "public-read-write", "authenticated-read"):
        yield f"acl is {acl!r}: objects are readable by anyone"
    policy = as_mapping(r.props.get("accessControlPolicy"))
    for grant in as_list(policy.get("grants")):
        grantee = as_mapping(grant.get("grantee")) if isinstance(grant, Mapping) else {}
        if "AllUsers" in str(grantee.get("uri") or "") or "AuthenticatedUsers" in str(grantee.get("uri") or ""):
            yield f"a grant gives {grantee.get('uri')} access"


def denies_insecure_transport(document: Any) -> bool:
    for statement in policy_statements(document):
        if statement.get("Effect") != "Deny":
            continue
        condition = as_mapping(statement.get("Condition"))
        secure = as_mapping(condition.get("Bool")).get("aws:SecureTransport")
        values = [str(v).lower() for v in as_list(secure)]
        if "false" in values and ("*" in _actions(statement) or "s3:*" in _actions(statement)):
            return True
    return False


def _bucket_policy_tls(r: ResourceView) -> Iterator[str]:
    if not denies_insecure_transport(r.props.get("policy")):
        yield "no Deny of s3:* when aws:SecureTransport is false: plain-HTTP requests are accepted"


def _bucket_policy_not_public(r: ResourceView) -> Iterator[str]:
    for statement in policy_statements(r.props.get("policy")):
        public = statement.get("Effect") == "Allow" and _is_public_principal(statement.get("Principal"))
        if public and not statement.get("Condition"):
            yield f"statement {statement.get('Sid') or '(no Sid)'} allows any principal without a condition"


def _cache_behaviors(props: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    behaviors = [("default", as_mapping(props.get("defaultCacheBehavior")))]
    for behavior in as_list(props.get("orderedCacheBehaviors")):
        if isinstance(behavior, Mapping):
            behaviors.append((str(behavior.get("pathPattern")), behavior))
    return behaviors


def _cloudfront_default_root(r: ResourceView) -> Iterator[str]:
    if not r.props.get("defaultRootObject"):
        yield "defaultRootObject is empty: a request for / lists or errors instead of serving index.html"


def _cloudfront_https(r: ResourceView) -> Iterator[str]:
    for path, behavior in _cache_behaviors(r.props):
        policy = behavior.get("viewerProtocolPolicy")
        if policy not in ("redirect-to-https", "https-only"):
            yield f"cache behavior {path}: viewerProtocolPolicy is {policy!r}; use redirect-to-https or https-only"


def _origins(props: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [o for o in as_list(props.get("origins")) if isinstance(o, Mapping)]


def _cloudfront_oac(r: ResourceView) -> Iterator[str]:
    for origin in _origins(r.props):
        if origin.get("customOriginConfig"):
            continue  # a custom origin (load balancer, S3 website endpoint): OAC does not apply
        origin_id = origin.get("originId")
        identity = as_mapping(origin.get("s3OriginConfig")).get("originAccessIdentity")
        if identity:
            yield f"origin {origin_id}: uses a legacy origin access identity; use origin access control"
        elif not origin.get("originAccessControlId"):
            yield f"origin {origin_id}: S3 origin without originAccessControlId; the bucket must be public to serve"


_DEPRECATED_TLS = ("SSLv3", "TLSv1", "TLSv1.1")


def _cloudfront_origin_tls(r: ResourceView) -> Iterator[str]:
    for origin in _origins(r.props):
        custom = as_mapping(origin.get("customOriginConfig"))
        weak = sorted({str(p) for p in as_list(custom.get("originSslProtocols"))} & set(_DEPRECATED_TLS))
        if weak:
            yield f"origin {origin.get('originId')}: originSslProtocols allows deprecated {', '.join(weak)}"


def _cloudfront_origin_encrypted(r: ResourceView) -> Iterator[str]:
    viewer_policies = {b.get("viewerProtocolPolicy") for _, b in _cache_behaviors(r.props)}
    for origin in _origins(r.props):
        custom = as_mapping(origin.get("customOriginConfig"))
        if not custom:
            continue
        policy = custom.get("originProtocolPolicy")
        if policy == "http-only" or (policy == "match-viewer" and "allow-all" in viewer_policies):
            yield f"origin {origin.get('originId')}: originProtocolPolicy {policy!r} sends traffic unencrypted"


def _cloudfront_sni(r: ResourceView) -> Iterator[str]:
    certificate = as_mapping(r.props.get("viewerCertificate"))
    custom = certificate.get("acmCertificateArn") or certificate.get("iamCertificateId")
    if custom and certificate.get("sslSupportMethod") != "sni-only":
        yield (
            f"sslSupportMethod is {certificate.get('sslSupportMethod')!r}: dedicated-IP TLS costs 600 USD a month; "
            "use sni-only"
        )


def _is_application_lb(props: Mapping[str, Any]) -> bool:
    return props.get("loadBalancerType") in (None, "", "application")


def _elb_http_redirect(r: ResourceView) -> Iterator[str]:
    if r.props.get("protocol") != "HTTP":
        return
    for action in as_list(r.props.get("defaultActions")):
        if not isinstance(action, Mapping):
            continue
        redirect = as_mapping(action.get("redirect"))
        if action.get("type") != "redirect" or redirect.get("protocol") != "HTTPS":
            port, kind = shown(r.props.get("port")), action.get("type")
            yield f"HTTP listener on port {port} answers with {kind!r}, not a redirect to HTTPS"


def _elb_drop_invalid_headers(r: ResourceView) -> Iterator[str]:
    if _is_application_lb(r.props) and not _is_true(r.props.get("dropInvalidHeaderFields")):
        yield "dropInvalidHeaderFields is not true: malformed headers reach the application (request smuggling)"


def _elb_access_logs(r: ResourceView) -> Iterator[str]:
    if not _is_true(as_mapping(r.props.get("accessLogs")).get("enabled")):
        yield "accessLogs are not enabled: no per-request record for incident analysis"


def _http_api_access_logs(r: ResourceView) -> Iterator[str]:
    # The HTTP API front door has no ALB access logs in S3: its stage's access log is the per-request record.
    if not as_mapping(r.props.get("accessLogSettings")).get("destinationArn"):
        yield "accessLogSettings has no destinationArn: no per-request record for incident analysis"


def _elb_deletion_protection(r: ResourceView) -> Iterator[str]:
    if not _is_true(r.props.get("enableDeletionProtection")):
        yield "enableDeletionProtection is not true: a replacement or destroy drops the public endpoint"


def _ecs_no_public_ip(r: ResourceView) -> Iterator[str]:
    network = as_mapping(r.props.get("networkConfiguration"))
    if _is_true(network.get("assignPublicIp")):
        yield "networkConfiguration.assignPublicIp is true: tasks are reachable at a public address"


def _ecs_no_host_pid(r: ResourceView) -> Iterator[str]:
    if r.props.get("pidMode") == "host":
        yield "pidMode is 'host': containers see every process on the host"


def _ecs_not_privileged(r: ResourceView) -> Iterator[str]:
    for container in containers(r.props):
        if _is_true(container.get("privileged")):
            yield f"container {container.get('name')}: privileged is true (root on the host)"


def _ecs_read_only_root(r: ResourceView) -> Iterator[str]:
    for container in containers(r.props):
        if not _is_true(container.get("readonlyRootFilesystem")):
            yield f"container {container.get('name')}: readonlyRootFilesystem is not true"


def _ecs_no_secrets_in_env(r: ResourceView) -> Iterator[str]:
    for container in containers(r.props):
        leaked = secret_like_variables(_container_env(container))
        if leaked:
            yield (
                f"container {container.get('name')}: environment {', '.join(leaked)} looks secret; "
                "use `secrets` with a Secrets Manager valueFrom"
            )


def _ecs_logging(r: ResourceView) -> Iterator[str]:
    for container in containers(r.props):
        if not as_mapping(container.get("logConfiguration")).get("logDriver"):
            yield f"container {container.get('name')}: no logConfiguration (its output is lost)"


def _ecs_container_insights(r: ResourceView) -> Iterator[str]:
    for setting in as_list(r.props.get("settings")):
        if (
            isinstance(setting, Mapping)
            and setting.get("name") == "containerInsights"
            and setting.get("value") in ("enabled", "enhanced")
        ):
            return
    yield "settings has no containerInsights=enabled: no task-level CPU, memory and restart metrics"


SUPPORTED_LAMBDA_RUNTIMES = (
    "python3.10",
    "python3.11",
    "python3.12",
    "python3.13",
    "python3.14",
    "nodejs20.x",
    "nodejs22.x",
    "java11",
    "java17",
    "java21",
    "dotnet8",
    "ruby3.3",
    "ruby3.4",
    "provided.al2",
    "provided.al2023",
)
"""Runtimes Lambda still patches (FSBP Lambda.2's parameter list, current as of this rule's date)."""


def _lambda_runtime(r: ResourceView) -> Iterator[str]:
    if r.props.get("packageType") == "Image":
        return
    runtime = r.props.get("runtime")
    if runtime not in SUPPORTED_LAMBDA_RUNTIMES:
        yield f"runtime {runtime!r} is deprecated or unknown; supported: {', '.join(SUPPORTED_LAMBDA_RUNTIMES)}"


def _lambda_no_secrets_in_env(r: ResourceView) -> Iterator[str]:
    variables = as_mapping(r.props.get("environment")).get("variables")
    if isinstance(variables, Mapping):
        leaked = secret_like_variables(variables)
        if leaked:
            yield f"environment {', '.join(leaked)} looks secret; pass a Secrets Manager ARN and fetch at run time"


def _lambda_permission_not_public(r: ResourceView) -> Iterator[str]:
    if r.props.get("functionUrlAuthType") == "NONE":
        yield "functionUrlAuthType is NONE: anyone on the internet can invoke the function URL"
    principal = r.props.get("principal")
    scoped = r.props.get("sourceArn") or r.props.get("sourceAccount") or r.props.get("principalOrgId")
    if principal == "*" and not scoped:
        yield "principal is '*' without sourceArn/sourceAccount: any AWS account can invoke the function"


def _policy_documents(r: ResourceView) -> list[Any]:
    if r.type == IAM_ROLE:
        return [p.get("policy") for p in as_list(r.props.get("inlinePolicies")) if isinstance(p, Mapping)]
    return [r.props.get("policy")]


def _iam_no_admin(r: ResourceView) -> Iterator[str]:
    for document in _policy_documents(r):
        for statement in policy_statements(document):
            if statement.get("Effect") == "Allow" and "*" in _actions(statement) and "*" in _resources(statement):
                yield "a statement allows Action '*' on Resource '*' (full administrator)"


def _iam_no_service_wildcards(r: ResourceView) -> Iterator[str]:
    for document in _policy_documents(r):
        for statement in policy_statements(document):
            if statement.get("Effect") != "Allow":
                continue
            wild = sorted({a for a in _actions(statement) if a.endswith(":*")})
            if wild:
                yield f"actions {', '.join(wild)} grant every action of a service; list the actions needed"


def _iam_no_long_lived_keys(r: ResourceView) -> Iterator[str]:
    yield f"{r.type.rsplit(':', 1)[-1]} creates a long-lived credential; use roles (OIDC in CI, task/function roles)"


def _iam_no_admin_attachment(r: ResourceView) -> Iterator[str]:
    arn = str(r.props.get("policyArn") or "")
    if arn.endswith((":policy/AdministratorAccess", ":policy/PowerUserAccess", ":policy/IAMFullAccess")):
        yield f"attaches {arn.rsplit('/', 1)[-1]}; grant the narrow actions the workload needs"
    for managed in as_list(r.props.get("managedPolicyArns")):
        if str(managed).endswith(":policy/AdministratorAccess"):
            yield "managedPolicyArns includes AdministratorAccess"


def _default_sg_closed(r: ResourceView) -> Iterator[str]:
    if as_list(r.props.get("ingress")) or as_list(r.props.get("egress")):
        yield "the default security group has rules; anything launched without a group would get them"


def _subnet_no_auto_public_ip(r: ResourceView) -> Iterator[str]:
    if _is_true(r.props.get("mapPublicIpOnLaunch")):
        yield "mapPublicIpOnLaunch is true: every ENI in the subnet gets a public address"


def _no_world_high_risk_ports(r: ResourceView) -> Iterator[str]:
    for rule in ingress_rules(r):
        if rule.world_open:
            exposed = [p for p in HIGH_RISK_PORTS if p in rule.ports()]
            if exposed:
                yield f"ingress {rule.label()} from the internet exposes high-risk port(s) {exposed[:6]}"


def _world_only_web_ports(r: ResourceView) -> Iterator[str]:
    for rule in ingress_rules(r):
        if rule.world_open:
            ports = rule.ports()
            if len(ports) > 1 or ports[0] not in AUTHORIZED_PUBLIC_PORTS:
                yield f"ingress {rule.label()} is open to the internet; only {AUTHORIZED_PUBLIC_PORTS} may be"


def _sns_encrypted(r: ResourceView) -> Iterator[str]:
    if not r.props.get("kmsMasterKeyId"):
        yield "kmsMasterKeyId is empty: messages are stored unencrypted"


def _sns_customer_key(r: ResourceView) -> Iterator[str]:
    if str(r.props.get("kmsMasterKeyId") or "") == "alias/aws/sns":
        yield (
            "encrypted with the AWS managed key alias/aws/sns: CloudWatch alarms and EventBridge cannot publish to "
            "it (alarms fail silently); use a customer managed key that grants them kms:Decrypt/GenerateDataKey"
        )


def _sqs_encrypted(r: ResourceView) -> Iterator[str]:
    # Unset means SSE-SQS: AWS enables it for every new queue by default.
    if _is_false(r.props.get("sqsManagedSseEnabled")) and not r.props.get("kmsMasterKeyId"):
        yield "sqsManagedSseEnabled is false and no kmsMasterKeyId: messages are stored unencrypted"


def _dynamodb_pitr(r: ResourceView) -> Iterator[str]:
    if not _is_true(as_mapping(r.props.get("pointInTimeRecovery")).get("enabled")):
        yield "pointInTimeRecovery is not enabled: a bad write cannot be rolled back"


def _secret_recovery_window(r: ResourceView) -> Iterator[str]:
    window = r.props.get("recoveryWindowInDays")
    if window is not None and _port(window) == 0:
        yield "recoveryWindowInDays is 0: deleting the secret is immediate and cannot be undone"


def _kms_rotation(r: ResourceView) -> Iterator[str]:
    spec = r.props.get("customerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    if spec == "SYMMETRIC_DEFAULT" and not _is_true(r.props.get("enableKeyRotation")):
        yield "enableKeyRotation is not true: the key material never rotates"


def _backup_vault_cmk(r: ResourceView) -> Iterator[str]:
    if not r.props.get("kmsKeyArn"):
        yield "kmsKeyArn is empty: recovery points use the AWS managed key, which cannot be shared or copied offsite"


def _backup_plan_retention(r: ResourceView) -> Iterator[str]:
    for rule in as_list(r.props.get("rules")):
        if not isinstance(rule, Mapping):
            continue
        days = _port(as_mapping(rule.get("lifecycle")).get("deleteAfter"))
        if 0 < days < 7:
            yield f"rule {rule.get('ruleName')}: recovery points kept {days} days; keep at least 7"


def _alarm_has_action(r: ResourceView) -> Iterator[str]:
    if _is_false(r.props.get("actionsEnabled")):
        yield "actionsEnabled is false: the alarm notifies nobody"
    elif not as_list(r.props.get("alarmActions")):
        yield "alarmActions is empty: the alarm changes state and nobody hears about it"


def _log_group_retention(r: ResourceView) -> Iterator[str]:
    if _port(r.props.get("retentionInDays")) <= 0:
        yield "retentionInDays is not set: logs are kept (and billed) forever"


def _elasticache_at_rest(r: ResourceView) -> Iterator[str]:
    if not _is_true(r.props.get("atRestEncryptionEnabled")):
        yield "atRestEncryptionEnabled is not true"


def _elasticache_in_transit(r: ResourceView) -> Iterator[str]:
    if not _is_true(r.props.get("transitEncryptionEnabled")):
        yield "transitEncryptionEnabled is not true: cache traffic (session data, queue payloads) is plain text"


def _waf_has_rules(r: ResourceView) -> Iterator[str]:
    rules = as_list(r.props.get("rules")) or as_list(parse_json(r.props.get("ruleJson")))
    if not rules:
        yield "the web ACL has no rules: it only applies its default action"


def _ecr_scan_on_push(r: ResourceView) -> Iterator[str]:
    if not _is_true(as_mapping(r.props.get("imageScanningConfiguration")).get("scanOnPush")):
        yield "imageScanningConfiguration.scanOnPush is not true: images ship without a vulnerability scan"


def _ecr_immutable_tags(r: ResourceView) -> Iterator[str]:
    if r.props.get("imageTagMutability") not in ("IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION"):
        yield "imageTagMutability is MUTABLE: a tag can be re-pointed to a different image after review"


def _provider_default_tags(r: ResourceView) -> Iterator[str]:
    missing = [t for t in REQUIRED_TAGS if not provider_default_tags(r.props).get(t)]
    if missing:
        yield f"defaultTags lacks {', '.join(missing)}: resources it creates are untagged (cost reports, ownership)"


def _required_tags(r: ResourceView) -> Iterator[str]:
    missing = [t for t in REQUIRED_TAGS if not effective_tags(r).get(t)]
    if missing:
        yield f"missing tags {', '.join(missing)} (neither the provider's defaultTags nor the resource set them)"


def _explicit_provider(r: ResourceView) -> Iterator[str]:
    if is_default_provider(r.provider):
        yield "created with the default AWS provider: it carries no default tags and may target the wrong region"


# ---------------------------------------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------------------------------------

M: Level = "mandatory"
A: Level = "advisory"


# --- Issue 16: what an outside scanner found missing -------------------------------------------------------

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
BUCKET_LOGGING = ("aws:s3/bucketLogging:BucketLogging", "aws:s3/bucketLoggingV2:BucketLoggingV2")
BUCKET_LIFECYCLE = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
KMS_KEY = "aws:kms/key:Key"
ROLE_POLICY_ATTACHMENTS = (
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    "aws:iam/policyAttachment:PolicyAttachment",
)

WAF_LOG_PREFIX = "aws-waf-logs-"
"""WAF accepts only logging destinations whose name starts with this (log group, Firehose stream, bucket)."""
WAF_REDACTED_HEADERS = ("authorization", "cookie")
"""Headers that carry credentials: a request log must never keep them."""
CONFUSED_DEPUTY_SERVICES = ("scheduler.amazonaws.com", "vpc-flow-logs.amazonaws.com", "monitoring.rds.amazonaws.com")
"""Service principals whose AWS pages document aws:SourceAccount/aws:SourceArn on AssumeRole (infra/aws/trust.py
cites each); other services' trust policies are not judged here, since a key a service never sends breaks it."""
CONFUSED_DEPUTY_KEYS = ("aws:sourceaccount", "aws:sourcearn")
BROAD_LAMBDA_POLICIES = ("AWSLambdaVPCAccessExecutionRole", "AWSLambdaBasicExecutionRole")
"""Managed execution policies granting logs:CreateLogGroup/CreateLogStream/PutLogEvents on "*"."""
LOGS_ENCRYPTION_CONTEXT = "kms:encryptioncontext:aws:logs:arn"


def condition_keys(statement: Mapping[str, Any]) -> set[str]:
    """Every condition key a statement tests, lower case (IAM compares condition keys case-insensitively)."""
    keys: set[str] = set()
    for block in as_mapping(statement.get("Condition")).values():
        if isinstance(block, Mapping):
            keys.update(str(key).lower() for key in block)
    return keys


def service_principals(statement: Mapping[str, Any]) -> list[str]:
    principal = statement.get("Principal")
    if not isinstance(principal, Mapping):
        return []
    return [str(p) for p in as_list(principal.get("Service"))]


def _log_group_cmk(r: ResourceView) -> Iterator[str]:
    if not r.props.get("kmsKeyId"):
        yield "kmsKeyId is empty: the group uses CloudWatch Logs' default encryption, not the stack's customer key"


def _waf_destination_name(arn: str) -> str:
    for marker in (":log-group:", ":deliverystream/", ":::"):
        if marker in arn:
            return arn.split(marker, 1)[1]
    return arn


def _waf_logging_config(r: ResourceView) -> Iterator[str]:
    for arn in (str(a) for a in as_list(r.props.get("logDestinationConfigs"))):
        if not _waf_destination_name(arn).startswith(WAF_LOG_PREFIX):
            yield f"log destination {arn} is not named {WAF_LOG_PREFIX}*: WAF refuses it"
    redacted = {
        str(as_mapping(field.get("singleHeader")).get("name", "")).lower()
        for field in as_list(r.props.get("redactedFields"))
        if isinstance(field, Mapping)
    }
    missing = [header for header in WAF_REDACTED_HEADERS if header not in redacted]
    if missing:
        yield f"headers {', '.join(missing)} are not redacted: request logs would keep users' credentials"


def _no_broad_lambda_policies(r: ResourceView) -> Iterator[str]:
    arns = [str(r.props.get("policyArn") or ""), *(str(a) for a in as_list(r.props.get("managedPolicyArns")))]
    for arn in arns:
        name = arn.rsplit("/", 1)[-1]
        if name in BROAD_LAMBDA_POLICIES:
            yield (
                f"attaches {name}: logs:CreateLogGroup/CreateLogStream/PutLogEvents on every log group of the "
                "account; grant the function's own log group and the ENI actions inline (infra/aws/function.py)"
            )


def _trust_confused_deputy(r: ResourceView) -> Iterator[str]:
    for statement in policy_statements(r.props.get("assumeRolePolicy")):
        if statement.get("Effect") != "Allow":
            continue
        services = [s for s in service_principals(statement) if s in CONFUSED_DEPUTY_SERVICES]
        if services and not condition_keys(statement) & set(CONFUSED_DEPUTY_KEYS):
            yield (
                f"trust for {', '.join(services)} has no aws:SourceAccount/aws:SourceArn condition: the service "
                "could be made to assume this role for another account's resource (confused deputy)"
            )


def _kms_service_grants_scoped(r: ResourceView) -> Iterator[str]:
    for statement in policy_statements(r.props.get("policy")):
        services = service_principals(statement)
        if statement.get("Effect") != "Allow" or not services:
            continue
        keys = condition_keys(statement)
        scoped = keys & set(CONFUSED_DEPUTY_KEYS) or any(k.startswith("kms:encryptioncontext:") for k in keys)
        if not scoped:
            yield (
                f"statement {statement.get('Sid') or '(no Sid)'} grants {', '.join(services)} without "
                "aws:SourceAccount, aws:SourceArn or a kms:EncryptionContext condition (confused deputy)"
            )


def _rule(
    id: str,
    fsbp: str,
    title: str,
    types: str | tuple[str, ...],
    fields: tuple[str, ...],
    levels: tuple[Level, Level],
    check: Check,
    remediation: str,
) -> Rule:
    staging, prod = levels
    return Rule(
        id=id,
        fsbp=fsbp,
        title=title,
        types=(types,) if isinstance(types, str) else types,
        fields=fields,
        staging=staging,
        prod=prod,
        check=check,
        remediation=remediation,
    )


RULES: tuple[Rule, ...] = (
    # --- RDS ---------------------------------------------------------------------------------------------
    _rule("rds-not-public", "RDS.2", "RDS instances must not be publicly accessible", (RDS_INSTANCE, RDS_CLUSTER),
          ("publiclyAccessible",), (M, M), _rds_not_public, "Set publicly_accessible=False; reach it from the VPC."),
    _rule("rds-encrypted", "RDS.3", "RDS instance storage must be encrypted at rest", RDS_INSTANCE,
          ("storageEncrypted",), (M, M), _rds_encrypted, "Set storage_encrypted=True (and kms_key_id for a CMK)."),
    _rule("rds-cluster-encrypted", "RDS.27", "RDS cluster storage must be encrypted at rest", RDS_CLUSTER,
          ("storageEncrypted",), (M, M), _rds_encrypted, "Set storage_encrypted=True."),
    _rule("rds-multi-az", "RDS.5", "RDS instances must be multi-AZ in prod", RDS_INSTANCE,
          ("multiAz",), (A, M), _rds_multi_az, "Set shipyard:database.multiAz: true."),
    _rule("rds-instance-deletion-protection", "RDS.8", "RDS instances must have deletion protection in prod",
          RDS_INSTANCE, ("deletionProtection",), (A, M), _deletion_protection,
          "Set shipyard:database.deletionProtection: true."),
    _rule("rds-cluster-deletion-protection", "RDS.7", "RDS clusters must have deletion protection in prod",
          RDS_CLUSTER, ("deletionProtection",), (A, M), _deletion_protection, "Set deletion_protection=True."),
    _rule("rds-log-exports", "RDS.9", "RDS instances must publish their logs to CloudWatch Logs",
          (RDS_INSTANCE, RDS_CLUSTER), ("engine", "enabledCloudwatchLogsExports"), (A, M), _rds_log_exports,
          "Set enabled_cloudwatch_logs_exports=['postgresql', 'upgrade']."),
    _rule("rds-backups", "RDS.11", "RDS instances must keep automated backups for at least 7 days",
          (RDS_INSTANCE, RDS_CLUSTER), ("backupRetentionPeriod", "replicateSourceDb"), (M, M), _rds_backups,
          "Set shipyard:database.backupRetentionDays >= 7."),
    _rule("rds-minor-upgrades", "RDS.13", "RDS instances must apply minor version upgrades automatically",
          (RDS_INSTANCE, RDS_CLUSTER), ("autoMinorVersionUpgrade",), (M, M), _rds_minor_upgrades,
          "Leave auto_minor_version_upgrade unset or True."),
    _rule("rds-enhanced-monitoring", "RDS.6", "RDS instances must have enhanced monitoring in prod", RDS_INSTANCE,
          ("monitoringInterval",), (A, M), _rds_enhanced_monitoring,
          "Set shipyard:database.enhancedMonitoringInterval (60 is enough)."),
    _rule("rds-force-ssl", OWN, "PostgreSQL parameter groups must not turn rds.force_ssl off", RDS_PARAMETER_GROUP,
          ("family", "parameters"), (M, M), _rds_force_ssl, "Set rds.force_ssl=1 (static: reboot to apply)."),
    # --- S3 ----------------------------------------------------------------------------------------------
    _rule("s3-public-access-block", "S3.8", "S3 public access blocks must set all four flags", PUBLIC_ACCESS_BLOCK,
          ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"), (M, M),
          _public_access_block, "Set all four flags to True."),
    _rule("s3-no-public-acl", "S3.2", "S3 buckets must not grant public read or write through ACLs",
          (*BUCKETS, *BUCKET_ACLS), ("acl",), (M, M), _no_public_acl,
          "Use BucketOwnershipControls(BucketOwnerEnforced) and no ACLs; serve through CloudFront with OAC."),
    _rule("s3-tls-only", "S3.5", "S3 bucket policies must deny requests that do not use TLS", BUCKET_POLICY,
          ("policy",), (M, M), _bucket_policy_tls,
          "Add a Deny statement for s3:* with Condition Bool aws:SecureTransport = false."),
    _rule("s3-policy-not-public", "S3.2", "S3 bucket policies must not allow any principal without a condition",
          BUCKET_POLICY, ("policy",), (M, M), _bucket_policy_not_public,
          "Name the principal (e.g. cloudfront.amazonaws.com) and add an aws:SourceArn condition."),
    # --- CloudFront --------------------------------------------------------------------------------------
    _rule("cloudfront-default-root-object", "CloudFront.1", "CloudFront distributions must set a default root object",
          DISTRIBUTION, ("defaultRootObject",), (M, M), _cloudfront_default_root, "Set default_root_object."),
    _rule("cloudfront-https-only", "CloudFront.3", "CloudFront must require HTTPS between viewers and CloudFront",
          DISTRIBUTION, ("defaultCacheBehavior", "orderedCacheBehaviors"), (M, M), _cloudfront_https,
          "Set viewer_protocol_policy='redirect-to-https' on every cache behavior."),
    _rule("cloudfront-origin-encrypted", "CloudFront.9", "CloudFront must encrypt traffic to custom origins",
          DISTRIBUTION, ("origins", "defaultCacheBehavior"), (A, M), _cloudfront_origin_encrypted,
          "Use origin_protocol_policy='https-only' (the origin needs a certificate)."),
    _rule("cloudfront-origin-tls", "CloudFront.10", "CloudFront must not use deprecated SSL/TLS to custom origins",
          DISTRIBUTION, ("origins",), (M, M), _cloudfront_origin_tls, "Set origin_ssl_protocols=['TLSv1.2']."),
    _rule("cloudfront-oac", "CloudFront.13", "CloudFront S3 origins must use origin access control", DISTRIBUTION,
          ("origins",), (M, M), _cloudfront_oac, "Create an OriginAccessControl and set origin_access_control_id."),
    _rule("cloudfront-sni", "CloudFront.8", "CloudFront custom certificates must be served with SNI", DISTRIBUTION,
          ("viewerCertificate",), (M, M), _cloudfront_sni, "Set ssl_support_method='sni-only'."),
    # --- Load balancers ----------------------------------------------------------------------------------
    _rule("elb-http-redirects-to-https", "ELB.1", "ALB HTTP listeners must redirect to HTTPS", LISTENERS,
          ("protocol", "port", "defaultActions"), (A, M), _elb_http_redirect,
          "Give the HTTP listener one redirect action (protocol HTTPS, port 443, HTTP_301)."),
    _rule("elb-drop-invalid-headers", "ELB.4", "ALBs must drop invalid HTTP headers", LOAD_BALANCERS,
          ("loadBalancerType", "dropInvalidHeaderFields"), (M, M), _elb_drop_invalid_headers,
          "Set drop_invalid_header_fields=True."),
    _rule("elb-access-logs", "ELB.5", "Load balancers should write access logs", LOAD_BALANCERS,
          ("accessLogs",), (A, A), _elb_access_logs, "Set access_logs to an S3 bucket with the ELB delivery policy."),
    _rule("elb-deletion-protection", "ELB.6", "Load balancers must have deletion protection in prod", LOAD_BALANCERS,
          ("enableDeletionProtection",), (A, M), _elb_deletion_protection, "Set enable_deletion_protection=True."),
    _rule("apigw-v2-access-logs", "APIGateway.9", "API Gateway V2 stages should write access logs",
          "aws:apigatewayv2/stage:Stage", ("accessLogSettings",), (A, M), _http_api_access_logs,
          "Set access_log_settings to a CloudWatch Logs group (infra/aws/http_api.py does)."),
    # --- ECS ---------------------------------------------------------------------------------------------
    _rule("ecs-no-public-ip", "ECS.2", "ECS services must not assign public IPs in prod", ECS_SERVICE,
          ("networkConfiguration",), (A, M), _ecs_no_public_ip,
          "Run tasks in private subnets (shipyard:network.nat or vpcEndpoints) with assign_public_ip=False."),
    _rule("ecs-no-host-pid", "ECS.3", "ECS task definitions must not share the host's process namespace",
          TASK_DEFINITION, ("pidMode",), (M, M), _ecs_no_host_pid, "Leave pid_mode unset or 'task'."),
    _rule("ecs-not-privileged", "ECS.4", "ECS containers must not run privileged", TASK_DEFINITION,
          ("containerDefinitions",), (M, M), _ecs_not_privileged, "Remove privileged from the container."),
    _rule("ecs-read-only-root", "ECS.5", "ECS containers must have a read-only root filesystem", TASK_DEFINITION,
          ("containerDefinitions",), (A, M), _ecs_read_only_root,
          "Set readonlyRootFilesystem=true; mount a volume for /tmp if the app writes there."),
    _rule("ecs-no-secrets-in-env", "ECS.8", "ECS containers must not pass secrets as environment variables",
          TASK_DEFINITION, ("containerDefinitions",), (M, M), _ecs_no_secrets_in_env,
          "Use the container's `secrets` (valueFrom a Secrets Manager ARN)."),
    _rule("ecs-logging", "ECS.9", "ECS containers must have a logging configuration", TASK_DEFINITION,
          ("containerDefinitions",), (M, M), _ecs_logging, "Set logConfiguration (awslogs) on every container."),
    _rule("ecs-container-insights", "ECS.12", "ECS clusters must have Container Insights in prod", ECS_CLUSTER,
          ("settings",), (A, M), _ecs_container_insights, "Add setting containerInsights=enabled."),
    # --- Lambda ------------------------------------------------------------------------------------------
    _rule("lambda-not-public", "Lambda.1", "Lambda permissions must not let anyone invoke the function",
          LAMBDA_PERMISSION, ("principal", "sourceArn", "sourceAccount", "principalOrgId", "functionUrlAuthType"),
          (M, M), _lambda_permission_not_public, "Set source_arn (or source_account) on the permission."),
    _rule("lambda-supported-runtime", "Lambda.2", "Lambda functions must use a supported runtime", LAMBDA,
          ("runtime", "packageType"), (M, M), _lambda_runtime, "Use python3.13 (infra/aws/function.py RUNTIME)."),
    _rule("lambda-no-secrets-in-env", OWN, "Lambda environment variables must not hold secrets", LAMBDA,
          ("environment",), (M, M), _lambda_no_secrets_in_env,
          "Pass the Secrets Manager ARN (…_SECRET_ARN) and fetch the value at run time."),
    # --- IAM ---------------------------------------------------------------------------------------------
    _rule("iam-no-admin-policy", "IAM.1", "IAM policies must not allow '*' actions on '*' resources",
          (*IAM_POLICY_TYPES, IAM_ROLE), ("policy", "inlinePolicies"), (M, M), _iam_no_admin,
          "List the actions and resources the workload needs."),
    _rule("iam-no-service-wildcards", "IAM.21", "IAM policies must not allow every action of a service",
          (*IAM_POLICY_TYPES, IAM_ROLE), ("policy", "inlinePolicies"), (A, M), _iam_no_service_wildcards,
          "Replace 'service:*' with the specific actions."),
    _rule("iam-no-long-lived-keys", OWN, "No IAM users or access keys: humans use SSO, CI uses OIDC",
          ("aws:iam/accessKey:AccessKey", "aws:iam/user:User", "aws:iam/userLoginProfile:UserLoginProfile"), (),
          (M, M), _iam_no_long_lived_keys, "Use an IAM role assumed through OIDC or an instance/task/function role."),
    _rule("iam-no-admin-attachment", "IAM.1", "Roles must not get AdministratorAccess-style managed policies",
          ("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "aws:iam/policyAttachment:PolicyAttachment", IAM_ROLE),
          ("policyArn", "managedPolicyArns"), (M, M), _iam_no_admin_attachment,
          "Write a least-privilege policy instead."),
    # --- EC2 / VPC ---------------------------------------------------------------------------------------
    _rule("ec2-default-sg-closed", "EC2.2", "The VPC default security group must allow no traffic",
          "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup", ("ingress", "egress"), (M, M), _default_sg_closed,
          "Manage the default group with no ingress or egress rules."),
    _rule("ec2-subnet-no-auto-public-ip", "EC2.15", "Subnets must not auto-assign public IPs",
          "aws:ec2/subnet:Subnet", ("mapPublicIpOnLaunch",), (M, M), _subnet_no_auto_public_ip,
          "Set map_public_ip_on_launch=False; give a public IP explicitly where one is needed."),
    _rule("ec2-only-web-ports-public", "EC2.18", "Only ports 80 and 443 may be open to the internet",
          SECURITY_GROUP_TYPES, ("ingress", "cidrBlocks", "cidrIpv4", "cidrIpv6", "fromPort", "toPort"), (M, M),
          _world_only_web_ports, "Restrict the source to a security group or a known CIDR."),
    _rule("ec2-no-public-admin-ports", "EC2.19", "High-risk ports (SSH, RDP, databases...) must not be open to the "
          "internet", SECURITY_GROUP_TYPES, ("ingress", "cidrBlocks", "cidrIpv4", "cidrIpv6", "fromPort", "toPort"),
          (M, M), _no_world_high_risk_ports, "Use ECS Exec / SSM Session Manager; never open 22 or 5432 to 0.0.0.0/0."),
    # --- Messaging and data ------------------------------------------------------------------------------
    _rule("sns-encrypted", "SNS.1", "SNS topics must be encrypted at rest with KMS", "aws:sns/topic:Topic",
          ("kmsMasterKeyId",), (A, M), _sns_encrypted, "Set kms_master_key_id to the stack's alerts key."),
    _rule("sns-customer-managed-key", OWN, "Alarm topics must not use the AWS managed SNS key",
          "aws:sns/topic:Topic", ("kmsMasterKeyId",), (M, M), _sns_customer_key,
          "Use a customer managed key whose policy allows cloudwatch.amazonaws.com and events.amazonaws.com."),
    _rule("sqs-encrypted", "SQS.1", "SQS queues must be encrypted at rest", "aws:sqs/queue:Queue",
          ("sqsManagedSseEnabled", "kmsMasterKeyId"), (M, M), _sqs_encrypted, "Set sqs_managed_sse_enabled=True."),
    _rule("dynamodb-pitr", "DynamoDB.2", "DynamoDB tables must have point-in-time recovery in prod",
          "aws:dynamodb/table:Table", ("pointInTimeRecovery",), (A, M), _dynamodb_pitr,
          "Set point_in_time_recovery={'enabled': True}."),
    _rule("secret-recovery-window", OWN, "Secrets Manager secrets must keep a recovery window", SECRET,
          ("recoveryWindowInDays",), (A, M), _secret_recovery_window, "Leave recovery_window_in_days at 7-30."),
    _rule("kms-rotation", "KMS.4", "KMS keys must rotate their key material", "aws:kms/key:Key",
          ("customerMasterKeySpec", "enableKeyRotation"), (M, M), _kms_rotation, "Set enable_key_rotation=True."),
    _rule("backup-vault-encrypted", "Backup.1", "Backup recovery points must be encrypted with our KMS key",
          "aws:backup/vault:Vault", ("kmsKeyArn",), (A, M), _backup_vault_cmk, "Set kms_key_arn on the vault."),
    _rule("backup-retention", OWN, "Backup plans must keep recovery points at least 7 days", "aws:backup/plan:Plan",
          ("rules",), (M, M), _backup_plan_retention, "Set lifecycle.delete_after >= 7."),
    _rule("elasticache-encrypted-at-rest", "ElastiCache.4", "ElastiCache replication groups must encrypt at rest",
          "aws:elasticache/replicationGroup:ReplicationGroup", ("atRestEncryptionEnabled",), (A, M),
          _elasticache_at_rest, "Set at_rest_encryption_enabled=True."),
    _rule("elasticache-encrypted-in-transit", "ElastiCache.5", "ElastiCache replication groups must use TLS",
          "aws:elasticache/replicationGroup:ReplicationGroup", ("transitEncryptionEnabled",), (A, M),
          _elasticache_in_transit, "Set transit_encryption_enabled=True (clients connect with rediss://)."),
    _rule("waf-has-rules", "WAF.10", "WAF web ACLs must contain at least one rule", "aws:wafv2/webAcl:WebAcl",
          ("rules", "ruleJson"), (M, M), _waf_has_rules, "Add the AWS managed rule groups (infra/aws/waf.py)."),
    _rule("ecr-scan-on-push", "ECR.1", "ECR repositories must scan images on push", "aws:ecr/repository:Repository",
          ("imageScanningConfiguration",), (A, M), _ecr_scan_on_push, "Set image_scanning_configuration."),
    _rule("ecr-immutable-tags", "ECR.2", "ECR repositories should have immutable tags",
          "aws:ecr/repository:Repository", ("imageTagMutability",), (A, A), _ecr_immutable_tags,
          "Set image_tag_mutability='IMMUTABLE' and deploy by digest or unique tag."),
    # --- Issue 16: logging, customer keys on logs, confused deputy, least privilege ---------------------------
    _rule("log-group-cmk", OWN, "Log groups must be encrypted with the stack's customer managed key in prod",
          LOG_GROUP, ("kmsKeyId",), (A, M), _log_group_cmk,
          "Pass the region's LogKey.arn as kms_key_id (infra/aws/kms.py LogKey; stack.py wires it)."),
    _rule("waf-logging-config", OWN, "WAF logs go to an aws-waf-logs-* destination with credentials redacted",
          WAF_LOGGING, ("logDestinationConfigs", "redactedFields"), (M, M), _waf_logging_config,
          "Name the destination aws-waf-logs-...; redact the authorization and cookie headers (infra/aws/waf.py)."),
    _rule("iam-no-broad-lambda-policies", OWN, "Lambda roles must not get AWS's execution policies (logs on '*')",
          (*ROLE_POLICY_ATTACHMENTS, IAM_ROLE), ("policyArn", "managedPolicyArns"), (M, M), _no_broad_lambda_policies,
          "Use PythonFunction's inline policy: its own log group, plus vpc_access_statements when in a VPC."),
    _rule("iam-trust-confused-deputy", OWN, "Service roles must trust the service only for this account's resources",
          IAM_ROLE, ("assumeRolePolicy",), (M, M), _trust_confused_deputy,
          "Build the trust policy with infra/aws/trust.py (aws:SourceAccount + aws:SourceArn per the service's docs)."),
    _rule("kms-service-grants-scoped", OWN, "Key policies must hold AWS service principals to this account",
          KMS_KEY, ("policy",), (M, M), _kms_service_grants_scoped,
          "Add aws:SourceAccount/aws:SourceArn, or the service's kms:EncryptionContext key, to the statement."),
    # --- Operations (our own) ----------------------------------------------------------------------------
    _rule("alarm-has-action", OWN, "Every alarm must notify someone", ALARMS, ("actionsEnabled", "alarmActions"),
          (M, M), _alarm_has_action, "Set alarm_actions to the severity's SNS topic (infra/aws/alarms.py)."),
    _rule("log-group-retention", OWN, "Every log group must have a retention period", LOG_GROUP,
          ("retentionInDays",), (M, M), _log_group_retention, "Set retention_in_days (see LogRetentionDays)."),
    _rule("provider-default-tags", OWN, "AWS providers must carry the required default tags", AWS_PROVIDER, (),
          (M, M), _provider_default_tags, "Build providers with default_tags=default_tags(config, naming)."),
    _rule("required-tags", OWN, "Every AWS resource must carry the tags project, stack, tier and owner", "*aws",
          ("tags", "tagsAll"), (M, M), _required_tags, "Create it under a component whose provider has defaultTags."),
    _rule("explicit-provider", OWN, "AWS resources must use the stack's explicit provider, never the default one",
          "*aws", (), (M, M), _explicit_provider, "Create it with opts=self.opts() under a component."),
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Stack-wide rules
# ---------------------------------------------------------------------------------------------------------


def _covered(bucket: StackResourceView, guards: Sequence[StackResourceView]) -> bool:
    """A guard (access block, policy) covers a bucket it depends on, or whose `bucket` names it."""
    names = {bucket.props.get("bucket"), bucket.props.get("id")} - {None, ""}
    return any(bucket.urn in guard.dependencies or guard.props.get("bucket") in names for guard in guards)


def _every_bucket_blocks_public_access(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    blocks = [r for r in resources if r.type == PUBLIC_ACCESS_BLOCK]
    for bucket in (r for r in resources if r.type in BUCKETS):
        if not _covered(bucket, blocks):
            yield bucket.urn, f"bucket {bucket.name} has no BucketPublicAccessBlock"


def _every_bucket_tls_only(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    policies = [r for r in resources if r.type == BUCKET_POLICY and denies_insecure_transport(r.props.get("policy"))]
    for bucket in (r for r in resources if r.type in BUCKETS):
        if not _covered(bucket, policies):
            yield bucket.urn, f"bucket {bucket.name} has no bucket policy denying aws:SecureTransport=false"


def _every_vpc_has_flow_logs(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    flow_logs = [r for r in resources if r.type == FLOW_LOG]
    for vpc in (r for r in resources if r.type == VPC):
        if not any(vpc.urn in log.dependencies for log in flow_logs):
            yield vpc.urn, f"VPC {vpc.name} has no flow log (no record of rejected or unexpected traffic)"


def _every_secret_rotates(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    rotations = [r for r in resources if r.type == SECRET_ROTATION]
    for secret in (r for r in resources if r.type == SECRET):
        if not any(secret.urn in rotation.dependencies for rotation in rotations):
            yield secret.urn, f"secret {secret.name} has no rotation schedule"


def _named(resource: StackResourceView, names: set[Any]) -> bool:
    return bool({resource.props.get("bucket"), resource.props.get("id")} & (names - {None, ""}))


def _log_destination_names(resources: Sequence[StackResourceView]) -> set[str]:
    """Buckets that receive logs: S3 access-log targets, ALB access logs, CloudFront standard logs."""
    names = {str(r.props.get("targetBucket")) for r in resources if r.type in BUCKET_LOGGING}
    for lb in (r for r in resources if r.type in LOAD_BALANCERS):
        names.add(str(as_mapping(lb.props.get("accessLogs")).get("bucket")))
    for distribution in (r for r in resources if r.type == DISTRIBUTION):
        domain = str(as_mapping(distribution.props.get("loggingConfig")).get("bucket") or "")
        names.add(domain.split(".s3", 1)[0])
    return names - {"None", ""}


def _every_bucket_access_logged(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    destinations = _log_destination_names(resources)
    loggings = [r for r in resources if r.type in BUCKET_LOGGING]
    for bucket in (r for r in resources if r.type in BUCKETS):
        if _named(bucket, destinations):
            continue  # a log bucket: logging it would log its own deliveries
        logged = {str(logging.props.get("bucket")) for logging in loggings}
        if not _named(bucket, logged):
            yield bucket.urn, f"bucket {bucket.name} has no server access logging (no record of who read or deleted)"


def _expires(lifecycle: StackResourceView) -> bool:
    for rule in as_list(lifecycle.props.get("rules")):
        if isinstance(rule, Mapping) and str(rule.get("status")) == "Enabled":
            expiration = as_mapping(rule.get("expiration"))
            if _port(expiration.get("days")) > 0:
                return True
    return False


def _access_log_buckets_sound(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    lifecycles = [r for r in resources if r.type in BUCKET_LIFECYCLE and _expires(r)]
    expiring = {str(r.props.get("bucket")) for r in lifecycles}
    for logging in (r for r in resources if r.type in BUCKET_LOGGING):
        source, target = str(logging.props.get("bucket")), str(logging.props.get("targetBucket"))
        if source == target:
            yield logging.urn, f"bucket {source} logs into itself: every delivered log object is logged again"
        if target not in expiring:
            yield logging.urn, f"log bucket {target} has no lifecycle expiration: access logs pile up forever"


def _every_web_acl_logs(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    configs = [r for r in resources if r.type == WAF_LOGGING]
    for acl in (r for r in resources if r.type == WEB_ACL):
        if not any(acl.urn in config.dependencies for config in configs):
            yield acl.urn, f"web ACL {acl.name} has no logging configuration: only metrics and sampled requests"


def _log_keys_admit_logs_service(resources: Sequence[StackResourceView]) -> Iterator[tuple[str, str]]:
    keys = {r.urn: r for r in resources if r.type == KMS_KEY}
    for group in (r for r in resources if r.type == LOG_GROUP and r.props.get("kmsKeyId")):
        arn = str(group.props.get("kmsKeyId"))
        region = arn.split(":")[3] if arn.count(":") >= 5 else None
        for key in (keys[urn] for urn in group.dependencies if urn in keys):
            principals = [
                service
                for statement in policy_statements(key.props.get("policy"))
                if statement.get("Effect") == "Allow" and LOGS_ENCRYPTION_CONTEXT in condition_keys(statement)
                for service in service_principals(statement)
                if service.startswith("logs.") and (region is None or service == f"logs.{region}.amazonaws.com")
            ]
            if not principals:
                where = f"logs.{region}.amazonaws.com" if region else "logs.<region>.amazonaws.com"
                yield (
                    group.urn,
                    (
                        f"log group {group.name}: key {key.name} does not allow {where} with a "
                        "kms:EncryptionContext:aws:logs:arn condition; CloudWatch Logs cannot encrypt with it"
                    ),
                )


STACK_RULES: tuple[StackRule, ...] = (
    StackRule("s3-bucket-public-access-blocked", "S3.8", "Every S3 bucket must have a public access block", M, M,
              _every_bucket_blocks_public_access, "Add a BucketPublicAccessBlock with all four flags."),
    StackRule("s3-bucket-tls-only", "S3.5", "Every S3 bucket must have a policy that denies non-TLS requests", M, M,
              _every_bucket_tls_only, "Add a BucketPolicy with the aws:SecureTransport deny statement."),
    StackRule("vpc-flow-logs", "EC2.6", "Every VPC must have flow logs in prod", A, M, _every_vpc_has_flow_logs,
              "Set shipyard:network.flowLogs: true."),
    StackRule("secrets-rotation", "SecretsManager.1", "Secrets should rotate automatically", A, A,
              _every_secret_rotates, "Add a SecretRotation where the service can rotate (RDS manages its own)."),
    StackRule("waf-logging", "WAF.11", "Every WAF web ACL must log requests in prod", A, M, _every_web_acl_logs,
              "Give the ACL a WebAclLoggingConfiguration (infra/aws/waf.py does)."),
    StackRule("s3-access-logging", "S3.9", "Every S3 bucket that is not itself a log bucket must have server "
              "access logging in prod", A, M, _every_bucket_access_logged,
              "Add the bucket to ServerAccessLogs' sources (infra/aws/stack.py)."),
    StackRule("s3-access-log-bucket", OWN, "Access-log buckets must expire their logs and not log into themselves",
              M, M, _access_log_buckets_sound, "Use ServerAccessLogs (infra/aws/access_logs.py)."),
    StackRule("log-key-admits-logs", OWN, "Keys of log groups must allow CloudWatch Logs of the group's region",
              M, M, _log_keys_admit_logs_service,
              "Use LogKey (infra/aws/kms.py): logs.<region>.amazonaws.com with kms:EncryptionContext:aws:logs:arn."),
)  # fmt: skip

ALL_RULES: tuple[Rule | StackRule, ...] = (*RULES, *STACK_RULES)
ALL_RULE_IDS: tuple[str, ...] = tuple(r.id for r in ALL_RULES)

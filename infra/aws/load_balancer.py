"""LoadBalancer: the public ALB in front of the API service.

- Public subnets, its own security group: 80 (and 443 with a certificate) from the internet; egress only to
  the targets' security group on the container port (`allow_egress_to`, called once the service exists).
- `drop_invalid_header_fields`: requests with header names that are not valid HTTP tokens are dropped
  instead of forwarded (request smuggling through odd headers; Security Hub ELB.4).
- With a certificate: HTTPS on 443 with a TLS 1.3/1.2-only policy and port 80 answering a permanent
  redirect to HTTPS. Without one (staging with no domain) port 80 forwards to the app: the only name there
  is the `*.elb.amazonaws.com` host, for which ACM cannot issue a certificate. That is the trade-off: staging
  traffic is plain HTTP, which is acceptable for test data only; any stack with real users sets a domain.
- Target group of `ip` targets (Fargate awsvpc) health-checked on `service.healthCheckPath`.
- Prod: deletion protection and access logs to an S3 bucket the ELB log-delivery principal may write to.
- Optional WAF web ACL association and a Route 53 alias `api.<domain>` when a hosted zone is given.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.aws.buckets import block_public_access, encrypt_with_s3_keys, enforce_bucket_owner
from infra.aws.security_groups import allow_tcp_egress
from infra.component import Component
from infra.naming import Naming

SSL_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
"""TLS 1.3 and 1.2 only, forward-secret ciphers; what AWS recommends for new listeners."""

# Regions opened before August 2022 deliver ALB access logs as this per-region ELB account; newer regions use
# the log-delivery service principal (both are granted, so a region move needs no policy change).
ELB_LOG_ACCOUNTS: dict[str, str] = {
    "us-east-1": "127311923021",
    "us-east-2": "033677994240",
    "us-west-1": "027434742980",
    "us-west-2": "797873946194",
    "ca-central-1": "985666609251",
    "eu-west-1": "156460612806",
    "eu-west-2": "652711504416",
    "eu-west-3": "009996457667",
    "eu-central-1": "054676820928",
    "eu-north-1": "897822967062",
    "ap-south-1": "718504428378",
    "ap-northeast-1": "582318560864",
    "ap-northeast-2": "600734575887",
    "ap-southeast-1": "114774131450",
    "ap-southeast-2": "783225319266",
    "sa-east-1": "507241528517",
}
LOG_PREFIX = "alb"


@dataclass(frozen=True)
class LoadBalancerArgs:
    region: str
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    """Public subnets, one per AZ (an ALB needs at least two AZs)."""
    target_port: int
    """Container port of the API (`service.port`)."""
    health_check_path: str
    """`service.healthCheckPath` (/api/health): liveness only, so a DB blip does not empty the target group."""
    deregistration_delay_seconds: int
    """`service.deregistrationDelaySeconds` (30): see the target group comment."""
    certificate_arn: pulumi.Input[str] | None
    """Regional ACM certificate for `domain_name`; None = HTTP-only listener (no domain)."""
    domain_name: str | None
    """Public host name of the API (`api.example.com`), or None to serve on the ALB's own DNS name."""
    hosted_zone_id: str | None
    """Route 53 zone for `domain_name`: given, an alias record is created."""
    web_acl_arn: pulumi.Input[str] | None
    """REGIONAL WAF web ACL to associate, or None."""
    deletion_protection: bool
    """`service.loadBalancerDeletionProtection` (prod true): a stray `pulumi destroy` cannot drop traffic."""
    access_logs: bool
    """`service.loadBalancerAccessLogs` (prod true): per-request logs in S3 for incident forensics."""
    access_log_retention_days: int
    """Days access log objects are kept (`service.accessLogRetentionDays`, 90)."""
    force_destroy_logs: bool
    """Whether `pulumi destroy` may delete a non-empty log bucket (staging only)."""


@dataclass(frozen=True)
class LoadBalancerTarget:
    """What the service behind the ALB needs, without depending on the LoadBalancer class."""

    target_group_arn: pulumi.Input[str]
    target_group_arn_suffix: pulumi.Input[str]
    arn_suffix: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    listeners: Sequence[pulumi.Resource]
    """An ECS service can only attach to a target group that a listener already uses: depend on these."""


class LoadBalancer(Component):
    alb: aws.lb.LoadBalancer
    security_group: aws.ec2.SecurityGroup
    target_group: aws.lb.TargetGroup
    listeners: list[aws.lb.Listener]
    log_bucket: aws.s3.Bucket | None
    arn_suffix: pulumi.Output[str]
    """`app/<name>/<id>`: the `LoadBalancer` dimension of AWS/ApplicationELB metrics."""
    target_group_arn_suffix: pulumi.Output[str]
    """`targetgroup/<name>/<id>`: the `TargetGroup` dimension."""
    dns_name: pulumi.Output[str]
    https: bool
    """Served over HTTPS (a certificate was given); known at plan time."""
    url: pulumi.Output[str]
    """Base URL of the API: `https://<domain>` with a certificate, else `http://<alb dns name>`."""

    def __init__(
        self, name: str, args: LoadBalancerArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "LoadBalancer", name, naming, opts)
        self.args = args
        https = self.https = args.certificate_arn is not None
        self.security_group = aws.ec2.SecurityGroup(
            self.child_name("sg"),
            name=naming.physical(name),
            vpc_id=args.vpc_id,
            description="Public load balancer: HTTP(S) in from anywhere, out only to the API tasks",
            tags={"Name": naming.physical(name)},
            opts=self.opts(),
        )
        for port in (80, 443) if https else (80,):
            aws.vpc.SecurityGroupIngressRule(
                self.child_name("in", str(port)),
                security_group_id=self.security_group.id,
                cidr_ipv4="0.0.0.0/0",
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                description=f"{'HTTPS' if port == 443 else 'HTTP'} from the internet",
                opts=self.opts(),
            )

        self.log_bucket = self._log_bucket(naming) if args.access_logs else None
        self.alb = aws.lb.LoadBalancer(
            self.child_name("alb"),
            name=naming.physical(name, max_length=32),
            load_balancer_type="application",
            internal=False,
            subnets=list(args.subnet_ids),
            security_groups=[self.security_group.id],
            drop_invalid_header_fields=True,
            enable_deletion_protection=args.deletion_protection,
            idle_timeout=60,  # gunicorn's keepalive (75 s) is longer, so the ALB closes idle connections first
            access_logs=(
                {"bucket": self.log_bucket.bucket, "prefix": LOG_PREFIX, "enabled": True}
                if self.log_bucket is not None
                else None
            ),
            opts=self.opts(depends_on=[self._log_policy] if self.log_bucket is not None else None),
        )

        self.target_group = aws.lb.TargetGroup(
            self.child_name("tg"),
            name=naming.physical(name, "tg", max_length=32),
            vpc_id=args.vpc_id,
            target_type="ip",
            protocol="HTTP",
            port=args.target_port,
            # 30 s: long enough for in-flight API requests (gunicorn's timeout is 30 s, most finish in well
            # under a second) to drain from a task being replaced; much shorter than the 300 s default, which
            # would add five minutes per task to every rolling deploy.
            deregistration_delay=args.deregistration_delay_seconds,
            health_check={
                "enabled": True,
                "path": args.health_check_path,
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            opts=self.opts(),
        )

        forward = [{"type": "forward", "target_group_arn": self.target_group.arn}]
        if https:
            self.listeners = [
                aws.lb.Listener(
                    self.child_name("https"),
                    load_balancer_arn=self.alb.arn,
                    port=443,
                    protocol="HTTPS",
                    ssl_policy=SSL_POLICY,
                    certificate_arn=args.certificate_arn,
                    default_actions=forward,
                    opts=self.opts(),
                ),
                aws.lb.Listener(
                    self.child_name("http-redirect"),
                    load_balancer_arn=self.alb.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=[
                        {
                            "type": "redirect",
                            "redirect": {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"},
                        }
                    ],
                    opts=self.opts(),
                ),
            ]
        else:
            # No certificate is possible without a domain: see the module docstring for the trade-off.
            self.listeners = [
                aws.lb.Listener(
                    self.child_name("http"),
                    load_balancer_arn=self.alb.arn,
                    port=80,
                    protocol="HTTP",
                    default_actions=forward,
                    opts=self.opts(),
                )
            ]

        if args.web_acl_arn is not None:
            aws.wafv2.WebAclAssociation(
                self.child_name("waf"),
                resource_arn=self.alb.arn,
                web_acl_arn=args.web_acl_arn,
                opts=self.opts(),
            )
        if args.domain_name is not None and args.hosted_zone_id is not None:
            aws.route53.Record(
                self.child_name("alias"),
                zone_id=args.hosted_zone_id,
                name=args.domain_name,
                type="A",
                aliases=[{"name": self.alb.dns_name, "zone_id": self.alb.zone_id, "evaluate_target_health": True}],
                opts=self.opts(),
            )

        self.arn_suffix = self.alb.arn_suffix
        self.target_group_arn_suffix = self.target_group.arn_suffix
        self.dns_name = self.alb.dns_name
        if https and args.domain_name is not None:
            self.url = pulumi.Output.from_input(f"https://{args.domain_name}")
        else:
            self.url = self.alb.dns_name.apply(lambda host: f"http://{host}")
        self.register_outputs(
            {
                "dnsName": self.dns_name,
                "url": self.url,
                "arnSuffix": self.arn_suffix,
                "targetGroupArnSuffix": self.target_group_arn_suffix,
            }
        )

    @property
    def target(self) -> LoadBalancerTarget:
        return LoadBalancerTarget(
            target_group_arn=self.target_group.arn,
            target_group_arn_suffix=self.target_group.arn_suffix,
            arn_suffix=self.alb.arn_suffix,
            security_group_id=self.security_group.id,
            listeners=list(self.listeners),
        )

    def allow_egress_to(self, name: str, security_group_id: pulumi.Input[str], port: int, description: str) -> None:
        """Let the ALB reach targets in `security_group_id` on `port` (its only egress)."""
        allow_tcp_egress(
            self,
            self.child_name("out", name),
            source_group=self.security_group.id,
            target_group=security_group_id,
            port=port,
            description=description,
        )

    def _log_bucket(self, naming: Naming) -> aws.s3.Bucket:
        args = self.args
        bucket = aws.s3.Bucket(
            self.child_name("logs"),
            # S3 names are global across accounts: a prefix, and the provider makes the name unique
            # (infra/naming.py). A fixed `shipyard-prod-api-lb-access-logs` fails in every second account.
            bucket_prefix=naming.bucket_prefix(self.component_name, "logs"),
            force_destroy=args.force_destroy_logs,
            opts=self.opts(),
        )
        block_public_access(self, self.child_name("logs-public-access"), bucket.id)
        enforce_bucket_owner(self, self.child_name("logs-ownership"), bucket.id)
        # ALB log delivery supports SSE-S3 only (not SSE-KMS), so AES256 it is.
        encrypt_with_s3_keys(self, self.child_name("logs-sse"), bucket.id)
        aws.s3.BucketVersioning(
            self.child_name("logs-versioning"),
            bucket=bucket.id,
            versioning_configuration={"status": "Enabled"},
            opts=self.opts(),
        )
        aws.s3.BucketLifecycleConfiguration(
            self.child_name("logs-lifecycle"),
            bucket=bucket.id,
            rules=[
                {
                    "id": "expire-access-logs",
                    "status": "Enabled",
                    "filter": {"prefix": f"{LOG_PREFIX}/"},
                    "expiration": {"days": args.access_log_retention_days},
                    "noncurrent_version_expiration": {"noncurrent_days": 1},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                }
            ],
            opts=self.opts(),
        )
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        elb_account = ELB_LOG_ACCOUNTS.get(args.region)

        def policy(values: list[str]) -> str:
            bucket_arn, account = values
            writers: list[dict[str, object]] = [{"Service": "logdelivery.elasticloadbalancing.amazonaws.com"}]
            if elb_account is not None:
                writers.append({"AWS": f"arn:aws:iam::{elb_account}:root"})
            statements: list[dict[str, object]] = [
                {
                    "Sid": f"AlbLogDelivery{index}",
                    "Effect": "Allow",
                    "Principal": principal,
                    "Action": "s3:PutObject",
                    "Resource": f"{bucket_arn}/{LOG_PREFIX}/AWSLogs/{account}/*",
                }
                for index, principal in enumerate(writers)
            ]
            statements.append(
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            )
            return json.dumps({"Version": "2012-10-17", "Statement": statements})

        self._log_policy = aws.s3.BucketPolicy(
            self.child_name("logs-policy"),
            bucket=bucket.id,
            policy=pulumi.Output.all(bucket.arn, account_id).apply(policy),
            opts=self.opts(),
        )
        return bucket

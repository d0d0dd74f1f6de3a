"""HttpApiFrontDoor: an API Gateway HTTP API in front of the API service, billed per request (issue 19).

The lean front door (`service.frontDoor: httpApi`, the staging default) instead of the ALB's fixed ~27 USD a
month (hours, two public IPv4 addresses, LCUs):

- Cloud Map private DNS namespace + service with SRV records: ECS registers each healthy API task (address and
  container port; ECS reports health through the custom health check), and API Gateway looks the tasks up
  there. SRV, because API Gateway needs the port (`AWS_INSTANCE_PORT`), which ECS only registers for SRV.
- A VPC link (HTTP API kind: no charge of its own) in the tasks' subnets with its own security group, whose
  only egress is the API port of the tasks' group (`allow_egress_to`, called once the service exists).
- `HTTP_PROXY` integration (`ANY`, payload 1.0) on the `$default` route, `$default` stage auto-deployed with
  stage-wide throttling and JSON access logs.
- HTTPS always: `https://<id>.execute-api.<region>.amazonaws.com`, or the custom domain (regional ACM
  certificate, TLS 1.2 policy) with the default endpoint disabled so the domain is the only way in.

What it does not do: AWS WAF cannot be associated with an HTTP API (only REST APIs, ALBs, CloudFront,
AppSync, Cognito, App Runner and Verified Access:
docs.aws.amazon.com/waf/latest/developerguide/waf-chapter.html), so infra/config.py refuses
`waf.enabled` with this front door, and prod requires the ALB (prod minimum `service.frontDoor`). Stage
throttling caps the whole API's request rate instead of per client (API Gateway throttling:
docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html).

Metrics: AWS/ApiGateway `Count`, `4xx`, `5xx`, `Latency`, `IntegrationLatency` (ms) with dimensions `ApiId`
and `Stage` (docs.aws.amazon.com/apigateway/latest/developerguide/http-api-metrics.html): the http-api-*
alarms in infra/aws/alarms.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.aws.security_groups import allow_tcp_egress
from infra.component import Component
from infra.naming import Naming

STAGE = "$default"
"""The auto-deployed default stage: served at the API's root, and the `Stage` metric dimension's value."""

ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "path": "$context.path",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
    },
    separators=(",", ":"),
)
"""One JSON line per request (the ALB access logs' job in this front door): who, what, status, latency."""


@dataclass(frozen=True)
class HttpApiArgs:
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    """Where the VPC link's network interfaces go: the tasks' subnets (one per AZ)."""
    target_port: int
    """Container port of the API (`service.port`)."""
    log_retention_days: int
    """Access log retention (`service.logRetentionDays`)."""
    certificate_arn: pulumi.Input[str] | None = None
    """Regional ACM certificate for `domain_name`; None = serve on the execute-api host only."""
    domain_name: str | None = None
    """Public host name of the API (`api.example.com`)."""
    hosted_zone_id: str | None = None
    """Route 53 zone for `domain_name`: given, an alias record is created."""
    throttling_rate_limit: float = 100.0
    """Steady requests per second for the whole stage (default 100: far above a staging's traffic, far below
    the account's 10,000, so a runaway client cannot eat the region's quota or the bill)."""
    throttling_burst_limit: int = 200
    """Burst bucket size for the stage (default 200)."""
    integration_timeout_ms: int = 30_000
    """Matches gunicorn's 30 s worker timeout (the HTTP API maximum is 30 s)."""


@dataclass(frozen=True)
class DiscoveryTarget:
    """What the ECS service needs to register its tasks where the HTTP API finds them."""

    registry_arn: pulumi.Input[str]
    security_group_id: pulumi.Input[str]
    """The VPC link's group: the tasks admit the API port from it only."""


class HttpApiFrontDoor(Component):
    api: aws.apigatewayv2.Api
    stage: aws.apigatewayv2.Stage
    vpc_link: aws.apigatewayv2.VpcLink
    security_group: aws.ec2.SecurityGroup
    namespace: aws.servicediscovery.PrivateDnsNamespace
    discovery_service: aws.servicediscovery.Service
    access_logs: aws.cloudwatch.LogGroup
    https: bool = True
    """Always HTTPS (execute-api host or the custom domain)."""
    url: pulumi.Output[str]
    api_id: pulumi.Output[str]
    """The `ApiId` metric dimension."""

    def __init__(
        self, name: str, args: HttpApiArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("aws", "HttpApiFrontDoor", name, naming, opts)
        self.args = args
        self._discovery(naming)
        self._vpc_link(naming)
        self.api = aws.apigatewayv2.Api(
            self.child_name("api"),
            name=naming.physical(name),
            protocol_type="HTTP",
            description="Public front door of the API service (VPC link to the ECS tasks)",
            # With a custom domain the execute-api host would bypass it: the domain is the only way in.
            disable_execute_api_endpoint=args.domain_name is not None,
            opts=self.opts(),
        )
        integration = aws.apigatewayv2.Integration(
            self.child_name("integration"),
            api_id=self.api.id,
            integration_type="HTTP_PROXY",
            integration_method="ANY",
            integration_uri=self.discovery_service.arn,
            connection_type="VPC_LINK",
            connection_id=self.vpc_link.id,
            payload_format_version="1.0",
            timeout_milliseconds=args.integration_timeout_ms,
            opts=self.opts(),
        )
        aws.apigatewayv2.Route(
            self.child_name("route"),
            api_id=self.api.id,
            route_key="$default",
            target=integration.id.apply(lambda integration_id: f"integrations/{integration_id}"),
            opts=self.opts(),
        )
        self.access_logs = aws.cloudwatch.LogGroup(
            self.child_name("access-logs"),
            name=f"/aws/apigateway/{naming.physical(name)}",
            retention_in_days=args.log_retention_days,
            opts=self.opts(),
        )
        self.stage = aws.apigatewayv2.Stage(
            self.child_name("stage"),
            api_id=self.api.id,
            name=STAGE,
            auto_deploy=True,
            default_route_settings={
                "throttling_rate_limit": args.throttling_rate_limit,
                "throttling_burst_limit": args.throttling_burst_limit,
            },
            access_log_settings={"destination_arn": self.access_logs.arn, "format": ACCESS_LOG_FORMAT},
            opts=self.opts(),
        )
        self.api_id = self.api.id
        self.url = self._custom_domain() if args.domain_name is not None else self.api.api_endpoint
        self.register_outputs({"url": self.url, "apiId": self.api_id})

    def _discovery(self, naming: Naming) -> None:
        self.namespace = aws.servicediscovery.PrivateDnsNamespace(
            self.child_name("namespace"),
            # A private hosted zone in this VPC only (Route 53 bills it like any hosted zone).
            name=f"{naming.physical('internal')}.local",
            vpc=self.args.vpc_id,
            description="Where the HTTP API finds the API tasks",
            opts=self.opts(),
        )
        self.discovery_service = aws.servicediscovery.Service(
            self.child_name("discovery"),
            name="api",
            dns_config={
                "namespace_id": self.namespace.id,
                "routing_policy": "MULTIVALUE",
                "dns_records": [{"type": "SRV", "ttl": 10}],
            },
            # ECS reports each task's health (container health check); unhealthy tasks are deregistered.
            health_check_custom_config={"failure_threshold": 1},
            force_destroy=True,  # ECS-registered instances would otherwise block a replace or destroy
            opts=self.opts(),
        )

    def _vpc_link(self, naming: Naming) -> None:
        args = self.args
        self.security_group = aws.ec2.SecurityGroup(
            self.child_name("sg"),
            name=naming.physical(self.component_name, "vpc-link"),
            vpc_id=args.vpc_id,
            description="HTTP API VPC link: out only to the API tasks",
            tags={"Name": naming.physical(self.component_name, "vpc-link")},
            opts=self.opts(),
        )
        self.vpc_link = aws.apigatewayv2.VpcLink(
            self.child_name("vpc-link"),
            name=naming.physical(self.component_name),
            subnet_ids=list(args.subnet_ids),
            security_group_ids=[self.security_group.id],
            opts=self.opts(),
        )

    def _custom_domain(self) -> pulumi.Output[str]:
        args = self.args
        assert args.domain_name is not None
        domain = aws.apigatewayv2.DomainName(
            self.child_name("domain"),
            domain_name=args.domain_name,
            domain_name_configuration={
                "certificate_arn": args.certificate_arn,
                "endpoint_type": "REGIONAL",
                "security_policy": "TLS_1_2",
            },
            opts=self.opts(),
        )
        aws.apigatewayv2.ApiMapping(
            self.child_name("mapping"),
            api_id=self.api.id,
            domain_name=domain.id,
            stage=self.stage.id,
            opts=self.opts(),
        )
        if args.hosted_zone_id is not None:
            target = domain.domain_name_configuration
            aws.route53.Record(
                self.child_name("alias"),
                zone_id=args.hosted_zone_id,
                name=args.domain_name,
                type="A",
                aliases=[
                    {
                        "name": target.target_domain_name,
                        "zone_id": target.hosted_zone_id,
                        "evaluate_target_health": False,
                    }
                ],
                opts=self.opts(),
            )
        return pulumi.Output.from_input(f"https://{args.domain_name}")

    @property
    def target(self) -> DiscoveryTarget:
        return DiscoveryTarget(registry_arn=self.discovery_service.arn, security_group_id=self.security_group.id)

    def allow_egress_to(self, name: str, security_group_id: pulumi.Input[str], port: int, description: str) -> None:
        """Let the VPC link reach targets in `security_group_id` on `port` (its only egress)."""
        allow_tcp_egress(
            self,
            self.child_name("out", name),
            source_group=self.security_group.id,
            target_group=security_group_id,
            port=port,
            description=description,
        )

"""Network: a VPC over 2-3 AZs with three subnet tiers, egress by NAT or VPC endpoints, and flow logs.

Subnet tiers (each one subnet per AZ, equal /N+4 slices of the VPC CIDR):
- public:   load balancer and NAT gateways; in staging without NAT also the API tasks (public IP, but
            their security group admits only the load balancer);
- private:  API tasks, workers and Lambdas when NAT or endpoints give them a way out;
- isolated: the database and cache; no route beyond the VPC at all.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.aws.trust import flow_logs_trust_policy
from infra.component import Component
from infra.config import NetworkConfig
from infra.naming import Naming

# Interface endpoints private workloads need when there is no NAT: pulling images (ecr.api, ecr.dkr; the
# layers come from S3 through the gateway endpoint), shipping logs, and reading secrets at start-up.
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
# Without NAT or the full set, only a Lambda inside the VPC that reads a secret at run time needs a way to
# Secrets Manager: one endpoint in one AZ (~7.30 USD/month) when one exists (`require_secrets_manager_endpoint`,
# derived in infra/aws/stack.py from the functions themselves), none otherwise (issue 19).
MINIMAL_ENDPOINTS = ("secretsmanager",)


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkConfig
    """The `shipyard:network` block (cidr, azCount, nat, vpcEndpoints, flowLogs); see infra/config/."""
    region: str
    """`aws:region`; endpoint service names are `com.amazonaws.<region>.<service>`."""
    log_kms_key_arn: pulumi.Input[str] | None = None
    """The stack's log key (`LogKey.arn`) for the flow-log group; None keeps CloudWatch Logs' default encryption."""


def subnet_blocks(cidr: str, az_count: int) -> dict[str, list[str]]:
    """Carve the VPC into 16 equal slices: public 0-2, private 4-6, isolated 8-10 (room left to grow)."""
    slices = list(ipaddress.IPv4Network(cidr).subnets(prefixlen_diff=4))
    return {
        "public": [str(slices[i]) for i in range(az_count)],
        "private": [str(slices[4 + i]) for i in range(az_count)],
        "isolated": [str(slices[8 + i]) for i in range(az_count)],
    }


class Network(Component):
    vpc: aws.ec2.Vpc
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    isolated_subnet_ids: list[pulumi.Output[str]]

    def __init__(self, name: str, args: NetworkArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aws", "Network", name, naming, opts)
        settings = args.settings
        self.settings = settings
        self.availability_zones = aws.get_availability_zones(
            state="available", opts=pulumi.InvokeOptions(parent=self)
        ).names[: settings.az_count]
        blocks = subnet_blocks(settings.cidr, settings.az_count)

        self.vpc = aws.ec2.Vpc(
            self.child_name("vpc"),
            cidr_block=settings.cidr,
            enable_dns_hostnames=True,  # required for interface endpoints' private DNS and RDS host names
            enable_dns_support=True,
            tags={"Name": naming.physical("vpc")},
            opts=self.opts(),
        )
        # FSBP EC2.2: the default security group must allow nothing; taking it over with no rules does that.
        aws.ec2.DefaultSecurityGroup(
            self.child_name("default-sg"),
            vpc_id=self.vpc.id,
            tags={"Name": naming.physical("default-deny")},
            opts=self.opts(),
        )
        igw = aws.ec2.InternetGateway(
            self.child_name("igw"),
            vpc_id=self.vpc.id,
            tags={"Name": naming.physical("igw")},
            opts=self.opts(),
        )

        def subnets(tier: str, public: bool) -> list[aws.ec2.Subnet]:
            return [
                aws.ec2.Subnet(
                    self.child_name(tier, str(index)),
                    vpc_id=self.vpc.id,
                    cidr_block=block,
                    availability_zone=zone,
                    # Only the public tier hands out addresses; tasks there get one explicitly.
                    map_public_ip_on_launch=False,
                    tags={"Name": naming.physical(tier, zone), "tier": tier, "public": str(public).lower()},
                    opts=self.opts(),
                )
                for index, (block, zone) in enumerate(zip(blocks[tier], self.availability_zones, strict=True))
            ]

        public = subnets("public", True)
        private = subnets("private", False)
        isolated = subnets("isolated", False)

        public_routes = aws.ec2.RouteTable(
            self.child_name("public-rt"),
            vpc_id=self.vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags={"Name": naming.physical("public")},
            opts=self.opts(),
        )
        for index, subnet in enumerate(public):
            aws.ec2.RouteTableAssociation(
                self.child_name("public-rta", str(index)),
                subnet_id=subnet.id,
                route_table_id=public_routes.id,
                opts=self.opts(),
            )

        nat_gateways: list[aws.ec2.NatGateway] = []
        nat_count = {"none": 0, "single": 1, "per_az": settings.az_count}[settings.nat]
        for index in range(nat_count):
            eip = aws.ec2.Eip(
                self.child_name("nat-eip", str(index)),
                domain="vpc",
                tags={"Name": naming.physical("nat", str(index))},
                opts=self.opts(),
            )
            nat_gateways.append(
                aws.ec2.NatGateway(
                    self.child_name("nat", str(index)),
                    allocation_id=eip.id,
                    subnet_id=public[index].id,
                    tags={"Name": naming.physical("nat", str(index))},
                    opts=self.opts(depends_on=[igw]),
                )
            )

        private_route_tables = []
        for index, subnet in enumerate(private):
            routes = []
            if nat_gateways:
                # per_az: each AZ leaves through its own NAT, so losing an AZ loses only its egress.
                nat = nat_gateways[index % len(nat_gateways)]
                routes.append(aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id))
            table = aws.ec2.RouteTable(
                self.child_name("private-rt", str(index)),
                vpc_id=self.vpc.id,
                routes=routes,
                tags={"Name": naming.physical("private", str(index))},
                opts=self.opts(),
            )
            private_route_tables.append(table)
            aws.ec2.RouteTableAssociation(
                self.child_name("private-rta", str(index)),
                subnet_id=subnet.id,
                route_table_id=table.id,
                opts=self.opts(),
            )

        isolated_routes = aws.ec2.RouteTable(
            self.child_name("isolated-rt"),
            vpc_id=self.vpc.id,
            routes=[],  # no way out: the database tier talks to the VPC only
            tags={"Name": naming.physical("isolated")},
            opts=self.opts(),
        )
        for index, subnet in enumerate(isolated):
            aws.ec2.RouteTableAssociation(
                self.child_name("isolated-rta", str(index)),
                subnet_id=subnet.id,
                route_table_id=isolated_routes.id,
                opts=self.opts(),
            )

        # The S3 gateway endpoint is free and keeps ECR layer pulls and backups off the NAT bill.
        aws.ec2.VpcEndpoint(
            self.child_name("s3-endpoint"),
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{args.region}.s3",
            vpc_endpoint_type="Gateway",
            route_table_ids=[t.id for t in private_route_tables] + [isolated_routes.id],
            tags={"Name": naming.physical("s3")},
            opts=self.opts(),
        )

        self._region = args.region
        self._private_subnets = private
        self.endpoint_security_group: aws.ec2.SecurityGroup | None = None
        self.interface_endpoints: dict[str, aws.ec2.VpcEndpoint] = {}
        if settings.vpc_endpoints:
            for service in INTERFACE_ENDPOINTS:
                self._interface_endpoint(service, private)

        self.flow_log_group: aws.cloudwatch.LogGroup | None = None
        if settings.flow_logs:
            self._flow_logs(settings, naming, args)

        self.public_subnet_ids = [s.id for s in public]
        self.private_subnet_ids = [s.id for s in private]
        self.isolated_subnet_ids = [s.id for s in isolated]
        self.register_outputs(
            {
                "vpcId": self.vpc.id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
                "isolatedSubnetIds": self.isolated_subnet_ids,
            }
        )

    def _interface_endpoint(self, service: str, subnets: list[aws.ec2.Subnet], needed_by: str = "") -> None:
        if self.endpoint_security_group is None:
            self.endpoint_security_group = aws.ec2.SecurityGroup(
                self.child_name("endpoints-sg"),
                vpc_id=self.vpc.id,
                description="HTTPS from inside the VPC to AWS API interface endpoints",
                ingress=[
                    aws.ec2.SecurityGroupIngressArgs(
                        protocol="tcp",
                        from_port=443,
                        to_port=443,
                        cidr_blocks=[self.settings.cidr],
                        description="AWS APIs from workloads in this VPC",
                    )
                ],
                tags={"Name": self.naming.physical("endpoints")},
                opts=self.opts(),
            )
        tags = {"Name": self.naming.physical(service.replace(".", "-"))}
        if needed_by:
            tags["needed-by"] = needed_by[:256]
        self.interface_endpoints[service] = aws.ec2.VpcEndpoint(
            self.child_name(service.replace(".", "-"), "endpoint"),
            vpc_id=self.vpc.id,
            service_name=f"com.amazonaws.{self._region}.{service}",
            vpc_endpoint_type="Interface",
            private_dns_enabled=True,
            subnet_ids=[s.id for s in subnets],
            security_group_ids=[self.endpoint_security_group.id],
            tags=tags,
            opts=self.opts(),
        )

    def require_secrets_manager_endpoint(self, readers: list[str]) -> bool:
        """Give `readers` (Lambdas inside the VPC that fetch a secret at run time) a way to Secrets Manager.

        Nothing to add with NAT (they leave through it) or with the full endpoint set; otherwise one endpoint in
        one AZ: only scheduled Lambdas, which retry, reach it, so an AZ outage costs a retry, not an outage.
        No readers, no endpoint (~7.30 USD/month saved). Returns whether this stack has a way there."""
        if not readers:
            return self.settings.nat != "none" or "secretsmanager" in self.interface_endpoints
        if self.settings.nat == "none" and "secretsmanager" not in self.interface_endpoints:
            for service in MINIMAL_ENDPOINTS:
                self._interface_endpoint(service, self._private_subnets[:1], needed_by=" ".join(sorted(readers)))
        return True

    @property
    def tasks_in_public_subnets(self) -> bool:
        """Without NAT or endpoints, Fargate tasks need a public IP to pull images and ship logs."""
        return self.settings.nat == "none" and not self.settings.vpc_endpoints

    @property
    def workload_subnet_ids(self) -> list[pulumi.Output[str]]:
        """Where API tasks and workers run (see `tasks_in_public_subnets`)."""
        return self.public_subnet_ids if self.tasks_in_public_subnets else self.private_subnet_ids

    def _flow_logs(self, settings: NetworkConfig, naming: Naming, args: NetworkArgs) -> None:
        self.flow_log_group = aws.cloudwatch.LogGroup(
            self.child_name("flow-logs"),
            name=f"/vpc/{naming.physical('flow-logs')}",
            retention_in_days=settings.flow_log_retention_days,
            kms_key_id=args.log_kms_key_arn,
            opts=self.opts(),
        )
        account_id = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        role = aws.iam.Role(
            self.child_name("flow-logs-role"),
            # Only for flow logs of this account and region (infra/aws/trust.py).
            assume_role_policy=account_id.apply(lambda account: flow_logs_trust_policy(account, args.region)),
            opts=self.opts(),
        )
        aws.iam.RolePolicy(
            self.child_name("flow-logs-policy"),
            role=role.id,
            policy=self.flow_log_group.arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": [
                                    "logs:CreateLogStream",
                                    "logs:PutLogEvents",
                                    "logs:DescribeLogStreams",
                                ],
                                "Resource": [arn, f"{arn}:*"],
                            },
                            # AWS's documented minimum for the delivery role includes DescribeLogGroups, a list
                            # call that takes no log-group resource: without it delivery can fail with an access
                            # error (https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs-iam-role.html).
                            # Read-only; CreateLogGroup stays out (the group is created here, with retention).
                            {"Effect": "Allow", "Action": ["logs:DescribeLogGroups"], "Resource": "*"},
                        ],
                    }
                )
            ),
            opts=self.opts(),
        )
        aws.ec2.FlowLog(
            self.child_name("flow-log"),
            vpc_id=self.vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=self.flow_log_group.arn,
            iam_role_arn=role.arn,
            max_aggregation_interval=60,
            tags={"Name": naming.physical("flow-log")},
            opts=self.opts(),
        )

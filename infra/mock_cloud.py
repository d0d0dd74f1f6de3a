"""Answers the Pulumi engine would get from the cloud, for running the program offline.

This stands in for the cloud API only: it echoes a resource's inputs and adds the attributes the provider
would compute (ids, ARNs, endpoints, DNS names) in their real shapes, so code that parses or joins them
(`arn.split(':')`, `f"{endpoint}:5432"`) behaves as it will against AWS and DigitalOcean. Values are
derived from the resource's type and logical name only, so two runs give the same answers (diffable plans).

To teach it a new resource type, add an entry to `_COMPUTED` returning the extra output properties.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from pulumi.runtime import MockCallArgs, MockResourceArgs, Mocks

ACCOUNT_ID = "123456789012"


def _hex(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


class CloudMocks(Mocks):
    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self.calls: list[MockCallArgs] = []

    # ---------------------------------------------------------------------------------------------- invokes
    def call(self, args: MockCallArgs) -> dict[str, Any]:  # type: ignore[override]  # SDK accepts a bare dict
        self.calls.append(args)
        handler = _INVOKES.get(args.token)
        if handler is None:
            raise NotImplementedError(
                f"the offline cloud does not answer invoke {args.token!r}; add it to infra/mock_cloud.py"
            )
        return handler(self, args.args)

    # ---------------------------------------------------------------------------------------------- resources
    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        if not args.custom:
            return "", {}
        state = dict(args.inputs)
        resource_id = args.resource_id or self._id(args.typ, args.name)
        computed = _COMPUTED.get(args.typ)
        if computed is not None:
            state.update(computed(self, args, resource_id))
        if args.typ.startswith("aws:"):
            state.setdefault("arn", self._arn(args.typ, resource_id))
            state.setdefault("tagsAll", {**state.get("tags", {})})
        return resource_id, state

    def _id(self, typ: str, name: str) -> str:
        prefix = _ID_PREFIXES.get(typ)
        if prefix:
            return f"{prefix}-{_hex(typ, name)}"
        return f"{name}-{_hex(typ, name, length=7)}"

    def _arn(self, typ: str, resource_id: str) -> str:
        service = typ.split(":")[1].split("/")[0]
        kind = typ.split(":")[-1].lower()
        return f"arn:aws:{service}:{self.region}:{ACCOUNT_ID}:{kind}/{resource_id}"

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


_INVOKES: dict[str, Callable[[CloudMocks, dict[str, Any]], dict[str, Any]]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": _availability_zones,
    "aws:index/getCallerIdentity:getCallerIdentity": _caller_identity,
    "aws:index/getRegion:getRegion": _region,
    "aws:index/getPartition:getPartition": _partition,
    "aws:iam/getPolicyDocument:getPolicyDocument": _policy_document,
}


# ---------------------------------------------------------------------------------------------------------
# Computed attributes per resource type
# ---------------------------------------------------------------------------------------------------------

Computed = Callable[[CloudMocks, MockResourceArgs, str], dict[str, Any]]


def _log_group(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or f"{args.name}-{_hex(args.name, length=7)}"
    return {"name": name, "arn": mocks.arn("logs", f"log-group:{name}")}


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
    return {"name": name, "arn": mocks.arn("sns", name)}


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
    return {"keyId": key_id, "arn": mocks.arn("kms", f"key/{key_id}")}


def _schedule(mocks: CloudMocks, args: MockResourceArgs, _id: str) -> dict[str, Any]:
    name = args.inputs.get("name") or args.name
    return {"name": name, "arn": mocks.arn("scheduler", f"schedule/default/{name}")}


_COMPUTED: dict[str, Computed] = {
    "aws:sqs/queue:Queue": _sqs_queue,
    "aws:sns/topic:Topic": _sns_topic,
    "aws:lambda/function:Function": _lambda_function,
    "aws:lambda/layerVersion:LayerVersion": _layer_version,
    "aws:dynamodb/table:Table": _dynamodb_table,
    "aws:kms/key:Key": _kms_key,
    "aws:scheduler/schedule:Schedule": _schedule,
    "aws:cloudwatch/logGroup:LogGroup": _log_group,
    "aws:iam/role:Role": _iam_role,
    "aws:ec2/vpc:Vpc": _vpc,
    "aws:ec2/eip:Eip": _eip,
}

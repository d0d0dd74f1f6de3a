"""Optional cache: off by default; when on, encrypted, authenticated, isolated, and safe for queues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.harness import StackRun
from tests.infra.component_program import run_program
from tests.infra.conftest import evaluate

GROUP = "aws:elasticache/replicationGroup:ReplicationGroup"
PARAMS = "aws:elasticache/parameterGroup:ParameterGroup"
INGRESS = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


@pytest.fixture(scope="module")
def cached() -> dict[str, StackRun]:
    """Both stacks with the cache on; prod with one replica (as a queue-heavy prod would run it)."""
    return {
        "staging": evaluate("staging", config_overrides={"shipyard:cache": {"enabled": True}}),
        "prod": evaluate("prod", config_overrides={"shipyard:cache": {"enabled": True, "replicas": 1}}),
    }


def test_no_cache_unless_enabled(any_stack: StackRun) -> None:
    assert any_stack.of_type(GROUP) == []
    assert not any(r.type == "shipyard:aws:Cache" for r in any_stack.resources)
    assert "cacheEndpoint" not in any_stack.outputs


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_encrypted_in_transit_and_at_rest_in_isolated_subnets(stack: str, cached: dict[str, StackRun]) -> None:
    run = cached[stack]
    group = run.one(GROUP)
    assert run.component_of(group) == run.one("shipyard:aws:Cache")
    inputs = group.inputs
    assert (inputs["engine"], inputs["engineVersion"]) == ("valkey", "8.2")
    assert inputs["transitEncryptionEnabled"] is True
    assert inputs["transitEncryptionMode"] == "required"
    assert inputs["atRestEncryptionEnabled"] is True
    subnets = run.one("aws:elasticache/subnetGroup:SubnetGroup")
    assert inputs["subnetGroupName"] == subnets.inputs["name"]
    assert sorted(subnets.inputs["subnetIds"]) == sorted(run.outputs["isolatedSubnetIds"])
    host, port = run.outputs["cacheEndpoint"].rsplit(":", 1)
    assert host == group.outputs["primaryEndpointAddress"] and port == "6379"


@pytest.mark.parametrize("stack", ["staging", "prod"])
def test_auth_token_is_generated_stored_in_secrets_manager_and_secret(stack: str, cached: dict[str, StackRun]) -> None:
    run = cached[stack]
    group = run.one(GROUP)
    assert "authToken" in group.secret_inputs
    token = run.one("random:index/randomPassword:RandomPassword", "cache-auth-token")
    assert group.inputs["authToken"] == token.outputs["result"]
    assert 16 <= len(group.inputs["authToken"]) <= 128
    version = run.one("aws:secretsmanager/secretVersion:SecretVersion", "cache-auth-value")
    assert "secretString" in version.secret_inputs
    assert version.inputs["secretString"] == group.inputs["authToken"]
    secret = run.one("aws:secretsmanager/secret:Secret", "cache-auth-secret")
    assert "name" not in secret.inputs and secret.inputs["namePrefix"] == f"shipyard-{stack}-cache-auth-"
    for resource in run.resources:
        plain = json.dumps({k: v for k, v in resource.inputs.items() if k not in resource.secret_inputs}, default=str)
        assert group.inputs["authToken"] not in plain, resource.name


def test_maxmemory_policy_defaults_to_noeviction(cached: dict[str, StackRun]) -> None:
    for run in cached.values():
        params = run.one(PARAMS)
        assert params.inputs["family"] == "valkey8"
        assert params.inputs["parameters"] == [{"name": "maxmemory-policy", "value": "noeviction"}]
        assert run.one(GROUP).inputs["parameterGroupName"] == params.inputs["name"]


def test_maxmemory_policy_and_engine_come_from_config() -> None:
    run = evaluate(
        "staging",
        config_overrides={"shipyard:cache": {"enabled": True, "engine": "redis", "maxmemoryPolicy": "allkeys-lru"}},
    )
    params = run.one(PARAMS)
    assert params.inputs["family"] == "redis7"
    assert params.inputs["parameters"] == [{"name": "maxmemory-policy", "value": "allkeys-lru"}]
    assert run.one(GROUP).inputs["engine"] == "redis"


def test_failover_only_with_replicas(cached: dict[str, StackRun]) -> None:
    staging, prod = cached["staging"].one(GROUP).inputs, cached["prod"].one(GROUP).inputs
    assert (staging["numCacheClusters"], staging["automaticFailoverEnabled"], staging["multiAzEnabled"]) == (
        1,
        False,
        False,
    )
    assert (prod["numCacheClusters"], prod["automaticFailoverEnabled"], prod["multiAzEnabled"]) == (2, True, True)
    assert (staging["snapshotRetentionLimit"], prod["snapshotRetentionLimit"]) == (1, 7)


def test_security_group_has_no_rules_of_its_own(cached: dict[str, StackRun]) -> None:
    for run in cached.values():
        sg = run.one("aws:ec2/securityGroup:SecurityGroup", "cache-sg")
        assert not sg.inputs.get("ingress") and not sg.inputs.get("egress")
        sg_id = sg.id
        assert run.one(GROUP).inputs["securityGroupIds"] == [sg_id]
        for rule in run.of_type(INGRESS):
            if rule.inputs["securityGroupId"] == sg_id:
                assert rule.name.startswith("cache-from-")
                assert rule.inputs["fromPort"] == rule.inputs["toPort"] == 6379
                assert "cidrIpv4" not in rule.inputs


def test_allow_from_and_interface(tmp_path: Path) -> None:
    run = run_program(
        tmp_path,
        "staging",
        """
        from infra.aws.cache import Cache, CacheArgs
        from infra.aws.network import Network, NetworkArgs
        network = Network("network", NetworkArgs(settings=config.network, region=config.region), naming, with_provider)
        cache = Cache("cache", CacheArgs(settings=config.cache, tier=config.tier, vpc_id=network.vpc.id,
                      subnet_ids=network.isolated_subnet_ids), naming, with_provider)
        worker = aws.ec2.SecurityGroup("worker-sg", vpc_id=network.vpc.id, description="worker", opts=with_provider)
        cache.allow_from("worker", worker.id, "queue workers")
        pulumi.export("workerSg", worker.id)
        pulumi.export("cacheSg", cache.security_group.id)
        pulumi.export("primary", cache.primary_endpoint)
        pulumi.export("port", cache.port)
        pulumi.export("authSecretArn", cache.auth_secret_arn)
        pulumi.export("env", cache.env_secrets)
        """,
    )
    (rule,) = run.of_type(INGRESS)
    assert rule.name == "cache-from-worker"
    assert run.component_of(rule) == run.one("shipyard:aws:Cache")
    assert rule.inputs["securityGroupId"] == run.outputs["cacheSg"]
    assert rule.inputs["referencedSecurityGroupId"] == run.outputs["workerSg"]
    assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == ("tcp", 6379, 6379)
    assert run.outputs["primary"].startswith("master.shipyard-staging-cache.")
    assert run.outputs["port"] == 6379
    assert run.outputs["authSecretArn"].startswith("arn:aws:secretsmanager:us-east-1:123456789012:secret:")
    assert run.outputs["env"] == {"REDIS_AUTH_TOKEN": run.outputs["authSecretArn"]}

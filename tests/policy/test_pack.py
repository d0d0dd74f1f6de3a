"""The real CrossGuard pack, started exactly as the Pulumi CLI starts a Python policy pack, answering over gRPC.

The CLI (sdk/go/common/resource/plugin/analyzer_plugin.go + the pulumi-analyzer-policy-python script) runs
`<virtualenv from PulumiPolicy.yaml>/bin/python -u -m pulumi.policy <engine address> .` with the working
directory set to the pack, the stack's config in PULUMI_CONFIG and the stack in PULUMI_STACK; the pack prints
its port and serves the Analyzer service. This test does the same on 127.0.0.1 and talks to it like the engine.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from infra.harness import PROJECT_ROOT, engine_config, stack_file
from infra.policy.rules import ALL_RULES

PACK_DIR = PROJECT_ROOT / "policy"
START_TIMEOUT_S = 60


def _pack_python() -> Path:
    """The interpreter the CLI's analyzer script would pick: `runtime.options.virtualenv`, relative to the pack."""
    document = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert document["runtime"]["name"] == "python"
    virtualenv = (PACK_DIR / document["runtime"]["options"]["virtualenv"]).resolve()
    python = virtualenv / "bin" / "python"
    assert python.exists(), f"PulumiPolicy.yaml names virtualenv {virtualenv}, which has no bin/python"
    return python


def _start_pack(stack: str) -> tuple[subprocess.Popen[bytes], str]:
    config, _, _ = engine_config(stack_file(stack), "shipyard", placeholders_for_missing_secrets=True)
    env = {
        **os.environ,
        "PULUMI_CONFIG": json.dumps(config),
        "PULUMI_STACK": stack,
        "PULUMI_PROJECT": "shipyard",
        "PULUMI_DRY_RUN": "true",
    }
    env.pop("PYTHONPATH", None)  # the pack must find the project by itself, as under the CLI
    process = subprocess.Popen(
        [str(_pack_python()), "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=PACK_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: queue.Queue[bytes] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        port = lines.get(timeout=START_TIMEOUT_S).decode().strip()
    except queue.Empty:
        process.kill()
        raise AssertionError("the policy pack did not print its port") from None
    if not port.isdigit():
        process.kill()
        _, stderr = process.communicate(timeout=10)
        raise AssertionError(f"the policy pack failed to start: {port!r} {stderr.decode()[-2000:]}")
    return process, f"127.0.0.1:{port}"


@pytest.fixture(params=["staging", "prod"], scope="module")
def analyzer(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    process, address = _start_pack(request.param)
    channel = grpc.insecure_channel(address)
    try:
        yield request.param, analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        channel.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _struct(values: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


PROVIDER = analyzer_pb2.AnalyzerProviderResource(
    type="pulumi:providers:aws",
    urn="urn:pulumi:prod::shipyard::pulumi:providers:aws::aws",
    name="aws",
    properties=_struct(
        {
            "region": "us-east-1",
            "defaultTags": json.dumps({"tags": {"project": "p", "stack": "s", "tier": "t", "owner": "o"}}),
        }
    ),
)


def _analyze(stub: Any, type_: str, props: dict[str, Any]) -> dict[str, int]:
    request = analyzer_pb2.AnalyzeRequest(
        type=type_,
        urn=f"urn:pulumi:test::shipyard::{type_}::db",
        name="db",
        properties=_struct(props),
        options=analyzer_pb2.AnalyzerResourceOptions(),
        provider=PROVIDER,
    )
    response = stub.Analyze(request, timeout=30)
    return {d.policyName: d.enforcementLevel for d in response.diagnostics}


def test_pack_lists_every_rule_with_its_control(analyzer: tuple[str, Any]) -> None:
    _, stub = analyzer
    info = stub.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "shipyard-guardrails"
    policies = {p.name: p for p in info.policies}
    assert set(policies) == {r.id for r in ALL_RULES}
    assert sum(p.policy_type == analyzer_pb2.POLICY_TYPE_RESOURCE for p in info.policies) >= 30
    assert policies["rds-not-public"].framework.reference == "RDS.2"
    assert "FSBP RDS.2" in policies["rds-not-public"].description


def test_pack_blocks_a_public_single_az_database_with_tier_levels(analyzer: tuple[str, Any]) -> None:
    stack, stub = analyzer
    found = _analyze(
        stub,
        "aws:rds/instance:Instance",
        {
            "engine": "postgres",
            "publiclyAccessible": True,
            "storageEncrypted": True,
            "multiAz": False,
            "deletionProtection": True,
            "backupRetentionPeriod": 7,
            "enabledCloudwatchLogsExports": ["postgresql"],
            "monitoringInterval": 60,
        },
    )
    assert found["rds-not-public"] == analyzer_pb2.MANDATORY
    expected = analyzer_pb2.MANDATORY if stack == "prod" else analyzer_pb2.ADVISORY
    assert found["rds-multi-az"] == expected
    assert "rds-encrypted" not in found and "required-tags" not in found


def test_pack_stack_policy_sees_buckets_without_guards(analyzer: tuple[str, Any]) -> None:
    _, stub = analyzer
    bucket = analyzer_pb2.AnalyzerResource(
        type="aws:s3/bucket:Bucket",
        urn="urn:pulumi:test::shipyard::aws:s3/bucket:Bucket::site",
        name="site",
        properties=_struct({"bucket": "site"}),
        options=analyzer_pb2.AnalyzerResourceOptions(),
    )
    response = stub.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[bucket]), timeout=30)
    flagged = {(d.policyName, d.urn) for d in response.diagnostics}
    assert ("s3-bucket-public-access-blocked", bucket.urn) in flagged
    assert ("s3-bucket-tls-only", bucket.urn) in flagged


def test_pack_config_files_match_the_stacks() -> None:
    """policy/config/<stack>.json (for `--policy-pack-config`) is regenerated from the rules and stack files."""
    from infra.policy.pack import pack_config, settings_from_config

    for path in sorted(PROJECT_ROOT.glob("Pulumi.*.yaml")):
        stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
        config, _, _ = engine_config(path, "shipyard", placeholders_for_missing_secrets=False)
        expected = pack_config(settings_from_config(config, stack))
        written = PACK_DIR / "config" / f"{stack}.json"
        assert written.exists(), f"run: python -m infra.policy.pack --pack-config {stack} > {written}"
        assert json.loads(written.read_text()) == expected, f"stale: python -m infra.policy.pack --pack-config {stack}"

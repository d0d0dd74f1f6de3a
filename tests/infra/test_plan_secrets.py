"""Issue 18, item 1: the plan masks each secret value at its own path, not the whole property around it.

The engine marks secretness per value on the wire; the SDK's deserializer pushes it up to the top-level
property (the DigitalOcean App's whole `spec` became `[secret]` for one env value). The harness reads the
paths from the wire struct; text, `--json` and markdown show everything else.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from infra import plan
from infra.harness import SECRET_MASK, Resource, StackRun, secret_paths
from tests.infra.conftest import ALERT_SECRETS, evaluate

APP = "digitalocean:index/app:App"


@pytest.fixture(scope="module")
def staging_do() -> StackRun:
    plan._load_reports()
    return evaluate("staging-do")


def _at(value: Any, path: tuple[str | int, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _secret_values(run: StackRun) -> set[str]:
    """Every secret string the program handed the engine (long enough to be recognisable in output)."""
    found: set[str] = set()
    for resource in run.resources:
        for path in resource.secret_paths:
            value = _at(resource.inputs, path)
            texts = [value] if isinstance(value, str) else [json.dumps(value)]
            found.update(t for t in texts if len(t) >= 8)
    return found


def _resource(document: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(r for r in document["resources"] if r["type"] == type_)


def test_app_spec_shows_everything_but_its_secret_values(staging_do: StackRun) -> None:
    document = plan.plan_document(staging_do)
    spec = _resource(document, APP)["inputs"]["spec"]
    assert spec != SECRET_MASK  # before: the whole spec was "[secret]"
    assert [s["name"] for s in spec["services"]] and spec["ingress"]["rules"]
    envs = {env["key"]: env for component in spec["services"] + spec["jobs"] for env in component.get("envs", [])}
    assert envs["DATABASE_URL"]["value"] == SECRET_MASK and envs["DATABASE_URL"]["type"] == "SECRET"
    assert envs["STACK"]["value"] == "staging-do"  # a plain value next to it stays readable
    webhook = spec["alerts"][0]["destinations"]["slackWebhooks"][0]
    assert webhook["url"] == SECRET_MASK and webhook["channel"].startswith("#")
    # The pushed image's registry login: the server shows; the user and password come from the credentials
    # resource's `dockerCredentials`, which the provider declares secret (additional_secret_outputs in
    # pulumi_digitalocean/container_registry_docker_credentials.py): it "contains a DigitalOcean API token"
    # (docs.digitalocean.com/reference/doctl/reference/registries/docker-config/).
    pushed = next(r for r in document["resources"] if "registry" in r["inputs"])
    registry = pushed["inputs"]["registry"]
    assert registry["server"] == "registry.digitalocean.com"
    assert registry["password"] == SECRET_MASK and registry["username"] == SECRET_MASK


def test_no_secret_value_reaches_text_json_or_markdown(staging_do: StackRun) -> None:
    secrets = _secret_values(staging_do)
    assert ALERT_SECRETS["shipyard:slackWebhookUrl"] in secrets  # the check below looks for real values
    document = plan.plan_document(staging_do)
    base = copy.deepcopy(document)
    _resource(base, APP)["inputs"]["spec"]["services"][0]["instanceCount"] = 3
    rendered = {
        "json": json.dumps(document),
        "text": plan.render_text(staging_do, document),
        "markdown": plan.render_markdown(staging_do, document),
        "diff markdown": plan.render_diff_markdown(
            staging_do, plan.diff_documents(base, document), base, document, plan.GITHUB_COMMENT_LIMIT
        ),
    }
    for name, output in rendered.items():
        leaked = sorted(s for s in secrets if s in output)
        assert not leaked, f"{name} shows secret values: {[s[:12] + '…' for s in leaked]}"
    # ...and a change inside the spec is visible by path, next to masked values.
    assert "inputs.spec.services[0].instanceCount" in rendered["diff markdown"]


def _wire(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _secret(value: Any) -> dict[str, Any]:
    return {rpc._special_sig_key: rpc._special_secret_sig, "value": value}


def test_lambda_environment_and_container_lists_mask_only_the_secret_entry() -> None:
    wire = _wire(
        {
            "environment": {"variables": {"STAGE": "prod", "TOKEN": _secret("tg-123456:secret")}},
            "envs": [{"key": "A", "value": "plain"}, {"key": "B", "value": _secret("hunter2-hunter2")}],
            "code": {rpc._special_sig_key: rpc._special_archive_sig, "path": "lambda.zip"},
        }
    )
    paths = secret_paths(wire)
    assert sorted(paths, key=str) == [("environment", "variables", "TOKEN"), ("envs", 1, "value")]
    inputs = {
        "environment": {"variables": {"STAGE": "prod", "TOKEN": "tg-123456:secret"}},
        "envs": [{"key": "A", "value": "plain"}, {"key": "B", "value": "hunter2-hunter2"}],
    }
    resource = _fake(inputs, frozenset(paths), frozenset({"environment", "envs"}))
    assert resource.redacted_inputs() == {
        "environment": {"variables": {"STAGE": "prod", "TOKEN": SECRET_MASK}},
        "envs": [{"key": "A", "value": "plain"}, {"key": "B", "value": SECRET_MASK}],
    }
    assert resource.inputs["envs"][1]["value"] == "hunter2-hunter2"  # masking copies, inputs stay as recorded


def test_a_secret_whose_path_does_not_resolve_masks_its_whole_property() -> None:
    inputs = {"spec": {"envs": [{"value": "x"}]}, "name": "app"}
    unresolved = _fake(inputs, frozenset({("spec", "envs", 5, "value")}), frozenset({"spec"}))
    assert unresolved.redacted_inputs() == {"spec": SECRET_MASK, "name": "app"}
    # A property known to hold a secret but with no recorded path is masked whole, never shown.
    pathless = _fake(inputs, frozenset(), frozenset({"spec"}))
    assert pathless.redacted_inputs()["spec"] == SECRET_MASK


def _fake(inputs: dict[str, Any], paths: frozenset[Any], secret_inputs: frozenset[str]) -> Resource:
    return Resource(
        urn="urn:pulumi:t::shipyard::aws:lambda/function:Function::f",
        type="aws:lambda/function:Function",
        name="f",
        parent=None,
        custom=True,
        inputs=inputs,
        secret_inputs=secret_inputs,
        outputs={},
        protect=False,
        provider=None,
        depends_on=(),
        ignore_changes=(),
        retain_on_delete=False,
        delete_before_replace=False,
        secret_paths=paths,
    )

"""The policy pack applied in-process to the real stacks: the gate that keeps every stack free of mandatory
violations, plus tier levels and exceptions read from the stack's own config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra import plan
from infra.config import ConfigError
from infra.harness import PROJECT_ROOT, StackRun, run_stack
from infra.policy_report import build_section, evaluate
from tests.infra.conftest import evaluate as evaluate_stack


def _stack_files() -> list[Path]:
    """Every stack file and example the project ships (the root ones and any under examples/)."""
    return sorted([*PROJECT_ROOT.glob("Pulumi.*.yaml"), *PROJECT_ROOT.glob("examples/**/Pulumi.*.yaml")])


def _mandatory(run: StackRun) -> list[str]:
    return [f"{v.rule} {v.urn}: {v.message}" for v in evaluate(run).at("mandatory")]


def test_staging_and_prod_have_no_mandatory_violations(any_stack: StackRun) -> None:
    result = evaluate(any_stack)
    assert result.at("mandatory") == [], "\n".join(_mandatory(any_stack))
    assert result.rules >= 30
    assert result.tier == any_stack.stack


@pytest.mark.parametrize("path", _stack_files(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_stack_file_has_no_mandatory_violations(path: Path) -> None:
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    run = run_stack(stack, config_file=path, placeholders_for_missing_secrets=True, root=PROJECT_ROOT)
    assert _mandatory(run) == []


def _prod_without_flow_logs(policy: dict[str, object] | None = None) -> StackRun:
    overrides: dict[str, object] = {
        "shipyard:network": {"cidr": "10.30.0.0/16", "azCount": 2, "nat": "single", "flowLogs": False},
        "shipyard:waivers": {"network.flowLogs": "testing that the policy pack still catches it"},
    }
    if policy is not None:
        overrides["shipyard:policy"] = policy
    return evaluate_stack("prod", config_overrides=overrides)


def test_prod_level_blocks_what_staging_only_reports(staging: StackRun) -> None:
    staging_findings = {(v.rule, v.level) for v in evaluate(staging).violations}
    assert ("vpc-flow-logs", "advisory") in staging_findings  # staging runs without flow logs by design
    prod = _prod_without_flow_logs()
    (violation,) = [v for v in evaluate(prod).violations if v.rule == "vpc-flow-logs"]
    assert violation.level == "mandatory" and violation.fsbp == "EC2.6"
    assert violation.urn == prod.one("aws:ec2/vpc:Vpc").urn


def test_a_written_exception_in_the_stack_config_disables_the_rule() -> None:
    reason = "flow logs go to the central security account instead"
    run = _prod_without_flow_logs({"exceptions": {"vpc-flow-logs": reason}})
    section = build_section(run)
    assert [v for v in section["violations"] if v["rule"] == "vpc-flow-logs"] == []
    assert section["exceptions"] == [{"rule": "vpc-flow-logs", "reason": reason, "unused": False}]


def test_an_exception_needs_a_known_rule_and_a_real_reason() -> None:
    with pytest.raises(ConfigError) as error:
        evaluate(_prod_without_flow_logs({"exceptions": {"no-such-rule": "because we said so, really"}}))
    assert "shipyard:policy.exceptions.no-such-rule: unknown rule" in str(error.value)
    with pytest.raises(ConfigError):
        evaluate_stack("prod", config_overrides={"shipyard:policy": {"exceptions": {"vpc-flow-logs": "meh"}}})


def test_plan_json_carries_the_policy_section(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--stack", "staging", "--json"]) == 0
    section = json.loads(capsys.readouterr().out)["policy"]
    assert section["rules"] >= 30 and section["tier"] == "staging"
    for violation in section["violations"]:
        assert set(violation) == {"rule", "fsbp", "level", "urn", "message"}
    assert any(
        {"rule": "vpc-flow-logs", "fsbp": "EC2.6", "level": "advisory"}.items() <= v.items()
        for v in section["violations"]
    )


def test_resource_exceptions_take_patterns_and_stale_ones_are_flagged() -> None:
    reason = "a pattern exception that names no resource of this stack"
    run = _prod_without_flow_logs({"exceptions": {"vpc-flow-logs@network-*": reason, "sns-encrypted@gone-*": reason}})
    section = build_section(run)
    assert [v for v in section["violations"] if v["rule"] == "vpc-flow-logs"] == []
    unused = {e["rule"]: e["unused"] for e in section["exceptions"]}
    assert unused == {"vpc-flow-logs@network-*": False, "sns-encrypted@gone-*": True}

"""Budgets per stack (issue 19): `shipyard:budget` in a stack file, the plan's verdict against it (text, JSON,
markdown), `--fail-over-budget` for CI, and every stack file and example within its budget."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from infra import plan
from infra.config import ConfigError, parse_stack_config
from infra.cost import GOALS_USD, build_section, stack_budget
from infra.harness import PROJECT_ROOT, StackRun, run_stack
from tests.infra.conftest import ALERT_SECRETS
from tests.infra.test_cost import _resource, _run

EXAMPLES = PROJECT_ROOT / "examples"
STACK_FILES = sorted(PROJECT_ROOT.glob("Pulumi.*.yaml")) + sorted(EXAMPLES.glob("*/Pulumi.*.yaml"))


def _stack_name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


def _with_budget(tmp_path: Path, budget: object) -> Path:
    """Pulumi.staging.yaml with `shipyard:budget` set, as a team would write it."""
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.staging.yaml").read_text())
    document["config"]["shipyard:budget"] = budget
    path = tmp_path / "Pulumi.staging.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_budget_key_is_validated_with_its_key_path() -> None:
    base = {"shipyard:tier": "staging", "shipyard:owner": "team", "aws:region": "us-east-1"}
    config = parse_stack_config(
        {**base, "shipyard:budget": json.dumps({"monthlyUsd": 40, "source": "seed 004: AWS 37.5 USD"})}, source="x"
    )
    assert config.budget is not None and (config.budget.monthly_usd, config.budget.source) == (
        40,
        "seed 004: AWS 37.5 USD",
    )
    with pytest.raises(ConfigError) as error:
        parse_stack_config({**base, "shipyard:budget": json.dumps({"monthlyUsd": 0})}, source="Pulumi.x.yaml")
    assert "Pulumi.x.yaml: shipyard:budget.monthlyUsd" in str(error.value)


def test_the_stack_files_budget_wins_over_the_tiers() -> None:
    expensive = _resource("aws:rds/instance:Instance", "db", {"instanceClass": "db.t4g.large", "multiAz": True})
    run = _run(expensive, tier="staging")
    run.config["shipyard:budget"] = json.dumps({"monthlyUsd": 500, "source": "contract 7"})
    goal = build_section(run)["goal"]
    assert goal == {"tier": "staging", "monthly_usd_max": 500.0, "met": True, "source": "contract 7"}
    assert stack_budget({"shipyard:tier": "prod"}) == (GOALS_USD["prod"], "tier default for prod")
    assert stack_budget({"shipyard:tier": "dev"}) is None


def test_fail_over_budget_exits_1_after_printing_and_markdown_names_the_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tight = _with_budget(tmp_path, {"monthlyUsd": 1, "source": "a test budget"})
    argv = ["--stack", "staging", "--config-file", str(tight), "--format", "markdown"]
    assert plan.main([*argv, "--fail-over-budget"]) == 1
    captured = capsys.readouterr()
    assert "budget ≤ 1 (a test budget): **not met** ❌" in captured.out
    assert "over budget:" in captured.err and "> 1 (a test budget)" in captured.err
    assert plan.main(argv) == 0  # without the flag the verdict is only reported


def test_fail_over_budget_passes_within_budget_and_bad_input_stays_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    roomy = _with_budget(tmp_path, {"monthlyUsd": 10_000, "source": "roomy"})
    assert plan.main(["--stack", "staging", "--config-file", str(roomy), "--fail-over-budget"]) == 0
    assert "budget: <= 10000 USD/month (roomy) — met" in capsys.readouterr().out
    broken = _with_budget(tmp_path, {"monthlyUsd": -3})
    assert plan.main(["--stack", "staging", "--config-file", str(broken), "--fail-over-budget"]) == 2
    assert "shipyard:budget.monthlyUsd" in capsys.readouterr().err


def test_every_example_declares_its_budget_and_says_where_it_comes_from() -> None:
    for path in sorted(EXAMPLES.glob("*/Pulumi.*.yaml")):
        budget = yaml.safe_load(path.read_text())["config"].get("shipyard:budget")
        assert budget is not None, f"{path}: no shipyard:budget"
        assert budget["monthlyUsd"] > 0 and budget["source"], path
    sales = yaml.safe_load((EXAMPLES / "sales-system" / "Pulumi.staging.yaml").read_text())["config"]
    assert sales["shipyard:budget"]["monthlyUsd"] == 40 and "seed 004" in sales["shipyard:budget"]["source"]


@pytest.fixture(scope="module")
def planned() -> dict[str, StackRun]:
    return {
        str(path.relative_to(PROJECT_ROOT)): run_stack(
            _stack_name(path), config_file=path, secret_overrides=ALERT_SECRETS
        )
        for path in STACK_FILES
    }


STAGING_STACKS = (
    "Pulumi.staging.yaml",
    "examples/sales-system/Pulumi.staging.yaml",
    "examples/shopflow/Pulumi.staging.yaml",
)
"""Staging stacks that paid 7.30 USD/month for a Secrets Manager endpoint their VPC Lambdas read the database
secret through, until issue 14 (IAM database auth) removed those readers."""

OVER_THE_TIER = {
    "examples/barber-scheduler/Pulumi.prod.yaml": "219.72 USD at us-east-1 prices (sa-east-1 has no rows, so even "
    "that is low) against the prod tier's 200: Multi-AZ db.t4g.small, NAT, a Valkey replica, 2 workers, WAF",
    "examples/order-marketplace/Pulumi.prod.yaml": "310.50 USD with its db.m7g.large Multi-AZ still unpriced "
    "(no rds.instance.db.m7g.large row) against the prod tier's 200: 3 AZs with per-AZ NAT, 3 x 1 vCPU tasks",
}
"""Findings, not fixes: seeds give these no figure, so the tier's budget applies, and neither example fits it
without dropping what it exists to show. A seed figure (or a smaller example) is the owner's call."""


def _param(path: Path) -> object:
    name = str(path.relative_to(PROJECT_ROOT))
    if name in OVER_THE_TIER:
        return pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=OVER_THE_TIER[name]))
    return name


@pytest.mark.parametrize("stack_file", [_param(p) for p in STACK_FILES])
def test_stack_file_plans_within_its_budget(stack_file: str, planned: dict[str, StackRun]) -> None:
    section = build_section(planned[stack_file])
    goal = section["goal"]
    assert goal["met"], f"{stack_file}: {section['monthly_usd_total']:.2f} > {goal['monthly_usd_max']:g} USD"


@pytest.mark.parametrize("stack_file", STAGING_STACKS)
def test_staging_stacks_pay_for_no_secrets_manager_endpoint(stack_file: str, planned: dict[str, StackRun]) -> None:
    """Nothing in their VPC reads a secret any more (IAM database auth), so the derived endpoint is gone."""
    items = build_section(planned[stack_file])["items"]
    assert [i for i in items if i["name"] == "network-secretsmanager-endpoint"] == []


def test_prod_is_within_200_with_the_alb_waf_and_nat(planned: dict[str, StackRun]) -> None:
    run = planned["Pulumi.prod.yaml"]
    section = build_section(run)
    assert section["goal"]["monthly_usd_max"] == 200 and section["goal"]["met"]
    assert run.of_type("aws:lb/loadBalancer:LoadBalancer") and run.of_type("aws:wafv2/webAcl:WebAcl")

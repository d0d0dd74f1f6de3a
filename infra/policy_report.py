"""The policy pack, run in-process on an evaluated stack: the offline plan's `policy` section and the test gate.

It hands the *same* CrossGuard policy objects the real pack serves (`infra.policy.pack.build_policies`) the
resources the harness recorded, shaped as the engine shapes them for an analyzer: engine camelCase inputs
behind pulumi_policy's unknown-checking proxy, the provider's inputs, resource options, and for stack
policies every resource with its dependencies. So a rule that passes here passes `pulumi preview
--policy-pack policy/`, and the levels come from the stack's tier and `shipyard:policy` exactly as there.

JSON (`plan --json`): `policy: {"violations": [{"rule", "fsbp", "level", "urn", "message"}], "rules": N,
"tier", "counts": {"mandatory", "advisory"}, "exceptions": [{"rule", "reason"}]}`.
"""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import unknown_checking_proxy

from infra.config import ConfigError
from infra.harness import Resource, StackRun
from infra.plan import PlanReport, register_report
from infra.policy.pack import PackSettings, PolicySettingsError, build_policies, settings_from_config
from infra.policy.rules import ALL_RULES

LEVEL_ORDER = {"mandatory": 0, "advisory": 1}


@dataclass(frozen=True)
class Violation:
    rule: str
    fsbp: str
    level: str
    urn: str
    message: str


@dataclass(frozen=True)
class PolicyResult:
    tier: str
    violations: list[Violation]
    rules: int
    exceptions: dict[str, str]

    def at(self, level: str) -> list[Violation]:
        return [v for v in self.violations if v.level == level]


_FSBP = {r.id: r.fsbp for r in ALL_RULES}


def settings_for(run: StackRun) -> PackSettings:
    try:
        return settings_from_config(run.config, run.stack, source=run.config_file)
    except PolicySettingsError as exc:
        raise ConfigError(exc.problems) from None


def _options(resource: Resource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=list(resource.ignore_changes),
        delete_before_replace=resource.delete_before_replace,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent,
    )


def _proxy(values: dict[str, Any]) -> Any:
    return unknown_checking_proxy(copy.deepcopy(values))


class _Stack:
    def __init__(self, run: StackRun) -> None:
        self.run = run
        self.by_urn = {r.urn: r for r in run.resources}

    def provider_of(self, resource: Resource) -> PolicyProviderResource | None:
        """The harness records the provider reference as `<urn>::<id>`, as the engine does."""
        if not resource.provider:
            return None
        provider = self.by_urn.get(resource.provider.rsplit("::", 1)[0])
        if provider is None:
            return None
        return PolicyProviderResource(provider.type, _proxy(provider.inputs), provider.urn, provider.name)


def evaluate(run: StackRun, settings: PackSettings | None = None) -> PolicyResult:
    settings = settings or settings_for(run)
    policies = build_policies(settings)
    stack = _Stack(run)
    violations: list[Violation] = []

    def reporter(policy: Any, urn: str) -> Callable[[str, str | None], None]:
        level = policy.enforcement_level.value

        def report(message: str, reported_urn: str | None = None) -> None:
            violations.append(Violation(policy.name, _FSBP[policy.name], level, reported_urn or urn, message))

        return report

    active = [p for p in policies if p.enforcement_level != EnforcementLevel.DISABLED]
    resource_policies = [p for p in active if isinstance(p, ResourceValidationPolicy)]
    for resource in run.resources:
        if not resource.custom:
            continue  # components never reach an analyzer
        args = ResourceValidationArgs(
            resource.type,
            _proxy(resource.inputs),
            resource.urn,
            resource.name,
            _options(resource),
            stack.provider_of(resource),
            None,
        )
        for policy in resource_policies:
            policy.validate(args, reporter(policy, resource.urn))

    stack_resources: dict[str, PolicyResource] = {}
    for resource in run.resources:
        if resource.custom:
            stack_resources[resource.urn] = PolicyResource(
                resource.type,
                _proxy(resource.outputs),
                resource.urn,
                resource.name,
                _options(resource),
                stack.provider_of(resource),
                None,
                [],
                {},
            )
    for urn, policy_resource in stack_resources.items():
        policy_resource.dependencies = [
            stack_resources[d] for d in stack.by_urn[urn].depends_on if d in stack_resources
        ]
    for policy in (p for p in active if isinstance(p, StackValidationPolicy)):
        policy.validate(StackValidationArgs(list(stack_resources.values())), reporter(policy, ""))

    violations.sort(key=lambda v: (LEVEL_ORDER.get(v.level, 9), v.rule, v.urn, v.message))
    return PolicyResult(
        tier=settings.tier,
        violations=violations,
        rules=len(policies),
        exceptions=dict(sorted(settings.exceptions.items())),
    )


# ---------------------------------------------------------------------------------------------------------
# Plan section
# ---------------------------------------------------------------------------------------------------------


def build_section(run: StackRun) -> dict[str, Any]:
    result = evaluate(run)
    return {
        "violations": [asdict(v) for v in result.violations],
        "rules": result.rules,
        "tier": result.tier,
        "counts": {level: len(result.at(level)) for level in LEVEL_ORDER},
        "exceptions": [
            {"rule": rule, "reason": reason, "unused": _unused(rule, run)} for rule, reason in result.exceptions.items()
        ],
    }


def _unused(exception: str, run: StackRun) -> bool:
    """A resource exception whose pattern matches no resource any more (left behind after a fix)."""
    _, _, pattern = exception.partition("@")
    return bool(pattern) and not any(fnmatch.fnmatchcase(r.name, pattern) for r in run.resources)


def short_urn(urn: str) -> str:
    """`aws:rds/instance:Instance::database-instance` → `database-instance (rds/instance)`."""
    if "::" not in urn:
        return urn or "(stack)"
    type_part, name = urn.rsplit("::", 1)
    kind = type_part.rsplit("$", 1)[-1].split("::")[-1]
    module = kind.split(":")[1] if kind.count(":") >= 2 else kind
    return f"{name} ({module})"


def violation_line(violation: dict[str, Any]) -> str:
    fsbp = violation["fsbp"] if violation["fsbp"] != "shipyard" else "own"
    return f"[{violation['level']}] {violation['rule']} ({fsbp}) {short_urn(violation['urn'])}: {violation['message']}"


def render_section(section: dict[str, Any]) -> list[str]:
    counts = section["counts"]
    lines = [
        f"{section['rules']} rules at tier {section['tier']!r}: {counts['mandatory']} mandatory, "
        f"{counts['advisory']} advisory violation(s)"
        + ("  — `pulumi up` with the policy pack would be BLOCKED" if counts["mandatory"] else "")
    ]
    lines.extend(f"  {violation_line(v)}" for v in section["violations"])
    for exception in section["exceptions"]:
        unused = "  [matches no resource: remove it]" if exception.get("unused") else ""
        lines.append(f"  exception: {exception['rule']} — {exception['reason']}{unused}")
    return lines


def _key(violation: dict[str, Any]) -> tuple[str, str, str]:
    return (violation["rule"], violation["urn"], violation["message"])


def diff_section(base: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    before = {_key(v) for v in (base or {}).get("violations", [])}
    after = {_key(v) for v in current["violations"]}
    new = [v for v in current["violations"] if _key(v) not in before]
    resolved = [v for v in (base or {}).get("violations", []) if _key(v) not in after]
    lines = [f"new: {violation_line(v)}" for v in new]
    lines.extend(f"resolved: {violation_line(v)}" for v in resolved)
    return lines


def _md_cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(section: dict[str, Any]) -> str:
    counts = section["counts"]
    mark = "🛑" if counts["mandatory"] else "✅"
    return (
        f"policy {mark} **{counts['mandatory']} mandatory**, {counts['advisory']} advisory ({section['rules']} rules)"
    )


def section_markdown(section: dict[str, Any]) -> list[str]:
    lines = [f"Tier `{section['tier']}`: {section['rules']} rules (FSBP-mapped CrossGuard pack in `policy/`).", ""]
    if section["violations"]:
        lines += ["| level | rule | control | resource | finding |", "| --- | --- | --- | --- | --- |"]
        for v in section["violations"]:
            resource = _md_cell(short_urn(v["urn"]))
            lines.append(f"| {v['level']} | `{v['rule']}` | {v['fsbp']} | `{resource}` | {_md_cell(v['message'])} |")
    else:
        lines.append("No findings.")
    for exception in section["exceptions"]:
        unused = " — **matches no resource: remove it**" if exception.get("unused") else ""
        lines.append(f"- exception `{exception['rule']}`: {_md_cell(exception['reason'])}{unused}")
    return lines


def _new(base: dict[str, Any] | None, current: dict[str, Any]) -> list[dict[str, Any]]:
    before = {_key(v) for v in (base or {}).get("violations", [])}
    return [v for v in current["violations"] if _key(v) not in before]


def diff_summary_markdown(base: dict[str, Any] | None, current: dict[str, Any]) -> str:
    new = _new(base, current)
    after = {_key(v) for v in current["violations"]}
    resolved = [v for v in (base or {}).get("violations", []) if _key(v) not in after]
    mandatory = sum(v["level"] == "mandatory" for v in new)
    mark = "🛑" if current["counts"]["mandatory"] else "✅"
    return (
        f"policy {mark} **{len(new)} new finding(s)** ({mandatory} mandatory), {len(resolved)} resolved; "
        f"{current['counts']['mandatory']} mandatory in total"
    )


def highlights_markdown(base: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    return [
        f"- {'🛑' if v['level'] == 'mandatory' else '⚠️'} new `{v['rule']}` ({v['fsbp']}) on "
        f"`{_md_cell(short_urn(v['urn']))}`: {_md_cell(v['message'])}"
        for v in _new(base, current)
    ]


register_report(
    PlanReport(
        key="policy",
        title="Policy (CrossGuard pack policy/)",
        build=build_section,
        render=render_section,
        diff=diff_section,
        summary=summary_markdown,
        markdown=section_markdown,
        diff_summary=diff_summary_markdown,
        highlights=highlights_markdown,
    )
)

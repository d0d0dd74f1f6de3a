"""Turn the rules into CrossGuard policy objects for one stack: its tier sets each rule's level, and its
`shipyard:policy.exceptions` switch rules off (with a written reason) for that stack only.

Where the stack comes from:
- under the CLI, the engine starts the pack with the stack's config in `PULUMI_CONFIG` (JSON, the same
  `shipyard:<key>` strings a program gets) and the stack name in `PULUMI_STACK`: `settings_from_environment`;
- offline, `infra/policy_report.py` passes the config the harness evaluated: `settings_from_config`.
`python -m infra.policy.pack --pack-config STACK` also writes the same levels as a `--policy-pack-config`
file, for CI runs that want them spelled out (policy/config/<stack>.json, checked fresh by a test).

Exceptions: `shipyard:policy: {exceptions: {"<rule-id>": "<reason>"}}` disables the rule for the stack;
`"<rule-id>@<logical-name>": "<reason>"` skips matching resources only (the name may be a shell-style pattern,
e.g. `sns-encrypted@monitoring-*topic-*`). Unknown rule ids are an error.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyComplianceFramework,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pydantic import ValidationError

from infra.config import PROJECT, PolicyConfig
from infra.policy.rules import (
    ALL_RULE_IDS,
    ALL_RULES,
    FSBP_REFERENCE,
    OWN,
    RULES,
    STACK_RULES,
    Level,
    ProviderView,
    ResourceView,
    Rule,
    StackResourceView,
    StackRule,
)

PACK_NAME = "shipyard-guardrails"
FRAMEWORK = "AWS Foundational Security Best Practices"
POLICY_KEY = f"{PROJECT}:policy"
TIER_KEY = f"{PROJECT}:tier"

_LEVELS = {
    "advisory": EnforcementLevel.ADVISORY,
    "mandatory": EnforcementLevel.MANDATORY,
    "disabled": EnforcementLevel.DISABLED,
}


class PolicySettingsError(ValueError):
    """The stack's `shipyard:policy` block is invalid; each line names the key and what is wrong."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid policy configuration:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class PackSettings:
    tier: str
    """staging | prod. Unknown tiers get prod's levels: an unconfigured stack is held to the strictest."""
    exceptions: Mapping[str, str] = field(default_factory=dict)
    """rule id (or rule-id@logical-name) → written reason."""
    stack: str = ""

    def rule_exception(self, rule_id: str) -> str | None:
        return self.exceptions.get(rule_id)

    def resource_exception(self, rule_id: str, resource_name: str) -> str | None:
        """`<rule>@<logical name>`; the name may be a shell-style pattern (`monitoring-*topic-*`)."""
        for key, reason in self.exceptions.items():
            rule, _, pattern = key.partition("@")
            if rule == rule_id and pattern and fnmatch.fnmatchcase(resource_name, pattern):
                return reason
        return None

    def level(self, rule: Rule | StackRule) -> Level:
        if self.rule_exception(rule.id) is not None:
            return "disabled"
        return rule.level("prod" if self.tier not in ("staging", "prod") else self.tier)


def settings_from_config(config: Mapping[str, Any], stack: str = "", source: str | None = None) -> PackSettings:
    """From engine-style config: `{"shipyard:tier": "prod", "shipyard:policy": "{...json...}", ...}`."""
    where = source or (f"Pulumi.{stack}.yaml" if stack else "stack config")
    tier = str(config.get(TIER_KEY) or "prod")
    raw = config.get(POLICY_KEY)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise PolicySettingsError([f"{where}: {POLICY_KEY}: not valid JSON ({exc})"]) from None
    problems: list[str] = []
    exceptions: dict[str, str] = {}
    if raw is not None:
        try:
            exceptions = dict(PolicyConfig.model_validate(raw).exceptions)
        except ValidationError as exc:
            for error in exc.errors():
                path = ".".join(str(p) for p in error["loc"])
                problems.append(f"{where}: {POLICY_KEY}.{path}: {error['msg']}")
    for key in sorted(exceptions):
        rule_id = key.split("@", 1)[0]
        if rule_id not in ALL_RULE_IDS:
            problems.append(
                f"{where}: {POLICY_KEY}.exceptions.{key}: unknown rule {rule_id!r}; known: {', '.join(ALL_RULE_IDS)}"
            )
    if problems:
        raise PolicySettingsError(problems)
    return PackSettings(tier=tier, exceptions=exceptions, stack=stack)


def settings_from_environment(environ: Mapping[str, str] | None = None) -> PackSettings:
    """What the Pulumi CLI hands an analyzer: PULUMI_CONFIG (JSON object of strings) and PULUMI_STACK."""
    env = os.environ if environ is None else environ
    stack = env.get("PULUMI_STACK", "")
    try:
        config = json.loads(env.get("PULUMI_CONFIG") or "{}")
    except json.JSONDecodeError:
        config = {}
    return settings_from_config(config if isinstance(config, dict) else {}, stack)


# ---------------------------------------------------------------------------------------------------------
# Policy objects
# ---------------------------------------------------------------------------------------------------------


def _framework(fsbp: str) -> PolicyComplianceFramework:
    if fsbp == OWN:
        return PolicyComplianceFramework(name="shipyard", version="1", reference=OWN)
    return PolicyComplianceFramework(name=FRAMEWORK, version="1.0.0", reference=fsbp, specification=FSBP_REFERENCE)


def _provider_view(args: ResourceValidationArgs) -> ProviderView | None:
    provider = args.provider
    if provider is None:
        return None
    return ProviderView(type=provider.resource_type, name=provider.name, props=provider.props)


def resource_policy(rule: Rule, settings: PackSettings) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if not rule.applies_to(args.resource_type):
            return
        if settings.resource_exception(rule.id, args.name) is not None:
            return
        view = ResourceView(
            type=args.resource_type, name=args.name, urn=args.urn, props=args.props, provider=_provider_view(args)
        )
        for message in rule.check(view):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.id,
        description=rule.description,
        validate=validate,
        enforcement_level=_LEVELS[settings.level(rule)],
        framework=_framework(rule.fsbp),
        remediation_steps=rule.remediation,
        tags=[rule.fsbp],
    )


def stack_policy(rule: StackRule, settings: PackSettings) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        views = [
            StackResourceView(
                type=r.resource_type,
                name=r.name,
                urn=r.urn,
                props=r.props,
                dependencies=tuple(d.urn for d in r.dependencies),
            )
            for r in args.resources
        ]
        names = {r.urn: r.name for r in args.resources}
        for urn, message in rule.check(views):
            if settings.resource_exception(rule.id, names.get(urn, "")) is None:
                report_violation(message, urn)

    return StackValidationPolicy(
        name=rule.id,
        description=rule.description,
        validate=validate,
        enforcement_level=_LEVELS[settings.level(rule)],
        framework=_framework(rule.fsbp),
        remediation_steps=rule.remediation,
        tags=[rule.fsbp],
    )


def build_policies(settings: PackSettings) -> list[ResourceValidationPolicy | StackValidationPolicy]:
    """Every rule as a CrossGuard policy for this stack (disabled ones included, so the CLI lists them)."""
    policies: list[ResourceValidationPolicy | StackValidationPolicy] = [resource_policy(r, settings) for r in RULES]
    policies.extend(stack_policy(r, settings) for r in STACK_RULES)
    return policies


def pack_config(settings: PackSettings) -> dict[str, Any]:
    """The `--policy-pack-config` document with this stack's level for every policy."""
    document: dict[str, Any] = {}
    for rule in ALL_RULES:
        document[rule.id] = {"enforcementLevel": settings.level(rule)}
    return document


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--pack-config":
        print("usage: python -m infra.policy.pack --pack-config STACK", file=sys.stderr)
        return 2
    from infra.harness import PROJECT_ROOT, engine_config, stack_file

    stack = args[1]
    path = stack_file(stack, Path(PROJECT_ROOT))
    config, _, _ = engine_config(path, PROJECT, placeholders_for_missing_secrets=False)
    try:
        settings = settings_from_config(config, stack)
    except PolicySettingsError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    print(json.dumps(pack_config(settings), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

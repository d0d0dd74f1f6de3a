"""Offline plan: what `pulumi up -s <stack>` would create, without credentials or the Pulumi CLI.

    python -m infra.plan --stack staging [--config-file FILE] [--json] [--diff BASE.json]

Text output: the resource tree grouped by component with each resource's key properties, counts by type,
the stack outputs, then every report section (policy, cost... see `REPORTS`). `--json` prints the stable
contract below, sorted, so two runs can be diffed; `--diff BASE.json` compares against an earlier `--json`.

    {"stack", "project", "resources": [{"urn", "type", "name", "parent", "custom", "inputs", "protect"}],
     "outputs": {...}, "placeholders": [...], <one key per report>}

Exit codes: 0 planned; 2 invalid stack config (the message lists every problem); 1 anything else.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import ConfigError
from infra.harness import PROJECT_ROOT, HarnessError, Resource, StackRun, run_stack

# ---------------------------------------------------------------------------------------------------------
# Report sections: later features (policy, cost) plug in here without touching the rest of the plan.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanReport:
    key: str
    """Top-level key of this section in `--json`."""
    title: str
    build: Callable[[StackRun], dict[str, Any]]
    """Computes the section's JSON value from the evaluated stack."""
    render: Callable[[dict[str, Any]], list[str]]
    """Turns the JSON value into text lines."""
    diff: Callable[[dict[str, Any] | None, dict[str, Any]], list[str]] | None = None
    """Optional: text lines describing the change from a base plan's section to this one."""


REPORTS: list[PlanReport] = []


def register_report(report: PlanReport) -> None:
    if any(existing.key == report.key for existing in REPORTS):
        raise ValueError(f"a plan report with key {report.key!r} is already registered")
    REPORTS.append(report)


def _load_reports() -> None:
    """Import the modules that register report sections (each guarded, so the plan works without them)."""
    for module in ("infra.policy_report", "infra.cost"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


# ---------------------------------------------------------------------------------------------------------
# JSON contract
# ---------------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # the engine's wire format has only doubles; 90.0 days reads better as 90
    if value is None or isinstance(value, str | int | float | bool):
        return value
    # Assets/archives and resource references: show what they point at, stably.
    for attribute in ("path", "text", "uri", "urn"):
        inner = getattr(value, attribute, None)
        if isinstance(inner, str):
            if attribute == "path":
                inner = _relative(inner)
            return {f"<{type(value).__name__}>": inner}
    assets = getattr(value, "assets", None)
    if isinstance(assets, dict):
        return {f"<{type(value).__name__}>": _jsonable(assets)}
    return f"<{type(value).__name__}>"


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path


def plan_document(run: StackRun) -> dict[str, Any]:
    resources = [
        {
            "urn": r.urn,
            "type": r.type,
            "name": r.name,
            "parent": r.parent,
            "custom": r.custom,
            "inputs": _jsonable(r.redacted_inputs()),
            "protect": r.protect,
        }
        for r in sorted(run.resources, key=lambda r: r.urn)
    ]
    outputs = {k: ("[secret]" if k in run.secret_outputs else _jsonable(v)) for k, v in sorted(run.outputs.items())}
    document: dict[str, Any] = {
        "stack": run.stack,
        "project": run.project,
        "configFile": run.config_file,
        "resources": resources,
        "outputs": outputs,
        "placeholders": sorted(run.placeholders),
    }
    for report in REPORTS:
        document[report.key] = report.build(run)
    return document


# ---------------------------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------------------------

KEY_PROPERTIES: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/subnet:Subnet": ("cidrBlock", "availabilityZone"),
    "aws:ec2/natGateway:NatGateway": (),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType"),
    "aws:ec2/flowLog:FlowLog": ("trafficType",),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "pulumi:providers:aws": ("region",),
}
"""Properties shown per type in the text tree; types not listed show their first few scalar inputs."""

_SKIP_IN_SUMMARY = {"tags", "tagsAll", "policy", "assumeRolePolicy"}


def _summary(resource: Resource) -> str:
    inputs = resource.redacted_inputs()
    keys = KEY_PROPERTIES.get(resource.type)
    if keys is None:
        keys = tuple(
            k
            for k, v in sorted(inputs.items())
            if k not in _SKIP_IN_SUMMARY and isinstance(v, str | int | float | bool) and len(str(v)) <= 60
        )[:3]
    parts = []
    for key in keys:
        if key in inputs:
            value = inputs[key]
            parts.append(f"{key}={json.dumps(value) if not isinstance(value, str) else value}")
    if resource.protect:
        parts.append("[protected]")
    return "  ".join(parts)


def render_text(run: StackRun, document: dict[str, Any]) -> str:
    lines = [f"Offline plan of stack '{run.stack}' (project {run.project}, config {run.config_file})", ""]
    if run.placeholders:
        lines.append("Secrets not available offline were replaced by placeholders (set them for a real deploy):")
        lines.extend(
            f"  - {key}   (pulumi config set --secret {key} <value> -s {run.stack})" for key in run.placeholders
        )
        lines.append("")
    by_parent: dict[str | None, list[Resource]] = {}
    for resource in run.resources:
        by_parent.setdefault(resource.parent, []).append(resource)
    roots = [r for r in run.resources if r.parent is None or r.parent not in {x.urn for x in run.resources}]

    def walk(resource: Resource, depth: int) -> None:
        marker = "+" if resource.custom else "■"
        summary = _summary(resource) if resource.custom else ""
        lines.append(f"{'  ' * depth}{marker} {resource.type}  {resource.name}  {summary}".rstrip())
        for child in sorted(by_parent.get(resource.urn, []), key=lambda r: (r.custom, r.type, r.name)):
            walk(child, depth + 1)

    lines.append(f"Resources ({sum(r.custom for r in run.resources)} to create, grouped by component):")
    for root in sorted(roots, key=lambda r: (r.custom, r.type, r.name)):
        walk(root, 1)
    lines.append("")
    lines.append("Counts by type:")
    counts = Counter(r.type for r in run.resources if r.custom)
    lines.extend(f"  {count:4d}  {type_}" for type_, count in sorted(counts.items()))
    lines.append("")
    lines.append("Outputs:")
    lines.extend(f"  {key}: {json.dumps(value)}" for key, value in document["outputs"].items())
    for report in REPORTS:
        lines.append("")
        lines.append(f"{report.title}:")
        lines.extend(f"  {line}" for line in report.render(document[report.key]))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------------------------------------


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix: value}


def diff_documents(base: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    base_resources = {r["urn"]: r for r in base.get("resources", [])}
    current_resources = {r["urn"]: r for r in current.get("resources", [])}
    changed = []
    for urn in sorted(set(base_resources) & set(current_resources)):
        before = _flatten({"inputs": base_resources[urn]["inputs"], "protect": base_resources[urn]["protect"]})
        after = _flatten({"inputs": current_resources[urn]["inputs"], "protect": current_resources[urn]["protect"]})
        properties = [
            {"path": path, "before": before.get(path), "after": after.get(path)}
            for path in sorted(set(before) | set(after))
            if before.get(path) != after.get(path)
        ]
        if properties:
            changed.append({"urn": urn, "properties": properties})
    outputs_before, outputs_after = base.get("outputs", {}), current.get("outputs", {})
    return {
        "added": sorted(set(current_resources) - set(base_resources)),
        "removed": sorted(set(base_resources) - set(current_resources)),
        "changed": changed,
        "outputs": [
            {"key": k, "before": outputs_before.get(k), "after": outputs_after.get(k)}
            for k in sorted(set(outputs_before) | set(outputs_after))
            if outputs_before.get(k) != outputs_after.get(k)
        ],
    }


def render_diff(diff: dict[str, Any], base: dict[str, Any], current: dict[str, Any]) -> str:
    lines = [
        f"Plan diff for stack '{current['stack']}': {len(diff['added'])} to add, {len(diff['removed'])} to remove, "
        f"{len(diff['changed'])} to change"
    ]
    lines.extend(f"  + {urn}" for urn in diff["added"])
    lines.extend(f"  - {urn}" for urn in diff["removed"])
    for change in diff["changed"]:
        lines.append(f"  ~ {change['urn']}")
        lines.extend(
            f"      {p['path']}: {json.dumps(p['before'])} => {json.dumps(p['after'])}" for p in change["properties"]
        )
    for output in diff["outputs"]:
        lines.append(f"  output {output['key']}: {json.dumps(output['before'])} => {json.dumps(output['after'])}")
    for report in REPORTS:
        if report.diff is not None and report.key in current:
            section = report.diff(base.get(report.key), current[report.key])
            if section:
                lines.append(f"{report.title}:")
                lines.extend(f"  {line}" for line in section)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="staging", help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--config-file", type=Path, help="use this stack file instead (like the CLI flag)")
    parser.add_argument("--json", action="store_true", help="print the stable JSON document")
    parser.add_argument("--diff", type=Path, metavar="BASE.json", help="compare with an earlier --json output")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _load_reports()
    try:
        run = run_stack(args.stack, config_file=args.config_file, placeholders_for_missing_secrets=True)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except HarnessError as exc:
        print(f"plan failed: {exc}", file=sys.stderr)
        return 1
    try:
        document = plan_document(run)
    except ConfigError as exc:  # a report section found the stack's config invalid (e.g. shipyard:policy)
        print(str(exc), file=sys.stderr)
        return 2
    if args.diff is not None:
        try:
            base = json.loads(args.diff.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"{args.diff}: cannot read the base plan: {exc}", file=sys.stderr)
            return 2
        diff = diff_documents(base, document)
        if args.json:
            print(json.dumps(diff, indent=2, sort_keys=True))
        else:
            sys.stdout.write(render_diff(diff, base, document))
        return 0
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_text(run, document))
    return 0


if __name__ == "__main__":
    # `python -m infra.plan` runs this file as `__main__`; report modules register with `infra.plan`, so run
    # that module's main (otherwise their sections would land in a second, unused REPORTS list).
    from infra import plan as _importable

    raise SystemExit(_importable.main())

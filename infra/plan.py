"""Offline plan: what `pulumi up -s <stack>` would create, without credentials or the Pulumi CLI.

    python -m infra.plan --stack staging [--config-file FILE] [--json | --format text|json|markdown]
                         [--diff BASE.json] [--max-chars N] [--mermaid FILE] [--fail-over-budget]

Text output: the resource tree grouped by component with each resource's key properties, counts by type,
the stack outputs, then every report section (policy, cost... see `REPORTS`). `--json` prints the stable
contract below, sorted, so two runs can be diffed; `--diff BASE.json` compares against an earlier `--json`
(resources, outputs, and each section's own diff: new policy findings, cost delta). `--format markdown` renders
the plan or the diff as a pull-request comment: a summary line first, details collapsed in <details>, cut to
`--max-chars` (GitHub's 65,536-character comment limit at most) with a note saying what was left out.
`--mermaid FILE` writes a flowchart of the components and which ones feed inputs to which.

    {"stack", "project", "resources": [{"urn", "type", "name", "parent", "custom", "inputs", "protect"}],
     "outputs": {...}, "placeholders": [...], <one key per report>}

Exit codes: 0 planned; 2 invalid stack config (the message lists every problem); 1 anything else, and with
`--fail-over-budget` a cost estimate over the stack's budget (the plan is printed first).
"""

from __future__ import annotations

import argparse
import json
import re
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
    summary: Callable[[dict[str, Any]], str] | None = None
    """Optional: one markdown phrase for the summary line of `--format markdown`."""
    markdown: Callable[[dict[str, Any]], list[str]] | None = None
    """Optional: markdown lines for the section's collapsed details (default: the text lines, fenced)."""
    diff_summary: Callable[[dict[str, Any] | None, dict[str, Any]], str] | None = None
    """Optional: one markdown phrase summarising the change, for the diff's summary line."""
    highlights: Callable[[dict[str, Any] | None, dict[str, Any]], list[str]] | None = None
    """Optional: markdown bullets that belong above the fold of a diff comment (e.g. new policy findings)."""


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
        "warnings": list(run.warnings),
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
    if run.warnings:
        lines.append("Warnings from the program (a real `pulumi preview` shows them too):")
        lines.extend(f"  ! {warning}" for warning in run.warnings)
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
    if current.get("warnings"):
        lines.append("Warnings from the program:")
        lines.extend(f"  ! {warning}" for warning in current["warnings"])
    for report in REPORTS:
        if report.diff is not None and report.key in current:
            section = report.diff(base.get(report.key), current[report.key])
            if section:
                lines.append(f"{report.title}:")
                lines.extend(f"  {line}" for line in section)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Markdown (pull-request comments) and the component diagram
# ---------------------------------------------------------------------------------------------------------

GITHUB_COMMENT_LIMIT = 65_536
"""GitHub rejects issue and pull-request comments longer than this many characters."""
_NOTE_RESERVE = 400


def md_cell(value: Any, limit: int = 300) -> str:
    """Text safe inside a markdown table cell: no pipes or newlines, bounded length."""
    text = str(value).replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def fit_markdown(head: list[str], sections: list[tuple[str, list[str]]], max_chars: int) -> str:
    """Summary first, then each section collapsed in <details>; cut lines (then whole sections) to stay under
    `max_chars`, saying what was left out. Tags are always closed, so a cut never breaks the comment."""
    max_chars = min(max_chars, GITHUB_COMMENT_LIMIT)
    out = "\n".join(head) + "\n"
    for index, (title, body) in enumerate(sections):
        opening = f"\n<details><summary>{title}</summary>\n\n"
        closing = "\n</details>\n"
        if len(out) + len(opening) + len(closing) + _NOTE_RESERVE > max_chars:
            titles = [t for t, _ in sections[index:]]
            left = ", ".join(titles[:5]) + (f" and {len(titles) - 5} more" if len(titles) > 5 else "")
            out += f"\n_Left out to fit GitHub's comment limit: {left}. Run `make plan` for everything._\n"
            break
        block = opening
        for kept, line in enumerate(body):
            if len(out) + len(block) + len(line) + 1 + len(closing) + _NOTE_RESERVE > max_chars:
                block += (
                    f"\n_… {len(body) - kept} more line(s) truncated to fit GitHub's "
                    f"{GITHUB_COMMENT_LIMIT:,}-character comment limit; run `make plan` for the full output._\n"
                )
                break
            block += line + "\n"
        out += block + closing
    return out


def _component_sections(run: StackRun, document: dict[str, Any]) -> list[tuple[str, list[str]]]:
    counts = Counter(r.type for r in run.resources if r.custom)
    table = ["| resources | type |", "| ---: | --- |"]
    table.extend(f"| {count} | `{type_}` |" for type_, count in sorted(counts.items()))
    return [
        ("Components and their connections", ["```mermaid", *mermaid_diagram(run).splitlines(), "```"]),
        (f"Resources by type ({sum(counts.values())})", table),
    ]


def _report_markdown(report: PlanReport, section: dict[str, Any]) -> list[str]:
    if report.markdown is not None:
        return report.markdown(section)
    return ["```text", *report.render(section), "```"]


def _warnings_markdown(document: dict[str, Any]) -> list[str]:
    """The program's warnings as a GitHub alert block, so a pull request shows them above the fold."""
    warnings = document.get("warnings") or []
    if not warnings:
        return []
    return ["", "> [!WARNING]", "> The program warned (a real `pulumi preview` shows this too):"] + [
        f"> - {md_cell(warning)}" for warning in warnings
    ]


def render_markdown(run: StackRun, document: dict[str, Any], max_chars: int = GITHUB_COMMENT_LIMIT) -> str:
    resources = sum(r.custom for r in run.resources)
    summary = [f"**{resources} resources**"]
    summary.extend(r.summary(document[r.key]) for r in REPORTS if r.summary is not None)
    head = [f"### Offline plan · `{run.stack}` ({run.project})", "", " · ".join(summary)]
    if run.placeholders:
        head += ["", "Secrets stood in by placeholders offline: " + ", ".join(f"`{k}`" for k in run.placeholders)]
    head += _warnings_markdown(document)
    sections = [(report.title, _report_markdown(report, document[report.key])) for report in REPORTS]
    return fit_markdown(head, sections + _component_sections(run, document), max_chars)


def render_diff_markdown(
    run: StackRun,
    diff: dict[str, Any],
    base: dict[str, Any],
    current: dict[str, Any],
    max_chars: int = GITHUB_COMMENT_LIMIT,
) -> str:
    counts = f"**+{len(diff['added'])} to add · −{len(diff['removed'])} to remove · ~{len(diff['changed'])} to change**"
    summary = [counts]
    summary.extend(
        r.diff_summary(base.get(r.key), current[r.key])
        for r in REPORTS
        if r.diff_summary is not None and r.key in current
    )
    head = [f"### Offline plan diff · `{current['stack']}` ({current['project']})", "", " · ".join(summary)]
    highlights = [
        line
        for r in REPORTS
        if r.highlights is not None and r.key in current
        for line in r.highlights(base.get(r.key), current[r.key])
    ]
    head += _warnings_markdown(current)
    if highlights:
        head += ["", *highlights[:8]]
        if len(highlights) > 8:
            head.append(f"- … and {len(highlights) - 8} more (see below)")
    changes = [f"- ➕ `{urn}`" for urn in diff["added"]]
    changes += [f"- ➖ `{urn}`" for urn in diff["removed"]]
    for change in diff["changed"]:
        changes.append(f"- ✏️ `{change['urn']}`")
        changes.extend(
            f"  - `{md_cell(p['path'], 120)}`: {_md_change(p['before'], p['after'])}" for p in change["properties"]
        )
    changes += [
        f"- output `{o['key']}`: `{md_cell(json.dumps(o['before']), 160)}` → `{md_cell(json.dumps(o['after']), 160)}`"
        for o in diff["outputs"]
    ]
    sections: list[tuple[str, list[str]]] = [
        (
            f"Resource changes ({len(diff['added']) + len(diff['removed']) + len(diff['changed'])})",
            changes or ["No resource changes."],
        )
    ]
    for report in REPORTS:
        if report.key not in current:
            continue
        if report.diff is not None:
            lines = report.diff(base.get(report.key), current[report.key])
            sections.append(
                (f"{report.title}: changes", [f"- {md_cell(line.strip(), 400)}" for line in lines] or ["No changes."])
            )
    for report in REPORTS:
        if report.key in current:
            sections.append((f"{report.title}: full", _report_markdown(report, current[report.key])))
    return fit_markdown(head, sections + _component_sections(run, current)[:1], max_chars)


def _md_change(before: Any, after: Any) -> str:
    return f"`{md_cell(json.dumps(before), 160)}` → `{md_cell(json.dumps(after), 160)}`"


def _outermost_component(resource: Resource, by_urn: dict[str, Resource]) -> Resource | None:
    found = None
    current: Resource | None = resource
    while current is not None and current.parent is not None:
        current = by_urn.get(current.parent)
        if current is not None and current.type.startswith("shipyard:"):
            found = current
    return found


def mermaid_diagram(run: StackRun) -> str:
    """Flowchart of the top-level components; an arrow A --> B means something in A takes an input from B."""
    by_urn = {r.urn: r for r in run.resources}
    owner: dict[str, Resource] = {}
    sizes: Counter[str] = Counter()
    for resource in run.resources:
        component = (
            resource
            if resource.type.startswith("shipyard:") and _outermost_component(resource, by_urn) is None
            else _outermost_component(resource, by_urn)
        )
        if component is None:
            continue
        owner[resource.urn] = component
        if resource.custom:
            sizes[component.urn] += 1
    node = {urn: re.sub(r"[^A-Za-z0-9_]", "_", c.name) for urn, c in {c.urn: c for c in owner.values()}.items()}
    edges: set[tuple[str, str]] = set()
    for resource in run.resources:
        source = owner.get(resource.urn)
        for dependency in resource.depends_on:
            target = owner.get(dependency)
            if source is not None and target is not None and source.urn != target.urn:
                edges.add((node[source.urn], node[target.urn]))
    lines = ["flowchart LR"]
    for urn, node_id in sorted(node.items(), key=lambda kv: kv[1]):
        component = by_urn[urn]
        kind = component.type.rsplit(":", 1)[-1]
        lines.append(f'  {node_id}["{kind}: {component.name}<br/>{sizes[urn]} resources"]')
    lines.extend(f"  {a} --> {b}" for a, b in sorted(edges))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="staging", help="stack name (reads Pulumi.<stack>.yaml)")
    parser.add_argument("--config-file", type=Path, help="use this stack file instead (like the CLI flag)")
    parser.add_argument("--json", action="store_true", help="print the stable JSON document (= --format json)")
    parser.add_argument(
        "--format",
        choices=("text", "json", "markdown"),
        default=None,
        help="text (default), json, or markdown for a pull-request comment (summary first, details collapsed)",
    )
    parser.add_argument("--diff", type=Path, metavar="BASE.json", help="compare with an earlier --json output")
    parser.add_argument(
        "--max-chars",
        type=int,
        default=GITHUB_COMMENT_LIMIT,
        help=f"markdown size limit (default and maximum {GITHUB_COMMENT_LIMIT}: GitHub's comment limit)",
    )
    parser.add_argument("--mermaid", type=Path, metavar="FILE", help="also write a Mermaid diagram of the components")
    parser.add_argument(
        "--fail-over-budget",
        action="store_true",
        help="exit 1 (after printing the plan) when the cost estimate exceeds the stack's budget "
        "(shipyard:budget, else the tier's); for CI",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output_format = args.format or ("json" if args.json else "text")
    if args.json and args.format not in (None, "json"):
        print("--json and --format markdown/text are exclusive", file=sys.stderr)
        return 2
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
    if args.mermaid is not None:
        args.mermaid.write_text(mermaid_diagram(run))
    if args.diff is not None:
        try:
            base = json.loads(args.diff.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            print(f"{args.diff}: cannot read the base plan: {exc}", file=sys.stderr)
            return 2
        diff = diff_documents(base, document)
        if output_format == "json":
            print(json.dumps(diff, indent=2, sort_keys=True))
        elif output_format == "markdown":
            sys.stdout.write(render_diff_markdown(run, diff, base, document, args.max_chars))
        else:
            sys.stdout.write(render_diff(diff, base, document))
        return _budget_exit(args, document)
    if output_format == "json":
        print(json.dumps(document, indent=2, sort_keys=True))
    elif output_format == "markdown":
        sys.stdout.write(render_markdown(run, document, args.max_chars))
    else:
        sys.stdout.write(render_text(run, document))
    return _budget_exit(args, document)


def _budget_exit(args: argparse.Namespace, document: dict[str, Any]) -> int:
    """1 when `--fail-over-budget` is given and the estimate is over the stack's budget (2 stays bad input)."""
    goal = (document.get("cost") or {}).get("goal")
    if args.fail_over_budget and goal and not goal["met"]:
        print(
            f"over budget: {document['cost']['monthly_usd_total']:.2f} USD/month > {goal['monthly_usd_max']:g} "
            f"({goal.get('source', '')})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    # `python -m infra.plan` runs this file as `__main__`; report modules register with `infra.plan`, so run
    # that module's main (otherwise their sections would land in a second, unused REPORTS list).
    from infra import plan as _importable

    raise SystemExit(_importable.main())

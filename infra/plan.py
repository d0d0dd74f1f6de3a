"""Offline plan: what `pulumi up -s <stack>` would create, without credentials or the Pulumi CLI.

    python -m infra.plan --stack staging [--config-file FILE] [--json | --format text|json|markdown]
                         [--diff BASE.json [--allow-other-stack]] [--max-chars N] [--mermaid FILE]
                         [--fail-over-budget]

Text output: the resource tree grouped by component with each resource's key properties, counts by type,
the stack outputs, then every report section (policy, cost... see `REPORTS`). `--json` prints the stable
contract below, sorted, so two runs can be diffed; `--diff BASE.json` compares against an earlier `--json`
(resources, outputs, and each section's own diff: new policy findings, cost delta) after checking that the base
is a plan of this project and stack. Each changed value is one line by its path; a property holding JSON text
(dashboard body, IAM policy, container definitions...) is compared inside it, after a `#`:
`inputs.dashboardBody#widgets[3].properties.annotations.horizontal[0].value: 80 => 70`. `--format markdown`
renders the plan or the diff as a pull-request comment: a summary line first, details collapsed in <details>,
cut to `--max-chars` (1,000 to GitHub's 65,536-character comment limit) with a note naming that limit.
`--mermaid FILE` writes a flowchart of the components and which ones feed inputs to which.

    {"stack", "project", "resources": [{"urn", "type", "name", "parent", "custom", "inputs", "protect"}],
     "outputs": {...}, "placeholders": [...], <one key per report>}

Secrets are masked where they are: only the secret values inside a property read `[secret]`.

Exit codes: 0 planned; 2 bad input (an invalid stack config, listing every problem; an unusable --diff base; a
bad flag); 1 the program failed. With `--json` / `--format markdown` a failed plan still prints a document,
`{"errors": [...], "kind", "stack", "configFile"}` / a comment listing every problem, for the pull request.
With `--fail-over-budget`, 1 also when the cost estimate is over the stack's budget (the plan is printed first).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config import ConfigError
from infra.harness import PROJECT_ROOT, HarnessError, Resource, StackRun, read_project, run_stack, stack_file

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
            value = _jsonable(value)  # integers as integers: retentionInDays=30, not 30.0
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


_SIMPLE_KEY = re.compile(r"[A-Za-z0-9_:$@*/+-]+")
JSON_MARK = "#"
"""Separates a property holding JSON text from the path inside that JSON: `inputs.dashboardBody#widgets[3]`."""


class _Absent:
    """A key or list item that exists on one side of a diff only (rendered as null, as before)."""


ABSENT = _Absent()


def _key_path(prefix: str, key: str) -> str:
    segment = f".{key}" if _SIMPLE_KEY.fullmatch(key) else f"[{json.dumps(key)}]"
    if not prefix or prefix.endswith(JSON_MARK):
        return prefix + (key if _SIMPLE_KEY.fullmatch(key) else segment)
    return prefix + segment


def _json_container(value: Any) -> dict[str, Any] | list[Any] | None:
    """The object or array a string property holds as JSON text (dashboard bodies, IAM and resource policies,
    container definitions, scheduler/target inputs), or None for any other string."""
    if not isinstance(value, str) or value[:1] not in ("{", "["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None


def diff_values(before: Any, after: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(path, before, after) for each leaf that differs, JSON text diffed inside by path, lists aligned so an
    inserted item is one change instead of a shifted tail. Absent sides are `ABSENT`."""
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        return [
            change
            for key in sorted(set(before) | set(after), key=str)
            for change in diff_values(before.get(key, ABSENT), after.get(key, ABSENT), _key_path(path, str(key)))
        ]
    if isinstance(before, list) and isinstance(after, list):
        return _diff_lists(before, after, path)
    parsed_before, parsed_after = _json_container(before), _json_container(after)
    if parsed_before is not None and parsed_after is not None:
        # Values inside JSON text come from Python floats too (80.0): show integers as integers.
        return diff_values(_jsonable(parsed_before), _jsonable(parsed_after), path + JSON_MARK)
    return [(path, before, after)]


def _diff_lists(before: list[Any], after: list[Any], path: str) -> list[tuple[str, Any, Any]]:
    if len(before) == len(after):
        return [
            c for i, (b, a) in enumerate(zip(before, after, strict=True)) for c in diff_values(b, a, f"{path}[{i}]")
        ]
    keys_before = [json.dumps(item, sort_keys=True) for item in before]
    keys_after = [json.dumps(item, sort_keys=True) for item in after]
    changes: list[tuple[str, Any, Any]] = []
    matcher = difflib.SequenceMatcher(None, keys_before, keys_after, autojunk=False)
    for tag, b0, b1, a0, a1 in matcher.get_opcodes():
        if tag == "equal":
            continue
        paired = min(b1 - b0, a1 - a0) if tag == "replace" else 0
        for offset in range(paired):
            changes += diff_values(before[b0 + offset], after[a0 + offset], f"{path}[{a0 + offset}]")
        changes += [(f"{path}[{i}]", before[i], ABSENT) for i in range(b0 + paired, b1)]
        changes += [(f"{path}[{i}]", ABSENT, after[i]) for i in range(a0 + paired, a1)]
    return changes


def _property_change(path: str, before: Any, after: Any) -> dict[str, Any]:
    """One changed leaf in `--json`; `change` says when a side does not exist (its value shows as null)."""
    change: dict[str, Any] = {
        "path": path,
        "before": None if before is ABSENT else before,
        "after": None if after is ABSENT else after,
    }
    if before is ABSENT or after is ABSENT:
        change["change"] = "added" if before is ABSENT else "removed"
    return change


def diff_documents(base: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    base_resources = {r["urn"]: r for r in base.get("resources", [])}
    current_resources = {r["urn"]: r for r in current.get("resources", [])}
    changed = []
    for urn in sorted(set(base_resources) & set(current_resources)):
        before = {"inputs": base_resources[urn]["inputs"], "protect": base_resources[urn]["protect"]}
        after = {"inputs": current_resources[urn]["inputs"], "protect": current_resources[urn]["protect"]}
        properties = [_property_change(path, old, new) for path, old, new in diff_values(before, after)]
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


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _sides(change: dict[str, Any]) -> tuple[str, str]:
    """A property change's before and after as text; a side that does not exist reads `(absent)`."""
    kind = change.get("change")
    before = "(absent)" if kind == "added" else _compact(change["before"])
    after = "(absent)" if kind == "removed" else _compact(change["after"])
    return before, after


def render_diff(diff: dict[str, Any], base: dict[str, Any], current: dict[str, Any]) -> str:
    lines = [
        f"Plan diff for stack '{current['stack']}': {len(diff['added'])} to add, {len(diff['removed'])} to remove, "
        f"{len(diff['changed'])} to change"
    ]
    lines.extend(f"  + {urn}" for urn in diff["added"])
    lines.extend(f"  - {urn}" for urn in diff["removed"])
    for change in diff["changed"]:
        lines.append(f"  ~ {change['urn']}")
        lines.extend(f"      {p['path']}: {' => '.join(_sides(p))}" for p in change["properties"])
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


def md_code(value: Any, limit: int = 300) -> str:
    """Text as an inline code span on one line, bounded: the fence is longer than any run of backticks inside,
    so a value holding a backtick cannot end the span early (pipes need no escaping outside a table)."""
    text = str(value).replace("\n", " ").replace("\r", " ")
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if longest or text.startswith(" ") or text.endswith(" ") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def md_cell(value: Any, limit: int = 300) -> str:
    """Text safe inside a markdown table cell: no pipes or newlines, bounded length."""
    text = str(value).replace("|", "\\|").replace("\n", " ").replace("\r", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def limit_phrase(max_chars: int) -> str:
    """How a truncation note names the limit it cut to: GitHub's, or the one given with --max-chars."""
    if max_chars >= GITHUB_COMMENT_LIMIT:
        return f"GitHub's {GITHUB_COMMENT_LIMIT:,}-character comment limit"
    return f"the {max_chars:,}-character limit (--max-chars)"


def fit_markdown(head: list[str], sections: list[tuple[str, list[str]]], max_chars: int) -> str:
    """Summary first, then each section collapsed in <details>; cut lines (then whole sections) to stay under
    `max_chars`, saying what was left out and which limit cut it. Tags are always closed, so a cut never breaks
    the comment."""
    max_chars = min(max_chars, GITHUB_COMMENT_LIMIT)
    limit = limit_phrase(max_chars)
    out = ""
    for index, line in enumerate(head):  # the head is bounded too (a program may warn at length)
        if len(out) + len(line) + 1 + _NOTE_RESERVE > max_chars:
            out += f"\n_… {len(head) - index} more summary line(s) cut to fit {limit}._\n"
            break
        out += line + "\n"
    for index, (title, body) in enumerate(sections):
        opening = f"\n<details><summary>{title}</summary>\n\n"
        closing = "\n</details>\n"
        if len(out) + len(opening) + len(closing) + _NOTE_RESERVE > max_chars:
            titles = [t for t, _ in sections[index:]]
            left = ", ".join(titles[:5]) + (f" and {len(titles) - 5} more" if len(titles) > 5 else "")
            out += f"\n_Left out to fit {limit}: {left}. Run `make plan` for everything._\n"
            break
        block = opening
        for kept, line in enumerate(body):
            if len(out) + len(block) + len(line) + 1 + len(closing) + _NOTE_RESERVE > max_chars:
                block += (
                    f"\n_… {len(body) - kept} more line(s) truncated to fit {limit}; "
                    "run `make plan` for the full output._\n"
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
        changes.extend(f"  - {md_code(p['path'], 200)}: {_md_change(*_sides(p))}" for p in change["properties"])
    changes += [
        f"- output {md_code(o['key'])}: {_md_change(_compact(o['before']), _compact(o['after']))}"
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


def _md_change(before: str, after: str, limit: int = 160) -> str:
    old, new = clip_around_difference(before, after, limit)
    return f"{md_code(old, limit + 2)} → {md_code(new, limit + 2)}"


def clip_around_difference(before: str, after: str, limit: int) -> tuple[str, str]:
    """Both texts cut to about `limit` characters around where they first differ, so a long value that changes
    in its middle does not show as the same clipped prefix on both sides."""
    if len(before) <= limit and len(after) <= limit:
        return before, after
    common = 0
    for old, new in zip(before, after, strict=False):
        if old != new:
            break
        common += 1
    start = max(0, common - limit // 4)

    def window(text: str) -> str:
        piece = text[start : start + limit]
        return ("…" if start else "") + piece + ("…" if start + limit < len(text) else "")

    return window(before), window(after)


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


MIN_MAX_CHARS = 1_000
"""Below this a comment holds little more than its summary line and the truncation note."""


def _max_chars(text: str) -> int:
    """argparse type for --max-chars: an integer within [MIN_MAX_CHARS, GitHub's limit]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of characters, got {text!r}") from None
    if not MIN_MAX_CHARS <= value <= GITHUB_COMMENT_LIMIT:
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_MAX_CHARS:,} and {GITHUB_COMMENT_LIMIT:,} (GitHub's comment limit), got {value:,}"
        )
    return value


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
        "--allow-other-stack",
        action="store_true",
        help="let --diff compare with a plan of a different stack (refused by default: everything would differ)",
    )
    parser.add_argument(
        "--max-chars",
        type=_max_chars,
        default=GITHUB_COMMENT_LIMIT,
        help=f"markdown size limit, {MIN_MAX_CHARS:,} to {GITHUB_COMMENT_LIMIT:,} "
        f"(default and maximum {GITHUB_COMMENT_LIMIT:,}: GitHub's comment limit)",
    )
    parser.add_argument("--mermaid", type=Path, metavar="FILE", help="also write a Mermaid diagram of the components")
    parser.add_argument(
        "--fail-over-budget",
        action="store_true",
        help="exit 1 (after printing the plan) when the cost estimate exceeds the stack's budget "
        "(shipyard:budget, else the tier's); for CI",
    )
    return parser


class PlanInputError(Exception):
    """No plan can be made: `kind` says why ("config", "base", "program"); `problems` has one line each."""

    def __init__(self, problems: list[str], kind: str) -> None:
        self.problems = problems
        self.kind = kind
        super().__init__("\n".join(problems))


_ERROR_TITLES = {
    "config": "The stack configuration is invalid",
    "base": "The --diff base plan cannot be used",
    "program": "The program failed",
}


def error_document(stack: str, config_file: str, error: PlanInputError) -> dict[str, Any]:
    """What `--json` prints when there is no plan: every problem, so a pull-request job can say why."""
    return {"errors": list(error.problems), "kind": error.kind, "stack": stack, "configFile": config_file}


def error_markdown(document: dict[str, Any], max_chars: int = GITHUB_COMMENT_LIMIT) -> str:
    """The pull-request comment for a plan that could not be made: what failed, then every problem."""
    problems = document["errors"]
    head = [
        f"### Offline plan · `{document['stack']}` · ❌ no plan",
        "",
        f"**{_ERROR_TITLES.get(document['kind'], 'The plan failed')}** (`{md_cell(document['configFile'])}`). "
        "Nothing was planned; fix these and push again:",
        "",
        "```text",
    ]
    out = "\n".join(head) + "\n"
    for index, problem in enumerate(problems):
        line = str(problem).replace("```", "'''")  # a fence inside would end the block early
        if len(out) + len(line) + 1 + _NOTE_RESERVE > max_chars:
            out += f"… {len(problems) - index} more problem(s) cut to fit the {max_chars:,}-character limit\n"
            break
        out += line + "\n"
    return out + "```\n"


_PLAN_KEYS: dict[str, type] = {"stack": str, "project": str, "resources": list, "outputs": dict}
_RESOURCE_KEYS: dict[str, type | tuple[type, ...]] = {
    "urn": str,
    "type": str,
    "name": str,
    "parent": (str, type(None)),
    "custom": bool,
    "inputs": dict,
    "protect": bool,
}
_MAX_PROBLEMS = 10
_EXPECTED = "expected the output of `python -m infra.plan --json`"


def load_base(path: Path, stack: str, project: str, *, allow_other_stack: bool = False) -> dict[str, Any]:
    """Read and check a `--diff` base: a `--json` plan document of this project (and of this stack, unless
    allowed). Raises PlanInputError naming the file as given and where in it each problem is."""
    try:
        base = json.loads(path.read_text())
    except OSError as exc:
        raise PlanInputError([f"{path}: cannot read the base plan: {exc.strerror or exc}"], "base") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanInputError([f"{path}: the base plan is not JSON: {exc}"], "base") from None
    problems = [f"{path}: {problem}" for problem in _base_problems(base, stack, project, allow_other_stack)]
    if len(problems) > _MAX_PROBLEMS:
        problems = [*problems[:_MAX_PROBLEMS], f"{path}: … and {len(problems) - _MAX_PROBLEMS} more problem(s)"]
    if problems:
        raise PlanInputError(problems, "base")
    return dict(base)


def _base_problems(base: Any, stack: str, project: str, allow_other_stack: bool) -> list[str]:
    if not isinstance(base, dict):
        return [f"is a JSON {_type_name(type(base))}, not a plan document; {_EXPECTED}"]
    if "errors" in base and "resources" not in base:
        return [f"is the error report of a plan that failed, not a plan: {'; '.join(map(str, base['errors']))}"]
    if {"added", "removed", "changed"} <= set(base):
        return [f"is the output of --diff, not a plan document; {_EXPECTED}"]
    problems = [
        f"{key}: missing" if key not in base else f"{key}: must be a JSON {_type_name(kind)}"
        for key, kind in _PLAN_KEYS.items()
        if not isinstance(base.get(key), kind)
    ]
    if problems:
        return [*problems, _EXPECTED]
    if base["project"] != project:
        return [f"project: {base['project']!r} is not this project ({project!r})"]
    if base["stack"] != stack and not allow_other_stack:
        problems.append(
            f"stack: the base is a plan of stack {base['stack']!r}, this is {stack!r}; every resource would differ "
            "(pass --allow-other-stack to compare them anyway)"
        )
    problems += _resource_problems(base["resources"])
    problems += [
        f"{report.key}: must be a JSON object (the {report.title} section)"
        for report in REPORTS
        if report.key in base and not isinstance(base[report.key], dict)
    ]
    return problems


def _resource_problems(resources: list[Any]) -> list[str]:
    problems = []
    for index, resource in enumerate(resources):
        if not isinstance(resource, dict):
            problems.append(f"resources[{index}]: must be a JSON object")
            continue
        for key, kind in _RESOURCE_KEYS.items():
            if key not in resource:
                problems.append(f"resources[{index}].{key}: missing")
            elif not isinstance(resource[key], kind):
                problems.append(f"resources[{index}].{key}: must be a JSON {_type_name(kind)}")
    return problems


def _type_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "string", list: "array", dict: "object", bool: "boolean", int: "number", float: "number"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, "null" if k is type(None) else k.__name__) for k in kinds)


def _config_problems(exc: Exception) -> list[str]:
    """The problem lines of the loader's ConfigError (`problems`, one per line), or its message."""
    problems = getattr(exc, "problems", None)
    return [str(p) for p in problems] if problems else [str(exc)]


def write_stdout(text: str) -> None:
    """Write to stdout; a reader that stops early (`--json | head`) ends the output quietly, no traceback."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's advice (docs.python.org/3/library/signal.html#note-on-sigpipe): point stdout at devnull, so
        # the interpreter's last flush at exit cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output_format = args.format or ("json" if args.json else "text")
    if args.json and args.format not in (None, "json"):
        print("--json and --format markdown/text are exclusive", file=sys.stderr)
        return 2
    _load_reports()
    try:
        return _plan(args, output_format)
    except PlanInputError as exc:
        headline = {"config": ["invalid stack configuration:"]}.get(exc.kind, [])
        indent = "  " if headline else ""
        print("\n".join([*headline, *(indent + problem for problem in exc.problems)]), file=sys.stderr)
        config_file = str(args.config_file) if args.config_file else stack_file(args.stack).name
        document = error_document(args.stack, config_file, exc)
        if output_format == "json":
            write_stdout(json.dumps(document, indent=2, sort_keys=True) + "\n")
        elif output_format == "markdown":
            write_stdout(error_markdown(document, args.max_chars))
        return 1 if exc.kind == "program" else 2


def _plan(args: argparse.Namespace, output_format: str) -> int:
    base = None
    if args.diff is not None:  # checked before the program runs: a bad base fails in a second, not after the plan
        base = load_base(args.diff, args.stack, str(read_project()["name"]), allow_other_stack=args.allow_other_stack)
    try:
        run = run_stack(args.stack, config_file=args.config_file, placeholders_for_missing_secrets=True)
        document = plan_document(run)  # a report section may find the config invalid too (shipyard:policy)
    except ConfigError as exc:
        problems = _config_problems(exc)
        raise PlanInputError(problems, "config") from None
    except HarnessError as exc:
        raise PlanInputError([f"plan failed: {exc}"], "program") from None
    if args.mermaid is not None:
        try:
            args.mermaid.write_text(mermaid_diagram(run))
        except OSError as exc:
            print(f"--mermaid {args.mermaid}: cannot write: {exc.strerror or exc}", file=sys.stderr)
            return 2
    if base is not None:
        diff = diff_documents(base, document)
        if output_format == "json":
            write_stdout(json.dumps(diff, indent=2, sort_keys=True) + "\n")
        elif output_format == "markdown":
            write_stdout(render_diff_markdown(run, diff, base, document, args.max_chars))
        else:
            write_stdout(render_diff(diff, base, document))
        return _budget_exit(args, document)
    if output_format == "json":
        write_stdout(json.dumps(document, indent=2, sort_keys=True) + "\n")
    elif output_format == "markdown":
        write_stdout(render_markdown(run, document, args.max_chars))
    else:
        write_stdout(render_text(run, document))
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

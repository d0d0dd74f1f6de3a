"""What botocore's service models say about a documented ``aws`` command: its operation, its parameters'
shapes (to fill placeholders with values of the right kind) and whether its ``--query`` fits the output.

The JMESPath check walks the expression's AST (jmespath's own parser) over the operation's output shape, the
way the CLI applies ``--query`` to the parsed response: a field that the shape does not have, an index on
something that is not a list, or a ``sort_by``/``min_by``/``max_by`` key that the service may leave out
(not a required member, and the list not filtered on it or on a status first — a snapshot being created has
no ``SnapshotCreateTime`` yet, and JMESPath's sort_by raises on a null key) is an error.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from typing import Any

import botocore.session
import jmespath.parser
from botocore import xform_name
from botocore.model import ListShape, MapShape, OperationModel, ServiceModel, Shape, StructureShape

# CLI command names that differ from botocore's service names
CLI_SERVICE_ALIASES = {"s3api": "s3", "configservice": "config"}
# high-level CLI commands that call no single API operation
CUSTOM_COMMANDS = {("s3", None), ("configure", None), ("deploy", None), ("history", None)}


@functools.cache
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.cache
def service_model(cli_service: str) -> ServiceModel | None:
    name = CLI_SERVICE_ALIASES.get(cli_service, cli_service)
    if name not in _session().get_available_services():
        return None
    return _session().get_service_model(name)


@dataclass(frozen=True)
class Operation:
    service: str  # CLI service name
    model: OperationModel
    waiter: str | None = None  # `aws rds wait db-instance-available` → its waiter's name

    def member_for_option(self, option: str) -> tuple[str, Shape] | None:
        """``--db-instance-identifier`` / ``--no-publicly-accessible`` → the input member and its shape."""
        shape = self.model.input_shape
        if shape is None:
            return None
        bare = option.removeprefix("--")
        for name, member in shape.members.items():
            cli_name = xform_name(name, "-")
            if bare in (cli_name, f"no-{cli_name}"):
                return name, member
        return None


@functools.cache
def _cli_operations(cli_service: str) -> dict[str, str]:
    model = service_model(cli_service)
    return {} if model is None else {xform_name(op, "-"): op for op in model.operation_names}


def operation(words: list[str]) -> Operation | None:
    """The API operation of ``aws <service> <operation> ...`` (``wait <waiter>`` included), or None."""
    if len(words) < 3 or words[0] != "aws":
        return None
    cli_service, cli_op = words[1], words[2]
    model = service_model(cli_service)
    if model is None:
        return None
    if cli_op == "wait" and len(words) > 3:
        waiters = _session().get_waiter_model(model.service_name)
        for name in waiters.waiter_names:
            if xform_name(name, "-") == words[3]:
                config = waiters.get_waiter(name)
                return Operation(cli_service, model.operation_model(config.operation), waiter=name)
        return None
    api_name = _cli_operations(cli_service).get(cli_op)
    return None if api_name is None else Operation(cli_service, model.operation_model(api_name))


# ------------------------------------------------------------------------------------------ representative values
ACCOUNT = "123456789012"
REGION = "us-east-1"


def representative(op: Operation | None, option: str | None, hint: str = "") -> str:
    """A value of the kind the option takes, for a placeholder or a variable set at run time."""
    if option in ("--region", "--source-region"):
        return REGION
    found = op.member_for_option(option) if op is not None and option else None
    if found is None:
        return _named(hint or "example")
    name, shape = found
    if isinstance(shape, ListShape):
        shape = shape.member
    return _for_shape(op.service if op else "example", name, shape, hint)


def _named(hint: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-") or "example"
    return f"shipyard-test-{slug}"[:60].rstrip("-")


def _for_shape(service: str, member: str, shape: Shape, hint: str) -> str:
    kind = shape.type_name
    if kind in ("integer", "long"):
        return "2"
    if kind in ("double", "float"):
        return "1.5"
    if kind == "boolean":
        return "true"
    if kind == "timestamp":
        return "2026-11-25T09:41:00Z"
    if kind == "blob":
        return "{}"
    enum = getattr(shape, "enum", None)
    if enum:
        return str(enum[0])
    lowered = member.lower()
    if lowered.endswith("rolearn"):
        return f"arn:aws:iam::{ACCOUNT}:role/shipyard-test-role"
    if lowered.endswith("arn"):
        kind_name = re.sub(r"(?i)arn$", "", member)
        return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{xform_name(kind_name, '-') or 'resource'}:shipyard-test"
    if lowered.endswith("url"):
        return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/shipyard-test-queue"
    if "securitygroup" in lowered:
        return "sg-0123456789abcdef0"
    if lowered.endswith("jobid"):
        return "0123ABCD-4567-89EF-0123-456789ABCDEF"
    return _named(xform_name(member, "-"))


# ------------------------------------------------------------------------------------------ --query vs output shape
class QueryError(ValueError):
    pass


@dataclass(frozen=True)
class _List:
    """A projection's result, or a list shape: elements of one type."""

    element: Any


ANY = object()  # a value the walk cannot type (multi-select, literal, function result)


def check_query(op: Operation, expression: str) -> None:
    """Raise QueryError when ``expression`` cannot select what it names from the operation's output."""
    try:
        ast = jmespath.parser.Parser().parse(expression).parsed
    except jmespath.exceptions.JMESPathError as exc:
        raise QueryError(f"not JMESPath: {exc}") from exc
    output = op.model.output_shape
    if output is None:
        raise QueryError(f"{op.model.name} returns nothing to query")
    _walk(ast, output, expression)


def _as_list(value: Any) -> Any:
    if isinstance(value, ListShape):
        return value.member
    if isinstance(value, _List):
        return value.element
    if value is ANY:
        return ANY
    return None


def _describe(value: Any) -> str:
    if isinstance(value, Shape):
        return f"{value.name} ({value.type_name})"
    if isinstance(value, _List):
        return "a list"
    return "a value"


def _walk(node: dict[str, Any], current: Any, expression: str) -> Any:
    kind = node["type"]
    children = node.get("children", [])
    if current is ANY:
        for child in children:
            if isinstance(child, dict):
                _walk(child, ANY, expression)
        return ANY
    if kind == "field":
        name = node["value"]
        if isinstance(current, StructureShape):
            if name not in current.members:
                near = difflib.get_close_matches(name, list(current.members), n=3, cutoff=0.5)
                hint = f" (close: {', '.join(near)})" if near else ""
                raise QueryError(f"{name!r} is not a member of {current.name}{hint}")
            return current.members[name]
        if isinstance(current, MapShape):
            return current.value
        raise QueryError(f"{name!r} is selected from {_describe(current)}, which has no fields")
    if kind == "subexpression":
        return _walk(children[1], _walk(children[0], current, expression), expression)
    if kind == "pipe":
        left = _walk(children[0], current, expression)
        return _walk(children[1], left if not isinstance(left, _List) else _List(left.element), expression)
    if kind in ("index_expression",):
        left = _walk(children[0], current, expression)
        return _walk(children[1], left, expression)
    if kind == "index":
        element = _as_list(current)
        if element is None:
            raise QueryError(f"[{node['value']}] indexes {_describe(current)}, which is not a list")
        return element
    if kind == "slice":
        if _as_list(current) is None:
            raise QueryError(f"a slice of {_describe(current)}, which is not a list")
        return current
    if kind == "projection":
        left = _walk(children[0], current, expression)
        element = _as_list(left)
        if element is None:
            raise QueryError(f"[] projects {_describe(left)}, which is not a list")
        return _List(_walk(children[1], element, expression))
    if kind == "filter_projection":
        left = _walk(children[0], current, expression)
        element = _as_list(left)
        if element is None:
            raise QueryError(f"a filter over {_describe(left)}, which is not a list")
        _walk(children[2], element, expression)
        return _List(_walk(children[1], element, expression))
    if kind == "value_projection":
        left = _walk(children[0], current, expression)
        if isinstance(left, MapShape):
            return _List(_walk(children[1], left.value, expression))
        return _List(_walk(children[1], ANY, expression))
    if kind == "flatten":
        inner = _walk(children[0], current, expression)
        element = _as_list(inner)
        if element is None:
            raise QueryError(f"[] flattens {_describe(inner)}, which is not a list")
        nested = _as_list(element)
        return _List(nested if nested is not None else element)
    if kind in ("identity", "current"):
        return current
    if kind == "literal":
        return ANY
    if kind in ("comparator", "and_expression", "or_expression", "not_expression"):
        for child in children:
            _walk(child, current, expression)
        return ANY
    if kind == "multi_select_list":
        for child in children:
            _walk(child, current, expression)
        return _List(ANY)
    if kind == "multi_select_dict":
        for child in children:
            _walk(child["children"][0], current, expression)
        return ANY
    if kind == "expref":
        return _walk(children[0], current, expression)
    if kind == "function_expression":
        return _function(node, current, expression)
    raise QueryError(f"unsupported JMESPath node {kind!r} in {expression!r}")


def _function(node: dict[str, Any], current: Any, expression: str) -> Any:
    name = node["value"]
    args = node["children"]
    if name in ("sort_by", "min_by", "max_by") and len(args) == 2:
        listed = _walk(args[0], current, expression)
        element = _as_list(listed)
        if element is None:
            raise QueryError(f"{name}() over {_describe(listed)}, which is not a list")
        _walk(args[1], element, expression)
        _key_always_present(name, args[0], args[1], element)
        return listed if name == "sort_by" else element
    results = [_walk(arg, current, expression) for arg in args]
    if name in ("reverse", "sort") and results:
        return results[0]
    return ANY


def _fields(node: dict[str, Any]) -> set[str]:
    found = {node["value"]} if node["type"] == "field" else set()
    for child in node.get("children", []):
        if isinstance(child, dict):
            found |= _fields(child)
    return found


def _key_always_present(name: str, listed: dict[str, Any], key: dict[str, Any], element: Any) -> None:
    if not isinstance(element, StructureShape) or key["type"] != "expref":
        return
    key_node = key["children"][0]
    if key_node["type"] != "field" or key_node["value"] in element.required_members:
        return
    field_name = key_node["value"]
    if listed["type"] == "filter_projection":
        condition = _fields(listed["children"][2])
        if field_name in condition or any(f.endswith("Status") for f in condition):
            return
    raise QueryError(
        f"{name}(…, &{field_name}): {element.name}.{field_name} is optional (absent while the resource is being "
        f"created), and {name} fails on a null key; filter first, e.g. [?Status=='available'] or [?{field_name}]"
    )

"""Error reporting: `ConfigError` and how a pydantic error becomes `<file>: <key path>: <message>`."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from typing import Any

from pulumi import RunError
from pydantic import (
    BaseModel,
)

from infra.config.aws import AwsStack
from infra.config.digitalocean import DigitalOceanStack
from infra.config.validators import PROJECT


class Problem(str):
    """One problem, formatted `<file>: <key path>: <message>`, that also keeps its parts.

    A `str`, so code that prints or searches `ConfigError.problems` keeps working; `file`, `key` and
    `message` let a caller re-label the file (`--config-file`) or emit the problems as data (`plan --json`).
    """

    file: str
    key: str
    message: str

    def __new__(cls, file: str, key: str, message: str) -> Problem:
        self = super().__new__(cls, f"{file}: {key}: {message}" if key else f"{file}: {message}")
        self.file, self.key, self.message = file, key, message
        return self

    @classmethod
    def parse(cls, text: str, file: str | None = None) -> Problem:
        """A problem from its text (`<file>: <key>: <message>`), e.g. one formatted by a check before `Problem`."""
        if all(hasattr(text, attribute) for attribute in ("file", "key", "message")):
            return cls(text.file, text.key, text.message)  # type: ignore[attr-defined]
        rest = text
        if file is not None and text.startswith(f"{file}: "):
            rest = text[len(file) + 2 :]
        else:
            file, _, rest = text.partition(": ")
        key, separator, message = rest.partition(": ")
        if not separator or " " in key:
            return cls(file or "", "", rest)
        return cls(file or "", key, message)

    def relabel(self, file: str) -> Problem:
        return Problem(file, self.key, self.message)

    def as_dict(self) -> dict[str, str]:
        return {"file": self.file, "key": self.key, "message": self.message}


class ConfigError(RunError):
    """An invalid stack configuration: `problems` holds every problem found (one run reports them all).

    Each problem is a `Problem`: a formatted line that also carries `file`, `key` and `message`
    (`as_dicts()` gives them as data, e.g. for an `errors` document). A `pulumi.RunError`, so the CLI
    prints the message without a Python traceback.
    """

    def __init__(self, problems: Iterable[str]):
        self.problems: list[Problem] = [Problem.parse(problem) for problem in problems]
        self.registered: list[str] = []  # URNs registered before the error (the harness fills it in)
        super().__init__("invalid stack configuration:\n  " + "\n  ".join(self.problems))

    def as_dicts(self) -> list[dict[str, str]]:
        return [problem.as_dict() for problem in self.problems]


def _key_path(loc: tuple[int | str, ...], is_aws: bool) -> str:
    parts: list[str] = []
    for index, element in enumerate(loc):
        if element == "[key]":  # pydantic's marker for "the mapping key itself was invalid"
            continue
        if isinstance(element, int):
            parts[-1] += f"[{element}]"
        elif index == 0 and element == "region" and is_aws:
            return "aws:region"
        elif index == 0:
            parts.append(f"{PROJECT}:{element}")
        else:
            parts.append(str(element))
    return ".".join(parts) if parts else f"{PROJECT}:<root>"


def _field_for(model: type[BaseModel], loc: Iterable[int | str]) -> type[BaseModel] | None:
    """The model class found by walking `loc` (aliases) from `model`, for 'allowed keys' hints."""
    current: Any = model
    for element in loc:
        if isinstance(element, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        by_alias = {(f.alias or n): f for n, f in current.model_fields.items()}
        field = by_alias.get(str(element))
        if field is None:
            return None
        current = _unwrap_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


_AWS_ONLY_WHY: dict[str, str] = {
    "network": "App Platform and managed databases run without a VPC you lay out",
    "waf": "App Platform has no WAF to attach",
    "cache": "the DigitalOcean target creates no cache; ElastiCache node types and engines do not exist there",
    "backups": "managed PostgreSQL on DigitalOcean takes daily backups with 7 days of point-in-time restore "
    "by itself, with no copies to other regions; see README, DigitalOcean target",
}


def _is_aws_key(loc: tuple[int | str, ...]) -> bool:
    parent = _field_for(AwsStack, loc[:-1])
    if parent is None:
        return False
    return str(loc[-1]) in {(f.alias or n) for n, f in parent.model_fields.items()}


def _allowed_keys(parent: type[BaseModel]) -> list[str]:
    return sorted((f.alias or n) for n, f in parent.model_fields.items() if n not in {"secrets", "cloud", "region"})


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`; did you mean 'x'?` for a close match (typos, case), else ``: the end of a message."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    close = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=0.6)
    return f"; did you mean {lowered[close[0]]!r}?" if close else ""


# pydantic's error types, said in the stack file's words (no class names, no "Input should be").
_PLAIN: dict[str, str] = {
    "model_type": "must be a mapping of keys to values (indented under the key)",
    "model_attributes_type": "must be a mapping of keys to values (indented under the key)",
    "dict_type": "must be a mapping of keys to values",
    "list_type": "must be a list (one '- item' per line, or [a, b])",
    "string_type": "must be a text value",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number, not a fraction",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number (.nan and .inf are not settings)",
}


def _shown(value: Any) -> str:
    if value is None or value == "null":  # the engine hands a YAML null to the program as the text "null"
        return "nothing (null)"
    text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(
    kind: str,
    message: str,
    loc: tuple[int | str, ...],
    model: type[BaseModel],
    value: Any = None,
    context: dict[str, Any] | None = None,
) -> str:
    if kind == "extra_forbidden":
        parent = _field_for(model, loc[:-1])
        aws_only = ""
        if model is DigitalOceanStack and _is_aws_key(loc):
            why = _AWS_ONLY_WHY.get(str(loc[0])) if len(loc) == 1 else None
            aws_only = f"AWS-only key, not available with cloud: digitalocean{f' — {why}' if why else ''}; "
        if parent is not None:
            allowed = _allowed_keys(parent)
            hint = "" if aws_only else did_you_mean(str(loc[-1]), allowed)
            return f"{aws_only or 'unknown key; '}allowed here: {', '.join(allowed)}{hint}"
        return aws_only.rstrip("; ") or "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tags = (context or {}).get("expected_tags", "'aws', 'digitalocean'")
        return f"{_shown(value)} is not a supported cloud; allowed: {tags.replace(chr(39), '')}"
    if kind in _PLAIN:
        return f"{_PLAIN[kind]}, got {_shown(value)}"
    if kind == "string_pattern_mismatch":
        pattern = (context or {}).get("pattern", "")
        return f"{_shown(value)} has the wrong form (allowed: text matching {pattern})"
    if kind.startswith(("greater_than", "less_than", "too_short", "too_long", "literal_error", "enum")):
        said = message.replace("Input should be", "must be").replace("Value should be", "must be")
        said = said.replace(" should ", " must ")
        for noun in ("String ", "List ", "Dictionary "):
            said = said.removeprefix(noun)
        return f"{said}, got {_shown(value)}"
    return message.removeprefix("Value error, ")

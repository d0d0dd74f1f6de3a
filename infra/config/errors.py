"""Error reporting: `ConfigError` and how a pydantic error becomes `<file>: <key path>: <message>`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulumi import RunError
from pydantic import (
    BaseModel,
)

from infra.config.aws import AwsStack
from infra.config.digitalocean import DigitalOceanStack
from infra.config.validators import PROJECT


class ConfigError(RunError):
    """An invalid stack configuration. `problems` holds one line per problem, already formatted.

    A `pulumi.RunError`, so the CLI prints the message without a Python traceback.
    """

    def __init__(self, problems: list[str]):
        self.problems = problems
        self.registered: list[str] = []  # URNs registered before the error (the harness fills it in)
        super().__init__("invalid stack configuration:\n  " + "\n  ".join(problems))


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


def _describe(kind: str, message: str, loc: tuple[int | str, ...], model: type[BaseModel]) -> str:
    if kind == "extra_forbidden":
        parent = _field_for(model, loc[:-1])
        aws_only = ""
        if model is DigitalOceanStack and _is_aws_key(loc):
            why = _AWS_ONLY_WHY.get(str(loc[0])) if len(loc) == 1 else None
            aws_only = f"AWS-only key, not available with cloud: digitalocean{f' — {why}' if why else ''}; "
        if parent is not None:
            allowed = sorted(
                (f.alias or n) for n, f in parent.model_fields.items() if n not in {"secrets", "cloud", "region"}
            )
            return f"{aws_only or 'unknown key; '}allowed here: {', '.join(allowed)}"
        return aws_only.rstrip("; ") or "unknown key"
    if kind == "missing":
        return "required key is missing"
    return message.removeprefix("Value error, ")

"""`python -m infra.config --schema`: the JSON Schema of a stack file (make schema)."""

from __future__ import annotations

import json
import sys
from typing import Any

from infra.config.aws import AwsStack
from infra.config.common import SECRET_KEYS
from infra.config.digitalocean import DigitalOceanStack
from infra.config.validators import PROJECT


def json_schema() -> dict[str, Any]:
    """JSON Schema of a stack file's `config:` block (keys fully qualified, as written in the file)."""
    aws = AwsStack.model_json_schema(by_alias=True, mode="validation")
    do = DigitalOceanStack.model_json_schema(by_alias=True, mode="validation")
    defs = {**aws.pop("$defs", {}), **do.pop("$defs", {})}
    properties: dict[str, Any] = {"aws:region": aws["properties"]["region"]}
    for schema in (aws, do):
        for name, prop in schema["properties"].items():
            if name in {"secrets", "region"}:
                continue
            key = f"{PROJECT}:{name}"
            if key in properties and properties[key] != prop:
                # Same key, different section per cloud (e.g. database): a stack file matches one of them.
                properties[key] = {"anyOf": [properties[key], prop]}
            else:
                properties.setdefault(key, prop)
    properties[f"{PROJECT}:region"] = do["properties"]["region"]
    properties[f"{PROJECT}:cloud"] = {"enum": ["aws", "digitalocean"], "default": "aws"}
    for key, description in SECRET_KEYS.items():
        properties[f"{PROJECT}:{key}"] = {
            "description": f"{description}. Secret: set with `pulumi config set --secret {PROJECT}:{key}`.",
            "type": "object",
            "properties": {"secure": {"type": "string"}},
            "required": ["secure"],
            "additionalProperties": False,
        }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Pulumi.<stack>.yaml for the shipyard project",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "properties": properties,
                "required": [f"{PROJECT}:tier", f"{PROJECT}:owner"],
                "patternProperties": {r"^(?!shipyard:)[a-z0-9-]+:": {}},
                "additionalProperties": False,
            },
            "secretsprovider": {"type": "string"},
            "encryptedkey": {"type": "string"},
            "encryptionsalt": {"type": "string"},
        },
        "$defs": defs,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["--schema"]:
        print("usage: python -m infra.config --schema", file=sys.stderr)
        return 2
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0

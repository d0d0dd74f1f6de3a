"""The Pulumi program: validate the stack config, then build the chosen cloud's components."""

from __future__ import annotations

from typing import Any

import pulumi

from infra.config import PROJECT, AwsStack, load_stack_config
from infra.naming import Naming


def main() -> None:
    # Config first: an invalid stack file must stop the program before any resource (even a provider) exists.
    config = load_stack_config()
    outputs: dict[str, Any]
    if isinstance(config, AwsStack):
        from infra.aws.stack import build_aws_stack

        # The region is part of account-wide names (IAM roles, CloudFront): see infra/naming.py.
        outputs = build_aws_stack(config, Naming(PROJECT, pulumi.get_stack(), config.region))
    else:
        from infra.digitalocean.stack import build_digitalocean_stack

        outputs = build_digitalocean_stack(config, Naming(PROJECT, pulumi.get_stack()))
    for key in sorted(outputs):
        pulumi.export(key, outputs[key])

"""The one image every App Platform component runs, in DigitalOcean Container Registry.

Built in two steps so the API image stays exactly what `app/Dockerfile` makes (its owner's build, untouched):
1. `app/Dockerfile` with context `app/` -> a local base image (not pushed);
2. `infra/digitalocean/Dockerfile` with the repository root as context -> that base plus `lambdas/`, pushed.
The API service, the PRE_DEPLOY migration job and the auto-confirm worker all run the pushed image (different
commands), so the worker runs the very same auto-confirm core as the AWS Lambda — one code base, two targets —
and the free "starter" registry tier (one repository) is enough.

Components deploy by digest, not tag: a rebuilt image changes the app spec, which is what makes App Platform
roll out the new code.

Step 2 only rebuilds when one of its inputs changes, and its context holds only `lambdas/`: with a fixed base tag
(`...:local`, as it once was) a change under `app/` changed nothing step 2 sees, so App Platform kept the old API.
The base tag is therefore the hash of `app/` (the same `context_hash` the AWS image tag uses): any change there
changes the `BASE_IMAGE` build argument, step 2 rebuilds, the digest changes and App Platform rolls out.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_digitalocean as digitalocean
import pulumi_docker as docker

from infra.aws.service import context_hash
from infra.component import Component
from infra.config import DoRegistryConfig
from infra.naming import Naming

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
APP_PLATFORM_PLATFORM = "linux/amd64"
"""App Platform runs amd64; building for it explicitly keeps an arm64 laptop from pushing an image that cannot start."""

REPOSITORY = "shipyard"
"""One repository for every stack on the account (tags per stack), so the starter tier suffices."""


def base_image_name(prefix: str, app_dir: Path) -> str:
    """Local tag of the step-1 image: changes whenever anything under `app/` changes (see the module doc)."""
    return f"{prefix}-api-base:{context_hash(app_dir)[:16]}"


@dataclass(frozen=True)
class ImageArgs:
    registry: DoRegistryConfig
    """Registry settings (create it here, or use the account's existing one by name)."""
    registry_region: str | None
    """Where a created registry lives (None only when `registry.create` is false)."""
    tag: str
    """Image tag: the stack name, so staging and prod never overwrite each other's tag."""
    app_dir: Path = PROJECT_ROOT / "app"
    """Build context of the API image (app/Dockerfile)."""


def parse_docker_credentials(docker_config: str, server: str) -> tuple[str, str]:
    """(username, password) for `server` from a Docker config JSON (`{"auths": {server: {"auth": b64}}}`)."""
    auths = json.loads(docker_config).get("auths", {})
    if server not in auths:
        raise ValueError(f"the registry credentials have no entry for {server}; found {sorted(auths)}")
    username, _, password = base64.b64decode(auths[server]["auth"]).decode().partition(":")
    return username, password


class AppImage(Component):
    def __init__(self, name: str, args: ImageArgs, naming: Naming, opts: pulumi.ResourceOptions | None = None):
        super().__init__("digitalocean", "AppImage", name, naming, opts)
        settings = args.registry
        if settings.create:
            registry = digitalocean.ContainerRegistry(
                self.child_name("registry"),
                name=settings.name,
                subscription_tier_slug=settings.subscription_tier,
                region=args.registry_region,
                opts=self.opts(),
            )
            registry_name: pulumi.Output[str] = registry.name
            endpoint: pulumi.Output[str] = registry.endpoint
            server: pulumi.Output[str] = registry.server_url
        else:
            existing = digitalocean.get_container_registry_output(name=settings.name, opts=self.invoke_opts())
            registry_name = existing.name
            endpoint = existing.endpoint
            server = existing.server_url

        credentials = digitalocean.ContainerRegistryDockerCredentials(
            self.child_name("push-credentials"),
            registry_name=registry_name,
            write=True,
            opts=self.opts(),
        )
        login: pulumi.Output[tuple[str, str]] = pulumi.Output.all(credentials.docker_credentials, server).apply(
            lambda values: parse_docker_credentials(values[0], values[1])
        )
        push_password: pulumi.Output[str] = pulumi.Output.secret(login.apply(lambda pair: pair[1]))

        base = docker.Image(
            self.child_name("base"),
            image_name=base_image_name(naming.prefix, args.app_dir),
            build=docker.DockerBuildArgs(
                context=str(args.app_dir),
                dockerfile=str(args.app_dir / "Dockerfile"),
                platform=APP_PLATFORM_PLATFORM,
            ),
            skip_push=True,
            opts=self.opts(),
        )
        self.image = docker.Image(
            self.child_name("image"),
            image_name=pulumi.Output.concat(endpoint, f"/{REPOSITORY}:{args.tag}"),
            build=docker.DockerBuildArgs(
                context=str(PROJECT_ROOT),
                dockerfile=str(Path(__file__).resolve().parent / "Dockerfile"),
                platform=APP_PLATFORM_PLATFORM,
                args={"BASE_IMAGE": base.image_name},
            ),
            registry=docker.RegistryArgs(
                server=server,
                username=login.apply(lambda pair: pair[0]),
                password=push_password,
            ),
            opts=self.opts(),
        )
        self.repository = REPOSITORY
        self.registry_endpoint = endpoint
        self.digest: pulumi.Output[str] = self.image.repo_digest.apply(lambda ref: ref.rsplit("@", 1)[1])
        """`sha256:...` of the pushed image, what the app spec pins."""
        self.register_outputs({"imageName": self.image.image_name, "digest": self.digest})

    def invoke_opts(self) -> pulumi.InvokeOptions:
        return pulumi.InvokeOptions(parent=self)

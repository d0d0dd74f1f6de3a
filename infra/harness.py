"""Run the real Pulumi program for a stack file in-process, the way the CLI runs it, against the offline cloud.

Used by the tests and by `python -m infra.plan`. What it does, step by step, mirrors the CLI's Python host:
1. read `Pulumi.yaml` (project name, `main`) and `Pulumi.<stack>.yaml` (config) — secure values cannot be
   decrypted offline, so they (and, when asked, missing secrets) become clearly marked placeholders;
2. hand the config to the runtime as the engine does (fully qualified keys, string values, secret keys);
3. chdir into `main`, take the project root and the program's modules out of `sys.path`/`sys.modules`,
   and `runpy.run_path(".", run_name="__main__")` inside `run_in_stack` on a fresh event loop — so an import
   that would fail under the CLI fails here too;
4. record every registration (type, name, parent, inputs, protect, provider, dependencies...) and the stack
   outputs, then put the interpreter back as it was, so several stacks run in one process without leaking.

A program that raises, logs an error, or leaves a stack output unresolved makes `run_stack` raise.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import runpy
import site
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc, settings
from pulumi.runtime.config import set_all_config
from pulumi.runtime.stack import run_in_stack

from infra.config import PROJECT, ConfigError, required_secret_keys
from infra.mock_cloud import CloudMocks

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_PREFIX = "PLACEHOLDER-NOT-A-SECRET"
UNKNOWN = rpc.UNKNOWN
SECRET_MASK = "[secret]"  # noqa: S105  # the mask shown instead of a secret, not one

SecretPath = tuple[str | int, ...]
"""Where a secret sits inside a resource's inputs: keys and list indexes, e.g. ("spec", "services", 0, "envs", 2,
"value")."""


class HarnessError(Exception):
    """The program could not be evaluated (it raised, logged an error, or left outputs unresolved)."""


@dataclass(frozen=True)
class Resource:
    urn: str
    type: str
    name: str
    parent: str | None
    custom: bool
    inputs: dict[str, Any]
    """Engine camelCase names, secrets unwrapped (see `secret_inputs` for which were secret)."""
    secret_inputs: frozenset[str]
    outputs: dict[str, Any]
    protect: bool
    provider: str | None
    depends_on: tuple[str, ...]
    ignore_changes: tuple[str, ...]
    retain_on_delete: bool
    delete_before_replace: bool
    id: str = ""
    """The id the cloud gave a custom resource (what `.id` resolves to, and what other resources reference)."""
    secret_paths: frozenset[SecretPath] = frozenset()
    """Each secret value's exact place in `inputs`. The engine marks secretness per value; the SDK's
    deserializer pushes it up to the whole top-level property, so these come from the wire struct."""

    def redacted_inputs(self) -> dict[str, Any]:
        """The inputs with only the secret values replaced by `[secret]`, each at its own path (an App spec
        with one secret env value shows everything else). A path that does not resolve masks its whole
        top-level property: never show more than is known to be plain."""
        located = {path[0] for path in self.secret_paths}
        paths = set(self.secret_paths) | {(key,) for key in self.secret_inputs if key not in located}
        redacted: dict[str, Any] = dict(self.inputs)
        for path in sorted(paths, key=len):
            if path[0] in redacted and not _mask_at(redacted, path):
                redacted[path[0]] = SECRET_MASK
        return redacted


def _mask_at(container: Any, path: SecretPath) -> bool:
    """Replace the value at `path` by the mask, copying each container on the way (inputs stay untouched)."""
    head, rest = path[0], path[1:]
    in_dict = isinstance(container, dict) and isinstance(head, str) and head in container
    in_list = isinstance(container, list) and isinstance(head, int) and 0 <= head < len(container)
    if not (in_dict or in_list):
        return False
    if not rest:
        container[head] = SECRET_MASK
        return True
    child = container[head]
    if child == SECRET_MASK:
        return True  # already masked by a shorter path
    copied = dict(child) if isinstance(child, dict) else list(child) if isinstance(child, list) else None
    if copied is None or not _mask_at(copied, rest):
        return False
    container[head] = copied
    return True


def secret_paths(value: Any, path: SecretPath = ()) -> list[SecretPath]:
    """Paths of the secret-wrapped values in a serialized property struct (what the monitor receives)."""
    if isinstance(value, struct_pb2.Struct):
        if rpc._special_sig_key in value.fields:
            is_secret = value.fields[rpc._special_sig_key].string_value == rpc._special_secret_sig
            return [path] if is_secret else []  # assets, archives and resource references hold no secrets
        return [found for key, item in value.items() for found in secret_paths(item, (*path, key))]
    if isinstance(value, struct_pb2.ListValue):
        return [found for index, item in enumerate(value) for found in secret_paths(item, (*path, index))]
    return []


@dataclass
class StackRun:
    project: str
    stack: str
    config_file: str
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: frozenset[str]
    placeholders: list[str] = field(default_factory=list)
    """Secret keys given placeholder values (the plan says so; a real `pulumi up` needs the real ones)."""
    config: dict[str, str] = field(default_factory=dict)
    """The engine config the program ran with, secret keys left out (policy levels and cost goals read it)."""
    warnings: list[str] = field(default_factory=list)
    """What the program logged with `pulumi.log.warn`, in order; the CLI would print these under Diagnostics."""

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Resource:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = sorted(r.name for r in self.of_type(type_))
            raise LookupError(f"expected one {type_}{' named ' + name if name else ''}, found {names}")
        return found[0]

    def named(self, name: str) -> Resource:
        found = [r for r in self.resources if r.name == name]
        if len(found) != 1:
            raise LookupError(f"expected one resource named {name!r}, found {len(found)}")
        return found[0]

    def by_urn(self, urn: str) -> Resource:
        for resource in self.resources:
            if resource.urn == urn:
                return resource
        raise LookupError(urn)

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def descendants(self, parent: Resource) -> list[Resource]:
        found: list[Resource] = []
        queue = [parent.urn]
        while queue:
            urn = queue.pop()
            for resource in self.resources:
                if resource.parent == urn:
                    found.append(resource)
                    queue.append(resource.urn)
        return sorted(found, key=lambda r: r.urn)

    def component_of(self, resource: Resource) -> Resource | None:
        """The nearest enclosing `shipyard:*` component."""
        current = resource
        while current.parent is not None:
            try:
                current = self.by_urn(current.parent)
            except LookupError:
                return None
            if current.type.startswith(f"{PROJECT}:"):
                return current
        return None


# ---------------------------------------------------------------------------------------------------------
# Stack files
# ---------------------------------------------------------------------------------------------------------


def read_project(root: Path = PROJECT_ROOT) -> dict[str, Any]:
    with (root / "Pulumi.yaml").open() as handle:
        project: dict[str, Any] = yaml.safe_load(handle)
    return project


def stack_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def _engine_value(value: Any) -> str:
    """What the engine hands a Python program: strings, with objects, lists and booleans as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def engine_config(
    path: Path, project: str, *, placeholders_for_missing_secrets: bool
) -> tuple[dict[str, str], list[str], list[str]]:
    """(config, secret keys, keys given placeholders) as the engine would pass them for this stack file."""
    try:
        with path.open() as handle:
            document = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError([f"{path.name}: no such stack file"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path.name}: not valid YAML: {exc}"]) from None
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise ConfigError([f"{path.name}: config: must be a mapping of keys to values"])
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    placeholders: list[str] = []
    for key, value in raw.items():
        # The CLI puts keys without a namespace into the project's.
        full_key = key if ":" in key else f"{project}:{key}"
        if isinstance(value, dict) and set(value) == {"secure"}:
            # Ciphertext only the stack's secrets provider can open: offline, stand in a marked placeholder.
            config[full_key] = f"{PLACEHOLDER_PREFIX}:{full_key}"
            secret_keys.append(full_key)
            placeholders.append(full_key)
        elif isinstance(value, dict) and set(value) == {"value"}:
            config[full_key] = _engine_value(value["value"])
        else:
            config[full_key] = _engine_value(value)
    if placeholders_for_missing_secrets:
        for full_key in required_secret_keys(config):
            if full_key not in config:
                config[full_key] = f"{PLACEHOLDER_PREFIX}:{full_key}"
                secret_keys.append(full_key)
                placeholders.append(full_key)
    return config, sorted(secret_keys), sorted(placeholders)


# ---------------------------------------------------------------------------------------------------------
# Recording monitor
# ---------------------------------------------------------------------------------------------------------


def _unwrap(value: Any) -> tuple[Any, bool]:
    """Strip secret wrappers anywhere in a value; report whether any was found."""
    if rpc.is_rpc_secret(value):
        inner, _ = _unwrap(rpc.unwrap_rpc_secret(value))
        return inner, True
    if isinstance(value, dict):
        found = False
        result = {}
        for key, item in value.items():
            result[key], secret = _unwrap(item)
            found = found or secret
        return result, found
    if isinstance(value, list):
        items = [_unwrap(item) for item in value]
        return [item for item, _ in items], any(secret for _, secret in items)
    return value, False


def _mark_additional_secret_outputs(state: struct_pb2.Struct, names: Any) -> None:
    """Wrap the outputs a resource declares secret (`additional_secret_outputs`; providers set it for e.g. the
    DigitalOcean registry's `dockerCredentials`) as the engine does; the SDK's MockMonitor ignores the option,
    and values derived from them would otherwise reach the plan as plain text."""
    for name in names:
        if name in state.fields and secret_paths(state[name]) != [()]:
            wrapped = struct_pb2.Struct()
            wrapped.update({rpc._special_sig_key: rpc._special_secret_sig})
            wrapped.fields["value"].CopyFrom(state.fields[name])
            state.fields[name].struct_value.CopyFrom(wrapped)


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, also keeping what MockResourceArgs leaves out (parent, options, outputs)."""

    def __init__(self, mocks: CloudMocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Resource] = []
        self.stack_outputs: dict[str, Any] | None = None
        self.stack_secret_outputs: frozenset[str] = frozenset()
        self.stack_urn: str | None = None

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            self.stack_urn = response.urn
            return response
        _mark_additional_secret_outputs(response.object, request.additionalSecretOutputs)
        inputs: dict[str, Any] = {}
        secret_inputs = set()
        for key, value in rpc.deserialize_properties(request.object).items():
            inputs[key], secret = _unwrap(value)
            if secret:
                secret_inputs.add(key)
        paths = frozenset(p for p in secret_paths(request.object) if p and p[0] in secret_inputs)
        state, _ = _unwrap(self.resources[response.urn].state)
        self.registrations.append(
            Resource(
                urn=response.urn,
                type=request.type,
                name=request.name,
                parent=request.parent or None,
                custom=bool(request.custom),
                inputs=inputs,
                secret_inputs=frozenset(secret_inputs),
                outputs=state,
                protect=bool(request.protect),
                provider=request.provider or None,
                depends_on=tuple(sorted(request.dependencies)),
                ignore_changes=tuple(request.ignoreChanges),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                id=str(response.id or ""),
                secret_paths=paths,
            )
        )
        return response

    def RegisterResourceOutputs(self, request: Any) -> Any:
        if request.urn == self.stack_urn or request.urn.split("::")[-2] == "pulumi:pulumi:Stack":
            outputs: dict[str, Any] = {}
            secret_outputs = set()
            # deserialize_properties drops null values; an exported None is an unresolved output, keep it.
            for key, value in request.outputs.fields.items():
                if value.WhichOneof("kind") == "null_value":
                    outputs[key] = None
            for key, value in rpc.deserialize_properties(request.outputs).items():
                outputs[key], secret = _unwrap(value)
                if secret:
                    secret_outputs.add(key)
            self.stack_outputs = outputs
            self.stack_secret_outputs = frozenset(secret_outputs)
        return super().RegisterResourceOutputs(request)


class _LogCollector(logging.Handler):
    """What the program said through `pulumi.log`: errors fail the run, warnings go into the plan."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []
        self.warnings: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        target = self.errors if record.levelno >= logging.ERROR else self.warnings
        message = record.getMessage()
        if message not in target:  # a component built once per stack can still warn from several places
            target.append(message)


# ---------------------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _cli_like_interpreter(root: Path, program_dir: Path) -> Iterator[None]:
    """cwd = program dir, project root off sys.path, project modules unloaded; all restored afterwards."""
    saved_cwd = Path.cwd()
    saved_path = list(sys.path)

    # The project's virtualenv usually lives inside the project root (.venv): its packages are not the
    # program's modules, and unloading them (grpc, protobuf: C extensions) and importing them again crashes.
    environments = {Path(p).resolve() for p in (sys.prefix, sys.exec_prefix, *site.getsitepackages())}

    # Names the program imports from its own root. A module of the same name loaded from elsewhere (this
    # checkout, when `root` is a copy of the project) would otherwise be reused instead of the program's own.
    own_names = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}
    own_names |= {p.stem for p in root.glob("*.py")}

    @functools.cache
    def directory_kind(directory: str) -> str:
        """ "env", "root" or "other" for a module's directory (resolved once per directory: a cold plan loads
        ~2,000 modules from a few hundred directories, and resolving each file cost ~0.2 s)."""
        path = Path(directory).resolve()
        if any(path.is_relative_to(env) for env in environments):
            return "env"
        return "root" if path.is_relative_to(root) else "other"

    def is_project_module(name: str) -> bool:
        module_file = getattr(sys.modules.get(name), "__file__", None)
        if name == "__main__" or module_file is None:
            return False
        kind = directory_kind(os.path.dirname(module_file))
        return kind == "root" or (kind == "other" and name.split(".")[0] in own_names)

    saved_modules = {name: module for name, module in sys.modules.items() if is_project_module(name)}
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != root]
    for name in saved_modules:
        del sys.modules[name]
    sys.path_importer_cache.pop(".", None)
    os.chdir(program_dir)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if is_project_module(n)]:
            del sys.modules[name]
        sys.modules.update(saved_modules)
        sys.path_importer_cache.pop(".", None)


def run_stack(
    stack: str,
    *,
    config_file: Path | None = None,
    config_overrides: Mapping[str, Any] | None = None,
    placeholders_for_missing_secrets: bool = False,
    secret_overrides: Mapping[str, str] | None = None,
    root: Path = PROJECT_ROOT,
) -> StackRun:
    """Evaluate the program for `stack` (config from `config_file`, default `Pulumi.<stack>.yaml`).

    `config_overrides` replaces whole keys (fully qualified, e.g. `{"shipyard:database": {...}}`; None
    removes a key); `secret_overrides` sets secret keys (as `pulumi config set --secret` would). Raises
    `ConfigError` for an invalid config (from the program itself) and `HarnessError` for anything else.
    """
    project_doc = read_project(root)
    project = str(project_doc["name"])
    path = config_file or stack_file(stack, root)
    config, secret_keys, placeholders = engine_config(
        path, project, placeholders_for_missing_secrets=placeholders_for_missing_secrets
    )
    for key, value in (config_overrides or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = _engine_value(value)
    for key, value in (secret_overrides or {}).items():
        config[key] = value
        secret_keys.append(key)
        if key in placeholders:
            placeholders.remove(key)
    region = config.get("aws:region", "us-east-1")
    monitor = RecordingMonitor(CloudMocks(region=region))
    said = _LogCollector()
    logger = logging.getLogger(f"pulumi.offline.{stack}")
    logger.propagate = False
    logger.addHandler(said)

    program_dir = (root / str(project_doc.get("main", "."))).resolve()
    previous_loop = None
    with contextlib.suppress(RuntimeError):
        previous_loop = asyncio.get_event_loop_policy().get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        _forget_pending_outputs()
        settings.ROOT.set(None)
        pulumi_mocks.set_mocks(
            monitor.mocks, project=project, stack=stack, preview=False, monitor=monitor, logger=logger
        )
        settings.ROOT.set(None)  # run_in_stack creates the one Stack resource, as under the CLI
        set_all_config(config, sorted(set(secret_keys)))
        exported: set[str] = set()

        def run_program() -> None:
            runpy.run_path(".", run_name="__main__")
            # The root Stack lives in the run's context; the SDK drops exports that resolve to None before
            # registering them, so keep the exported names to spot those afterwards.
            exported.update(getattr(settings.get_root_resource(), "outputs", {}) or {})

        with _cli_like_interpreter(root.resolve(), program_dir):
            try:
                loop.run_until_complete(run_in_stack(run_program))
            except Exception as exc:
                if type(exc).__name__ == "ConfigError" and hasattr(exc, "problems"):
                    # The program's own ConfigError class (it was imported afresh, CLI-style); re-raise ours,
                    # with what got registered before the error (tests require: nothing).
                    error = ConfigError(list(exc.problems))
                    error.registered = [r.urn for r in monitor.registrations]
                    raise error from exc
                raise HarnessError(f"the program for stack {stack!r} failed: {exc}") from exc
    finally:
        _forget_pending_outputs()
        set_all_config({}, [])
        settings.ROOT.set(None)
        loop.close()
        asyncio.set_event_loop(previous_loop)
        logger.removeHandler(said)

    if said.errors:
        raise HarnessError(f"the program for stack {stack!r} logged errors: " + "; ".join(said.errors))
    if monitor.stack_outputs is None:
        raise HarnessError(f"the program for stack {stack!r} never registered its outputs")
    # The SDK leaves out exports that resolved to None, so compare with what the program exported.
    unresolved = sorted(
        {k for k, v in monitor.stack_outputs.items() if _has_unknown(v)} | (exported - set(monitor.stack_outputs))
    )
    if unresolved:
        raise HarnessError(f"stack {stack!r} left outputs unresolved: {', '.join(unresolved)}")
    return StackRun(
        project=project,
        stack=stack,
        config_file=path.name,
        resources=sorted(monitor.registrations, key=lambda r: r.urn),
        outputs=monitor.stack_outputs,
        secret_outputs=monitor.stack_secret_outputs,
        placeholders=placeholders,
        config={k: v for k, v in sorted(config.items()) if k not in set(secret_keys)},
        warnings=said.warnings,
    )


def _forget_pending_outputs() -> None:
    """The SDK keeps in-flight output tasks in a process-wide set; after a failed run they belong to a
    closed event loop and would poison the next run ("Event loop is closed")."""
    with settings.SETTINGS.lock:
        settings.SETTINGS.outputs.clear()


def _has_unknown(value: Any) -> bool:
    if value is None or value == UNKNOWN:
        return True
    if isinstance(value, dict):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_unknown(v) for v in value)
    return False

"""Container modules (OneEntry custom modules): a Docker image plus the env it needs.

Published as a JSON body to ``POST /v1/modules`` (no archive), or as a native ``modyard.yaml`` with
``kind: container``. Registry credentials belong to the deployer, never to the registry.

``image``
    ``host/user/repo[:tag][@sha256:<64 hex>]``, the distribution grammar the deployer also takes. A
    tag becomes ``container.default_tag``; a digest pins the content (``container.digest``), and
    with a digest and no tag there is no default tag.
``env``
    A list of variables (``{"name", "description", "required", "secret", "default"}``), or, as the
    deployer and OneEntry's module form take it, a mapping of names to default values (a value may
    also be an object of those fields). Values given as numbers or booleans are kept as text, as the
    process sees them.
Secrets
    A variable is secret when it says so (``"secret": true``) or, when it says nothing, when its name
    says so (``*_TOKEN``, ``*PASSWORD*``, ``*SECRET*``, ``*_KEY`` …). A secret's default is never
    published: the manifest keeps only that the variable exists (an operator sets it per deployment).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import ValidationError

from modyard.common.json_pointer import json_pointer
from modyard.modules.formats.base import IssueCollector, ModuleFiles
from modyard.modules.manifest import ContainerSpec, Manifest, ModuleFormat, ModuleKind

# The reference grammar of the distribution project, without digests: [host[:port]/]path[:tag].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# A first part is a registry host only if it has a dot or a port, or is localhost (as in docker).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:(?:localhost|{_LABEL}(?:\.{_LABEL})+)(?::[0-9]+)?/|{_LABEL}:[0-9]+/)?"
IMAGE_REFERENCE = re.compile(
    rf"^(?P<name>{_HOST}{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>[\w][\w.-]{{0,127}}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$"
)
# What the deployer pins (docker accepts these two algorithms).
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$|^sha512:[a-f0-9]{128}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_NAME = re.compile(
    r"(^|_)pass(wd)?($|_)|password|secret|token|api_?key|private_?key|credential|(^|_)key$",
    re.IGNORECASE,
)
_ENV_FIELDS = {"name", "description", "required", "secret", "default"}

_MANIFEST_KEYS = {
    "name",
    "version",
    "label",
    "description",
    "icon",
    "changelog",
    "dependencies",
    "requires",
    "config",
    "events",
    "extra",
}
_CONTAINER_KEYS = {"image", "default_tag", "env", "ports"}


def split_image(reference: str) -> tuple[str, str | None]:
    """``registry.gitlab.com/org/repo:prod-v1.0.10`` → (``registry.gitlab.com/org/repo``, ``prod-v1.0.10``)."""
    name, tag, _ = parse_image(reference)
    return name, tag


def parse_image(reference: str) -> tuple[str, str | None, str | None]:
    """(repository, tag, digest) of ``host/user/repo[:tag][@sha256:…]``; :class:`ValueError`
    saying what to change otherwise."""
    match = IMAGE_REFERENCE.match(reference)
    if match is None:
        raise ValueError(
            f"{reference!r} is not an image reference; use host/user/repo:tag (or "
            "host/user/repo@sha256:<64 hex digits> to pin the content), "
            "e.g. registry.gitlab.com/oneentry/my-module:1.0.0"
        )
    digest = match["digest"]
    if digest is not None and not DIGEST.match(digest):
        raise ValueError(
            f"the digest {digest!r} is not a content digest; write it as sha256:<64 lower-case "
            "hex digits> (or sha512:<128>), as `docker inspect` prints it"
        )
    return match["name"], match["tag"], digest


def is_secret_name(name: str) -> bool:
    """Whether a variable's name says it holds a secret (``GITLAB_TOKEN``, ``DB_PASSWORD`` …)."""
    return bool(_SECRET_NAME.search(name))


def env_variables(env: Any, *, file: str, issues: IssueCollector) -> list[dict[str, Any]]:
    """The ``env`` of a container document (list or mapping) as ``EnvVar`` fields, secrets'
    defaults dropped; problems are added to ``issues`` with their pointers."""
    if isinstance(env, dict):
        entries = [
            (json_pointer("env", name), {"name": name, **_mapped(value)}, value)
            for name, value in env.items()
        ]
    elif isinstance(env, list):
        entries = [(json_pointer("env", index), item, item) for index, item in enumerate(env)]
    else:
        issues.add(
            file,
            "/env",
            'must be a list of variables ({"name": …}) or a mapping of names to default values',
        )
        return []
    variables: list[dict[str, Any]] = []
    seen: set[str] = set()
    for at, entry, written in entries:
        variable = _variable(entry, written, at, file, issues)
        if variable is None:
            continue
        if variable["name"] in seen:
            issues.add(file, at + ("/name" if isinstance(env, list) else ""), "is declared twice")
            continue
        seen.add(variable["name"])
        variables.append(variable)
    return variables


def _mapped(value: Any) -> dict[str, Any]:
    """A mapping entry's value: its default, or an object of the variable's fields."""
    if isinstance(value, dict):
        return {key: item for key, item in value.items() if key != "name"}
    return {"default": value}


def _variable(
    entry: Any, written: Any, at: str, file: str, issues: IssueCollector
) -> dict[str, Any] | None:
    if not isinstance(entry, dict):
        issues.add(file, at, "must be an object with a 'name' (and description, secret, default)")
        return None
    ok = True
    for key in sorted(set(entry) - _ENV_FIELDS):
        issues.add(
            file,
            f"{at}/{key}",
            f"is not a field of a variable ({', '.join(sorted(_ENV_FIELDS))})",
        )
        ok = False
    name = entry.get("name")
    if not isinstance(name, str) or not ENV_NAME.match(name):
        # In the mapping form the name is the key: the pointer names the entry itself.
        where = f"{at}/name" if isinstance(written, dict) and "name" in written else at
        issues.add(
            file,
            where,
            f"{name!r} is not a variable name; use letters, digits and '_', not starting with a "
            "digit (e.g. API_URL)",
        )
        ok = False
    for flag in ("required", "secret"):
        if flag in entry and not isinstance(entry[flag], bool):
            issues.add(file, f"{at}/{flag}", "must be true or false")
            ok = False
    default = entry.get("default")
    pointer = f"{at}/default" if isinstance(written, dict) else at
    if isinstance(default, dict | list):
        issues.add(file, pointer, "must be text (or a number or true/false), the variable's value")
        ok = False
    description = entry.get("description")
    if description is not None and not isinstance(description, str):
        issues.add(file, f"{at}/description", "must be text")
        ok = False
    if not ok or not isinstance(name, str):
        return None
    secret = entry["secret"] if "secret" in entry else is_secret_name(name)
    variable: dict[str, Any] = {"name": name, "required": entry.get("required", False)}
    variable["secret"] = secret
    if description:
        variable["description"] = description
    if default is not None and not secret:
        # The process sees text: JSON true is "true", 8080 is "8080".
        variable["default"] = (
            ("true" if default else "false") if isinstance(default, bool) else str(default)
        )
    return variable


def parse_container_document(
    document: dict[str, Any], *, file: str, format: ModuleFormat = ModuleFormat.container
) -> Manifest:
    collector = IssueCollector()
    unknown = set(document) - _MANIFEST_KEYS - _CONTAINER_KEYS - {"kind", "format"}
    for key in sorted(unknown):
        collector.add(file, f"/{key}", "is not a field of a container module")
    container: dict[str, Any] = {key: document[key] for key in _CONTAINER_KEYS if key in document}
    image = container.get("image")
    if not isinstance(image, str):
        collector.add(file, "/image", "is required: the image reference, host/user/repo:tag")
    else:
        try:
            name, tag, digest = parse_image(image)
        except ValueError as exc:
            collector.add(file, "/image", str(exc))
        else:
            container["image"] = name
            if digest is not None:
                container["digest"] = digest
            if "default_tag" not in container:
                if tag:
                    container["default_tag"] = tag
                elif digest is not None:
                    container["default_tag"] = None  # the digest alone says what runs
    if "env" in container:
        container["env"] = env_variables(container["env"], file=file, issues=collector)
    collector.raise_if_any()
    fields = {key: document[key] for key in _MANIFEST_KEYS if key in document}
    try:
        return Manifest.model_validate(
            {
                **fields,
                "format": format,
                "kind": ModuleKind.container,
                "container": ContainerSpec.model_validate(container),
            }
        )
    except ValidationError as exc:
        for item in exc.errors():
            collector.add(file, "".join(f"/{part}" for part in item["loc"]), item["msg"])
        collector.raise_if_any()
        raise


class ContainerAdapter:
    """For archives holding only ``container.json`` (the JSON body, zipped)."""

    format: ClassVar[ModuleFormat] = ModuleFormat.container

    def detect(self, files: ModuleFiles) -> bool:
        return files.find("container.json") is not None

    def parse(self, files: ModuleFiles) -> Manifest:
        path = files.find("container.json")
        assert path is not None
        document = files.json(path)
        if not isinstance(document, dict):
            collector = IssueCollector()
            collector.add(path, "", "must be a JSON object")
            collector.raise_if_any()
        return parse_container_document(document, file=path)

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
    process sees them. A list entry may give its value as ``value`` (Kubernetes' spelling) instead
    of ``default``.
``tag``, ``registry_host``, ``port``
    OneEntry's module form and the deployer name the image's parts so: ``tag`` is the image's tag
    when the reference has none (the same tag as the reference's is fine; a digest takes none),
    ``registry_host`` must repeat the reference's host (``https://`` and a trailing ``/`` are
    tolerated), ``port`` is ``ports: [port]``. ``token_id``/``token`` are refused: registry
    credentials are the deployer's, given when deploying, never stored with the module.
``version``
    SemVer. OneEntry's releases are git tags and its images carry them (``prod-v1.0.10``), so a
    document without one takes the publish request's (``?version=``), else the image tag's
    ``X.Y.Z`` when the tag is ``X.Y.Z``, ``vX.Y.Z`` or ``<word>-vX.Y.Z``.
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
#: Kubernetes' ``{name, value}`` spelling of a variable's default.
_ENV_VALUE_ALIAS = "value"
#: An image tag that carries a release's version: ``1.0.10``, ``v1.0.10``, ``prod-v1.0.10``.
_VERSION_TAG = re.compile(r"^(?:[A-Za-z][A-Za-z0-9_]*-)?v?(?P<version>\d+\.\d+\.\d+)$")
#: Registry credentials, which belong to the deployer (and are refused here, never stored).
_CREDENTIAL_KEYS = {"token", "token_id"}

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
#: The form's and the deployer's names for the image's parts (module docstring).
_FORM_KEYS = {"tag", "registry_host", "port"}


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
    if _ENV_VALUE_ALIAS in entry:
        if "default" in entry:
            issues.add(file, f"{at}/{_ENV_VALUE_ALIAS}", "and default both set it; keep one")
            return None
        value = entry[_ENV_VALUE_ALIAS]
        entry = {k: v for k, v in entry.items() if k != _ENV_VALUE_ALIAS} | {"default": value}
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
    document: dict[str, Any],
    *,
    file: str,
    format: ModuleFormat = ModuleFormat.container,
    version: str | None = None,
) -> Manifest:
    """The manifest of a container document. ``version`` is the publish request's (normalised),
    taken when the document names none (the module's docstring)."""
    collector = IssueCollector()
    known = _MANIFEST_KEYS | _CONTAINER_KEYS | _FORM_KEYS | {"kind", "format"}
    for key in sorted(set(document) - known):
        if key in _CREDENTIAL_KEYS:
            collector.add(
                file,
                f"/{key}",
                "is a registry credential, which the deployer takes when you deploy "
                "(POST /v1/deployments: token_id and token) and the module never carries; "
                "leave it out",
            )
        else:
            collector.add(file, f"/{key}", "is not a field of a container module")
    container: dict[str, Any] = {key: document[key] for key in _CONTAINER_KEYS if key in document}
    image = container.get("image")
    tag: str | None = None
    if not isinstance(image, str):
        collector.add(file, "/image", "is required: the image reference, host/user/repo:tag")
    else:
        try:
            name, tag, digest = parse_image(image)
        except ValueError as exc:
            collector.add(file, "/image", str(exc))
        else:
            container["image"] = name
            tag = _form_tag(document, tag, digest, file, collector)
            _check_registry_host(document, name, file, collector)
            if digest is not None:
                container["digest"] = digest
            if "default_tag" not in container:
                if tag:
                    container["default_tag"] = tag
                elif digest is not None:
                    container["default_tag"] = None  # the digest alone says what runs
    _form_port(document, container, file, collector)
    if "env" in container:
        container["env"] = env_variables(container["env"], file=file, issues=collector)
    fields = {key: document[key] for key in _MANIFEST_KEYS if key in document}
    if "version" not in fields:
        released = _VERSION_TAG.match(tag or "")
        if version is not None:
            fields["version"] = version
        elif released is not None:
            fields["version"] = released["version"]
        else:
            collector.add(
                file,
                "/version",
                'is required: name it here ("version": "1.0.10"), in the publish request '
                "(?version=1.0.10), or tag the image with it (…:prod-v1.0.10 or …:1.0.10)",
            )
    collector.raise_if_any()
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


def _form_tag(
    document: dict[str, Any],
    tag: str | None,
    digest: str | None,
    file: str,
    collector: IssueCollector,
) -> str | None:
    """The image's tag, ``tag`` (the form's field) taken into account."""
    written = document.get("tag")
    if written is None:
        return tag
    if not isinstance(written, str) or not re.fullmatch(r"[\w][\w.-]{0,127}", written):
        collector.add(file, "/tag", "must be an image tag (letters, digits, '_', '.', '-')")
        return tag
    if digest is not None:
        collector.add(file, "/tag", "the image is pinned by digest; leave tag out")
    elif tag is not None and tag != written:
        collector.add(
            file,
            "/tag",
            f"is {written!r} but the image says {tag!r}; write one of them, or the same in both",
        )
    elif document.get("default_tag") not in (None, written):
        collector.add(file, "/tag", "and default_tag differ; keep one")
    return written


def _check_registry_host(
    document: dict[str, Any], repository: str, file: str, collector: IssueCollector
) -> None:
    """``registry_host`` repeats the reference's host (the deployer's rule: the token only goes
    to the registry the image comes from)."""
    written = document.get("registry_host")
    if written is None:
        return
    first, _, rest = repository.partition("/")
    host = first if rest and ("." in first or ":" in first or first == "localhost") else None
    given = str(written).strip()
    for scheme in ("https://", "http://"):
        if given.lower().startswith(scheme):
            given = given[len(scheme) :]
    given = given.rstrip("/")
    if host is None or given.lower() != host.lower():
        collector.add(
            file,
            "/registry_host",
            f"must repeat the image's host ({host or 'the image names none'}); "
            "the deployer sends the registry token only to the registry the image comes from",
        )


def _form_port(
    document: dict[str, Any], container: dict[str, Any], file: str, collector: IssueCollector
) -> None:
    """``port`` (one port, the form's and the deployer's) as ``ports``."""
    port = document.get("port")
    if port is None:
        return
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        collector.add(file, "/port", "must be a port number (1-65535)")
        return
    ports = container.get("ports")
    if ports is None:
        container["ports"] = [port]
    elif isinstance(ports, list) and port not in ports:
        collector.add(file, "/port", f"is {port} but ports lists {ports}; keep one of them")


class ContainerAdapter:
    """For archives holding only ``container.json`` (the JSON body, zipped)."""

    format: ClassVar[ModuleFormat] = ModuleFormat.container

    def detect(self, files: ModuleFiles) -> bool:
        return files.find("container.json") is not None

    def parse(self, files: ModuleFiles, *, version: str | None = None) -> Manifest:
        path = files.find("container.json")
        assert path is not None
        document = files.json(path)
        if not isinstance(document, dict):
            collector = IssueCollector()
            collector.add(path, "", "must be a JSON object")
            collector.raise_if_any()
        return parse_container_document(document, file=path, version=version)

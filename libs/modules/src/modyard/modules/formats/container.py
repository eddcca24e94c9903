"""Container modules (OneEntry custom modules): a Docker image plus the env it needs.

Published as a JSON body to ``POST /v1/modules`` (no archive), or as a native ``modyard.yaml`` with
``kind: container``. The image reference is ``host/user/repo[:tag]``; a tag in it becomes the
default tag. Registry credentials belong to the deployer, never to the registry.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from pydantic import ValidationError

from modyard.modules.formats.base import IssueCollector, ModuleFiles
from modyard.modules.manifest import ContainerSpec, Manifest, ModuleFormat, ModuleKind

# The reference grammar of the distribution project, without digests: [host[:port]/]path[:tag].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# A first part is a registry host only if it has a dot or a port, or is localhost (as in docker).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?:(?:localhost|{_LABEL}(?:\.{_LABEL})+)(?::[0-9]+)?/|{_LABEL}:[0-9]+/)?"
IMAGE_REFERENCE = re.compile(
    rf"^(?P<name>{_HOST}{_COMPONENT}(?:/{_COMPONENT})*)(?::(?P<tag>[\w][\w.-]{{0,127}}))?$"
)

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
    match = IMAGE_REFERENCE.match(reference)
    if match is None:
        raise ValueError(
            f"{reference!r} is not an image reference; use host/user/repo:tag, "
            "e.g. registry.gitlab.com/oneentry/my-module:1.0.0"
        )
    return match["name"], match["tag"]


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
            name, tag = split_image(image)
        except ValueError as exc:
            collector.add(file, "/image", str(exc))
        else:
            container["image"] = name
            if tag and "default_tag" not in container:
                container["default_tag"] = tag
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

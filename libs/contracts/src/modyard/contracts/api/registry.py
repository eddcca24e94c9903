"""The registry's answers (``/v1/modules``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from modyard.contracts.api import ApiModel, Timestamp


class VersionSummary(ApiModel):
    version: str
    digest: str
    size: int
    published_at: Timestamp
    published_by: str
    yanked: bool
    yanked_reason: str | None = None


class PublishedVersion(VersionSummary):
    name: str
    #: The canonical manifest (modyard.modules.manifest.Manifest).
    manifest: dict[str, Any]


class StoredWithout(ApiModel):
    """A secret's default the registry left out of the stored copy of the upload."""

    file: str
    pointer: str


class PublishResult(PublishedVersion):
    #: False when the very same archive had already been published (idempotent retry).
    created: bool
    secret_defaults_removed: list[StoredWithout] = Field(default_factory=list)


class ModuleSummary(ApiModel):
    name: str
    format: str
    kind: str
    latest_version: str | None
    label: str | None
    description: str | None
    updated_at: Timestamp


class ModuleDetail(ModuleSummary):
    #: Newest first; yanked versions are marked.
    versions: list[VersionSummary]

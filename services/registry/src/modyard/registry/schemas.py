"""What the registry's HTTP API returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from modyard.modules.manifest import Dependency, Manifest, ModuleFormat, ModuleKind


class VersionSummary(BaseModel):
    version: str
    digest: str
    size: int
    published_at: datetime
    published_by: str
    yanked: bool
    yanked_reason: str | None = None


class ModuleSummary(BaseModel):
    name: str
    format: ModuleFormat
    kind: ModuleKind
    latest_version: str | None
    label: str | None
    description: str | None
    updated_at: datetime


class ModulePage(BaseModel):
    items: list[ModuleSummary]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next page; null at the end"
    )


class ModuleDetail(ModuleSummary):
    versions: list[VersionSummary] = Field(description="Newest first; yanked versions are marked")


class PublishedVersion(VersionSummary):
    name: str
    manifest: Manifest


class IndexEntry(BaseModel):
    version: str
    yanked: bool
    digest: str
    dependencies: list[Dependency]
    platform: str | None


class ModuleIndex(BaseModel):
    name: str
    versions: list[IndexEntry]


class StoredWithout(BaseModel):
    """A secret's default the registry left out of the stored copy of the upload."""

    file: str = Field(description="The file of the upload ('(body)' for a JSON body)")
    pointer: str = Field(description="JSON pointer (RFC 6901) to the value in that file")


class PublishResult(PublishedVersion):
    #: False when the very same archive had already been published (idempotent retry).
    created: bool
    #: Secrets' defaults found in the upload: stored without them, so nobody can download them.
    secret_defaults_removed: list[StoredWithout] = []


JsonObject = dict[str, Any]

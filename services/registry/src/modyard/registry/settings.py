from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from modyard.common.settings import ENV_FILES, ServiceSettings
from modyard.modules.archive import ArchiveLimits


class RegistrySettings(ServiceSettings):
    """Settings of the registry service: ``MODYARD_REGISTRY_*``, falling back to ``MODYARD_*``."""

    model_config = SettingsConfigDict(
        env_prefix="MODYARD_REGISTRY_", env_file=ENV_FILES, extra="ignore"
    )

    service_name: ClassVar[str] = "registry"
    default_port: ClassVar[int] = 8001

    #: Uploads larger than this are refused while they stream in (Appmixer's limit is 10 MiB).
    max_archive_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_archive_entries: int = Field(default=2_000, ge=1)
    max_expanded_bytes: int = Field(default=100 * 1024 * 1024, ge=1024)
    max_archive_depth: int = Field(default=16, ge=1)
    max_container_manifest_bytes: int = Field(default=256 * 1024, ge=1024)
    default_page_size: int = Field(default=50, ge=1, le=500)

    def archive_limits(self) -> ArchiveLimits:
        return ArchiveLimits(
            max_archive_bytes=self.max_archive_bytes,
            max_entries=self.max_archive_entries,
            max_expanded_bytes=self.max_expanded_bytes,
            max_depth=self.max_archive_depth,
        )

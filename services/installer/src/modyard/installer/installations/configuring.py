"""Changing an installation's configuration with a JSON merge patch (RFC 7396)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from modyard.common.bus.outbox import record_event
from modyard.installer.configuration.secrets import (
    restore_masked,
    secret_paths,
)
from modyard.installer.context import InstallerContext
from modyard.installer.events import (
    INSTALLATION_CONFIGURED,
    installation_event,
)
from modyard.installer.installations.queries import full_config
from modyard.installer.installations.steps import (
    store_config,
    validated_config,
)
from modyard.installer.models import Installation, Workspace
from modyard.modules.manifest import Manifest


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


async def configure(
    session: AsyncSession,
    context: InstallerContext,
    workspace: Workspace,
    installation: Installation,
    patch: Mapping[str, Any],
) -> None:
    manifest = Manifest.model_validate(installation.manifest)
    current = full_config(context, installation)
    wanted = restore_masked(
        merge_patch(current, dict(patch)), current, secret_paths(manifest.config)
    )
    plain, secret_values = validated_config(
        manifest, wanted, pointer="/body/config", context=context
    )
    store_config(context, installation, plain, secret_values)
    await session.flush()
    await record_event(
        session,
        installation_event(
            INSTALLATION_CONFIGURED, context.settings.source, workspace.slug, installation
        ),
    )

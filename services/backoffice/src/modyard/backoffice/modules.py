"""What the Modules screens show, gathered from the registry, the installer and the runtime."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from modyard.contracts.api.installer import AclRuleOut, InstallationOut
from modyard.contracts.api.registry import ModuleSummary
from modyard.contracts.api.runtime import FlowOut
from modyard.sdk.client import ModyardAPIError, ModyardClient

#: Where a manifest may name its documentation (formats carry it in different places).
DOCS_KEYS = ("docs_url", "documentation", "docs", "homepage")


@dataclass(frozen=True)
class ModuleRow:
    module: ModuleSummary
    installed: bool


async def installations(client: ModyardClient, workspace: str) -> list[InstallationOut] | None:
    """The workspace's installations; None when the workspace does not exist."""
    try:
        return await client.installer.installations(workspace)
    except ModyardAPIError as exc:
        if exc.status == 404:
            return None
        raise


async def module_rows(
    client: ModyardClient, workspace: str, query: str | None, status: str
) -> tuple[list[ModuleRow], bool]:
    """Every module matching ``query`` with its Installed badge, filtered by ``status``
    (``all``, ``installed``, ``available``); and whether the workspace exists."""
    installed = await installations(client, workspace)
    names = {item.module for item in installed or []}
    rows = [
        ModuleRow(module, module.name in names)
        async for module in client.registry.search(query or None, limit=200)
    ]
    if status == "installed":
        rows = [row for row in rows if row.installed]
    elif status == "available":
        rows = [row for row in rows if not row.installed]
    return rows, installed is not None


def _resource_pattern(resource: str) -> re.Pattern[str]:
    # Only ``*`` is a wildcard in ACL resources, as in the installer.
    return re.compile(".*".join(re.escape(part) for part in resource.split("*")))


def rules_applying(rules: list[AclRuleOut], module: str, components: list[str]) -> list[AclRuleOut]:
    """The component ACL rules whose resource covers this module or one of its components."""
    resources = [f"{module}.{name}" for name in components] or [f"{module}.*"]
    return [
        rule
        for rule in rules
        if any(_resource_pattern(rule.resource).fullmatch(item) for item in resources)
        or rule.resource == f"{module}.*"
    ]


def flows_using(flows: list[FlowOut], slug: str) -> list[FlowOut]:
    """Flows with a node running a component of the installation ``slug``."""
    prefix = slug + "."
    return [
        flow
        for flow in flows
        if any(
            str(node.get("component", "")).startswith(prefix)
            for node in flow.definition.get("nodes", {}).values()
            if isinstance(node, dict)
        )
    ]


def docs_url(manifest: dict[str, Any]) -> str | None:
    """The module's documentation, when its manifest names a web page for it."""
    places = [manifest.get("extra") or {}, (manifest.get("cell") or {})]
    for place in places:
        for key in DOCS_KEYS:
            value = place.get(key)
            if isinstance(value, str) and value.startswith(("https://", "http://")):
                return value
    return None

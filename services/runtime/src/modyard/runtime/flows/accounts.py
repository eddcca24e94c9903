"""Starting a flow: every node whose component needs an account names one of the right auth
service, owned by the flow's owner (the installer, which keeps accounts and manifests, checks;
every problem is reported at once with the flow's other problems)."""

from __future__ import annotations

from modyard.common.errors import InvalidParam, ServiceUnavailable
from modyard.runtime.flows.definition import FlowDefinition
from modyard.runtime.installer_client import InstallerClient, InstallerUnavailable
from modyard.runtime.models import Flow, InstalledComponent


async def problems(
    installer: InstallerClient,
    flow: Flow,
    definition: FlowDefinition,
    installed: dict[str, InstalledComponent],
) -> list[InvalidParam]:
    js_nodes = {
        node_id: component for node_id, component in installed.items() if component.executor == "js"
    }
    if not js_nodes:
        return []
    nodes = [
        {
            "node": node_id,
            "installation": component.slug,
            "component": component.component,
            "account": definition.nodes[node_id].account,
        }
        for node_id, component in js_nodes.items()
    ]
    try:
        found = await installer.check_accounts(flow.workspace, flow.owner, nodes)
    except InstallerUnavailable as exc:
        raise ServiceUnavailable(f"Cannot check the flow's accounts: {exc}.") from exc
    return [
        InvalidParam(pointer=f"/definition/nodes/{item['node']}/account", detail=item["detail"])
        for item in found
    ]

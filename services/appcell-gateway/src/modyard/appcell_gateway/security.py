"""AppCell action security, decided from the caller's verified token.

First the workspace: a cell serves the workspace that installed it. A ``user`` token reaches a
cell only when its ``workspaces`` claim names the cell's workspace, whatever the action's rule;
operators and ``service`` tokens (the platform's own callers: billing systems, other services)
reach every workspace's cells. Then the action's rule:

- ``protected``: any authenticated caller;
- ``public``: only the owner of the customer product the request names (the token's ``products``);
- ``rbac::<permission>``: the token's ``permissions`` hold that permission.

Operators pass every rule (they run the platform); everybody else, services included, must satisfy
it, so a billing system acting for a customer carries that customer's products and permissions in
the token it sends.
"""

from __future__ import annotations

from modyard.appcell_gateway.problems import SecurityRefused, WorkspaceRefused
from modyard.common.auth import Principal

RBAC_PREFIX = "rbac::"


def enforce_workspace(principal: Principal, workspace: str, cell: str) -> None:
    """Refuse a caller outside the cell's workspace (a set lookup: this runs on every call)."""
    if not principal.can_access_workspace(workspace):
        raise WorkspaceRefused(
            f"Cell {cell!r} belongs to a workspace the token does not name in 'workspaces'; "
            "call it with a token of the workspace that installed it."
        )


def enforce(security: str, principal: Principal, customer_product_id: str | None) -> None:
    if principal.is_operator or security == "protected":
        return
    if security == "public":
        if customer_product_id is None:
            raise SecurityRefused(
                "This action is public: send customer_product_id, the product the caller owns.",
                security=security,
            )
        if customer_product_id not in principal.products:
            raise SecurityRefused(
                f"This action is public: only the owner of customer product "
                f"{customer_product_id!r} may call it, and the token does not name it in 'products'.",
                security=security,
            )
        return
    if security.startswith(RBAC_PREFIX):
        permission = security.removeprefix(RBAC_PREFIX)
        if permission not in principal.permissions:
            raise SecurityRefused(
                f"This action needs the permission {permission!r}; the token's 'permissions' "
                "do not include it.",
                security=security,
            )
        return
    # The registry only publishes the three forms; anything else is refused, never allowed.
    raise SecurityRefused(
        f"The action's security {security!r} is not understood.", security=security
    )

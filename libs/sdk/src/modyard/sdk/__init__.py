"""modyard SDK: the typed async client of the services' HTTP APIs and the ``modyard`` CLI."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modyard.sdk.client import ModyardAPIError, ModyardClient

__all__ = ["ModyardAPIError", "ModyardClient"]


def __getattr__(name: str) -> Any:
    # Imported on first use: every `modyard` command imports this package, most never call an API.
    if name in __all__:
        from modyard.sdk import client

        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

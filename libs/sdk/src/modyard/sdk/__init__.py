"""modyard SDK: the typed async client of the services' HTTP APIs and the ``modyard`` CLI."""

from modyard.sdk.client import ModyardAPIError, ModyardClient

__all__ = ["ModyardAPIError", "ModyardClient"]

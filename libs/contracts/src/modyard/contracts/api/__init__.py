"""The public API's responses as the SDK and the CLI read them, one module per service.

Each model lists the fields of the service's response model in the service's order (the drift
test, tests/test_api_contracts.py, compares them with the service's own schema). Unknown fields
are kept (``extra="allow"``): a service may add one before the SDK knows it, and ``--json`` still
prints it. Timestamps stay the RFC 3339 text the API sent, so what the CLI prints is what the
service said.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["ApiModel", "Timestamp"]

#: An RFC 3339 date-time as the API wrote it (``2026-12-06T17:15:13.123Z``).
Timestamp = str


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    def as_json(self) -> dict[str, Any]:
        """The answer as the API sent it (what ``--json`` prints)."""
        return self.model_dump(mode="json", exclude_unset=True, by_alias=True)

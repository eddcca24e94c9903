from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from modyard.common.auth import CurrentPrincipal
from modyard.common.errors import PROBLEM_RESPONSES
from modyard.modules.manifest import manifest_json_schema

router = APIRouter(prefix="/v1/schemas", tags=["schemas"], responses=PROBLEM_RESPONSES)


@router.get("/manifest")
async def get_manifest_schema(_: CurrentPrincipal) -> dict[str, Any]:
    """The canonical manifest every module is normalised into, as JSON Schema (2020-12)."""
    return manifest_json_schema()

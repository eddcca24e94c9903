"""``context.callAppmixer({endPoint, method, body, qs})``: the part of Appmixer's own REST API
that has a modyard counterpart here. Public connectors call it mostly to create and delete the
data store they keep items in (``POST /stores``, ``DELETE /stores/<id>``); everything else
(``/plugins/…`` routes of Appmixer plugins, ``/logs``, ``/flows``…) rejects naming the member and
the endpoint, so a component fails with a message that says what is missing.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any

from modyard.jsrunner import data_store
from modyard.jsrunner.context_errors import ContextError

if TYPE_CHECKING:
    from modyard.jsrunner.context_api import CallScope, ContextApi, Method

_STORE = re.compile(r"^/stores/([^/?#]+)/?$")


async def _call(api: ContextApi, scope: CallScope, args: dict[str, Any]) -> Any:
    endpoint = str(args.get("endPoint") or "")
    method = str(args.get("method") or "GET").upper()
    scope.require_workspace("callAppmixer")
    if method == "POST" and endpoint.rstrip("/") == "/stores":
        # Stores exist once an item is in them: creating one only names it.
        body = args.get("body") if isinstance(args.get("body"), dict) else {}
        name = str((body or {}).get("name") or "")
        return {"storeId": f"{name[:200]}-{uuid.uuid4().hex[:12]}" if name else uuid.uuid4().hex}
    match = _STORE.match(endpoint)
    if match and method == "DELETE":
        await data_store.clear(api, scope, match.group(1))
        return {}
    raise ContextError(
        f"callAppmixer {method} {endpoint or '(no endPoint)'} has no counterpart in modyard "
        "(supported: POST /stores, DELETE /stores/<storeId>)",
        "ERR_NOT_SUPPORTED",
    )


METHODS: dict[str, Method] = {"appmixer.call": _call}

"""A webhook for a Slingr package's HTTP listeners (docs/slingr.md, "Listeners").

``/v1/listeners/{ws}/{installation_id}/{path}`` (any method): the installation's id is the
secret, as the flow id is for ``/v1/hooks`` (no token). The request goes to the JavaScript
runner on the ``listener`` port with ``{method, path, headers, query, data}``; every
``webhook``/``webhookSync`` listener whose ``matching.path`` is the path runs, and a
``webhookSync`` one's return value is the answer (``200`` with ``{"status": "ok"}`` without one).
No listener for the path: ``404``; a failing listener: ``502`` with its error; past
``MODYARD_RUNTIME_JS_WEBHOOK_TIMEOUT_SECONDS``: ``504``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from modyard.common.errors import NotFound
from modyard.runtime.components.base import ComponentError
from modyard.runtime.context import RuntimeContext
from modyard.runtime.flows import js_lifecycle
from modyard.runtime.models import InstalledComponent

#: The runner's request port for a package's listeners (js-runner slingr/run.py).
LISTENER_PORT = "listener"


async def installation(
    session: AsyncSession, workspace: str, installation_id: uuid.UUID
) -> InstalledComponent:
    """One of the installation's ``js`` components: it names the package version to run."""
    found = (
        await session.scalars(
            select(InstalledComponent)
            .where(
                InstalledComponent.workspace == workspace,
                InstalledComponent.installation_id == installation_id,
                InstalledComponent.present.is_(True),
                InstalledComponent.executor == "js",
            )
            .limit(1)
        )
    ).first()
    if found is None:
        raise NotFound("There is no package listener at this address.")
    return found


async def answer(
    context: RuntimeContext,
    installed: InstalledComponent,
    path: str,
    content: dict[str, Any],
    correlation_id: str | None,
) -> Response:
    js = context.executors.js if context.executors is not None else None
    if js is None:
        return js_lifecycle.problem(
            503, "Service Unavailable", "js packages are not run here", "js-off"
        )
    # No configuration in the request: the runner reads it from the installer for the call
    # (docs/slingr.md, "Configuration").
    request = {
        "message_id": uuid.uuid4().hex,
        "workspace": installed.workspace,
        "installation": installed.slug,
        "module": installed.module,
        "version": installed.version,
        "component": "",
        "port": LISTENER_PORT,
        "payload": {**content, "path": "/" + path.strip("/")},
        "properties": {},
        "correlation_id": correlation_id,
    }
    try:
        async with asyncio.timeout(context.settings.js_webhook_timeout_seconds):
            _outputs, response = await js.answer(installed, request)
    except TimeoutError:
        return js_lifecycle.problem(
            504,
            "Gateway Timeout",
            f"The package's listener did not answer within "
            f"{context.settings.js_webhook_timeout_seconds} s.",
            "listener-timeout",
        )
    except ComponentError as exc:
        if exc.status == 404:
            raise NotFound(f"{exc.message}.") from None
        return js_lifecycle.problem(
            502, "Bad Gateway", f"The package's listener failed: {exc.message}", "listener-failed"
        )
    return js_lifecycle.render_response(response or {"status": 200, "body": {"status": "ok"}})

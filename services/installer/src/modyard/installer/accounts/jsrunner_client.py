"""The JavaScript runner's auth.js calls (``POST /v1/auth-calls``), as a service principal."""

from __future__ import annotations

from typing import Any

import httpx

from modyard.common.errors import ServiceUnavailable
from modyard.common.service_client import ServiceClient
from modyard.installer.settings import InstallerSettings


class JsRunnerClient(ServiceClient):
    PEER = "JavaScript runner"

    def __init__(
        self, settings: InstallerSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.js_runner_url,
            subject="installer",
            timeout=settings.js_runner_timeout_seconds,
            transport=transport,
        )

    async def auth_call(self, body: dict[str, Any]) -> dict[str, Any]:
        """The runner's answer ``{ok, result, message, status, retryable}``; a 503 problem when
        it cannot be reached or cannot run the module now."""
        try:
            response = await self._http.post("/v1/auth-calls", json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            raise self._unreachable() from exc
        if response.is_error:
            raise ServiceUnavailable(
                f"The {self.PEER} answered {response.status_code} to an auth.js call; retry shortly."
            )
        answer: dict[str, Any] = response.json()
        if not answer.get("ok") and answer.get("retryable"):
            raise ServiceUnavailable(
                f"The {self.PEER} cannot run auth.js now ({answer.get('message')}); retry shortly."
            )
        return answer

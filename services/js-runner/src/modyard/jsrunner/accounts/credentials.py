"""``context.auth`` from a flow node's account (docs/accounts.md).

The runtime's request names the node's account (``account``: its id), never its secrets: the
runner reads them from the installer (``GET …/accounts/{id}/credentials``, as a service), which
refreshes OAuth tokens that expire soon. A component that fails with HTTP 401 while using an
OAuth account makes the runner ask the installer for a refresh once (``POST …/refresh`` naming
the token that failed: concurrent callers cause one refresh) and run the call again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from modyard.common.service_client import ServiceClient
from modyard.common.settings import CommonSettings


class AccountUnavailable(Exception):
    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class AccountAuth:
    id: str
    type: str
    auth: dict[str, Any]


class AccountsClient(ServiceClient):
    PEER = "installer"

    def __init__(
        self, settings: CommonSettings, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.installer_url,
            subject="js-runner",
            timeout=30,
            transport=transport,
        )

    async def _ask(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            response = await self._http.request(method, path, json=body, headers=self._headers())
        except httpx.HTTPError as exc:
            raise AccountUnavailable(
                f"the installer at {self._base_url} cannot be reached for the node's account",
                retryable=True,
            ) from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise AccountUnavailable(
                f"the installer answered {response.status_code} for the node's account",
                retryable=True,
            )
        if response.is_error:
            try:
                detail = str(response.json().get("detail") or "")
            except ValueError:
                detail = ""
            raise AccountUnavailable(
                f"the node's account cannot be used: {detail or response.status_code}",
                retryable=False,
            )
        answer: dict[str, Any] = response.json()
        return answer

    async def credentials(self, workspace: str, account: str) -> AccountAuth:
        found = await self._ask("GET", f"/v1/workspaces/{workspace}/accounts/{account}/credentials")
        return AccountAuth(account, str(found.get("type")), dict(found.get("auth") or {}))

    async def refresh(self, workspace: str, current: AccountAuth) -> AccountAuth:
        found = await self._ask(
            "POST",
            f"/v1/workspaces/{workspace}/accounts/{current.id}/refresh",
            {"failed_token": current.auth.get("accessToken")},
        )
        return AccountAuth(current.id, str(found.get("type")), dict(found.get("auth") or {}))


def refresh_helps(account: AccountAuth | None, answer: dict[str, Any]) -> bool:
    """The call failed with 401 while using an OAuth account's token."""
    if account is None or account.type != "oauth2" or answer.get("t") == "done":
        return False
    error = answer.get("error")
    return isinstance(error, dict) and error.get("status") == 401

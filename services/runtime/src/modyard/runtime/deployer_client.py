"""Where a deployed container module listens, as the deployer knows it (its HTTP API, as a
``service`` principal). Endpoints are cached briefly: the ``http`` executor asks for every message.
Every runtime process drops a deployment's copy when the deployer announces a change of its status
(replica_news.py: a redeploy moves it), and one that just failed (``forget``)."""

from __future__ import annotations

import httpx

from modyard.common.service_client import ServiceClient
from modyard.common.settings import CommonSettings
from modyard.common.single_flight import ExpiringCopies
from modyard.runtime.components.base import ComponentError

ENDPOINT_CACHE_SECONDS = 5.0


class DeployerClient(ServiceClient):
    def __init__(
        self,
        settings: CommonSettings,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            settings,
            base_url=settings.deployer_url,
            subject="runtime",
            timeout=timeout,
            transport=transport,
        )
        # The messages of a burst that miss a deployment's copy share one request.
        self._endpoints: ExpiringCopies[str, str] = ExpiringCopies(
            "deployment-endpoint", self._ask, ENDPOINT_CACHE_SECONDS
        )

    async def endpoint(self, deployment: str) -> str:
        """The base URL of the running deployment; while it is not running (or not there, or the
        deployer cannot be reached) a retryable error that says which and why."""
        return await self._endpoints.get(deployment)

    async def _ask(self, deployment: str) -> str:
        try:
            response = await self._http.get(
                f"/v1/deployments/{deployment}", headers=self._headers()
            )
        except httpx.HTTPError as exc:
            raise ComponentError(
                f"the deployer at {self._settings.deployer_url} cannot be reached", retryable=True
            ) from exc
        if response.status_code == 404:
            raise ComponentError(
                f"there is no deployment {deployment!r}; deploy the container module under that "
                "name (`modyard deploy create`)",
                retryable=True,
                status=404,
            )
        if response.is_error:
            raise ComponentError(
                f"the deployer answered {response.status_code} for deployment {deployment!r}",
                retryable=True,
                status=response.status_code,
            )
        found = response.json()
        endpoint = found.get("endpoint")
        if not endpoint:
            reason = f": {found['reason']}" if found.get("reason") else ""
            raise ComponentError(
                f"deployment {deployment!r} is {found.get('status', 'not running')}{reason}",
                retryable=True,
            )
        return str(endpoint)

    def forget(self, deployment: str) -> None:
        """Ask the deployer again next time: the endpoint just failed, or the deployment changed."""
        self._endpoints.forget(deployment)

    def forget_all(self) -> None:
        self._endpoints.forget_all()

"""The gateway on real infrastructure: registry and installer processes, the gateway in process,
the example cell (examples/resellerclub_cell) published, installed and running on the broker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from modyard.appcell_gateway.context import SLOT, GatewayContext
from modyard.appcell_gateway.settings import GatewaySettings
from modyard.common.auth import Role, mint_token
from modyard.sdk.cell import Cell, Worker, WorkerOptions
from modyard.testing.infra import IsolatedInfra
from modyard.testing.polling import eventually
from modyard.testing.services import auth_headers

WS = "cells"
MODULE = "newresellerclubcell"
CONFIG = {"userid": "reseller", "password": "secret", "TestMode": "1"}
TIMEOUT = 1.5


@dataclass
class Env:
    client: httpx.AsyncClient
    app: Any
    registry: str
    installer: str
    settings: GatewaySettings
    infra: IsolatedInfra
    workers: dict[str, Worker] = field(default_factory=dict)

    @property
    def operator(self) -> dict[str, str]:
        return auth_headers(self.settings, Role.operator)

    @property
    def gateway(self) -> GatewayContext:
        return SLOT.of(self.app)

    def token(
        self,
        *,
        roles: tuple[str, ...] = ("user",),
        products: tuple[str, ...] = (),
        permissions: tuple[str, ...] = (),
        subject: str = "billia-customer",
        workspaces: tuple[str, ...] = (WS,),
    ) -> dict[str, str]:
        """A caller of the fixture's workspace by default: cells answer only their own."""
        token = mint_token(
            self.settings,
            subject=subject,
            roles=roles,
            workspaces=workspaces,
            products=products,
            permissions=permissions,
        )
        return {"Authorization": f"Bearer {token}"}

    async def external(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(headers=self.operator, timeout=30) as client:
            return await client.request(method, url, **kwargs)

    async def publish(self, archive: bytes) -> None:
        response = await self.external(
            "POST",
            f"{self.registry}/v1/modules",
            content=archive,
            headers={"content-type": "application/zip"},
        )
        assert response.status_code in (200, 201), response.text

    async def install(self, slug: str, version: str = "^1.0.0") -> str:
        response = await self.external(
            "POST",
            f"{self.installer}/v1/workspaces/{WS}/installations",
            json={"module": MODULE, "version": version, "slug": slug, "config": CONFIG},
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def cell_status(self, key: str) -> str:
        """The cell's status, or ``gone`` once it is removed (404)."""
        response = await self.client.get(f"/v1/cells/{key}", headers=self.operator)
        return str(response.json()["status"]) if response.status_code == 200 else "gone"

    async def wait_status(self, key: str, status: str) -> None:
        async def reached() -> bool:
            return await self.cell_status(key) == status

        await eventually(reached)

    async def credentials(self, key: str) -> dict[str, Any]:
        response = await self.client.get(f"/v1/cells/{key}/credentials", headers=self.operator)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def run_cell(self, key: str, cell: Cell, **options: Any) -> Worker:
        """``cell`` consuming ``key``'s queue (instead of whatever consumed it before)."""
        await self.stop_cell(key)
        given = await self.credentials(key)
        worker = cell.worker(
            WorkerOptions(amqp_url=given["amqp_url"], queue=given["queue"], **options)
        )
        await worker.start()
        self.workers[key] = worker
        return worker

    async def stop_cell(self, key: str) -> None:
        worker = self.workers.pop(key, None)
        if worker is not None:
            await worker.stop()

    async def call(
        self,
        action: str,
        payload: Any,
        *,
        cell: str = f"{WS}:rc",
        plugin: str = "NewResellerClub",
        headers: dict[str, str] | None = None,
        customer_product_id: str | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/cells/{cell}/plugins/{plugin}/actions/{action}",
            json={"payload": payload, "customer_product_id": customer_product_id},
            headers=headers if headers is not None else self.token(),
        )

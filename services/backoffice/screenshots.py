"""``make screenshots``: a PNG of each backoffice screen under docs/screenshots/.

It starts what the browser tests start (an isolated database and vhost on the running
infrastructure, the services the console calls, the backoffice), fills them with a few realistic
modules, flows, dead letters, webhooks and deployments, and photographs each screen in Debian's
Chromium. Everything it created is removed at the end.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page, async_playwright

from modyard.common.settings import CommonSettings
from modyard.testing.backoffice import CONFIG, Console, console_cluster, module_zip
from modyard.testing.deployer import (
    RegistryLogin,
    delete_from_registry,
    publish_test_image,
    remove_namespace,
)
from modyard.testing.infra import isolated_infra
from modyard.testing.polling import eventually

OUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
WS = "demo"
CHROMIUM = "/usr/bin/chromium"
IMAGE_PATH = "modyard-screenshots/hello"


async def seed(console: Console, api: httpx.AsyncClient, image: str | None) -> dict[str, Any]:
    urls = {name: process.url for name, process in console.upstreams.processes.items()}
    registry, installer, runtime = urls["registry"], urls["installer"], urls["runtime"]
    await api.post(f"{installer}/v1/workspaces", json={"slug": WS, "name": "Demo"})
    catalogue = (
        ("crm-sync", CONFIG, "Keeps contacts and deals in step with your CRM."),
        ("slack-notify", None, "Posts messages to Slack channels."),
        ("pdf-tools", None, "Merges, splits and stamps PDF documents."),
    )
    for name, config, description in catalogue:
        for version in ("1.0.0", "1.1.0"):
            published = await api.post(
                f"{registry}/v1/modules",
                content=module_zip(name, version, config=config, description=description),
                headers={"content-type": "application/zip"},
            )
            published.raise_for_status()
    for name in ("crm-sync", "slack-notify"):
        config = {"apiKey": "demo-key", "region": "eu"} if name == "crm-sync" else {}
        (
            await api.post(
                f"{installer}/v1/workspaces/{WS}/installations",
                json={"module": name, "config": config},
            )
        ).raise_for_status()
    (
        await api.post(f"{installer}/v1/workspaces/{WS}/installations/slack-notify/acl/grant-users")
    ).raise_for_status()

    async def flow(name: str, nodes: dict[str, Any], start: bool) -> str:
        created = await api.post(
            f"{runtime}/v1/workspaces/{WS}/flows",
            json={
                "name": name,
                "description": f"{name.replace('-', ' ').capitalize()}.",
                "definition": {
                    "nodes": {"hook": {"component": "core.webhook"}, **nodes},
                    "connections": [{"from": "hook", "to": key} for key in nodes],
                    "retry_policy": {"max_attempts": 1},
                },
            },
        )
        created.raise_for_status()
        flow_id = str(created.json()["id"])
        if start:
            # The runtime learns the installed components from the installer's events.
            async def started() -> bool:
                answer = await api.post(f"{runtime}/v1/workspaces/{WS}/flows/{flow_id}/start")
                last[:] = [answer.text]
                return answer.is_success

            last: list[str] = []

            try:
                await eventually(started, timeout=30, interval=0.5)
            except AssertionError:
                raise AssertionError(f"{name} did not start: {last}") from None
        return flow_id

    await flow("new-lead-to-crm", {"sync": {"component": "crm-sync.Send"}}, start=False)
    await flow("daily-report", {"notify": {"component": "slack-notify.Send"}}, start=False)
    fragile = await flow(
        "order-webhook",
        {
            "call": {
                "component": "core.http",
                "properties": {"method": "POST", "url": "{{ payload.url }}"},
            }
        },
        start=True,
    )
    for index in range(3):
        await api.post(
            f"{runtime}/v1/hooks/{WS}/{fragile}/hook", json={"url": f"ftp://orders.invalid/{index}"}
        )

    async def dead_letters() -> bool:
        page = await api.get(f"{runtime}/v1/unprocessed-messages")
        return len(page.json()["items"]) >= 3

    await eventually(dead_letters, timeout=30)
    webhook = await api.post(
        f"{runtime}/v1/system-webhooks",
        json={
            "url": "https://ops.example.com/modyard",
            "events": ["flow.stopped", "message.unprocessed"],
            "secret": "a-demo-signing-secret",
            "description": "ops pager",
        },
    )
    webhook.raise_for_status()
    webhook_id = webhook.json()["id"]
    (await api.post(f"{runtime}/v1/system-webhooks/{webhook_id}/test")).raise_for_status()

    deployer = urls["deployer"]
    settings = CommonSettings()
    login = RegistryLogin.from_settings(settings)
    base = {
        "registry_host": login.host,
        "token_id": login.username,
        "token": login.password,
        "env": {"GREETING": "hello from the console"},
    }
    (
        await api.post(
            f"{deployer}/v1/deployments",
            json={
                "name": "invoice-worker",
                "image": f"{login.host}/acme/invoices",
                "tag": "2.3.1",
                **base,
            },
        )
    ).raise_for_status()
    if image:
        repository, _, tag = image.rpartition(":")
        created = await api.post(
            f"{deployer}/v1/deployments",
            json={"name": "hello-module", "image": repository, "tag": tag, **base},
        )
        created.raise_for_status()
        (await api.post(f"{deployer}/v1/deployments/hello-module/deploy")).raise_for_status()

        async def running() -> bool:
            found = await api.get(f"{deployer}/v1/deployments/hello-module")
            return bool(found.json()["status"] == "running")

        await eventually(running, timeout=90)
    return {"webhook": webhook_id, "fragile": fragile}


async def shoot(page: Page, name: str) -> None:
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
    print(f"docs/screenshots/{name}.png")


async def photograph(console: Console, seeded: dict[str, Any], deployed: bool) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = await browser.new_context(
            base_url=console.url, viewport={"width": 1280, "height": 800}
        )
        page = await context.new_page()
        await page.goto("/sign-in")
        await shoot(page, "sign-in")
        await page.get_by_label("Operator token").fill(console.operator_token("ops@example.com"))
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_label("Workspace").select_option(WS)
        await page.get_by_role("button", name="Show").click()
        await shoot(page, "modules")
        await page.goto("/modules/crm-sync")
        await page.get_by_role("link", name="Install this module").click()
        await page.locator("#install-form").wait_for()
        await shoot(page, "module-detail")
        await page.goto("/upload")
        with tempfile.TemporaryDirectory() as directory:
            zip_file = Path(directory) / "invoice-parser-1.0.0.zip"
            zip_file.write_bytes(module_zip("invoice-parser"))
            await page.get_by_label("Drop a zip file here, or browse").set_input_files(zip_file)
        await shoot(page, "upload")
        await page.goto("/unprocessed")
        await shoot(page, "unprocessed")
        await page.locator("a", has_text="Details").first.click()
        await shoot(page, "unprocessed-detail")
        await page.goto("/deployments")
        await shoot(page, "deployments")
        if deployed:
            await page.goto("/deployments/hello-module")
            await page.locator("#logs").wait_for()
            await shoot(page, "deployment-detail")
        await page.goto("/flows")
        await shoot(page, "flows")
        await page.goto("/webhooks")
        await shoot(page, "webhooks")
        await page.goto(f"/webhooks/{seeded['webhook']}")
        await shoot(page, "webhook-deliveries")
        await browser.close()


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    settings = CommonSettings()
    login = RegistryLogin.from_settings(settings)
    command = ["sh", "-c", 'echo "$GREETING"; echo "ready on port 8080"; exec sleep 3600']
    try:
        image: str | None = await publish_test_image(
            settings.docker_host, login, IMAGE_PATH, "1.0.0", command
        )
    except Exception as exc:  # no Docker here: the other screens still get their picture
        print(f"no container deployment in the screenshots ({exc})", file=sys.stderr)
        image = None
    async with isolated_infra(settings) as infra, console_cluster(infra.env()) as console:
        headers = {"Authorization": f"Bearer {console.operator_token()}"}
        try:
            async with httpx.AsyncClient(headers=headers, timeout=60) as api:
                seeded = await seed(console, api, image)
            await photograph(console, seeded, deployed=image is not None)
        finally:
            await remove_namespace(settings.docker_host, console.upstreams.namespace)
            if image:
                await delete_from_registry(settings.image_registry_url, login, IMAGE_PATH, "1.0.0")


if __name__ == "__main__":
    asyncio.run(main())

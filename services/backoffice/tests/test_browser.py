"""The console in Debian's Chromium (headless, driven by Playwright) against the backoffice and
the services it calls, all real processes: what an operator does, click by click.

The browser is /usr/bin/chromium, installed by scripts/bootstrap.sh; Playwright never downloads
one. One browser serves the whole module; each test has its own signed-in page.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from modyard.common.settings import CommonSettings
from modyard.testing.backoffice import CONFIG, Console, console_cluster, module_zip
from modyard.testing.deployer import (
    RegistryLogin,
    delete_from_registry,
    publish_test_image,
    remove_namespace,
)
from modyard.testing.infra import IsolatedInfra

from .conftest import WS, fail_messages

pytestmark = pytest.mark.infra

CHROMIUM = "/usr/bin/chromium"
#: Waits for what other processes do (a deployment pulling and starting); not a speed assertion.
SLOW = 60_000


@pytest.fixture(scope="module")
async def console(infra: IsolatedInfra) -> AsyncIterator[Console]:
    async with console_cluster(infra.env()) as cluster:
        yield cluster


@pytest.fixture(scope="module")
async def api(console: Console) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {console.operator_token()}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as client:
        installer = console.upstreams.processes["installer"].url
        created = await client.post(f"{installer}/v1/workspaces", json={"slug": WS, "name": "C"})
        assert created.status_code == 201, created.text
        yield client


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser, console: Console, api: httpx.AsyncClient) -> AsyncIterator[Page]:
    """A fresh browser context, signed in through the sign-in form, showing workspace ``WS``."""
    context = await browser.new_context(
        base_url=console.url, viewport={"width": 1366, "height": 900}
    )
    context.set_default_timeout(15_000)
    opened = await context.new_page()
    try:
        await opened.goto("/modules")
        await expect(opened).to_have_url(re.compile(r"/sign-in\?next=%2Fmodules"))
        await opened.get_by_label("Operator token").fill(console.operator_token())
        await opened.get_by_role("button", name="Sign in").click()
        await expect(opened.get_by_role("heading", name="Modules", exact=True)).to_be_visible()
        await opened.get_by_label("Workspace").select_option(WS)
        await opened.get_by_role("button", name="Show").click()
        await expect(
            opened.get_by_text(f"Installed means installed in workspace {WS}")
        ).to_be_visible()
        yield opened
    finally:
        await context.close()


async def test_upload_install_with_config_add_acl_rule_and_remove(
    page: Page, tmp_path: Path
) -> None:
    name = f"browser-{uuid.uuid4().hex[:6]}"
    archive = tmp_path / f"{name}.zip"
    archive.write_bytes(module_zip(name, config=CONFIG))

    await page.get_by_role("link", name="Add module from your filesystem").click()
    # Dropped onto the box, as from a file manager (the box hands it to the file input).
    drop = await page.evaluate_handle(
        """([name, bytes]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "application/zip"}));
            return transfer;
        }""",
        [archive.name, list(archive.read_bytes())],
    )
    await page.locator("#dropzone").dispatch_event("drop", {"dataTransfer": drop})
    await expect(page.locator("#file-name")).to_contain_text(f"{name}.zip")
    await page.get_by_role("button", name="Upload").click()

    await expect(page.get_by_role("heading", name=name.title())).to_be_visible()
    await expect(page.locator("p.notice")).to_contain_text(f"Uploaded {name}.zip: {name} 1.0.0")
    await expect(page.get_by_text("Sends one message.")).to_be_visible()

    await page.get_by_role("link", name="Install this module").click()
    secret = page.get_by_label("apiKey")
    await expect(secret).to_have_attribute("type", "password")
    await secret.fill("browser-secret")
    await page.get_by_label("region").select_option("us")
    await page.get_by_label("Installation name (slug)").fill("browsed")
    await page.get_by_role("button", name="Install", exact=True).click()

    await expect(page.locator("p.notice")).to_contain_text(f"Installed {name} 1.0.0 as browsed")
    await expect(page.get_by_role("heading", name="Installed as browsed (1.0.0)")).to_be_visible()

    await page.get_by_role("button", name="Add ACL rule for users").click()
    await expect(page.locator("p.notice")).to_contain_text(f"Users may now use {name}.*")
    rules = page.get_by_role("table").filter(has_text="Resource")
    await expect(rules).to_contain_text(f"{name}.*")
    await expect(rules).to_contain_text("role user")

    await page.get_by_text("Remove this module").click()
    await expect(page.get_by_text("No flow in console uses browsed.")).to_be_visible()
    await page.get_by_role("button", name="Remove browsed").click()
    await expect(page.locator("p.notice")).to_contain_text("Removed browsed")
    await expect(page.get_by_role("heading", name=re.compile("Installed as"))).to_have_count(0)

    # The badge follows: in the list, the module is no longer installed.
    await page.get_by_role("link", name="Modules", exact=True).click()
    await page.get_by_label("Search by name").fill(name)
    card = page.locator("#module-list li", has_text=name)
    await expect(card).to_have_count(1)
    await expect(card.get_by_text("Installed")).to_have_count(0)


async def test_an_unprocessed_message_is_retried_from_its_detail_page(
    page: Page, console: Console, api: httpx.AsyncClient
) -> None:
    runtime = console.upstreams.processes["runtime"].url
    flow_id, [message_id] = await fail_messages(api, runtime, 1)

    await page.get_by_role("link", name="Unprocessed messages").click()
    await page.get_by_label("Flow id").fill(flow_id)
    await page.get_by_role("button", name="Filter").click()
    await page.get_by_role("link", name=f"Details of {message_id}").click()
    await expect(page.get_by_role("heading", name="Error history")).to_be_visible()
    await expect(page.locator(".errors")).to_contain_text("not retryable")

    await page.get_by_role("button", name="Retry").click()
    await expect(page.locator("p.notice")).to_contain_text("put back into its flow")
    stored = await api.get(f"{runtime}/v1/unprocessed-messages/{message_id}")
    assert stored.status_code == 404  # retried: out of the store, back in its flow


async def test_a_container_module_is_created_deployed_and_reaches_running(
    page: Page, console: Console
) -> None:
    settings = CommonSettings()
    login = RegistryLogin.from_settings(settings)
    name = f"web-{uuid.uuid4().hex[:6]}"
    path = f"modyard-test-{name}/app"
    command = ["sh", "-c", 'echo "hello from $GREETING"; exec sleep 3600']
    image = await publish_test_image(settings.docker_host, login, path, "1.0.0", command)
    try:
        await page.get_by_role("link", name="Deployments").click()
        form = page.locator("#add-deployment")
        await form.get_by_label("Name").fill(name)
        await form.get_by_label("Image URL").fill(image.rpartition(":")[0])
        await form.get_by_label("Tag").fill("1.0.0")
        await form.get_by_label("Docker host").fill(login.host)
        await form.get_by_label("Token Id").fill(login.username)
        await form.get_by_label("Token", exact=True).fill(login.password)
        await form.get_by_label("Environment (env)").fill("GREETING=the console")
        await form.get_by_role("button", name="Add").click()

        row = page.locator(f'tr[data-deployment="{name}"]')
        await expect(row).to_contain_text("Not Deployed")
        await row.get_by_role("button", name=f"Deploy {name}").click()
        # No reload from here on: htmx polling brings the status.
        await expect(row.locator(".status")).to_have_text("Running", timeout=SLOW)

        await row.get_by_role("link", name=name).click()
        await expect(page.locator("#deployment-status .status")).to_have_text("Running")
        await expect(page.locator("#logs")).to_contain_text("hello from the console", timeout=SLOW)
        await page.get_by_role("button", name=f"Delete {name}").click()
        await expect(page.locator("p.notice")).to_contain_text(f"Deleting {name}")
        # The table follows by itself until the deployer has removed it.
        await expect(page.locator(f'tr[data-deployment="{name}"]')).to_have_count(0, timeout=SLOW)
    finally:
        await remove_namespace(settings.docker_host, console.upstreams.namespace)
        await delete_from_registry(settings.image_registry_url, login, path, "1.0.0")

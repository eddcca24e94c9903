"""Every screen of the console through httpx's ASGI client, against the real services: what the
page shows, what each form does to the services behind it, and refused input shown in words."""

from __future__ import annotations

import html
import re
import uuid
import zipfile
from io import BytesIO
from urllib.parse import unquote, unquote_plus

import pytest

from modyard.backoffice.app import create_app
from modyard.backoffice.console import TOKEN_COOKIE
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.auth import Role
from modyard.testing.backoffice import CONFIG, module_zip
from modyard.testing.polling import eventually
from modyard.testing.services import in_process

from .conftest import WS, Backoffice, fail_messages, form_token, token

pytestmark = pytest.mark.infra


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def publish(bo: Backoffice, name: str, **kwargs: object) -> None:
    published = await bo.api.post(
        f"{bo.url('registry')}/v1/modules",
        content=module_zip(name, **kwargs),  # type: ignore[arg-type]
        headers={"content-type": "application/zip"},
    )
    assert published.status_code == 201, published.text


def notice(response_location: str) -> str:
    return (
        unquote_plus(response_location.split("notice=", 1)[1])
        if "notice=" in response_location
        else ""
    )


async def test_health_and_static_assets_are_served_by_the_console_itself(bo: Backoffice) -> None:
    assert (await bo.client.get("/healthz")).json()["service"] == "backoffice"
    assert (await bo.client.get("/readyz")).status_code == 200
    htmx = await bo.client.get("/static/htmx.min.js")
    assert htmx.status_code == 200
    assert "htmx" in htmx.text[:200]
    page = (await bo.client.get("/modules")).text
    # No asset from anywhere else.
    assert not re.findall(r'(?:src|href)="https?://', page)


async def test_sign_in_sets_an_http_only_strict_cookie_and_refuses_other_tokens(
    bo: Backoffice,
) -> None:
    async with bo.anonymous() as anonymous:
        away = await anonymous.get("/deployments")
        assert away.status_code == 303
        assert away.headers["location"].startswith("/sign-in?next=%2Fdeployments")
        form = await anonymous.get(away.headers["location"])
        assert "Sign in to use the console." in form.text
        # The page says only its own words, whatever a link puts in ``reason``.
        spoofed = await anonymous.get("/sign-in", params={"reason": "Paste it at evil.example"})
        assert "evil.example" not in spoofed.text
        assert 'name="token"' in form.text
        assert "<label" in form.text

        csrf = form_token(form.text)
        refused = await anonymous.post("/sign-in", data={"token": "not-a-jwt", "csrf_token": csrf})
        assert refused.status_code == 401
        assert "This token was refused" in refused.text
        user = await anonymous.post(
            "/sign-in", data={"token": token(Role.user), "csrf_token": csrf}
        )
        assert user.status_code == 401
        assert "no operator role" in user.text
        empty = await anonymous.post("/sign-in", data={"token": " ", "csrf_token": csrf})
        assert empty.status_code == 422

        signed_in = await anonymous.post(
            "/sign-in", data={"token": token(), "next": "/deployments", "csrf_token": csrf}
        )
        assert signed_in.status_code == 303
        assert signed_in.headers["location"] == "/deployments"
        cookie = signed_in.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        # ``next`` never leads off the site.
        # Signed in, the forms' token is bound to the new session: read it from a page.
        csrf = form_token((await anonymous.get("/sign-in")).text)
        elsewhere = await anonymous.post(
            "/sign-in", data={"token": token(), "next": "//evil.example.com", "csrf_token": csrf}
        )
        assert elsewhere.headers["location"] == "/modules"
        deployments = await anonymous.get("/deployments")
        assert deployments.status_code == 200

        signed_out = await anonymous.post(
            "/sign-out", data={"csrf_token": form_token(deployments.text)}
        )
        assert signed_out.status_code == 303
        assert TOKEN_COOKIE not in anonymous.cookies
        anonymous.cookies.set(TOKEN_COOKIE, "expired-or-forged")
        refused_cookie = await anonymous.get("/flows")
        assert refused_cookie.headers["location"] == "/sign-in?next=%2Fflows&reason=refused"
        anonymous.cookies.set(TOKEN_COOKIE, token(Role.user))
        assert "reason=not-operator" in (await anonymous.get("/flows")).headers["location"]
        anonymous.cookies.delete(TOKEN_COOKIE)
        # htmx requests are sent to the sign-in page by header, not by a swapped-in page.
        polled = await anonymous.get("/deployments", headers={"HX-Request": "true"})
        assert polled.status_code == 401
        assert polled.headers["HX-Redirect"].startswith("/sign-in")


async def test_modules_list_badges_search_and_status_filter(bo: Backoffice) -> None:
    installed, other = unique("listed"), unique("other")
    await publish(bo, installed)
    await publish(bo, other)
    done = await bo.api.post(
        f"{bo.url('installer')}/v1/workspaces/{WS}/installations", json={"module": installed}
    )
    assert done.status_code == 201, done.text

    def cards(html: str) -> dict[str, bool]:
        found = re.findall(r'<li class="card module">(.*?)</li>', html, re.S)
        return {
            re.search(r'href="/modules/([^"]+)"', card).group(1): "Installed" in card  # type: ignore[union-attr]
            for card in found
        }

    everything = cards((await bo.client.get("/modules")).text)
    assert everything[installed] is True
    assert everything[other] is False
    assert cards((await bo.client.get("/modules", params={"q": other})).text) == {other: False}
    only_installed = cards((await bo.client.get("/modules", params={"status": "installed"})).text)
    assert installed in only_installed
    assert other not in only_installed
    available = cards((await bo.client.get("/modules", params={"status": "available"})).text)
    assert other in available
    assert installed not in available
    assert (await bo.client.get("/modules", params={"status": "maybe"})).status_code == 422

    # Another workspace, which does not exist: nothing is installed there, and the page says so.
    elsewhere = await bo.client.post(
        "/workspace", data={"workspace": "nowhere", "back": "/modules"}
    )
    assert elsewhere.status_code == 303
    try:
        page = (await bo.client.get("/modules")).text
        assert "Workspace nowhere does not exist" in page
        assert cards(page)[installed] is False
    finally:
        await bo.client.post("/workspace", data={"workspace": WS})
    options = (await bo.client.get("/workspaces")).text
    assert f'value="{WS}"' in options


async def test_module_detail_install_with_config_acl_rule_and_remove(bo: Backoffice) -> None:
    name = unique("conf")
    await publish(bo, name, config=CONFIG)
    detail = await bo.client.get(f"/modules/{name}")
    assert detail.status_code == 200
    page = detail.text
    assert f"The {name} connector, for tests." in page
    assert "Sends one message." in page  # the component's description
    assert f'href="https://docs.example.com/{name}"' in page
    assert "Download this module" in page
    assert "Install this module" in page
    assert "No rule: only operators see" in page

    # Without htmx the form is a page of its own; with it, the fragment the module page shows.
    page_form = (await bo.client.get(f"/modules/{name}/install", params={"version": "1.0.0"})).text
    assert page_form.startswith("<!doctype html>")
    form = (
        await bo.client.get(
            f"/modules/{name}/install", params={"version": "1.0.0"}, headers={"HX-Request": "true"}
        )
    ).text
    assert not form.lstrip().startswith("<!doctype html>")
    assert 'id="config-apiKey"' in page_form
    assert re.search(r'<input type="password" id="config-apiKey" name="config.apiKey"', form)
    assert '<select id="config-region" name="config.region"' in form
    assert 'type="number"' in form
    assert 'name="config.retries"' in form
    assert 'type="checkbox" id="config-verbose"' in form
    assert '<label for="config-apiKey">' in form

    # The installer's problem, in words, with the field it is about.
    refused = await bo.client.post(
        f"/modules/{name}/install?version=1.0.0",
        data={"config.region": "mars", "config.retries": "three"},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 422
    assert "/body/config/apiKey" in refused.text or "apiKey" in refused.text
    assert "/body/config/region" in refused.text

    installed = await bo.client.post(
        f"/modules/{name}/install?version=1.0.0",
        data={
            "slug": "conf-one",
            "config.apiKey": "s3cret-key",
            "config.region": "us",
            "config.retries": "5",
            "config.verbose": "true",
            "idempotency_key": uuid.uuid4().hex,
        },
        headers={"HX-Request": "true"},
    )
    assert installed.status_code == 204, installed.text
    assert "Installed" in unquote(installed.headers["HX-Redirect"])
    stored = (
        await bo.api.get(f"{bo.url('installer')}/v1/workspaces/{WS}/installations/conf-one")
    ).json()
    assert stored["config"] == {
        "apiKey": "********",
        "region": "us",
        "retries": 5,
        "verbose": True,
    }

    flow = await bo.api.post(
        f"{bo.url('runtime')}/v1/workspaces/{WS}/flows",
        json={
            "name": "uses-conf",
            "definition": {
                "nodes": {
                    "hook": {"component": "core.webhook"},
                    "send": {"component": "conf-one.Send"},
                },
                "connections": [{"from": "hook", "to": "send"}],
            },
        },
    )
    assert flow.status_code == 201, flow.text
    page = (await bo.client.get(f"/modules/{name}")).text
    assert "Installed as conf-one (1.0.0)" in page
    assert "These flows use conf-one and will stop working" in page
    assert "uses-conf" in page

    granted = await bo.client.post(f"/modules/{name}/installations/conf-one/acl")
    assert granted.status_code == 303
    assert f"{name}.*" in notice(granted.headers["location"])
    page = (await bo.client.get(f"/modules/{name}")).text
    assert f"<code>{name}.*</code>" in page
    assert "role user" in page

    archive = await bo.client.get(f"/modules/{name}/download")
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    assert "modyard.yaml" in zipfile.ZipFile(BytesIO(archive.content)).namelist()

    removed = await bo.client.post(f"/modules/{name}/installations/conf-one/remove")
    assert removed.status_code == 303
    assert "Removed conf-one" in notice(removed.headers["location"])
    listing = (await bo.api.get(f"{bo.url('installer')}/v1/workspaces/{WS}/installations")).json()
    assert "conf-one" not in {item["slug"] for item in listing["items"]}


async def test_unknown_modules_and_bad_paths_are_4xx_pages(bo: Backoffice) -> None:
    missing = await bo.client.get("/modules/no-such-module")
    assert missing.status_code == 404
    assert "no-such-module" in missing.text
    assert 'class="problem"' in missing.text
    assert (
        await bo.client.post("/modules/no-such-module/installations/x/remove")
    ).status_code == 404
    assert (await bo.client.get("/unprocessed/not-a-uuid")).status_code == 422
    assert (await bo.client.post("/flows/not-a-uuid/start")).status_code == 422
    assert (await bo.client.post("/deployments/x/explode")).status_code == 422
    # An htmx request gets the problem aimed at the page's message area.
    fragment = await bo.client.get("/modules/no-such-module", headers={"HX-Request": "true"})
    assert fragment.status_code == 404
    assert fragment.headers["HX-Retarget"] == "#messages"


async def test_upload_accepts_zips_and_explains_what_the_registry_refuses(bo: Backoffice) -> None:
    page = (await bo.client.get("/upload")).text
    assert 'type="file"' in page
    assert 'accept=".zip,application/zip"' in page
    assert "<progress" in page

    not_zip = await bo.client.post(
        "/upload", files={"archive": ("notes.txt", b"hello", "text/plain")}
    )
    assert not_zip.status_code == 415
    assert "notes.txt is not a .zip file" in not_zip.text
    fake = await bo.client.post(
        "/upload", files={"archive": ("fake.zip", b"hello", "application/zip")}
    )
    assert fake.status_code == 415
    assert "does not hold a zip archive" in fake.text
    empty = await bo.client.post("/upload", data={"x": "y"})
    assert empty.status_code == 422

    # A zip with no manifest: the registry's own problem, shown with the file's name.
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "no manifest here")
    refused = await bo.client.post(
        "/upload",
        files={"archive": ("empty.zip", buffer.getvalue(), "application/zip")},
        headers={"HX-Request": "true"},
    )
    assert 400 <= refused.status_code < 500
    assert "empty.zip" in refused.text
    assert 'class="problem"' in refused.text

    name = unique("uploaded")
    uploaded = await bo.client.post(
        "/upload",
        files={"archive": (f"{name}.zip", module_zip(name), "application/zip")},
        headers={"HX-Request": "true"},
    )
    assert uploaded.status_code == 204, uploaded.text
    assert uploaded.headers["HX-Redirect"].startswith(f"/modules/{name}?notice=")
    assert name in (await bo.client.get("/modules", params={"q": name})).text


async def test_flows_are_listed_with_stop_reasons_and_started_and_stopped(bo: Backoffice) -> None:
    created = await bo.api.post(
        f"{bo.url('runtime')}/v1/workspaces/{WS}/flows",
        json={
            "name": "listed-flow",
            "definition": {"nodes": {"hook": {"component": "core.webhook"}}, "connections": []},
        },
    )
    assert created.status_code == 201, created.text
    flow_id = created.json()["id"]
    page = (await bo.client.get("/flows")).text
    assert "listed-flow" in page
    started = await bo.client.post(f"/flows/{flow_id}/start")
    assert started.status_code == 303
    assert "listed-flow is running" in notice(started.headers["location"])
    running = (await bo.client.get("/flows", params={"status": "running"})).text
    assert "listed-flow" in running
    assert f"/flows/{flow_id}/stop" in running
    stopped = await bo.client.post(f"/flows/{flow_id}/stop")
    assert "listed-flow is stopped" in notice(stopped.headers["location"])
    shown = await bo.api.get(f"{bo.url('runtime')}/v1/workspaces/{WS}/flows/{flow_id}")
    assert shown.json()["status"] == "stopped"
    assert "listed-flow" not in (await bo.client.get("/flows", params={"status": "running"})).text


async def test_unprocessed_messages_filters_detail_retry_delete_and_bulk(bo: Backoffice) -> None:
    flow_id, ids = await fail_messages(bo.api, bo.url("runtime"), 3)
    page = (await bo.client.get("/unprocessed", params={"flow": flow_id})).text
    assert all(message_id in page for message_id in ids)
    assert "not_retryable" in page
    other = (await bo.client.get("/unprocessed", params={"flow": str(uuid.uuid4())})).text
    assert ids[0] not in other
    assert "matches these filters" in other
    bad_date = await bo.client.get("/unprocessed", params={"since": "yesterday"})
    assert bad_date.status_code == 422
    assert "&#39;yesterday&#39; is no date" in bad_date.text  # a page, in words
    assert bad_date.headers["content-type"].startswith("text/html")
    # Empty date inputs are no filter.
    assert (await bo.client.get("/unprocessed", params={"since": "", "flow": ""})).is_success

    detail = (await bo.client.get(f"/unprocessed/{ids[0]}")).text
    assert "Error history" in detail
    assert "attempt 1" in detail
    assert "not retryable" in detail
    assert "ftp://nowhere/" in detail

    deleted = await bo.client.post(f"/unprocessed/{ids[0]}/delete")
    assert deleted.status_code == 303
    gone = await bo.api.get(f"{bo.url('runtime')}/v1/unprocessed-messages/{ids[0]}")
    assert gone.status_code == 404
    assert (await bo.client.get(f"/unprocessed/{ids[0]}")).status_code == 404

    retried = await bo.client.post(
        "/unprocessed/bulk", data={"action": "retry-selected", "ids": [ids[1]]}
    )
    assert "1 message retried" in notice(retried.headers["location"])
    # Matching-everything needs a filter: one stray click never empties the store.
    unfiltered = await bo.client.post("/unprocessed/bulk", data={"action": "delete-matching"})
    assert "Set a filter first" in notice(unfiltered.headers["location"])
    assert (
        await bo.client.post("/unprocessed/bulk", data={"action": "explode-selected"})
    ).status_code == 422

    async def failed_again() -> bool:
        page = await bo.api.get(
            f"{bo.url('runtime')}/v1/unprocessed-messages", params={"flow": flow_id}
        )
        return len(page.json()["items"]) == 2 and ids[1] not in {
            item["id"] for item in page.json()["items"]
        }

    await eventually(failed_again, timeout=30)  # the retried one ran, failed, and was stored anew
    removed = await bo.client.post(
        "/unprocessed/bulk", data={"action": "delete-matching", "flow": flow_id}
    )
    assert "2 messages deleted" in notice(removed.headers["location"])


async def test_deployments_table_add_form_actions_and_refusals(bo: Backoffice) -> None:
    page = (await bo.client.get("/deployments")).text
    assert 'hx-trigger="every 1.0s"' in page  # the statuses refresh by themselves
    for label in ("Name", "Tag", "Image URL", "Docker host", "Token Id", "Token", "Environment"):
        assert f">{label}" in page

    form = {
        "name": "console-dep",
        "image": "127.0.0.1:5000/console/echo",
        "tag": "1.0.0",
        "registry_host": "127.0.0.1:5000",
        "token_id": "modyard",
        "token": "secret-token",
        "env": "GREETING=hello\n# a comment\nEMPTY=",
    }
    bad_env = await bo.client.post("/deployments", data={**form, "env": "no equals sign"})
    assert bad_env.status_code == 422
    assert "line 1: write NAME=value" in bad_env.text
    assert "secret-token" not in bad_env.text  # the token is never echoed back

    bad_image = await bo.client.post("/deployments", data={**form, "image": "UPPER CASE!"})
    assert bad_image.status_code == 422
    assert "/body/image" in bad_image.text

    created = await bo.client.post("/deployments", data=form)
    assert created.status_code == 303, created.text
    rows = await bo.client.get("/deployments", headers={"HX-Request": "true"})
    assert rows.text.lstrip().startswith('<tbody id="deployment-rows"')
    assert "console-dep" in rows.text
    assert "Not Deployed" in rows.text
    taken = await bo.client.post("/deployments", data=form)
    assert taken.status_code == 409

    detail = (await bo.client.get("/deployments/console-dep")).text
    assert "GREETING, EMPTY" in detail or "EMPTY, GREETING" in detail
    assert "secret-token" not in detail
    status = await bo.client.get("/deployments/console-dep", headers={"HX-Request": "true"})
    assert status.text.lstrip().startswith('<dl class="facts" id="deployment-status"')
    logs = await bo.client.get("/deployments/console-dep/logs")
    assert logs.status_code == 200
    assert 'id="logs"' in logs.text

    # Nothing was pushed under that name: the pull fails and the row says Warn, with the reason.
    deployed = await bo.client.post("/deployments/console-dep/deploy", data={"back": "detail"})
    assert deployed.status_code == 303
    assert deployed.headers["location"].startswith("/deployments/console-dep?notice=Deploying")

    async def warned() -> bool:
        rows = await bo.client.get("/deployments", headers={"HX-Request": "true"})
        return 'class="status-warn">Warn</span><span class="reason">: ' in rows.text

    await eventually(warned, timeout=60)
    rows = (await bo.client.get("/deployments", headers={"HX-Request": "true"})).text
    reason = re.search(r'<span class="reason">: ([^<]+)</span>', rows)
    assert reason is not None
    shown = (await bo.api.get(f"{bo.url('deployer')}/v1/deployments/console-dep")).json()
    assert shown["status"] == "warn"
    assert html.unescape(reason.group(1)) == shown["reason"]

    updated = await bo.client.post(
        "/deployments/console-dep/update", data={"tag": "1.0.1", "env": "GREETING=hi"}
    )
    assert updated.status_code == 303
    shown = (await bo.api.get(f"{bo.url('deployer')}/v1/deployments/console-dep")).json()
    assert (shown["tag"], shown["env_names"]) == ("1.0.1", ["GREETING"])

    deleted = await bo.client.post("/deployments/console-dep/delete")
    assert deleted.status_code == 303
    assert "Deleting console-dep" in notice(deleted.headers["location"])

    async def gone() -> bool:
        found = await bo.api.get(f"{bo.url('deployer')}/v1/deployments/console-dep")
        return found.status_code == 404

    await eventually(gone, timeout=30)
    assert (await bo.client.get("/deployments/console-dep")).status_code == 404


async def test_system_webhooks_add_list_deliveries_and_remove(bo: Backoffice) -> None:
    refused = await bo.client.post(
        "/webhooks", data={"url": "not a url", "events": "flow.stopped", "secret": "s" * 16}
    )
    assert refused.status_code == 422
    assert 'class="problem"' in refused.text
    assert "/body/url" in refused.text
    assert "s" * 16 not in refused.text

    added = await bo.client.post(
        "/webhooks",
        data={
            "url": "http://127.0.0.1:9/hooks",
            "events": "flow.stopped, component.error",
            "secret": "a-signing-secret-1234",
            "description": "ops pager",
        },
    )
    assert added.status_code == 303, added.text
    webhook_path = added.headers["location"].split("?")[0]
    listing = (await bo.client.get("/webhooks")).text
    assert "http://127.0.0.1:9/hooks" in listing
    assert "flow.stopped, component.error" in listing

    tested = await bo.client.post(f"{webhook_path}/test")
    assert tested.status_code == 303
    page = (await bo.client.get(webhook_path)).text
    assert "webhook.test" in page

    removed = await bo.client.post(f"{webhook_path}/delete")
    assert removed.status_code == 303
    assert "http://127.0.0.1:9/hooks" not in (await bo.client.get("/webhooks")).text


async def test_a_service_that_does_not_answer_is_a_503_page_naming_it(bo: Backoffice) -> None:
    app = create_app(
        BackofficeSettings(registry_url="http://127.0.0.1:9", installer_url="http://127.0.0.1:9")
    )
    async with in_process(app) as client:
        client.cookies.set(TOKEN_COOKIE, token())
        page = await client.get("/modules")
    assert page.status_code == 503
    assert "http://127.0.0.1:9/ did not answer" in page.text

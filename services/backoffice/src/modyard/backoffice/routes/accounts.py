"""Accounts of the shown workspace (yours: the console acts with your token), the form of each
API-key or password service, "Connect account" for OAuth 2 services, and the operators' OAuth
clients (auth services). See docs/accounts.md.

The OAuth callback comes back from the provider: a cross-site navigation, on which the browser
does not send the console's SameSite=Strict cookie. ``/oauth/callback`` therefore only shows a
page that moves on (same-site) to ``/oauth/finish``, which has the cookie, and finishes the
connection with the signed-in user's token (the installer checks that the state is theirs).
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.console import Console, ConsoleDep
from modyard.backoffice.rendering import problem_words, render
from modyard.sdk.client import ModyardAPIError

router = APIRouter(tags=["accounts"])


async def _installer(console: Console, method: str, path: str, **kwargs: Any) -> Any:
    response = await console.client._request(method, "installer", path, **kwargs)
    return response.json() if response.content else None


async def _page(request: Request, console: Console, **extra: Any) -> Response:
    ws = console.workspace
    try:
        accounts = (await _installer(console, "GET", f"/v1/workspaces/{ws}/accounts"))["items"]
        services = await _installer(console, "GET", f"/v1/workspaces/{ws}/auth-services")
    except ModyardAPIError as exc:
        # A workspace that is gone (or not yours): the page says so, the picker stays usable.
        if exc.status >= 500 or exc.status == 401:
            raise
        accounts, services = [], []
        extra.setdefault("problem", problem_words(exc))
    context = {
        "console": console,
        "accounts": accounts,
        "services": services,
        "values": {},
        **extra,
    }
    return render(request, "accounts/list.html", context, status_code=int(extra.pop("status", 200)))


@router.get("/accounts")
async def list_accounts(request: Request, console: ConsoleDep) -> Response:
    return await _page(request, console)


@router.post("/accounts")
async def add_account(request: Request, console: ConsoleDep) -> Response:
    form = {key: str(value) for key, value in (await request.form()).items()}
    service = form.pop("service", "")
    form.pop("csrf_token", None)
    name = form.pop("name", "").strip()
    credentials = {
        key.removeprefix("field:"): v for key, v in form.items() if key.startswith("field:")
    }
    body: dict[str, Any] = {"service": service, "credentials": credentials}
    if name:
        body["name"] = name
    try:
        created = await _installer(
            console, "POST", f"/v1/workspaces/{console.workspace}/accounts", json=body
        )
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return await _page(request, console, problem=problem_words(exc), status=exc.status)
    notice = quote(f"Added {created['name']} ({service}).")
    return RedirectResponse(f"/accounts?notice={notice}", status_code=303)


@router.post("/accounts/{account_id}/test")
async def test_account(request: Request, account_id: str, console: ConsoleDep) -> Response:
    found = await _installer(
        console, "POST", f"/v1/workspaces/{console.workspace}/accounts/{account_id}/test"
    )
    words = (
        f"{found['account']['name']} works."
        if found["valid"]
        else f"{found['account']['name']} was refused: {found['message']}"
    )
    return RedirectResponse(f"/accounts?notice={quote(words)}", status_code=303)


@router.post("/accounts/{account_id}/delete")
async def delete_account(account_id: str, console: ConsoleDep) -> Response:
    await _installer(console, "DELETE", f"/v1/workspaces/{console.workspace}/accounts/{account_id}")
    return RedirectResponse(f"/accounts?notice={quote('Account deleted.')}", status_code=303)


@router.get("/accounts/connect")
async def connect(request: Request, service: str, console: ConsoleDep) -> Response:
    """ "Connect account": a link, not a form (the console's CSP allows forms to post only to
    itself, redirects included); it sends the browser to the provider's sign-in."""
    try:
        started = await _installer(
            console,
            "POST",
            f"/v1/workspaces/{console.workspace}/accounts/connect",
            json={"service": service, "return_to": "/accounts"},
        )
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return await _page(request, console, problem=problem_words(exc), status=exc.status)
    return RedirectResponse(started["authorize_url"], status_code=303)


@router.get("/oauth/callback")
async def callback(request: Request) -> Response:
    """Where the provider sends the browser back (no cookie here): on to /oauth/finish."""
    names = ("code", "state", "error", "oauth_token", "oauth_verifier")  # OAuth 2, OAuth 1.0a
    query = {key: request.query_params[key] for key in names if key in request.query_params}
    return render(
        request,
        "accounts/oauth_callback.html",
        {
            "console": None,
            "finish": f"/oauth/finish?{urlencode(query)}",
            "error": query.get("error", ""),
        },
    )


@router.get("/oauth/finish")
async def finish(
    request: Request,
    console: ConsoleDep,
    code: str = "",
    state: str = "",
    error: str = "",
    oauth_token: str = "",
    oauth_verifier: str = "",
) -> Response:
    if error or not (code or oauth_verifier):
        words = f"The provider did not connect the account ({error or 'no code'})."
        return RedirectResponse(f"/accounts?notice={quote(words)}", status_code=303)
    ws_state = _workspace_of(state) or console.workspace
    try:
        created = await _installer(
            console,
            "POST",
            f"/v1/workspaces/{ws_state}/accounts/callback",
            json=(
                {"code": code, "state": state}
                if code
                else {"state": state, "oauth_token": oauth_token, "oauth_verifier": oauth_verifier}
            ),
        )
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        return await _page(request, console, problem=problem_words(exc), status=exc.status)
    notice = quote(f"Connected {created['name']} ({created['service']}).")
    back = str(created.get("return_to") or "")
    # Only a path of this console: "//host" and "/\\host" would leave it (an open redirect).
    if not back.startswith("/") or back.startswith(("//", "/\\")):
        back = "/accounts"
    return RedirectResponse(f"{back}?notice={notice}", status_code=303)


def _workspace_of(state: str) -> str | None:
    """The workspace the (signed) state names; the installer checks the signature."""
    try:
        payload = state.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    found = claims.get("ws") if isinstance(claims, dict) else None
    return str(found) if isinstance(found, str) else None


@router.get("/auth-services")
async def auth_services(request: Request, console: ConsoleDep) -> Response:
    clients = await _installer(console, "GET", "/v1/auth-services")
    try:
        services = await _installer(
            console, "GET", f"/v1/workspaces/{console.workspace}/auth-services"
        )
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        services = []
    return render(
        request,
        "accounts/auth_services.html",
        {"console": console, "clients": clients, "services": services, "values": {}},
    )


@router.post("/auth-services")
async def set_auth_service(request: Request, console: ConsoleDep) -> Response:
    form = {key: str(value).strip() for key, value in (await request.form()).items()}
    service = form.get("service", "")
    body = {"client_id": form.get("client_id", ""), "client_secret": form.get("client_secret", "")}
    try:
        await _installer(console, "PUT", f"/v1/auth-services/{quote(service, safe=':')}", json=body)
    except ModyardAPIError as exc:
        if exc.status >= 500 or exc.status == 401:
            raise
        clients = await _installer(console, "GET", "/v1/auth-services")
        return render(
            request,
            "accounts/auth_services.html",
            {
                "console": console,
                "clients": clients,
                "services": [],
                "values": {"service": service, "client_id": body["client_id"]},
                "problem": problem_words(exc),
            },
            status_code=exc.status,
        )
    notice = quote(f"OAuth client of {service} saved.")
    return RedirectResponse(f"/auth-services?notice={notice}", status_code=303)

"""Sign-in (an operator pastes a token), sign-out, and the workspace the console shows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from modyard.backoffice.console import (
    SIGN_IN_REASONS,
    TOKEN_COOKIE,
    WORKSPACE_COOKIE,
    ConsoleDep,
)
from modyard.backoffice.context import SLOT
from modyard.backoffice.rendering import render
from modyard.backoffice.settings import BackofficeSettings
from modyard.common.tokens import TokenError

router = APIRouter(tags=["session"])

NextPath = Annotated[str, Query(max_length=2000)]


def _local(path: str) -> str:
    """Only paths of this site: ``next`` must not send the operator elsewhere."""
    return path if path.startswith("/") and not path.startswith(("//", "/\\")) else "/modules"


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/modules", status_code=303)


@router.get("/sign-in")
async def sign_in_form(
    request: Request,
    next: NextPath = "/modules",
    reason: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    words = SIGN_IN_REASONS.get(reason or "")
    return render(request, "sign_in.html", {"next": _local(next), "reason": words})


@router.post("/sign-in")
async def sign_in(
    request: Request,
    token: Annotated[str, Form(max_length=8192)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/modules",
) -> Response:
    context = SLOT.get(request)
    settings, tokens = context.settings, context.tokens
    token = token.strip().removeprefix("Bearer ").strip()
    error = None
    if not token:
        error = "Paste a token: `modyard token --role operator` prints one."
    else:
        try:
            principal = tokens.principal(token)
        except TokenError as exc:
            error = f"This token was refused: {exc}."
        else:
            if not principal.is_operator:
                error = "This token has no operator role; the console is for operators."
    if error:
        return render(
            request,
            "sign_in.html",
            {"next": _local(next), "error": error},
            status_code=401 if token else 422,
        )
    response = RedirectResponse(_local(next), status_code=303)
    _set_cookie(response, TOKEN_COOKIE, token, settings)
    return response


@router.post("/sign-out")
async def sign_out() -> Response:
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(TOKEN_COOKIE, path="/")
    return response


@router.post("/workspace")
async def choose_workspace(
    request: Request,
    console: ConsoleDep,
    workspace: Annotated[str, Form(min_length=1, max_length=63, pattern=r"^[a-z0-9][a-z0-9-]*$")],
    back: Annotated[str, Form(max_length=2000)] = "/modules",
) -> Response:
    settings = SLOT.get(request).settings
    response = RedirectResponse(_local(back), status_code=303)
    _set_cookie(response, WORKSPACE_COOKIE, workspace, settings)
    return response


def _set_cookie(response: Response, name: str, value: str, settings: BackofficeSettings) -> None:
    """The console's cookies: out of page scripts' reach, never sent by another site's page."""
    response.set_cookie(
        name, value, httponly=True, samesite="strict", secure=settings.secure_cookies, path="/"
    )


@router.get("/workspaces")
async def workspaces(request: Request, console: ConsoleDep) -> Response:
    """The header's workspace picker (loaded by htmx, so that a page never waits for it)."""
    found = await console.client.installer.workspaces()
    names = sorted({item.slug for item in found} | {console.workspace})
    return render(request, "workspace_options.html", {"names": names, "console": console})

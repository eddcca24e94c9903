"""Templates, and the APIs' problems turned into words on the page.

An error from another service keeps its 4xx status (the operator's input was refused, and the
page says why, from the problem's ``detail`` and its ``errors``); a service that fails or does not
answer is a 502 / 503 page naming it, so the operator knows where to look.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from modyard.backoffice.console import SignInRequired, sign_in_path
from modyard.backoffice.context import SLOT
from modyard.backoffice.csrf import csrf_token
from modyard.common.errors import Problem
from modyard.sdk.client import ModyardAPIError

log = structlog.get_logger(__name__)

ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _when(value: Any) -> str:
    """ISO 8601 timestamps as ``2026-11-21 06:40:12 UTC``."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["when"] = _when
# Forms embed it as a hidden field; <body hx-headers> sends it with every htmx request.
templates.env.globals["csrf_token"] = csrf_token


def is_htmx(request: Request) -> bool:
    return request.headers.get("HX-Request") == "true"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    values = {
        "settings": SLOT.get(request).settings,
        "notice": request.query_params.get("notice"),
        **(context or {}),
    }
    return templates.TemplateResponse(
        request, template, values, status_code=status_code, headers=dict(headers or {})
    )


def problem_words(error: ModyardAPIError) -> dict[str, Any]:
    """What the page shows of a problem: its title, detail and each invalid field."""
    problem = error.problem
    errors = [
        {"pointer": str(item.get("pointer", "")), "detail": str(item.get("detail", ""))}
        for item in problem.get("errors") or []
        if isinstance(item, dict)
    ]
    extra = []
    for key in ("chain", "dependents", "flows"):
        value = problem.get(key)
        if isinstance(value, list) and value:
            extra.append(f"{key.capitalize()}: " + "; ".join(str(item) for item in value))
    return {
        "status": error.status,
        "title": str(problem.get("title") or "The request was refused"),
        "detail": error.detail,
        "errors": errors,
        "extra": extra,
    }


def problem_page(request: Request, words: Mapping[str, Any], status_code: int) -> Response:
    template = "problem_fragment.html" if is_htmx(request) else "problem.html"
    # htmx swaps this into the element that asked, instead of the content it expected.
    headers = {"HX-Retarget": "#messages", "HX-Reswap": "innerHTML"} if is_htmx(request) else {}
    return render(request, template, {"problem": words}, status_code=status_code, headers=headers)


async def _on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModyardAPIError)
    if exc.status == 401:
        return _to_sign_in(request, SignInRequired("refused", request.url.path))
    words = problem_words(exc)
    if exc.status >= 500:
        log.warning("upstream_error", status=exc.status, detail=exc.detail, path=request.url.path)
        words["title"] = "Another service failed"
        return problem_page(request, words, 502)
    return problem_page(request, words, exc.status)


async def _on_unreachable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, httpx.TransportError)
    target = str(exc.request.url.copy_with(path="/", query=None)) if exc.request else "a service"
    log.warning("upstream_unreachable", error=repr(exc), path=request.url.path)
    words = {
        "status": 503,
        "title": "A service does not answer",
        "detail": f"{target} did not answer ({type(exc).__name__}). Is it running? Try again.",
        "errors": [],
        "extra": [],
    }
    return problem_page(request, words, 503)


def _to_sign_in(request: Request, exc: SignInRequired) -> Response:
    target = sign_in_path(exc.next_path, exc.reason)
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return _to_sign_in(request, exc)


def _as_page(json_handler: ExceptionHandler) -> ExceptionHandler:
    """The common JSON problem handler, its problem rendered as a page (same status, same
    headers), so that a refused form shows the operator what to change rather than JSON."""

    async def handler(request: Request, exc: Exception) -> Response:
        answer = await json_handler(request, exc)
        try:
            body = json.loads(bytes(answer.body))
        except ValueError:
            return answer
        words = {
            "status": answer.status_code,
            "title": str(body.get("title") or "The request was refused"),
            "detail": str(body.get("detail") or ""),
            "errors": [item for item in body.get("errors") or [] if isinstance(item, dict)],
            "extra": [],
        }
        page = problem_page(request, words, answer.status_code)
        for name in ("allow", "retry-after", "www-authenticate"):
            if name in answer.headers:
                page.headers[name] = answer.headers[name]
        return page

    return handler


def install_page_handlers(app: FastAPI) -> None:
    """Call after ``install_problem_handlers``: its problems become pages."""
    for exc_type in (RequestValidationError, Problem, StarletteHTTPException):
        json_handler = app.exception_handlers[exc_type]
        app.add_exception_handler(exc_type, _as_page(json_handler))  # type: ignore[arg-type]
    app.add_exception_handler(ModyardAPIError, _on_api_error)
    app.add_exception_handler(httpx.TransportError, _on_unreachable)
    app.add_exception_handler(SignInRequired, _on_sign_in_required)

"""Request bodies are capped before they are read, per route.

Every service's routes take at most ``max_request_body_bytes`` (``MODYARD_MAX_REQUEST_BODY_BYTES``
or ``MODYARD_<SERVICE>_MAX_REQUEST_BODY_BYTES``, 1 MiB): JSON bodies are small, and nobody should
make a service buffer more before it knows who is asking. Upload routes declare a bigger cap with
:func:`body_limit`. The cap is enforced on ``receive``, so it costs nothing to a route that never
reads its body (an unauthenticated request answered 401 reads none of it): the first read checks
``Content-Length`` against the cap and refuses before a byte is taken, and every chunk is counted,
so a chunked body or a lying ``Content-Length`` stops at the cap too. The caller gets
``413 payload-too-large`` with the cap in the detail.

The route's cap is looked up on the first read, once routing has put the route in the scope.
``modyard_http_request_body_bytes_total`` counts the bytes the app read, by service.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modyard.common.errors import PayloadTooLarge, problem_response

BODY_BYTES_READ = Counter(
    "modyard_http_request_body_bytes",
    "Request body bytes the app read (after the size cap), by service",
    ["service"],
)

#: The default when an app's settings name no cap (apps built without ``ServiceSettings``).
DEFAULT_MAX_REQUEST_BODY_BYTES = 1024 * 1024

_LIMIT_ATTRIBUTE = "__modyard_body_limit__"

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
#: A route's cap from the app's settings (``app.state.settings``), which only exist at run time.
LimitOf = Callable[[Any], int]


def body_limit(limit: LimitOf) -> Callable[[Endpoint], Endpoint]:
    """Declare an endpoint's body cap (an upload's), instead of the service's default.

    Put it under the route decorator: ``@router.post(...)`` then ``@body_limit(lambda s: ...)``.
    """

    def declare(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _LIMIT_ATTRIBUTE, limit)
        return endpoint

    return declare


class RequestBodyTooLarge(HTTPException):
    """Raised by ``receive`` past the cap. An ``HTTPException`` because FastAPI passes those on
    from reading a body (anything else it turns into 400); answered as a problem by
    :func:`install_body_limit_handler`, or by the middleware when raised outside FastAPI."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413)
        self.limit = limit

    def problem(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The request body is larger than this route takes ({self.limit} bytes); send a "
            "smaller one.",
            limit=self.limit,
        )


def route_limit(scope: Scope) -> int:
    """The cap of the route the scope was routed to, else the service's default."""
    endpoint = getattr(scope.get("route"), "endpoint", None)
    declared: LimitOf | None = getattr(endpoint, _LIMIT_ATTRIBUTE, None)
    app = scope.get("app")
    settings = getattr(getattr(app, "state", None), "settings", None)
    if declared is not None:
        return declared(settings)
    return int(getattr(settings, "max_request_body_bytes", DEFAULT_MAX_REQUEST_BODY_BYTES))


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class _CappedRequest:
    """One request's ``receive`` (capped, counted) and ``send`` (noting the response start).
    One object with two bound methods: this runs on every request, hot paths included."""

    __slots__ = ("_counter", "_limit", "_read", "_receive", "_scope", "_send", "started")

    def __init__(self, scope: Scope, receive: Receive, send: Send, counter: Any) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self._counter = counter
        self._limit: int | None = None
        self._read = 0
        self.started = False

    async def receive(self) -> Message:
        if self._limit is None:
            self._limit = route_limit(self._scope)
            declared = _declared_length(self._scope)
            if declared is not None and declared > self._limit:
                raise RequestBodyTooLarge(self._limit)
        message = await self._receive()
        body = message.get("body")
        if body:
            self._read += len(body)
            self._counter.inc(len(body))
            if self._read > self._limit:
                raise RequestBodyTooLarge(self._limit)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class BodyLimitMiddleware:
    """Caps every HTTP request's body; see the module's docstring."""

    def __init__(self, app: ASGIApp, *, service: str) -> None:
        self.app = app
        self._counter = BODY_BYTES_READ.labels(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _CappedRequest(scope, receive, send, self._counter)
        try:
            await self.app(scope, request.receive, request.send)
        except RequestBodyTooLarge as exc:
            # Raised outside FastAPI's exception handlers (plain ASGI lanes, middleware).
            if request.started:
                raise
            response = problem_response(exc.problem().to_detail(scope["path"]))
            await response(scope, receive, send)


async def _handle_too_large(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestBodyTooLarge)
    return problem_response(exc.problem().to_detail(request.url.path))


def install_body_limit(app: FastAPI, service: str) -> None:
    """The cap on every route of ``app`` and its 413 problem (call before the request-context
    middleware is added, so that the 413 carries the request id and is logged)."""
    app.add_exception_handler(RequestBodyTooLarge, _handle_too_large)
    app.add_middleware(BodyLimitMiddleware, service=service)

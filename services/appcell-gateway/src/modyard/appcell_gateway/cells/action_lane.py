"""The action call, ``POST /v1/cells/{installation}/plugins/{plugin}/actions/{action}``, served as
plain ASGI before FastAPI's routing.

It is the gateway's hot path: the billing system calls it for every action. The gateway's own
work per call (find the action, validate, publish, correlate the reply, validate) is small next
to FastAPI's per-request machinery, which cost about as much again on this path: matching the
path against every route, solving the dependencies, building ``Request`` and ``Response``
objects (see ``benchmarks/gateway.py``). The lane runs inside the request context (request and
correlation ids, the access log, metrics, the 500 answer) and does exactly what the documented
route in ``cells/endpoints.py`` declares: the same path limits, bearer authentication, body model and
problem answers. Every other request goes on to FastAPI.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from modyard.appcell_gateway import json_body
from modyard.appcell_gateway.cells import endpoints as cells
from modyard.appcell_gateway.context import SLOT, GatewayContext
from modyard.appcell_gateway.schemas import ActionCall
from modyard.common.auth import bearer_principal
from modyard.common.errors import Problem, problem_response, validation_problem
from modyard.common.raw_headers import first_values

_ACTION_PATH = re.compile(
    r"/v1/cells/(?P<installation>[^/]+)/plugins/(?P<plugin>[^/]+)/actions/(?P<action>[^/]+)"
)
_JSON_HEADERS = [(b"content-type", b"application/json")]
_IDEMPOTENCY_KEY = TypeAdapter(cells.IdempotencyKey)


#: The two headers the lane reads (the first of each).
_WANTED_HEADERS = (b"authorization", b"idempotency-key")


class ActionCallLane:
    """ASGI middleware answering action calls itself; see the module's docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # The documented route, so that metrics and the access log name its template.
        self._route = next(
            route
            for route in cells.router.routes
            if isinstance(route, APIRoute) and route.endpoint is cells.call_action
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _ACTION_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if match is None:
            await self.app(scope, receive, send)
            return
        app: FastAPI = scope["app"]
        scope["route"] = self._route
        try:
            answer = await self._call(SLOT.of(app), scope, receive, match)
        except ClientDisconnect:
            return  # nobody is waiting for the answer
        except Problem as problem:
            response = problem_response(problem.to_detail(scope["path"]), problem.headers)
            await response(scope, receive, send)
            return
        body = json_body.dumps(answer)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _call(
        self, context: GatewayContext, scope: Scope, receive: Receive, match: re.Match[str]
    ) -> dict[str, Any]:
        # FastAPI's order: authentication first, then every path and body error in one 422.
        authorization, idempotency_key = first_values(scope, _WANTED_HEADERS)
        scheme, _, token = (authorization or "").partition(" ")
        principal = bearer_principal(context.tokens, scheme, token.strip())
        body = await _read_body(receive)
        errors: list[Any] = []
        path = call = None
        try:
            path = cells.ActionPath.model_validate(match.groupdict())
        except ValidationError as exc:
            errors += [{**error, "loc": ("path", *error["loc"])} for error in exc.errors()]
        if idempotency_key is not None:
            try:
                _IDEMPOTENCY_KEY.validate_python(idempotency_key)
            except ValidationError as exc:
                at = ("header", "idempotency-key")
                errors += [{**error, "loc": (*at, *error["loc"])} for error in exc.errors()]
        try:
            call = ActionCall.model_validate_json(body)
        except ValidationError as exc:
            errors += [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        if errors or path is None or call is None:
            raise validation_problem(errors)
        return await cells.run_action_call(context, principal, path, call, idempotency_key)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)

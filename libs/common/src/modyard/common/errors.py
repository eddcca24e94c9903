"""RFC 9457 problem details: the one error format of every modyard API.

Services raise :class:`Problem` subclasses from their logic; the handlers installed by
:func:`install_problem_handlers` turn those, FastAPI's validation errors and Starlette's HTTP errors
into ``application/problem+json``. Anything else is a bug: it is logged with its stack trace and the
caller gets a 500 problem that carries the request id, never the trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from modyard.common.json_pointer import json_pointer
from modyard.common.request_context import current_request_id

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://modyard.dev/problems/"

log = structlog.get_logger(__name__)


class InvalidParam(BaseModel):
    """One failing input field, located by a JSON pointer into the request (or into a file)."""

    pointer: str = Field(description="JSON pointer (RFC 6901) to the field, e.g. /body/name")
    detail: str = Field(description="What is wrong with the field and what to send instead")
    file: str | None = Field(
        default=None, description="For uploads: the file inside the archive the pointer is into"
    )


class ProblemDetail(BaseModel):
    """The body of every error response (RFC 9457)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable URI that identifies the kind of problem")
    title: str = Field(description="Short, human summary of the kind of problem")
    status: int
    detail: str = Field(description="What went wrong in this case and what to change")
    instance: str | None = Field(default=None, description="The request path")
    request_id: str | None = None
    errors: list[InvalidParam] | None = None


def problem_type(slug: str) -> str:
    return PROBLEM_TYPE_BASE + slug


class Problem(Exception):
    """An error a caller can act on. Subclasses fix ``status``, ``slug`` and ``title``."""

    # Class defaults; an instance may narrow them (``slug=``) to say exactly which rule failed.
    status: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: Sequence[InvalidParam] = (),
        headers: dict[str, str] | None = None,
        slug: str | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        if slug is not None:
            self.slug = slug
        self.detail = detail
        self.errors = list(errors)
        self.headers = headers or {}
        self.extensions = extensions

    def to_detail(self, instance: str | None = None) -> ProblemDetail:
        return ProblemDetail(
            type=problem_type(self.slug),
            title=self.title,
            status=self.status,
            detail=self.detail,
            instance=instance,
            request_id=current_request_id(),
            errors=self.errors or None,
            **self.extensions,
        )


class BadRequest(Problem):
    pass


class ValidationFailed(Problem):
    status = 422
    slug = "validation-error"
    title = "The request is not valid"


class Unauthorized(Problem):
    status = 401
    slug = "unauthorized"
    title = "Authentication required"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(
            detail, headers={"WWW-Authenticate": 'Bearer realm="modyard"'}, **extensions
        )


class Forbidden(Problem):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(Problem):
    status = 404
    slug = "not-found"
    title = "Not found"


class Conflict(Problem):
    status = 409
    slug = "conflict"
    title = "Conflict with the current state"


class PayloadTooLarge(Problem):
    status = 413
    slug = "payload-too-large"
    title = "Request body too large"


class ServiceUnavailable(Problem):
    """A dependency (database, broker) is down; the caller may retry later."""

    status = 503
    slug = "service-unavailable"
    title = "Service temporarily unavailable"

    def __init__(self, detail: str, *, retry_after_seconds: int = 5, **extensions: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_seconds)}, **extensions)


def problem_response(problem: ProblemDetail, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=headers,
    )


def _describe(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    if error.get("type") == "missing":
        return "This field is required; add it to the request."
    if error.get("type") == "json_invalid":
        return f"The body is not valid JSON ({error.get('ctx', {}).get('error', message)})."
    return message[0].upper() + message[1:] + "."


async def _handle_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    return problem_response(exc.to_detail(request.url.path), exc.headers)


def validation_problem(errors: Sequence[Any]) -> ValidationFailed:
    """The 422 for pydantic/FastAPI validation errors (``loc`` like ``("body", "name")``)."""
    params = [
        InvalidParam(pointer=json_pointer(*error["loc"]), detail=_describe(error))
        for error in errors
    ]
    fields = ", ".join(param.pointer for param in params)
    problem = ValidationFailed(f"Fix the fields named in 'errors' and retry: {fields}.")
    problem.errors = params
    return problem


async def _handle_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return problem_response(validation_problem(exc.errors()).to_detail(request.url.path))


async def _handle_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = HTTPStatus(exc.status_code)
    slug = status.phrase.lower().replace(" ", "-").replace("'", "")
    detail = exc.detail if isinstance(exc.detail, str) else status.description
    if exc.status_code == 404 and detail == status.phrase:
        detail = f"There is no resource at {request.url.path}; check the path against /docs."
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}; see /docs."
    problem = ProblemDetail(
        type=problem_type(slug),
        title=status.phrase,
        status=exc.status_code,
        detail=detail,
        instance=request.url.path,
        request_id=current_request_id(),
    )
    return problem_response(problem, dict(exc.headers or {}))


def internal_error(path: str) -> JSONResponse:
    """The 500 answer: no trace, no internals, just what to report."""
    problem = ProblemDetail(
        type=problem_type("internal-error"),
        title="Internal error",
        status=500,
        detail="This is a bug in modyard, not in your request. Report it with the request_id.",
        instance=path,
        request_id=current_request_id(),
    )
    return problem_response(problem)


async def _handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Reached only by apps without RequestContextMiddleware, which answers such errors itself.
    log.error("unhandled_error", path=request.url.path, exc_info=exc)
    return internal_error(request.url.path)


#: PostgreSQL's SQLSTATEs for text it cannot store: a NUL character (22P05) or a character
#: outside the database encoding (22021). Both come from what the caller sent.
UNSTORABLE_TEXT_SQLSTATES = frozenset({"22P05", "22021"})


async def _handle_database(request: Request, exc: Exception) -> JSONResponse:
    # PostgreSQL text and jsonb cannot hold U+0000, which JSON and URLs can carry: rather than
    # screen every field of every model, the database's refusal becomes the caller's 422.
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    if sqlstate not in UNSTORABLE_TEXT_SQLSTATES:
        raise exc
    problem = ValidationFailed(
        "The request contains text PostgreSQL cannot store (most likely a NUL character, "
        "\\u0000); remove it and send the request again."
    )
    return await _handle_problem(request, problem)


def install_problem_handlers(app: FastAPI, *, database: bool = True) -> None:
    """``database=False`` for an app that owns no database (the backoffice)."""
    app.add_exception_handler(Problem, _handle_problem)
    if database:
        # Imported here, not at the top: SQLAlchemy is ~150 modules (~10 MiB of a process), and
        # an app without a database would import it for this one exception class.
        from sqlalchemy.exc import DBAPIError

        app.add_exception_handler(DBAPIError, _handle_database)
    app.add_exception_handler(RequestValidationError, _handle_validation)
    app.add_exception_handler(StarletteHTTPException, _handle_http)
    app.add_exception_handler(Exception, _handle_unexpected)


#: OpenAPI ``responses=`` entry that documents the problem body on an endpoint.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ProblemDetail, "content": {PROBLEM_CONTENT_TYPE: {}}},
}

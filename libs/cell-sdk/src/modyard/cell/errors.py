"""Errors a handler raises to answer with a status instead of a result.

The gateway passes 4xx statuses through to its caller and turns the others into 502; the runtime
retries what is ``retryable``. Any other exception is a 500 that is not retryable, with its
message (never its traceback) in the answer.
"""

from __future__ import annotations

from typing import Any


class CellError(Exception):
    status: int = 500
    retryable: bool = False

    def __init__(
        self, message: str, *, status: int | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if retryable is not None:
            self.retryable = retryable

    def as_reply(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "status": self.status, "retryable": self.retryable}
        }


class InvalidRequest(CellError):
    """The request cannot succeed as sent (422)."""

    status = 422


class NotFound(CellError):
    """The vendor has no such resource (404)."""

    status = 404


class Conflict(CellError):
    """The vendor refuses because of the resource's state, e.g. a domain already taken (409)."""

    status = 409


class Unauthorized(CellError):
    """The vendor refused the installation's credentials (the settings are wrong) (401)."""

    status = 401


class VendorUnavailable(CellError):
    """The vendor is down or slow; trying again later may work (503, retryable)."""

    status = 503
    retryable = True

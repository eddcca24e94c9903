"""The gateway's problems (RFC 9457), one slug per way a request can end badly."""

from __future__ import annotations

from modyard.common.errors import Problem, ServiceUnavailable


class CellNotFound(Problem):
    status = 404
    slug = "cell-not-found"
    title = "No such cell"


class ActionNotFound(Problem):
    status = 404
    slug = "action-not-found"
    title = "The cell has no such plugin action"


class CellNotReady(Problem):
    status = 409
    slug = "cell-not-ready"
    title = "The cell cannot take requests"


class SecurityRefused(Problem):
    status = 403
    slug = "action-forbidden"
    title = "The action's security refuses this caller"


class WorkspaceRefused(Problem):
    """The cell belongs to a workspace the caller's token does not name."""

    status = 403
    slug = "workspace-forbidden"
    title = "The cell belongs to another workspace"


class InvalidPayload(Problem):
    status = 422
    slug = "invalid-payload"
    title = "The payload does not match the action's schema"


class InvalidCellResult(Problem):
    status = 502
    slug = "invalid-cell-result"
    title = "The cell answered outside its result schema"


class CellFailed(Problem):
    """The cell answered with an error; 4xx statuses it names pass through, others are 502."""

    status = 502
    slug = "cell-error"
    title = "The cell reported an error"


class CellTimeout(Problem):
    status = 504
    slug = "cell-timeout"
    title = "The cell did not answer in time"


class CellUnavailable(ServiceUnavailable):
    status = 503
    slug = "cell-unavailable"
    title = "The cell cannot be reached"

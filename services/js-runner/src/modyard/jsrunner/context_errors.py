"""The error a persistent context member answers a component with."""

from __future__ import annotations


class ContextError(Exception):
    """A context member refused: the component's promise rejects with ``message`` and ``code``
    (``ERR_CONTEXT_LIMIT``, ``ERR_NOT_SUPPORTED``, ``ERR_BAD_OPTION`` are not retried)."""

    def __init__(self, message: str, code: str = "ERR_CONTEXT") -> None:
        super().__init__(message)
        self.message = message
        self.code = code

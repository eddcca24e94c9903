"""Calls into a module's ``auth.js``, for the installer's accounts (docs/accounts.md).

The installer cannot read auth.js (it is code): it asks the runner, which loads the module
version as it does for components and runs the call in the same sandboxed child, under the
same egress policy (``context.httpRequest`` passes the deployment's policy and the workspace's
allow-list). The credentials travel in the request body only; nothing here logs them.

Methods (node/auth_calls.js): ``describe`` (the auth type, the form's fields, OAuth endpoints
given as values), ``connect`` (``validate`` then the account name), ``test``, and ``call`` (one
function member, e.g. ``requestAccessToken`` for a connector that computes it).
"""

from __future__ import annotations

import uuid
from pathlib import Path, PurePosixPath
from typing import Any, Final, Literal

import structlog
from pydantic import BaseModel, Field

from modyard.jsrunner.context_api import CallScope
from modyard.jsrunner.modules import ModuleUnavailable
from modyard.jsrunner.runner import JsRunner, allowance_of
from modyard.jsrunner.sandbox import SandboxFailure

log = structlog.get_logger(__name__)

AuthMethod = Literal[
    "describe", "connect", "test", "authorize", "token", "oauth1-start", "oauth1-finish", "call"
]
#: Function members the installer may call by name.
CALLABLE: Final = frozenset(
    {"requestAccessToken", "refreshAccessToken", "authUrl", "requestProfileInfo"}
)


class AuthCall(BaseModel):
    module: str = Field(min_length=1, max_length=255)
    version: str = Field(min_length=1, max_length=128)
    #: The auth.js file, relative to the module's root (the manifest's ``extra.auth[].path``).
    path: str = Field(min_length=1, max_length=512, pattern=r"(^|/)auth\.js$")
    method: AuthMethod
    #: For ``call``: the member to call.
    member: str | None = None
    #: What auth.js's functions get as ``context`` (credentials, tokens, ``profileInfo``…).
    context: dict[str, Any] = Field(default_factory=dict)
    #: What a definition written as a function gets (``clientId``, ``clientSecret``,
    #: ``callbackUrl``).
    init_data: dict[str, Any] = Field(default_factory=dict)
    workspace: str = ""
    #: The workspace's egress allow-list (``{"cidrs", "hosts"}``), as for component calls.
    egress: dict[str, Any] | None = None


class AuthAnswer(BaseModel):
    ok: bool
    result: dict[str, Any] | None = None
    #: The vendor's (or auth.js's) message when ``ok`` is false.
    message: str | None = None
    #: The HTTP status the vendor answered, when the failure was one.
    status: int | None = None
    #: Whether waiting may help (the runner or the module could not run it now).
    retryable: bool = False


def _entry(directory: Path, path: str) -> Path | None:
    relative = PurePosixPath(path)
    if relative.is_absolute() or ".." in relative.parts:
        return None
    return directory / relative


async def run(runner: JsRunner, call: AuthCall) -> AuthAnswer:
    """The answer of one auth.js call; the module's own failures are answers, not raises."""
    if call.method == "call" and call.member not in CALLABLE:
        return AuthAnswer(ok=False, message=f"auth.js member {call.member!r} is not callable here")
    try:
        module = await runner.store.get(call.module, call.version)
    except ModuleUnavailable as exc:
        return AuthAnswer(ok=False, message=exc.message, retryable=exc.retryable)
    entry = _entry(module.directory, call.path)
    if entry is None or not entry.is_file():
        return AuthAnswer(ok=False, message=f"{call.module} {call.version} has no {call.path}")
    scope = CallScope(
        workspace=call.workspace,
        flow_id="",
        node_id="",
        module=call.module,
        component="auth",
        message_id=uuid.uuid4().hex,
    )
    frame = {
        "entry": str(entry),
        "method": "auth",
        "authMethod": call.method,
        "member": call.member,
        "context": call.context,
        "initData": call.init_data,
    }
    try:
        child = await runner.pool.child(runner.spec(module))
        answer, _logs = await child.call(
            frame, scope, allowance=allowance_of(call.egress), workspace=call.workspace
        )
    except SandboxFailure as exc:
        return AuthAnswer(ok=False, message=exc.message, retryable=exc.retryable)
    finally:
        if runner.context_api is not None:
            await runner.context_api.finish(scope, succeeded=True)
    if answer.get("t") == "done":
        results = (answer.get("outputs") or {}).get("auth") or [{}]
        return AuthAnswer(ok=True, result=results[0] if isinstance(results[0], dict) else {})
    found = answer.get("error")
    error: dict[str, Any] = found if isinstance(found, dict) else {}
    status = error.get("status")
    log.info("auth_call_refused", module=call.module, method=call.method, status=status)
    return AuthAnswer(
        ok=False,
        message=str(error.get("message") or "auth.js failed"),
        status=status if isinstance(status, int) else None,
    )

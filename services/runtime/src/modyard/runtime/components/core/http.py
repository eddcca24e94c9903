"""``core.http``: sends an HTTP request and passes the answer on.

Properties:

- ``method``: ``GET`` (the default), ``POST``, ``PUT``, ``PATCH``, ``DELETE``, ``HEAD``,
  ``OPTIONS``.
- ``url``: a template rendered as text; after rendering it must be an ``http``/``https`` URL with
  a host (anything else — ``ftp:``, ``file:``, a relative path — fails and is not retried).
- ``headers``, ``query``: ``{name: template}``, rendered as text; query values are URL-encoded
  and added to the URL's own query.
- ``body``: a template. Absent or rendering to ``null``: no body; a string: sent as text
  (``text/plain; charset=utf-8`` unless a ``Content-Type`` header says otherwise); anything else
  is sent as JSON.
- ``timeout_seconds``: the whole exchange, 10 by default, at most 300.
- ``expect_json``: the answer's body must be JSON (a 2xx answer that is not fails, not retried).
- ``follow_redirects``: true by default (at most :data:`MAX_REDIRECTS`).

A 2xx answer goes out on ``out`` as ``{status, headers, body}``: header names in lower case,
repeated headers joined with ``", "``; the body is JSON when ``expect_json`` is set or the
``Content-Type`` says JSON (text when such a body does not parse and ``expect_json`` is not set),
otherwise text in the answer's charset (UTF-8 by default), ``None`` when empty. Bodies larger
than :data:`MAX_RESPONSE_BYTES` fail (not retried).

Any other answer raises a ``ComponentError`` classified by :mod:`modyard.runtime.failures`
(5xx, 408, 425 and 429 are retried; a ``Retry-After`` header is passed on as
``details["retry_after_seconds"]``). Timeouts, refused or reset connections and DNS failures are
retried. Error messages name the URL without its query and user info, which may hold
credentials.

Every request passes the egress policy (:mod:`modyard.common.egress`, the runtime's gate in
:mod:`modyard.runtime.egress.gate`): the URL and every redirect hop are checked, host names are
resolved once and only allowed addresses connected to, the workspace's allow-list applies. A
refused destination fails without retry (``details["kind"] == "egress-refused"`` with the
problem type and the rule), logged with the workspace, flow and node. A fixed URL that no
allow-list could open (``user:pass@``, a numeric IPv4 spelling, a metadata name, the
platform's own endpoints) is refused when the flow starts.

The gate's clients are shared by every request (connection reuse; one client per effective
allow-list, so a connection opened under one workspace's list is never reused under another).
They keep no cookies: one flow's cookies must never reach another flow's requests. aiohttp
rather than httpx because this is the runtime's hot path: an exchange costs about a tenth of the
CPU time. Tests give a component its own gate (e.g. with a resolver that fails).
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
from collections.abc import Mapping
from typing import Any, ClassVar, Final

import aiohttp
from yarl import URL

from modyard.common.egress.policy import EgressRefused
from modyard.common.json_pointer import escape_token
from modyard.common.templates import TemplateError, is_template
from modyard.runtime.components.base import ComponentError, ExecutionContext, Outputs
from modyard.runtime.components.core._shared import (
    JSON_SCHEMA_DIALECT,
    CoreComponent,
    scope_for,
)
from modyard.runtime.egress import gate
from modyard.runtime.failures import (
    KIND_INVALID_REQUEST,
    KIND_VALIDATION,
    classify_exception,
    retry_after_seconds,
    status_error,
)

METHODS: Final = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
DEFAULT_TIMEOUT_SECONDS: Final = 10.0
MAX_TIMEOUT_SECONDS: Final = 300
MAX_REDIRECTS: Final = 5
#: A larger 2xx body fails: messages travel through the broker and the database.
MAX_RESPONSE_BYTES: Final = 10 * 1024 * 1024
#: How much of a failing answer's body is read and kept in the error's details.
ERROR_BODY_BYTES: Final = 4096
USER_AGENT: Final = gate.USER_AGENT
#: Egress rules no allow-list lifts: a fixed URL they refuse is refused when the flow starts.
REFUSED_WHATEVER_ALLOWED: Final = frozenset(
    {"url", "scheme", "userinfo", "ip-spelling", "metadata", "platform-endpoint"}
)
_CHUNK_BYTES: Final = 64 * 1024
# RFC 9110 token characters: a header name outside them would break the request line's framing.
_HEADER_NAME: Final = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"
_URL_START: Final = r"^([hH][tT][tT][pP][sS]?://|\{\{)"


def _invalid_request(message: str) -> ComponentError:
    return ComponentError(message, retryable=False, details={"kind": KIND_INVALID_REQUEST})


def _shown(url: URL) -> str:
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _checked_url(text: str) -> URL:
    """``text`` as an http(s) URL with a host; ``ValueError`` otherwise."""
    try:
        url = URL(text)
        host = url.host
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the URL is not valid: {exc}") from None
    if url.scheme not in ("http", "https") or not host:
        raise ValueError(
            f"only http and https URLs with a host can be requested, not {text[:100]!r}"
        )
    return url


def _is_json_type(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def _reject_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which JSON (and the broker's messages) cannot carry.
    raise ValueError(f"{name} is not JSON")


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("the JSON nests too deep") from None


def _text(content: bytes, charset: str | None) -> str:
    """The body decoded in the answer's charset: UTF-8 when it names none or one Python lacks."""
    encoding = "utf-8"
    if charset:
        with contextlib.suppress(LookupError):
            encoding = codecs.lookup(charset).name
    return content.decode(encoding, errors="replace")


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Header names in lower case; a repeated header's values joined with ", " (RFC 9110)."""
    headers: dict[str, str] = {}
    for name, value in response.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def request_options(headers: dict[str, str], body: Any) -> dict[str, Any]:
    """aiohttp's request options for ``body``: text as UTF-8 (``text/plain`` unless the headers
    say otherwise), anything else but None as JSON."""
    options: dict[str, Any] = {"headers": headers}
    if isinstance(body, str):
        options["data"] = body.encode()
        if not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "text/plain; charset=utf-8"
    elif body is not None:
        options["json"] = body
    return options


async def read_body(response: aiohttp.ClientResponse, limit: int, *, truncate: bool) -> bytes:
    """Up to ``limit`` bytes of the body: more is cut (``truncate``) or an error."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(_CHUNK_BYTES):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            if truncate:
                return b"".join(chunks)[:limit]
            raise ComponentError(
                f"the answer's body is larger than {limit} bytes",
                retryable=False,
                status=response.status,
                details={"kind": KIND_VALIDATION},
            )
    return b"".join(chunks)


class HttpComponent(CoreComponent):
    name: ClassVar[str] = "core.http"
    properties_schema: ClassVar[dict[str, Any]] = {
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": {
            "method": {"enum": list(METHODS), "default": "GET"},
            "url": {"type": "string", "minLength": 1, "maxLength": 8192, "pattern": _URL_START},
            "headers": {
                "type": "object",
                "propertyNames": {"pattern": _HEADER_NAME, "maxLength": 256},
                "additionalProperties": {"type": "string", "maxLength": 8192},
            },
            "query": {
                "type": "object",
                "propertyNames": {"minLength": 1, "maxLength": 256},
                "additionalProperties": {"type": "string", "maxLength": 8192},
            },
            "body": {"description": "a template: text is sent as text, anything else as JSON"},
            "timeout_seconds": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": MAX_TIMEOUT_SECONDS,
                "default": DEFAULT_TIMEOUT_SECONDS,
            },
            "expect_json": {"type": "boolean", "default": False},
            "follow_redirects": {"type": "boolean", "default": True},
        },
        "required": ["url"],
        "additionalProperties": False,
    }
    out_ports: ClassVar[tuple[str, ...]] = ("out",)
    template_properties: ClassVar[tuple[str, ...]] = ("url", "headers", "query", "body")

    def __init__(self, egress: gate.RuntimeEgress | None = None) -> None:
        self._egress = egress

    @property
    def egress(self) -> gate.RuntimeEgress:
        """Its own gate if it was given one, else the runtime's."""
        return self._egress or gate.current()

    def check(self, properties: Mapping[str, Any]) -> None:
        super().check(properties)
        url = properties.get("url")
        if isinstance(url, str) and not is_template(url):
            # A fixed URL can be refused when the flow starts rather than on every message.
            try:
                self.egress.policy.check_url(_checked_url(url))
            except ValueError as exc:
                raise TemplateError(str(exc), pointer="/url") from None
            except EgressRefused as exc:
                if exc.rule in REFUSED_WHATEVER_ALLOWED:
                    raise TemplateError(
                        f"{exc.detail} (egress rule {exc.rule})", pointer="/url"
                    ) from None

    async def aclose(self) -> None:
        """Close the clients of its gate (the runtime's when it has none of its own)."""
        await self.egress.aclose()

    def _request(self, context: ExecutionContext, payload: Any) -> tuple[str, URL, dict[str, Any]]:
        properties = self.properties(context)
        scope = scope_for(context, payload)
        method: str = properties.get("method", "GET")
        try:
            url = _checked_url(self.render_text(properties["url"], scope, "/url"))
        except ValueError as exc:
            raise _invalid_request(str(exc)) from None
        query = {
            name: self.render_text(value, scope, f"/query/{escape_token(name)}")
            for name, value in properties.get("query", {}).items()
        }
        if query:
            url = url.extend_query(query)
        headers = {
            name: self.render_text(value, scope, f"/headers/{escape_token(name)}")
            for name, value in properties.get("headers", {}).items()
        }
        for name, value in headers.items():
            # A rendered value with a line break would smuggle in headers of the payload's choice.
            if any(char in value for char in "\r\n\0"):
                raise _invalid_request(f"the {name} header has a line break or a NUL character")
        body = self.render(properties.get("body"), scope, "/body")
        return method, url, request_options(headers, body)

    async def run(self, context: ExecutionContext, port: str, payload: Any) -> Outputs:
        method, url, options = self._request(context, payload)
        properties = context.properties
        timeout = float(properties.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS))
        expect_json = bool(properties.get("expect_json", False))
        try:
            client = await self.egress.client(context.workspace)
            # The whole exchange, body included, so that a server dripping a byte at a time
            # cannot hold the node forever.
            async with asyncio.timeout(timeout):
                async with client.request(
                    method,
                    url,
                    follow_redirects=bool(properties.get("follow_redirects", True)),
                    max_redirects=MAX_REDIRECTS,
                    **options,
                ) as response:
                    success = 200 <= response.status < 300
                    limit = MAX_RESPONSE_BYTES if success else ERROR_BODY_BYTES
                    content = await read_body(response, limit, truncate=not success)
        except ComponentError:
            raise
        except EgressRefused as exc:
            raise gate.refused(
                exc,
                workspace=context.workspace,
                flow=context.flow_id,
                node=context.node_id,
                url=_shown(url),
            ) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            error = classify_exception(exc)
            error.message = f"{method} {_shown(url)} failed: {error.message}"
            error.args = (error.message,)
            raise error from exc
        text = _text(content, response.charset)
        headers = _headers(response)
        if not success:
            raise self._status_error(method, url, response, headers, text)
        return {
            "out": [
                {
                    "status": response.status,
                    "headers": headers,
                    "body": self._body(response.status, headers, text, expect_json),
                }
            ]
        }

    @staticmethod
    def _status_error(
        method: str,
        url: URL,
        response: aiohttp.ClientResponse,
        headers: Mapping[str, str],
        text: str,
    ) -> ComponentError:
        status = response.status
        shown = _shown(url)  # yarl builds a URL for each of its with_*: once per failure
        details: dict[str, Any] = {"url": shown, "body": text}
        retry_after = retry_after_seconds(headers.get("retry-after"))
        if retry_after is not None:
            details["retry_after_seconds"] = retry_after
        reason = f" {response.reason}" if response.reason else ""
        return status_error(status, f"{method} {shown} answered {status}{reason}", details=details)

    @staticmethod
    def _body(status: int, headers: Mapping[str, str], text: str, expect_json: bool) -> Any:
        if not text:
            return None
        if expect_json or _is_json_type(headers.get("content-type", "")):
            try:
                return _parse_json(text)
            except ValueError as exc:
                if expect_json:
                    raise ComponentError(
                        f"the answer is not JSON: {exc}",
                        retryable=False,
                        status=status,
                        details={"kind": KIND_VALIDATION},
                    ) from None
        return text


__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "MAX_RESPONSE_BYTES",
    "METHODS",
    "HttpComponent",
    "read_body",
]

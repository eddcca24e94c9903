"""The ``fetch`` instruction's HTTP exchange, on ``core.http``'s client and answer handling.

URL checks, size caps, header folding and body decoding are ``core.http``'s own helpers, so that
an automation and a flow read the same answer the same way. Unlike ``core.http``, a non-2xx answer
is not an error: like Prisme.ai, the automation gets the answer (``outputMode:
detailed_response`` gives ``{status, headers, body}``) and decides.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
from yarl import URL

from modyard.runtime.components.base import ComponentError
from modyard.runtime.components.core import http as core_http
from modyard.runtime.components.core.http import (  # shared, not copied (see module doc)
    MAX_REDIRECTS,
    MAX_RESPONSE_BYTES,
    _checked_url,
    _headers,
    _is_json_type,
    _parse_json,
    _shown,
    _text,
    read_body,
)


@dataclass(frozen=True)
class FetchAnswer:
    status: int
    headers: dict[str, str]
    body: Any


class FetchFailed(Exception):
    """The exchange did not happen (bad URL, refused, timed out, too large)."""


def checked_url(text: str) -> URL:
    try:
        return _checked_url(text)
    except ValueError as exc:
        raise FetchFailed(str(exc)) from None


class Fetcher:
    """One shared client for every automation of the process (connection reuse, no cookies)."""

    def __init__(self) -> None:
        self._client: aiohttp.ClientSession | None = None

    async def client(self) -> aiohttp.ClientSession:
        if self._client is None or self._client.closed:
            self._client = core_http.client_factory()
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def __call__(
        self,
        method: str,
        url: URL,
        *,
        headers: dict[str, str],
        body: Any,
        timeout: float,
    ) -> FetchAnswer:
        options = core_http.request_options(headers, body)
        client = await self.client()
        try:
            async with asyncio.timeout(timeout):
                async with client.request(
                    method, url, max_redirects=MAX_REDIRECTS, **options
                ) as response:
                    content = await read_body(response, MAX_RESPONSE_BYTES, truncate=False)
        except ComponentError as exc:
            raise FetchFailed(f"{method} {_shown(url)}: {exc.message}") from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise FetchFailed(f"{method} {_shown(url)} failed: {reason}") from None
        answer_headers = _headers(response)
        text = _text(content, response.charset)
        body_out: Any = text or None
        if text and _is_json_type(answer_headers.get("content-type", "")):
            try:
                body_out = _parse_json(text)
            except ValueError:
                body_out = text
        return FetchAnswer(response.status, answer_headers, body_out)

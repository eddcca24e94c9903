"""The ``fetch`` instruction's HTTP exchange, on ``core.http``'s client and answer handling.

URL checks, size caps, header folding and body decoding are ``core.http``'s own helpers, so that
an automation and a flow read the same answer the same way. Unlike ``core.http``, a non-2xx answer
is not an error: like Prisme.ai, the automation gets the answer (``outputMode:
detailed_response`` gives ``{status, headers, body}``) and decides.

Like ``core.http``, every fetch passes the egress policy through the runtime's gate (the
workspace's allow-list included; every redirect hop checked, host names resolved once). A refused
destination is a :class:`FetchFailed` naming the rule (the run's problem is ``egress-refused``), never
retried, logged with the workspace and the automation.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from yarl import URL

from modyard.common.egress.policy import EgressRefused
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
from modyard.runtime.egress import gate

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class FetchAnswer:
    status: int
    headers: dict[str, str]
    body: Any


class FetchFailed(Exception):
    """The exchange did not happen (bad URL, refused, timed out, too large)."""

    def __init__(self, message: str, *, status: int = 502, rule: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        #: The egress rule that refused the destination, if that is why.
        self.rule = rule


def checked_url(text: str) -> URL:
    try:
        return _checked_url(text)
    except ValueError as exc:
        raise FetchFailed(str(exc)) from None


class Fetcher:
    """Fetches through an egress gate's clients, shared by every automation of the process
    (connection reuse, no cookies); the runtime's gate unless given one."""

    def __init__(self, egress: gate.RuntimeEgress | None = None) -> None:
        self._egress = egress

    @property
    def egress(self) -> gate.RuntimeEgress:
        return self._egress or gate.current()

    async def aclose(self) -> None:
        await gate.release(self._egress)

    async def __call__(
        self,
        method: str,
        url: URL,
        *,
        headers: dict[str, str],
        body: Any,
        timeout: float,
        workspace: str | None = None,
        automation: str | None = None,
    ) -> FetchAnswer:
        options = core_http.request_options(headers, body)
        try:
            client = await self.egress.client(workspace)
            async with asyncio.timeout(timeout):
                async with client.request(
                    method, url, max_redirects=MAX_REDIRECTS, **options
                ) as response:
                    content = await read_body(response, MAX_RESPONSE_BYTES, truncate=False)
        except EgressRefused as exc:
            log.warning(
                "egress_refused",
                rule=exc.rule,
                detail=exc.detail,
                workspace=workspace,
                automation=automation,
                url=_shown(url),
            )
            raise FetchFailed(
                f"{method} {_shown(url)} refused by the egress policy (rule {exc.rule}): "
                f"{exc.detail}",
                status=422,
                rule=exc.rule,
            ) from None
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

"""``context.httpRequest``, performed by the supervisor under the platform's egress policy.

The child has no network: its request arrives as a frame, and this side sends it with an
:class:`~modyard.common.egress.aiohttp_client.EgressClients` client (private ranges and the
platform's own endpoints refused after DNS and on every redirect, unless allowed), with a time
cap and a response size cap, and logs one audit line per request (method, host, status, size,
time; never headers or bodies).
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import aiohttp
import structlog
from yarl import URL

from modyard.common.egress.aiohttp_client import EgressClients
from modyard.common.egress.policy import Allowance, EgressPolicy, EgressRefused
from modyard.jsrunner.settings import JsRunnerSettings

log = structlog.get_logger(__name__)

_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
#: Hop-by-hop headers a component may not set.
_DROPPED = frozenset({"host", "content-length", "transfer-encoding", "connection"})


def _error(message: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "code": code}}


def _network_code(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "ETIMEDOUT"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "ENOTFOUND"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "ECONNREFUSED"
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return "ECONNRESET"
    return "ERR_NETWORK"


class HttpBridge:
    def __init__(self, settings: JsRunnerSettings, policy: EgressPolicy | None = None) -> None:
        self._settings = settings
        self.clients = EgressClients(policy or EgressPolicy.from_settings(settings))

    async def perform(
        self, request: dict[str, Any], *, module: str, allowance: Allowance | None = None
    ) -> dict[str, Any]:
        method = str(request.get("method") or "GET").upper()
        if method not in _METHODS:
            return _error(f"httpRequest method {method!r} is not supported", "ERR_BAD_OPTION")
        try:
            url = URL(str(request.get("url") or ""))
            params = request.get("params")
            if isinstance(params, dict) and params:
                url = url.update_query({str(k): str(v) for k, v in params.items() if v is not None})
        except (TypeError, ValueError) as exc:
            return _error(f"httpRequest url is not a URL: {exc}", "ERR_INVALID_URL")
        headers = {
            str(k): str(v)
            for k, v in (request.get("headers") or {}).items()
            if str(k).lower() not in _DROPPED and v is not None
        }
        data = request.get("data")
        body: bytes | None = None
        raw = request.get("dataBase64")
        if isinstance(raw, str):
            # Bytes the child serialized (a Buffer, a stream, form-data's multipart body).
            try:
                body = base64.b64decode(raw, validate=True)
            except ValueError:
                return _error("httpRequest body bytes are not base64", "ERR_BAD_OPTION")
        elif isinstance(data, str):
            body = data.encode()
        elif data is not None:
            body = json.dumps(data).encode()
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        if body is not None and len(body) > self._settings.http_max_request_bytes:
            return _error("httpRequest body is larger than the runner allows", "ERR_BAD_REQUEST")
        asked = request.get("timeout")
        timeout = self._settings.http_timeout_seconds
        if isinstance(asked, int | float) and asked > 0:
            timeout = min(timeout, asked / 1000)
        began = time.perf_counter()
        status: int | str = "-"
        size = 0
        try:
            # The calling workspace's allow-list widens the deployment's policy for this call.
            client = self.clients.client(allowance)
            async with (
                client.request(
                    method,
                    url,
                    headers=headers,
                    data=body,
                    timeout=aiohttp.ClientTimeout(total=timeout),
                    # Slingr's `settings.followRedirects: false` (docs/slingr.md): the 3xx as is.
                    follow_redirects=request.get("followRedirects") is not False,
                ) as response,
            ):
                status = response.status
                chunks = []
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > self._settings.http_max_response_bytes:
                        return _error(
                            f"the response is larger than {self._settings.http_max_response_bytes}"
                            " bytes, the most httpRequest reads",
                            "ERR_RESPONSE_TOO_LARGE",
                        )
                    chunks.append(chunk)
                content = b"".join(chunks)
                answer: dict[str, Any] = {
                    "status": response.status,
                    "statusText": response.reason or "",
                    "headers": {k.lower(): v for k, v in response.headers.items()},
                }
                if request.get("binary"):
                    # responseType arraybuffer / blob / stream: the bytes as they came.
                    answer["bodyBase64"] = base64.b64encode(content).decode("ascii")
                else:
                    charset = response.charset or "utf-8"
                    answer["body"] = content.decode(charset, errors="replace")
                return {"response": answer}
        except EgressRefused as exc:
            status = "refused"
            return {"error": {"message": exc.detail, "code": "EGRESS_REFUSED", "rule": exc.rule}}
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            status = "failed"
            return _error(f"{method} {url.with_query(None)} failed: {exc}", _network_code(exc))
        finally:
            log.info(
                "js_http_request",
                module=module,
                method=method,
                host=url.host,
                port=url.port,
                status=status,
                bytes=size,
                ms=round((time.perf_counter() - began) * 1000, 1),
            )

    async def perform_for(
        self, request: dict[str, Any], module: str, allowance: Allowance | None = None
    ) -> dict[str, Any]:
        """:meth:`perform` as a child's :data:`~modyard.jsrunner.sandbox.HttpHandler`."""
        return await self.perform(request, module=module, allowance=allowance)

    async def aclose(self) -> None:
        await self.clients.aclose()

"""``HTTP(S)_PROXY`` for the npm SDKs a module brings (axios, request, googleapis…).

A child has no route out of its network namespace, so an SDK's own socket fails closed. SDKs
honour ``HTTP_PROXY``/``HTTPS_PROXY``; the child's bootstrap (``node/proxy.js``) brings up the
namespace's loopback, listens on ``127.0.0.1:<port>`` there, sets those variables, and pipes
every connection to a Unix socket this side serves for that child (one socket per child, in
``<cache>/run``; a path crosses network namespaces, a TCP port does not).

This side is a small forward proxy performing what arrives under the platform's egress policy:

- ``CONNECT host:port`` (request, googleapis/gaxios, ``https-proxy-agent``): the name resolved
  here, every address checked (private ranges, the platform's own endpoints, ports), the tunnel
  opened to the checked address only (no DNS rebinding), then spliced with a byte cap and a time
  cap;
- an absolute-form request (``GET http://…`` and axios's ``GET https://…``, which axios sends to
  the proxy in plain text instead of tunnelling): performed with the same
  :class:`~modyard.common.egress.aiohttp_client.EgressClients` as ``context.httpRequest``
  (redirects are the SDK's business: each comes back through here).

A refusal is answered ``403`` with the rule (header ``X-Modyard-Egress-Rule`` and an RFC 9457
body), so the SDK fails with a status it does not retry. One audit line per request or tunnel
(``js_proxy_request``: module, method, host, port, status, bytes, ms; never headers or bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import aiohttp
import structlog
from yarl import URL

from modyard.common.egress.aiohttp_client import EgressClients
from modyard.common.egress.policy import Allowance, EgressPolicy, EgressRefused
from modyard.jsrunner.settings import JsRunnerSettings

log = structlog.get_logger(__name__)

_MAX_HEAD: Final = 64 * 1024
#: Headers that belong to one hop (RFC 9110 7.6.1) and never cross the proxy.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})


class _ProxyError(Exception):
    def __init__(self, status: int, reason: str, detail: str, rule: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail, self.rule = status, reason, detail, rule


def _answer(error: _ProxyError) -> bytes:
    body = json.dumps(
        {
            "type": "about:blank" if error.rule is None else "https://modyard.dev/problems/egress",
            "title": error.reason,
            "status": error.status,
            "detail": error.detail,
            **({"rule": error.rule} if error.rule else {}),
        }
    ).encode()
    head = [
        f"HTTP/1.1 {error.status} {error.reason}",
        "Content-Type: application/problem+json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if error.rule:
        head.append(f"X-Modyard-Egress-Rule: {error.rule}")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def _refused(exc: EgressRefused) -> _ProxyError:
    return _ProxyError(403, "Forbidden", exc.detail, exc.rule)


class EgressProxy:
    """The proxy of one child: its Unix socket, served until :meth:`close`."""

    def __init__(
        self,
        settings: JsRunnerSettings,
        clients: EgressClients,
        *,
        module: str,
        path: Path,
        allowance: Callable[[], Allowance | None],
    ) -> None:
        self._settings = settings
        self._clients = clients
        self._module = module
        self.path = path
        #: The workspace allowance in force now (see ``Child.proxy_allowance``).
        self._allowance = allowance
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests = 0

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def _policy(self) -> EgressPolicy:
        return self._clients.policy.allowing(self._allowance())

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        began = time.perf_counter()
        method, host, port, size = "-", None, None, 0
        status: int | str = "-"
        try:
            try:
                async with asyncio.timeout(self._settings.http_timeout_seconds):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                raise _ProxyError(400, "Bad Request", "not an HTTP request line")
            method, target = parts[0].upper(), parts[1]
            headers: list[tuple[str, str]] = []
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers.append((name.strip(), value.strip()))
            self.requests += 1
            if method == "CONNECT":
                host, _, port_text = target.rpartition(":")
                host = host.strip("[]")
                port = int(port_text) if port_text.isdigit() else None
                status, size = await self._tunnel(host, port, reader, writer)
            else:
                url = URL(target) if "://" in target else None
                if url is None or url.scheme not in ("http", "https") or not url.host:
                    raise _ProxyError(
                        400,
                        "Bad Request",
                        "this is a forward proxy: send absolute-form requests or CONNECT",
                    )
                host, port = url.host, url.port
                status, size = await self._forward(method, url, headers, reader, writer)
        except _ProxyError as exc:
            status = exc.status if exc.rule is None else "refused"
            with contextlib.suppress(ConnectionError):
                writer.write(_answer(exc))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            status = "client-closed"
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if method != "-":
                log.info(
                    "js_proxy_request",
                    module=self._module,
                    method=method,
                    host=host,
                    port=port,
                    status=status,
                    bytes=size,
                    ms=round((time.perf_counter() - began) * 1000, 1),
                )
            if task is not None:
                self._tasks.discard(task)

    # -- CONNECT ---------------------------------------------------------------------------

    async def _tunnel(
        self,
        host: str,
        port: int | None,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> tuple[int | str, int]:
        if not host or port is None:
            raise _ProxyError(400, "Bad Request", "CONNECT takes host:port")
        policy = self._policy()
        shown = f"[{host}]" if ":" in host else host
        try:
            policy.check_url(URL(f"https://{shown}:{port}/"))
            address = await self._resolve(policy, host, port)
        except EgressRefused as exc:
            raise _refused(exc) from None
        try:
            async with asyncio.timeout(self._settings.http_timeout_seconds):
                up_reader, up_writer = await asyncio.open_connection(address, port)
        except (OSError, TimeoutError) as exc:
            raise _ProxyError(502, "Bad Gateway", f"{shown}:{port} did not accept: {exc}") from None
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        cap = self._settings.http_max_response_bytes + self._settings.http_max_request_bytes
        moved = [0]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while chunk := await source.read(64 * 1024):
                    moved[0] += len(chunk)
                    if moved[0] > cap:
                        return
                    sink.write(chunk)
                    await sink.drain()
            except ConnectionError:
                return
            finally:
                with contextlib.suppress(Exception):
                    if sink.can_write_eof():
                        sink.write_eof()

        try:
            async with asyncio.timeout(self._settings.proxy_tunnel_seconds):
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except TimeoutError:
            pass
        finally:
            up_writer.close()
        return (200 if moved[0] <= cap else "capped"), moved[0]

    async def _resolve(self, policy: EgressPolicy, host: str, port: int) -> str:
        """The first address of ``host`` the policy allows (the one connected to)."""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return host  # a literal: check_url checked it
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except OSError as exc:
            raise _ProxyError(502, "Bad Gateway", f"{host} does not resolve: {exc}") from None
        refusal: EgressRefused | None = None
        for info in infos:
            address = str(info[4][0])
            try:
                policy.check_address(host, address, port)
            except EgressRefused as exc:
                refusal = refusal or exc
            else:
                return address
        if refusal is not None:
            raise refusal
        raise _ProxyError(502, "Bad Gateway", f"{host} has no address")

    # -- absolute-form requests --------------------------------------------------------------

    async def _chunked(self, reader: asyncio.StreamReader) -> bytes:
        """A chunked request body (RFC 9112 7.1), trailers dropped, at most the request cap."""
        body = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _ProxyError(400, "Bad Request", "a malformed chunk size") from None
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":
                    pass  # trailers
                return bytes(body)
            if len(body) + size > self._settings.http_max_request_bytes:
                raise _ProxyError(
                    413, "Content Too Large", "the body is larger than the runner lets out"
                )
            body += await reader.readexactly(size)
            await reader.readexactly(2)

    async def _forward(
        self,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> tuple[int | str, int]:
        if method not in _METHODS:
            raise _ProxyError(405, "Method Not Allowed", f"{method} is not proxied")
        lowered = {name.lower(): value for name, value in headers}
        if "chunked" in lowered.get("transfer-encoding", "").lower():
            # Streams (uploads of googleapis, form-data): read whole, under the same cap.
            body: bytes | None = await self._chunked(reader)
        else:
            length = int(lowered.get("content-length") or 0)
            if length > self._settings.http_max_request_bytes:
                raise _ProxyError(
                    413, "Content Too Large", "the body is larger than the runner lets out"
                )
            body = await reader.readexactly(length) if length else None
        sent = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        try:
            client = self._clients.client(self._allowance())
            async with client.request(
                method,
                url,
                headers=sent,
                data=body,
                follow_redirects=False,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=self._settings.http_timeout_seconds),
            ) as response:
                chunks, size = [], 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > self._settings.http_max_response_bytes:
                        raise _ProxyError(
                            502,
                            "Bad Gateway",
                            f"the response is larger than {self._settings.http_max_response_bytes}"
                            " bytes, the most the runner lets in",
                        )
                    chunks.append(chunk)
                head = [f"HTTP/1.1 {response.status} {response.reason or ''}"]
                head += [
                    f"{k.decode('latin-1')}: {v.decode('latin-1')}"
                    for k, v in response.raw_headers
                    if k.decode("latin-1").lower() not in _HOP_BY_HOP
                ]
                head += [f"Content-Length: {size}", "Connection: close"]
                writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
                writer.write(b"".join(chunks))
                await writer.drain()
                return response.status, size
        except EgressRefused as exc:
            raise _refused(exc) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if isinstance(exc, ConnectionError) and writer.is_closing():
                raise
            raise _ProxyError(
                504 if isinstance(exc, TimeoutError) else 502,
                "Gateway Timeout" if isinstance(exc, TimeoutError) else "Bad Gateway",
                f"{method} {url.with_query(None)} failed: {exc}",
            ) from None

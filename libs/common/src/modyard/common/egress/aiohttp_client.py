"""The egress policy applied to aiohttp: what every steerable outbound HTTP call goes through.

- :class:`EgressResolver` wraps a resolver and keeps only the addresses the policy allows
  (:class:`~modyard.common.egress.policy.EgressRefused` when none is left). aiohttp connects to
  exactly what the resolver returned, so the address checked is the address connected to (no
  DNS rebinding between check and connect).
- :class:`EgressClient` is one ``ClientSession`` whose connector uses that resolver, and
  :meth:`EgressClient.request` follows redirects itself, hop by hop, checking each ``Location``
  with :meth:`~modyard.common.egress.policy.EgressPolicy.check_url` (aiohttp never resolves IP
  literals, so a redirect to ``http://127.0.0.1/`` is refused there, not by the resolver).
- :class:`EgressClients` keeps one client per policy (a workspace's allow-list makes its own
  policy): a pooled connection opened under one allow-list is never reused under another.

Reuse (the JavaScript runner): build ``EgressPolicy.from_settings(settings)``, keep one
``EgressClients(policy)``, and for each call ``async with clients.client(extra).request(method,
url, max_redirects=5, **aiohttp_options) as response``; catch ``EgressRefused`` (never retry it,
report ``err.problem()``).
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from modyard.common.egress.policy import Allowance, EgressPolicy, EgressRefused

REDIRECT_STATUSES: Final = frozenset({301, 302, 303, 307, 308})
#: Headers that must not follow a redirect to another origin.
_CREDENTIAL_HEADERS: Final = ("authorization", "cookie", "proxy-authorization")


class EgressResolver(AbstractResolver):
    """Resolves through ``inner`` (aiohttp's default when ``None``) and drops every address the
    policy refuses."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner if inner is not None else aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        allowed: list[ResolveResult] = []
        refusal: EgressRefused | None = None
        for result in results:
            try:
                self.policy.check_address(host, result["host"], result["port"] or port)
            except EgressRefused as exc:
                refusal = refusal or exc
            else:
                allowed.append(result)
        if not allowed:
            if refusal is not None:
                raise refusal
            raise OSError(f"{host} has no address")  # aiohttp reports a DNS failure
        return allowed

    async def close(self) -> None:
        await self._inner.close()


class EgressClient:
    """A cookie-less, proxy-less ``ClientSession`` bound to one policy."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: AbstractResolver | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int = 200,
    ) -> None:
        self.policy = policy
        self.session = aiohttp.ClientSession(
            headers=dict(headers or {}),
            connector=aiohttp.TCPConnector(limit=limit, resolver=EgressResolver(policy, resolver)),
            # One flow's cookies must never reach another's requests.
            cookie_jar=aiohttp.DummyCookieJar(),
            # A proxy from the environment would connect on our behalf, past the resolver.
            trust_env=False,
        )

    @property
    def closed(self) -> bool:
        return self.session.closed

    async def close(self) -> None:
        await self.session.close()

    @asynccontextmanager
    async def request(
        self,
        method: str,
        url: URL | str,
        *,
        max_redirects: int = 5,
        follow_redirects: bool = True,
        **options: Any,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The final answer to ``method url``: every hop checked, redirects followed here.

        ``options`` are ``ClientSession.request``'s (``headers``, ``data``, ``json``…). A 303,
        and a 301/302 to a POST, continue as a body-less GET (as browsers and aiohttp do);
        credentials headers are dropped when the origin changes.
        """
        current = self.policy.check_url(url)
        history: list[aiohttp.ClientResponse] = []
        while True:
            response = await self.session.request(method, current, allow_redirects=False, **options)
            location = response.headers.get("location")
            if not follow_redirects or response.status not in REDIRECT_STATUSES or not location:
                try:
                    yield response
                finally:
                    response.release()
                return
            response.release()
            history.append(response)
            if len(history) > max_redirects:
                raise aiohttp.TooManyRedirects(response.request_info, tuple(history))
            try:
                target = current.join(URL(location))
            except (TypeError, ValueError) as exc:
                raise aiohttp.InvalidUrlRedirectClientError(location, str(exc)) from None
            target = self.policy.check_url(target)
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method = "GET" if method != "HEAD" else method
                options = {k: v for k, v in options.items() if k not in ("data", "json")}
            if target.origin() != current.origin():
                options = _without_credentials(options)
            current = target


def _without_credentials(options: dict[str, Any]) -> dict[str, Any]:
    headers = options.get("headers")
    if not headers:
        return options
    kept = {k: v for k, v in dict(headers).items() if k.lower() not in _CREDENTIAL_HEADERS}
    return {**options, "headers": kept}


class EgressClients:
    """One :class:`EgressClient` per effective policy (the base one plus an allowance), the
    least recently used closed beyond ``max_clients``."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: AbstractResolver | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int = 200,
        max_clients: int = 64,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._headers = dict(headers or {})
        self._limit = limit
        self._max = max_clients
        self._clients: OrderedDict[EgressPolicy, EgressClient] = OrderedDict()
        self._retired: list[EgressClient] = []

    def client(self, extra: Allowance | None = None) -> EgressClient:
        """The client of this policy with ``extra`` allowed too (made on first use)."""
        policy = self.policy.allowing(extra)
        client = self._clients.get(policy)
        if client is None or client.closed:
            client = EgressClient(
                policy, resolver=self._resolver, headers=self._headers, limit=self._limit
            )
            self._clients[policy] = client
            while len(self._clients) > self._max:
                # Requests may still be using it: closed with the rest at aclose().
                self._retired.append(self._clients.popitem(last=False)[1])
        self._clients.move_to_end(policy)
        return client

    async def aclose(self) -> None:
        clients = [*self._clients.values(), *self._retired]
        self._clients.clear()
        self._retired.clear()
        for client in clients:
            await client.close()


__all__ = ["EgressClient", "EgressClients", "EgressResolver"]

"""One TLS context for every HTTP client a service process makes, its CA bundle read when needed.

httpx builds an ``ssl.SSLContext`` per client (its default ``verify=True``) and loads the whole CA
bundle into it: ~0.65 MiB of a process's heap per client, even when the client only ever speaks
plain ``http://`` (a service's peers, the broker's management API on the same host). httpx's docs
recommend sharing one context between clients instead; :func:`client_tls_context` is that context.

It trusts what httpx trusts with ``trust_env`` (its default): ``SSL_CERT_FILE``, else
``SSL_CERT_DIR``, else certifi's bundle, read when the context is first asked for. The bundle
itself is loaded just before the first TLS handshake (:class:`LazyTrustContext`), so a process
whose clients never open an ``https://`` URL never holds it, and one that does holds it once.
Verification is never off: the context requires a certificate and checks the host name from the
start, and a handshake cannot begin before the bundle is in (without it, every peer would be
refused, not accepted).

aiohttp's clients (the HTTP node, the egress client, aiodocker) keep aiohttp's own context: aiohttp
builds its verified and unverified contexts when it is imported, whatever a session is given, and
they trust the system's store, not certifi's; handing them this one would change whom they trust
and save nothing.
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
import threading
from typing import Any

__all__ = ["LazyTrustContext", "client_tls_context", "new_client_tls_context"]


class LazyTrustContext(ssl.SSLContext):
    """A client context that loads its trusted CAs right before its first handshake.

    Every handshake starts with ``wrap_bio`` (asyncio, uvloop and anyio's TLS streams) or
    ``wrap_socket`` (blocking sockets), so both load the bundle first; a path that skipped them
    would meet an empty store and be refused.
    """

    _trust_cafile: str | None
    _trust_capath: str | None
    _trust_lock: threading.Lock
    _trust_loaded: bool

    def _load_trust(self) -> None:
        if self._trust_loaded:
            return
        with self._trust_lock:
            if not self._trust_loaded:
                self.load_verify_locations(cafile=self._trust_cafile, capath=self._trust_capath)
                self._trust_loaded = True

    @property
    def trust_loaded(self) -> bool:
        """Whether the CA bundle is in (the first handshake has begun)."""
        return self._trust_loaded

    def wrap_bio(self, *args: Any, **kwargs: Any) -> ssl.SSLObject:
        self._load_trust()
        return super().wrap_bio(*args, **kwargs)

    def wrap_socket(self, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._load_trust()
        return super().wrap_socket(*args, **kwargs)


def new_client_tls_context() -> LazyTrustContext:
    """A verifying client context as ``ssl.create_default_context`` makes one, trusting what httpx
    trusts with ``trust_env`` (read now, loaded at the first handshake)."""
    cafile: str | None = os.environ.get("SSL_CERT_FILE") or None
    capath: str | None = None
    if cafile is None:
        capath = os.environ.get("SSL_CERT_DIR") or None
        if capath is None:
            # Imported here: httpx's own dependency, read only by a process that builds a context.
            import certifi

            cafile = certifi.where()
    context = LazyTrustContext(ssl.PROTOCOL_TLS_CLIENT)
    # PROTOCOL_TLS_CLIENT already requires a certificate and checks the host name; said again so
    # that no reader has to know it.
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    if sys.version_info >= (3, 13):  # what create_default_context adds from 3.13
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | ssl.VERIFY_X509_STRICT
    keylog = os.environ.get("SSLKEYLOGFILE")
    if keylog and not sys.flags.ignore_environment:  # as create_default_context does
        context.keylog_filename = keylog
    context._trust_cafile = cafile
    context._trust_capath = capath
    context._trust_lock = threading.Lock()
    context._trust_loaded = False
    return context


@functools.cache
def client_tls_context() -> LazyTrustContext:
    """The process's context for its HTTP clients (``httpx.AsyncClient(verify=...)``), made once."""
    return new_client_tls_context()

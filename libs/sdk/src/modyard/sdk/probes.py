"""Cheap reachability checks: TCP connects, HTTP status codes, docker's /_ping."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

# Our servers listen on 127.0.0.1 only, which is also what "localhost" resolves to first.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def endpoint(url: str, default_port: int) -> Endpoint:
    """Host and port of a URL such as ``postgresql+asyncpg://u:p@host:5432/db``."""
    parts: SplitResult = urlsplit(url)
    return Endpoint(parts.hostname or "127.0.0.1", parts.port or default_port)


def is_local(target: Endpoint, port: int) -> bool:
    """Whether ``target`` is where a server of ours on 127.0.0.1:``port`` listens."""
    return target.host.lower() in LOCAL_HOSTS and target.port == port


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, for tables and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _exchange(host: str, port: int, request: bytes, timeout: float) -> bytes:
    """Send ``request`` and return the first bytes of the answer (b"" when none)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            conn.sendall(request)
            return conn.recv(8)
    except OSError:
        return b""


# An SSLRequest: PostgreSQL answers a single "S" or "N" and, when we hang up then, logs nothing.
_PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
# The AMQP 0-9-1 protocol header; a broker answers with a Connection.Start method frame (type 1),
# or with its own protocol header when it speaks another version.
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def postgres_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether a PostgreSQL server (not just any TCP listener) answers at host:port.

    A bare connect is not enough: some sandboxes accept every outgoing connection.
    """
    return _exchange(host, port, _PG_SSL_REQUEST, timeout)[:1] in {b"S", b"N"}


def amqp_answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether an AMQP broker answers at host:port."""
    answer = _exchange(host, port, _AMQP_HEADER, timeout)
    return answer[:1] == b"\x01" or answer[:4] == b"AMQP"


def http_status(
    url: str,
    *,
    auth: tuple[str, str] | None = None,
    timeout: float = 2.0,
    transport: httpx.HTTPTransport | None = None,
) -> int | None:
    """Status code of ``GET url``, or None when nothing answers."""
    try:
        with httpx.Client(auth=auth, timeout=timeout, transport=transport, verify=True) as client:
            return client.get(url).status_code
    except httpx.HTTPError:
        return None


def docker_socket_path(docker_host: str) -> str | None:
    """The filesystem path of a ``unix://`` docker host, else None."""
    if docker_host.startswith("unix://"):
        return docker_host.removeprefix("unix://")
    return None


def docker_ping(docker_host: str, timeout: float = 2.0) -> bool:
    """Whether a docker daemon answers ``GET /_ping`` at a ``unix://`` or ``tcp://`` host."""
    socket_path = docker_socket_path(docker_host)
    if socket_path is not None:
        transport = httpx.HTTPTransport(uds=socket_path)
        return http_status("http://docker/_ping", timeout=timeout, transport=transport) == 200
    if docker_host.startswith("tcp://"):
        url = "http://" + docker_host.removeprefix("tcp://").rstrip("/") + "/_ping"
        return http_status(url, timeout=timeout) == 200
    return False

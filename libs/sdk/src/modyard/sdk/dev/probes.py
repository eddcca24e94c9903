"""Cheap reachability checks: TCP connects, HTTP status codes, docker's /_ping."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

import httpx

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


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


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, for tables and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def tcp_open(host: str, port: int, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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

"""A DNS answer of the test's choosing, for egress tests that must see what a client does with
a name that resolves to loopback, a private address, or moves between two connections."""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult


class ChosenNames(AbstractResolver):
    """Resolves ``answers[name]`` as it is at the moment of asking (no server is asked; the test
    may change the mapping it passed in, so a name can move between two deliveries)."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.answers:
            raise OSError(f"{host} not found")
        address = self.answers[host]
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        return None

"""The egress allow-list API's bodies."""

from __future__ import annotations

import ipaddress
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from modyard.common.egress.policy import parse_cidr, parse_host_pattern

MAX_ENTRIES = 100
_LOOPBACK = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("0.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("::ffff:127.0.0.0/104"),
)


class EgressAllowIn(BaseModel):
    """What a workspace may reach beyond the deployment's egress policy (replaces the list)."""

    model_config = ConfigDict(extra="forbid")

    allow_cidrs: list[str] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="Networks allowed whatever their range, e.g. 10.20.0.0/16 (never the "
        "platform's own endpoints; loopback only through the deployment's setting)",
    )
    allow_hosts: list[str] = Field(
        default_factory=list,
        max_length=MAX_ENTRIES,
        description="Host names whose private addresses are allowed: api.corp.example or "
        "*.corp.example",
    )

    @field_validator("allow_cidrs")
    @classmethod
    def _cidrs(cls, values: list[str]) -> list[str]:
        out: list[str] = []
        for value in values:
            try:
                network = parse_cidr(value)
            except ValueError as exc:
                raise PydanticCustomError("invalid_cidr", str(exc)) from None
            if network.prefixlen == 0:
                raise PydanticCustomError(
                    "cidr_too_wide",
                    f"{value!r} allows every address: list the networks the workspace needs",
                )
            if any(
                network.version == loop.version and network.overlaps(loop) for loop in _LOOPBACK
            ):
                raise PydanticCustomError(
                    "loopback_cidr",
                    f"{value!r} covers loopback, which only the deployment's "
                    "MODYARD_EGRESS_ALLOW_LOOPBACK can allow",
                )
            out.append(str(network))
        return list(dict.fromkeys(out))

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, values: list[str]) -> list[str]:
        out: list[str] = []
        for value in values:
            try:
                out.append(parse_host_pattern(value))
            except ValueError as exc:
                raise PydanticCustomError("invalid_host_pattern", str(exc)) from None
        return list(dict.fromkeys(out))


class EgressAllowOut(BaseModel):
    workspace: str
    allow_cidrs: list[str]
    allow_hosts: list[str]
    updated_by: str | None = None
    updated_at: datetime | None = None

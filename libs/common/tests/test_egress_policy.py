"""The egress policy: spellings of refused addresses, allow-lists, the platform's endpoints, and
the aiohttp client that applies it (resolver filtering, redirects checked hop by hop) against
servers on loopback."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial

import aiohttp
import psutil
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modyard.common.egress.aiohttp_client import EgressClient, EgressClients
from modyard.common.egress.policy import (
    Allowance,
    EgressPolicy,
    EgressRefused,
    own_addresses,
    parse_cidr,
    parse_host_pattern,
)
from modyard.common.settings import CommonSettings
from modyard.testing.dns import ChosenNames

PLATFORM = CommonSettings(
    amqp_url="amqp://u:p@127.0.0.1:5672/v",
    amqp_management_url="http://127.0.0.1:15672",
    database_url="postgresql+asyncpg://u:p@127.0.0.1:5432/d",
    image_registry_url="http://127.0.0.1:5000",
    egress_allow_loopback=False,
)


def policy(**settings: object) -> EgressPolicy:
    return EgressPolicy.from_settings(PLATFORM.model_copy(update=settings), resolve=False)


def rule_of(check: Callable[[], object]) -> str | None:
    try:
        check()
    except EgressRefused as exc:
        return exc.rule
    return None


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://127.0.0.1:8080/", "loopback"),
        ("http://127.0.0.2:8080/", "loopback"),
        ("http://[::1]:8080/", "loopback"),
        ("http://[::ffff:127.0.0.1]:8080/", "loopback"),
        ("http://[::ffff:7f00:1]:8080/", "loopback"),
        ("http://[64:ff9b::7f00:1]/", "loopback"),
        ("http://[2002:7f00:1::]/", "loopback"),
        ("http://localhost:8080/", "loopback"),
        ("http://LOCALHOST./", "loopback"),
        ("http://app.localhost/", "loopback"),
        ("http://0.0.0.0:8080/", "unspecified"),
        ("http://[::]:8080/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://metadata/", "metadata"),
        ("http://instance-data/", "metadata"),
        ("http://10.0.0.1/", "private"),
        ("http://172.16.5.4/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://100.64.0.1/", "shared-address-space"),
        ("http://[fd00::1]/", "unique-local"),
        ("http://[fc00::1]/", "unique-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://192.0.2.1/", "non-global"),
        ("http://2130706433/", "ip-spelling"),
        ("http://0x7f.1/", "ip-spelling"),
        ("http://0x7f000001/", "ip-spelling"),
        ("http://017700000001/", "ip-spelling"),
        ("http://0177.0.0.1/", "ip-spelling"),
        ("http://127.1/", "ip-spelling"),
        ("http://127.0.1/", "ip-spelling"),
        ("http://010.0.0.1/", "ip-spelling"),
        ("http://1.2.3.4.5/", "ip-spelling"),
        ("http://user:pass@example.com/", "userinfo"),
        ("http://user@example.com/", "userinfo"),
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("gopher://example.com/", "scheme"),
    ],
)
def test_refused_by_default(url: str, rule: str) -> None:
    assert rule_of(lambda: policy().check_url(url)) == rule


@pytest.mark.parametrize(
    "url",
    ["https://example.com/", "http://93.184.216.34:8080/x", "https://[2606:4700::1111]/"],
)
def test_public_destinations_pass(url: str) -> None:
    assert rule_of(lambda: policy().check_url(url)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:15672/api/whoami",
        "http://127.0.0.2:15672/api/whoami",
        "http://localhost:15672/api/whoami",
        "http://[::1]:15672/api/whoami",
        "http://[::ffff:127.0.0.1]:15672/api/whoami",
        "http://0.0.0.0:15672/api/whoami",
        "http://[::]:15672/",
        "http://127.0.0.1:5672/",
        "http://127.0.0.1:5432/",
        "http://127.0.0.1:5000/v2/_catalog",
        "http://127.0.0.1:8001/",
        "http://127.0.0.1:8003/v1/flows",
        "http://127.0.0.1:8006/",
        # The JavaScript runner, and RabbitMQ's epmd and distribution ports beside AMQP (they
        # were missing until the 2026-12-07 tenancy probe).
        "http://127.0.0.1:8007/metrics",
        "http://127.0.0.1:4369/",
        "http://127.0.0.1:25672/",
    ],
)
def test_platform_endpoints_stay_refused_with_loopback_allowed(url: str) -> None:
    allowed = policy(egress_allow_loopback=True, egress_allow_cidrs="0.0.0.0/1,::/1")
    assert rule_of(lambda: allowed.check_url(url)) == "platform-endpoint"
    # The same addresses on another port are fine there.
    assert (
        rule_of(lambda: allowed.check_url(url.replace(url.split("/")[2], "127.0.0.1:18080")))
        is None
    )


def test_platform_endpoints_by_name_and_by_resolved_address() -> None:
    settings = PLATFORM.model_copy(
        update={
            "amqp_management_url": "http://rabbitmq.internal:15672",
            "egress_allow_hosts": "*.internal",
        }
    )
    refusing = EgressPolicy.from_settings(settings, resolve=False)
    assert rule_of(lambda: refusing.check_url("http://RabbitMQ.internal.:15672/")) == (
        "platform-endpoint"
    )
    settings = PLATFORM.model_copy(update={"database_url": "postgresql://u:p@10.9.9.9:6432/d"})
    remote = EgressPolicy.from_settings(settings, resolve=False).allowing(
        Allowance(cidrs=(parse_cidr("10.0.0.0/8"),))
    )
    assert rule_of(lambda: remote.check_address("db", "10.9.9.9", 6432)) == "platform-endpoint"
    assert rule_of(lambda: remote.check_address("db", "::ffff:10.9.9.9", 6432)) == (
        "platform-endpoint"
    )
    assert rule_of(lambda: remote.check_address("db", "10.9.9.9", 80)) is None


def test_allow_lists_lift_their_ranges_only() -> None:
    base = policy()
    cidr = base.allowing(Allowance(cidrs=(parse_cidr("10.20.0.0/16"),)))
    assert rule_of(lambda: cidr.check_url("http://10.20.1.2/")) is None
    assert rule_of(lambda: cidr.check_url("http://[::ffff:10.20.1.2]/")) is None
    assert rule_of(lambda: cidr.check_url("http://10.21.1.2/")) == "private"
    # A CIDR never opens loopback: only the deployment's setting does.
    wide = base.allowing(Allowance(cidrs=(parse_cidr("::ffff:0:0/96"), parse_cidr("0.0.0.0/0"))))
    assert rule_of(lambda: wide.check_url("http://[::ffff:127.0.0.1]:8080/")) == "loopback"
    hosts = base.allowing(Allowance(hosts=(parse_host_pattern("*.corp.example"),)))
    assert rule_of(lambda: hosts.check_address("api.corp.example", "10.1.1.1", 443)) is None
    assert rule_of(lambda: hosts.check_address("corp.example", "10.1.1.1", 443)) == "private"
    assert rule_of(lambda: hosts.check_address("evilcorp.example", "10.1.1.1", 443)) == "private"
    # A host pattern vouches for a name's private addresses, not loopback or metadata.
    assert rule_of(lambda: hosts.check_address("api.corp.example", "127.0.0.1", 443)) == (
        "loopback"
    )
    assert rule_of(lambda: hosts.check_address("api.corp.example", "169.254.169.254", 80)) == (
        "link-local"
    )
    assert base.allowing(None) is base


def test_ports_allow_list() -> None:
    ports = policy(egress_allow_ports="443,8443")
    assert rule_of(lambda: ports.check_url("https://example.com/")) is None
    assert rule_of(lambda: ports.check_url("http://example.com/")) == "port"


def test_this_machines_own_addresses_are_refused_as_loopback() -> None:
    """A port bound to 0.0.0.0 answers on every address of the machine: reaching one of its
    interface addresses is reaching loopback, whatever CIDR or host pattern is allowed. The
    address list is injected here (the live test in services/runtime/tests/test_egress.py
    reads this machine's)."""
    own = frozenset({ipaddress.ip_address("203.0.113.7"), ipaddress.ip_address("fd00:5::2")})
    platform = replace(policy().platform, own_addresses=own)
    wide = Allowance(
        cidrs=(parse_cidr("203.0.113.0/24"), parse_cidr("fd00::/8")),
        hosts=(parse_host_pattern("*.corp.example"),),
    )
    production = EgressPolicy(allowance=wide, platform=platform)
    for url in (
        "http://203.0.113.7:8080/",
        "http://[::ffff:203.0.113.7]:8080/",
        "http://[fd00:5::2]:8080/",
    ):
        assert rule_of(partial(production.check_url, url)) == "own-address", url
    assert rule_of(lambda: production.check_address("api.corp.example", "fd00:5::2", 443)) == (
        "own-address"
    )
    # Its neighbours are what the CIDR opened.
    assert rule_of(lambda: production.check_url("http://203.0.113.8:8080/")) is None
    assert rule_of(lambda: production.check_url("http://[fd00:5::3]:8080/")) is None
    # Where loopback is allowed (development), the machine's other ports open, its platform
    # ports never: the broker's management API listens on 127.0.0.1 here, and on 0.0.0.0 it
    # would answer on 203.0.113.7 too.
    development = EgressPolicy(allowance=wide | Allowance(loopback=True), platform=platform)
    assert rule_of(lambda: development.check_url("http://203.0.113.7:8080/")) is None
    for url in ("http://203.0.113.7:15672/api/whoami", "http://[fd00:5::2]:5432/"):
        assert rule_of(partial(development.check_url, url)) == "platform-endpoint", url


def test_own_addresses_are_every_interfaces_not_only_the_host_names() -> None:
    found = own_addresses()
    for items in psutil.net_if_addrs().values():
        for item in items:
            if item.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(item.address.split("%", 1)[0])
            if not address.is_loopback:
                assert address in found, address
    assert all(not address.is_loopback for address in found)


def test_bad_allow_list_entries_say_what_to_write() -> None:
    with pytest.raises(ValueError, match=r"write 10\.0\.0\.0/8"):
        parse_cidr("10.0.0.1/8")
    with pytest.raises(ValueError, match=r"\*\.example\.com"):
        parse_host_pattern("a*.example.com")
    with pytest.raises(ValueError, match="MODYARD_EGRESS_ALLOW"):
        CommonSettings(egress_allow_cidrs="not-a-network")


def test_loopback_is_refused_unless_set_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODYARD_EGRESS_ALLOW_LOOPBACK", raising=False)
    assert CommonSettings(_env_file=None).egress_allow_loopback is False  # type: ignore[call-arg]


# --- the aiohttp client, against servers on loopback -----------------------------------------


@asynccontextmanager
async def serving(location: str | None = None) -> AsyncIterator[tuple[int, list[str]]]:
    """A server on 127.0.0.1 that answers ``ok`` (or redirects to ``location``), and the paths
    it was asked for."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        if location is not None and request.path == "/go":
            raise web.HTTPFound(location)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with TestServer(app, host="127.0.0.1") as server:
        assert server.port is not None
        yield server.port, seen


async def fetch(client: EgressClient, url: str) -> str:
    async with client.request("GET", url) as response:
        return await response.text()


@pytest.mark.parametrize(
    ("location", "rule"),
    [
        ("http://127.0.0.1:15672/api/whoami", "platform-endpoint"),
        ("http://[::1]:5432/", "platform-endpoint"),
        ("http://[::ffff:127.0.0.1]:5672/", "platform-endpoint"),
        ("http://2130706433:15672/", "ip-spelling"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://u:p@example.com/", "userinfo"),
        ("file:///etc/passwd", "scheme"),
    ],
)
async def test_a_redirect_from_an_allowed_server_to_a_refused_address_is_refused(
    location: str, rule: str
) -> None:
    client = EgressClient(policy(egress_allow_loopback=True))
    try:
        async with serving(location) as (port, seen):
            assert await fetch(client, f"http://127.0.0.1:{port}/plain") == "ok"
            with pytest.raises(EgressRefused) as refused:
                await fetch(client, f"http://127.0.0.1:{port}/go")
        assert refused.value.rule == rule
        assert seen == ["/plain", "/go"]  # the refused hop was never requested
    finally:
        await client.close()


async def test_a_relative_redirect_on_an_allowed_server_is_followed() -> None:
    client = EgressClient(policy(egress_allow_loopback=True))
    try:
        async with serving("/landing") as (port, seen):
            assert await fetch(client, f"http://127.0.0.1:{port}/go") == "ok"
        assert seen == ["/go", "/landing"]
    finally:
        await client.close()


async def test_a_name_resolving_to_loopback_is_refused_after_resolution() -> None:
    names = {"rebound.egress.test": "127.0.0.1", "rebound6.egress.test": "::1"}
    refusing = EgressClient(policy(), resolver=ChosenNames(names))
    allowing = EgressClient(policy(egress_allow_loopback=True), resolver=ChosenNames(names))
    try:
        async with serving() as (port, seen):
            for name in names:
                with pytest.raises(EgressRefused) as refused:
                    await fetch(refusing, f"http://{name}:{port}/x")
                assert refused.value.rule == "loopback"
            assert seen == []
            # The same name where loopback is allowed: connected to the address checked.
            assert await fetch(allowing, f"http://rebound.egress.test:{port}/y") == "ok"
            assert seen == ["/y"]
            # ... but never to a platform port, whatever the name.
            with pytest.raises(EgressRefused) as platform:
                await fetch(allowing, "http://rebound.egress.test:15672/api/whoami")
            assert platform.value.rule == "platform-endpoint"
    finally:
        await refusing.close()
        await allowing.close()


async def test_literal_addresses_are_checked_although_aiohttp_skips_the_resolver() -> None:
    client = EgressClient(policy())
    try:
        async with serving() as (port, seen):
            for host in ("127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "0.0.0.0", "2130706433"):
                with pytest.raises(EgressRefused):
                    await fetch(client, f"http://{host}:{port}/x")
            assert seen == []
    finally:
        await client.close()


async def test_clients_are_kept_per_allowance() -> None:
    clients = EgressClients(policy())
    try:
        allowance = Allowance(hosts=("api.corp.example",))
        assert clients.client() is clients.client(None)
        assert clients.client(allowance) is clients.client(Allowance(hosts=("api.corp.example",)))
        assert clients.client(allowance) is not clients.client()
        assert clients.client(allowance).policy.allowance.hosts == ("api.corp.example",)
    finally:
        await clients.aclose()


def test_the_refusal_is_an_rfc9457_problem_naming_the_rule() -> None:
    with pytest.raises(EgressRefused) as refused:
        policy().check_url("http://10.0.0.1/")
    problem = refused.value.problem()
    assert problem["type"] == "https://modyard.dev/problems/egress-refused"
    assert problem["rule"] == "private"
    assert "MODYARD_EGRESS_ALLOW_CIDRS" in problem["detail"]
    assert not isinstance(refused.value, OSError)  # never mistaken for a transient failure
    assert isinstance(aiohttp.ClientError(), Exception)


def test_a_broker_on_a_high_port_has_no_derived_distribution_port() -> None:
    # AMQP on 59905 (a test's own broker): 79905 is no port, and the policy must still build.
    high = policy(amqp_url="amqp://u:p@127.0.0.1:59905/v", egress_allow_loopback=True)
    assert rule_of(lambda: high.check_url("http://127.0.0.1:59905/")) == "platform-endpoint"
    assert rule_of(lambda: high.check_url("http://127.0.0.1:4369/")) == "platform-endpoint"

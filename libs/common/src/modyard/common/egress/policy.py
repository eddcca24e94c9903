"""The egress policy: which destinations an outbound call a tenant or a module steers may reach.

Pure Python (``ipaddress`` and ``yarl``), no I/O once built, so any process can hold one: the
runtime (``core.http``, automations' ``fetch``, system webhooks, the http executor) and the
JavaScript runner to come. :mod:`modyard.common.egress.aiohttp_client` applies it to aiohttp
(a resolver that filters what DNS answers, redirects followed hop by hop).

Two questions, both answered by raising :class:`EgressRefused` naming the rule:

- :meth:`EgressPolicy.check_url`, before any connection and on every redirect hop: the scheme,
  no ``user:pass@``, a port allowed, no numeric IPv4 spelling other than the dotted quad, no
  cloud-metadata name, and for an IP literal the address itself (aiohttp never resolves those).
- :meth:`EgressPolicy.check_address`, for every address DNS gives a host name: connections go
  only to addresses that passed, so a second lookup cannot rebind the name elsewhere.

Refused unless allowed: loopback and unspecified (``0.0.0.0``, ``::``), this machine's own
interface addresses (as loopback), link-local, private
(RFC 1918), shared address space (CGNAT), unique-local, multicast, reserved and any other
non-global address, IPv4 addresses embedded in IPv6 (mapped, 6to4, NAT64) judged as the IPv4
address. Always refused, whatever is allowed: the platform's own endpoints (broker, management
API, database, image registry, the services), on any spelling of their address.
"""

from __future__ import annotations

import contextlib
import fnmatch
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from yarl import URL

if TYPE_CHECKING:
    from modyard.common.settings import CommonSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PROBLEM_SLUG: Final = "egress-refused"
PROBLEM_TYPE: Final = "https://modyard.dev/problems/egress-refused"

#: Names of cloud instance-metadata services (their addresses are link-local anyway).
METADATA_NAMES: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "metadata.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.tencentyun.com",
        "metadata.platformequinix.com",
    }
)
SCHEMES: Final = ("http", "https")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "amqp": 5672, "amqps": 5671}
_DATABASE_PORT: Final = 5432
#: RabbitMQ's node discovery (epmd) and its inter-node distribution port (the AMQP port + 20000),
#: served on the broker's host beside AMQP: nodes and its CLI tools, never a tenant.
_EPMD_PORT: Final = 4369
_DISTRIBUTION_PORT_OFFSET: Final = 20000
# A label WHATWG URL parsers (and inet_aton) read as a number: 127, 0x7f, 0177.
_NUMERIC_LABEL: Final = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
_CANONICAL_OCTET: Final = re.compile(r"^(0|[1-9][0-9]{0,2})$")
_HOST_PATTERN: Final = re.compile(
    r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$"
)

_SHARED_ADDRESS_SPACE: Final = ipaddress.IPv4Network("100.64.0.0/10")
_THIS_NETWORK: Final = ipaddress.IPv4Network("0.0.0.0/8")
_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL: Final = ipaddress.IPv6Network("64:ff9b:1::/48")
_SITE_LOCAL: Final = ipaddress.IPv6Network("fec0::/10")
_RFC1918: Final = tuple(
    ipaddress.IPv4Network(text) for text in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
)

#: Rules a host pattern in an allow-list lifts (an operator vouches for that name's addresses);
#: loopback, link-local and multicast need the address itself allowed.
_LIFTED_BY_HOST: Final = frozenset(
    {"private", "shared-address-space", "unique-local", "non-global"}
)


class EgressRefused(Exception):
    """An outbound call refused by the policy; ``rule`` names the rule that refused it.

    Not an ``OSError``: aiohttp passes it through unwrapped, and retry logic that treats
    connection errors as transient never sees it as one. Never retry it.
    """

    def __init__(self, rule: str, detail: str) -> None:
        super().__init__(detail)
        self.rule = rule
        self.detail = detail

    def problem(self) -> dict[str, str]:
        """The RFC 9457 body fields (``type``, ``title``, ``detail``, ``rule``)."""
        return {
            "type": PROBLEM_TYPE,
            "title": "Outbound call refused by the egress policy",
            "detail": self.detail,
            "rule": self.rule,
        }


@dataclass(frozen=True)
class Allowance:
    """Destinations allowed beyond the default (deployment-wide, a workspace's, or a call's)."""

    #: Addresses allowed whatever their range (not the platform's endpoints).
    cidrs: tuple[IPNetwork, ...] = ()
    #: ``api.example.com`` or ``*.example.com``: their private addresses are allowed.
    hosts: tuple[str, ...] = ()
    #: Loopback (and ``0.0.0.0``/``::``): development and tests only.
    loopback: bool = False
    #: Exact ``(host, port)`` pairs allowed whatever their address (the http executor's
    #: published endpoint).
    endpoints: frozenset[tuple[str, int]] = frozenset()

    def __or__(self, other: Allowance) -> Allowance:
        return Allowance(
            cidrs=tuple(dict.fromkeys(self.cidrs + other.cidrs)),
            hosts=tuple(dict.fromkeys(self.hosts + other.hosts)),
            loopback=self.loopback or other.loopback,
            endpoints=self.endpoints | other.endpoints,
        )

    @property
    def empty(self) -> bool:
        return not (self.cidrs or self.hosts or self.loopback or self.endpoints)


def parse_cidr(text: str) -> IPNetwork:
    """``text`` as a network (``10.0.0.0/8``, ``2001:db8::/32``, or one address); ``ValueError``
    saying what to write otherwise."""
    value = text.strip()
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(f"{value!r} is not a CIDR such as 10.1.0.0/16 ({exc})") from None
        raise ValueError(f"{value!r} has host bits set: write {loose}") from None


def parse_host_pattern(text: str) -> str:
    """``text`` as a host pattern: a DNS name, optionally starting with ``*.``."""
    value = text.strip().lower().rstrip(".")
    if not _HOST_PATTERN.match(value) or len(value) > 253:
        raise ValueError(
            f"{text!r} is not a host pattern: write a DNS name such as api.example.com, "
            "or *.example.com for its subdomains"
        )
    if _is_numeric_host(value):
        raise ValueError(f"{text!r} is an address, not a name: put it in the CIDRs")
    return value


def split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _is_numeric_host(host: str) -> bool:
    return bool(_NUMERIC_LABEL.match(host.rstrip(".").rsplit(".", 1)[-1]))


def _canonical_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(
        _CANONICAL_OCTET.match(part) and int(part) <= 255 for part in parts
    )


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64, IPv4-compatible), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if int(address) >> 32 == 0 and int(address) > 1:  # ::a.b.c.d, deprecated
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def normalised(address: IPAddress) -> IPAddress:
    """The address a connection really reaches: IPv4 for every IPv6 form that embeds one."""
    return embedded_ipv4(address) or address


def address_class(address: IPAddress) -> str | None:
    """The rule that refuses ``address`` by default (``loopback``, ``private`` …), or ``None``
    for a global address."""
    address = normalised(address)
    if isinstance(address, ipaddress.IPv4Address):
        if address.is_loopback:
            return "loopback"
        if address in _THIS_NETWORK:
            return "unspecified"
        if address.is_link_local:
            return "link-local"
        if address in _SHARED_ADDRESS_SPACE:
            return "shared-address-space"
        if address.is_multicast:
            return "multicast"
        if address.is_reserved or address == ipaddress.IPv4Address("255.255.255.255"):
            return "reserved"
        if any(address in network for network in _RFC1918):
            return "private"
        return None if address.is_global else "non-global"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified:
        return "unspecified"
    if address.is_link_local:
        return "link-local"
    if address in _SITE_LOCAL or address in _NAT64_LOCAL:
        return "reserved"
    if address.is_multicast:
        return "multicast"
    if address in ipaddress.IPv6Network("fc00::/7"):
        return "unique-local"
    if address.teredo is not None or address.is_reserved:
        return "reserved"
    return None if address.is_global else "non-global"


def host_matches(host: str, pattern: str) -> bool:
    host = host.lower().rstrip(".")
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and fnmatch.fnmatchcase(host, pattern)
    return host == pattern


@dataclass(frozen=True)
class PlatformEndpoints:
    """The platform's own endpoints: refused to every outbound call, whatever is allowed."""

    #: Ports served on this machine's loopback (or every interface): refused on any local address.
    local_ports: frozenset[int] = frozenset()
    #: Exact non-local addresses and ports.
    addresses: frozenset[tuple[IPAddress, int]] = frozenset()
    #: Names (lower case) and ports, refused before resolution.
    names: frozenset[tuple[str, int]] = frozenset()
    #: This machine's own non-loopback addresses (a port bound to 0.0.0.0 answers on them).
    own_addresses: frozenset[IPAddress] = frozenset()
    #: ``port -> what listens there``, for the message.
    labels: tuple[tuple[int, str], ...] = ()

    def label(self, port: int) -> str:
        return dict(self.labels).get(port, "a platform service")

    def refuses(self, host: str, address: IPAddress | None, port: int) -> str | None:
        """What of the platform listens at ``host``/``address``:``port``, or ``None``."""
        name = host.lower().rstrip(".")
        if (name, port) in self.names:
            return self.label(port)
        if port in self.local_ports and (name == "localhost" or name.endswith(".localhost")):
            return self.label(port)
        if address is None:
            return None
        address = normalised(address)
        local = address_class(address) in ("loopback", "unspecified")
        if port in self.local_ports and (local or address in self.own_addresses):
            return self.label(port)
        if (address, port) in self.addresses:
            return self.label(port)
        return None

    @classmethod
    def from_urls(
        cls, urls: Iterable[tuple[str, str, int]], *, resolve: bool = True
    ) -> PlatformEndpoints:
        """From ``(label, url, default port)``; names are resolved now when ``resolve``."""
        local_ports: set[int] = set()
        addresses: set[tuple[IPAddress, int]] = set()
        names: set[tuple[str, int]] = set()
        labels: dict[int, str] = {}
        for label, text, default_port in urls:
            try:
                url = URL(text)
                host, port = url.host, url.port or default_port
            except (TypeError, ValueError):
                continue
            if not host:
                continue
            labels.setdefault(port, label)
            for address in _addresses_of(host, resolve=resolve):
                if address_class(address) in ("loopback", "unspecified"):
                    local_ports.add(port)
                else:
                    addresses.add((normalised(address), port))
            if host == "localhost":
                local_ports.add(port)
            elif not _is_ip(host):
                names.add((host.lower().rstrip("."), port))
        return cls(
            local_ports=frozenset(local_ports),
            addresses=frozenset(addresses),
            names=frozenset(names),
            own_addresses=own_addresses() if resolve else frozenset(),
            labels=tuple(sorted(labels.items())),
        )


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _addresses_of(host: str, *, resolve: bool) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    if not resolve:
        return []
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return []  # not resolvable now: still refused by name
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def own_addresses() -> frozenset[IPAddress]:
    """This machine's non-loopback addresses: every interface's (psutil), and what its host
    name resolves to. The host name alone is not enough: on many machines it resolves to
    127.0.x.1 only while the interfaces carry the addresses a port bound to 0.0.0.0 answers on.
    """
    # Here, not at the top: every service's settings import this module, few make a policy.
    import psutil

    texts: list[str] = []
    with contextlib.suppress(OSError):
        texts += [
            item.address
            for items in psutil.net_if_addrs().values()
            for item in items
            if item.family in (socket.AF_INET, socket.AF_INET6)
        ]
    with contextlib.suppress(OSError):
        infos = socket.getaddrinfo(socket.gethostname(), None, proto=socket.IPPROTO_TCP)
        texts += [str(info[4][0]) for info in infos]
    found: set[IPAddress] = set()
    for text in texts:
        try:
            address = normalised(ipaddress.ip_address(text.split("%", 1)[0]))
        except ValueError:
            continue
        if address_class(address) not in ("loopback", "unspecified"):
            found.add(address)
    return frozenset(found)


def platform_endpoints(settings: CommonSettings, *, resolve: bool = True) -> PlatformEndpoints:
    """The platform's endpoints as ``settings`` name them: the broker (AMQP, management, and its
    Erlang node ports), the database, the image registry and every service."""
    urls: list[tuple[str, str, int]] = [
        ("the message broker", settings.amqp_url, 5672),
        ("the message broker's management API", settings.amqp_management_url, 80),
        ("the database", settings.database_url, _DATABASE_PORT),
        ("the image registry", settings.image_registry_url, 80),
    ]
    urls += _broker_node_ports(settings.amqp_url)
    urls += [(f"the {name} service", url, 80) for name, url in settings.service_urls().items()]
    # A URL without an explicit port uses its scheme's.
    fixed = [
        (label, url, _DEFAULT_PORTS.get(URL(url).scheme, default) if _parses(url) else default)
        for label, url, default in urls
    ]
    return PlatformEndpoints.from_urls(fixed, resolve=resolve)


def _broker_node_ports(amqp_url: str) -> list[tuple[str, str, int]]:
    """epmd and the distribution port on the broker's host (a node's cookie guards them, but a
    tenant has no business knocking)."""
    if not _parses(amqp_url):
        return []
    broker = URL(amqp_url)
    if not broker.host:
        return []
    distribution = (broker.port or _DEFAULT_PORTS.get(broker.scheme, 5672)) + (
        _DISTRIBUTION_PORT_OFFSET
    )
    return [
        (label, str(URL.build(scheme="tcp", host=broker.host, port=port)), port)
        for label, port in (
            ("the message broker's node discovery (epmd)", _EPMD_PORT),
            ("the message broker's distribution port", distribution),
        )
        # A broker on a port above 45535 has its distribution port set otherwise (not derived).
        if port < 65536
    ]


def _parses(text: str) -> bool:
    try:
        URL(text)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class EgressPolicy:
    """What outbound calls may reach. Frozen and hashable: a client can be kept per policy."""

    allowance: Allowance = field(default_factory=Allowance)
    #: Ports any destination may use; empty: every port.
    ports: frozenset[int] = frozenset()
    platform: PlatformEndpoints = field(default_factory=PlatformEndpoints)

    @classmethod
    def from_settings(cls, settings: CommonSettings, *, resolve: bool = True) -> EgressPolicy:
        """The deployment's policy: ``MODYARD_EGRESS_*`` and the platform's endpoints."""
        return cls(
            allowance=Allowance(
                cidrs=tuple(parse_cidr(item) for item in split_list(settings.egress_allow_cidrs)),
                hosts=tuple(
                    parse_host_pattern(item) for item in split_list(settings.egress_allow_hosts)
                ),
                loopback=settings.egress_allow_loopback,
            ),
            ports=frozenset(int(item) for item in split_list(settings.egress_allow_ports)),
            platform=platform_endpoints(settings, resolve=resolve),
        )

    def allowing(self, extra: Allowance | None) -> EgressPolicy:
        """This policy with ``extra`` allowed too (a workspace's allow-list, an endpoint)."""
        if extra is None or extra.empty:
            return self
        return replace(self, allowance=self.allowance | extra)

    # -- URLs --------------------------------------------------------------------------------

    def check_url(self, url: URL | str) -> URL:
        """``url`` if a request to it may start; :class:`EgressRefused` otherwise. Every
        redirect's ``Location`` must pass too."""
        if isinstance(url, str):
            try:
                url = URL(url)
            except (TypeError, ValueError) as exc:
                raise EgressRefused("url", f"the URL is not valid: {exc}") from None
        shown = _shown(url)
        if url.scheme not in SCHEMES:
            raise EgressRefused(
                "scheme", f"only http and https URLs may be requested, not {shown!r}"
            )
        if url.raw_user is not None or url.raw_password is not None:
            raise EgressRefused(
                "userinfo",
                "URLs with user:password@ are refused (credentials in URLs leak into logs "
                "and redirects): send an Authorization header instead",
            )
        host = (url.host or "").lower()
        if not host:
            raise EgressRefused("url", f"the URL {shown!r} has no host")
        try:
            port = url.port
        except ValueError:
            port = None
        if port is None or not 0 < port < 65536:
            raise EgressRefused("url", f"the URL {shown!r} has no valid port")
        self._check_port(host, port)
        name = host.rstrip(".")
        if ":" not in name and _is_numeric_host(name) and not _canonical_ipv4(name):
            raise EgressRefused(
                "ip-spelling",
                f"{host!r} is a numeric IPv4 spelling (decimal, octal, hex or shortened): "
                "write the address as four decimal numbers (a.b.c.d) or use a name",
            )
        if name in METADATA_NAMES:
            raise EgressRefused(
                "metadata", f"{host!r} is a cloud instance-metadata service, never reachable"
            )
        if (
            (name == "localhost" or name.endswith(".localhost"))
            and not self.allowance.loopback
            and (name, port) not in self.allowance.endpoints
        ):
            raise EgressRefused("loopback", _refusal_text("loopback", host, host))
        if self.platform.refuses(name, None, port):
            raise self._platform_refusal(host, None, port)
        try:
            literal = ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            return url  # a name: its addresses are checked when it is resolved
        self.check_address(name, literal, port)
        return url

    def _check_port(self, host: str, port: int) -> None:
        if self.ports and port not in self.ports and (host, port) not in self.allowance.endpoints:
            allowed = ", ".join(str(p) for p in sorted(self.ports))
            raise EgressRefused(
                "port",
                f"port {port} is not an allowed destination port ({allowed}); an operator "
                "can add it to MODYARD_EGRESS_ALLOW_PORTS",
            )

    # -- addresses ---------------------------------------------------------------------------

    def check_address(self, host: str, address: IPAddress | str, port: int) -> None:
        """Whether a connection to ``address``:``port`` (what ``host`` resolved to) may be
        made; :class:`EgressRefused` naming the rule otherwise."""
        if isinstance(address, str):
            address = ipaddress.ip_address(address.split("%", 1)[0])
        if self.platform.refuses(host, address, port):
            raise self._platform_refusal(host, address, port)
        rule = address_class(address)
        if rule != "link-local" and normalised(address) in self.platform.own_addresses:
            # This machine by another name: whatever listens on 0.0.0.0 answers there, so it
            # is loopback for the policy (no CIDR or host pattern opens it).
            rule = "own-address"
        if rule is None:
            return
        allowance = self.allowance
        name = host.lower().rstrip(".")
        if (name, port) in allowance.endpoints:
            return
        if rule in ("loopback", "unspecified", "own-address"):
            # Only the explicit setting: a CIDR such as ::ffff:0:0/96 must not open loopback.
            if allowance.loopback:
                return
            raise EgressRefused(rule, _refusal_text(rule, host, str(address)))
        reached = normalised(address)
        if any(reached in network or address in network for network in allowance.cidrs):
            return
        if rule in _LIFTED_BY_HOST and any(host_matches(name, p) for p in allowance.hosts):
            return
        raise EgressRefused(rule, _refusal_text(rule, host, str(address)))

    def allowed_address(self, host: str, address: str, port: int) -> bool:
        try:
            self.check_address(host, address, port)
        except EgressRefused:
            return False
        return True

    def _platform_refusal(self, host: str, address: IPAddress | None, port: int) -> EgressRefused:
        shown = f"[{host}]" if ":" in host else host
        where = (
            f"{shown}:{port}"
            if address is None or str(address) == host
            else (f"{shown}:{port} ({address})")
        )
        return EgressRefused(
            "platform-endpoint",
            f"{where} is {self.platform.label(port)}, one of the platform's own endpoints, "
            "which outbound calls never reach (no setting allows them)",
        )


_HOW_TO_ALLOW: Final = {
    "loopback": "unless MODYARD_EGRESS_ALLOW_LOOPBACK=true (development and tests only)",
    "own-address": "unless MODYARD_EGRESS_ALLOW_LOOPBACK=true (development and tests only)",
    "unspecified": "unless MODYARD_EGRESS_ALLOW_LOOPBACK=true (development and tests only)",
}


def _refusal_text(rule: str, host: str, address: str) -> str:
    kind = {
        "loopback": "a loopback address",
        "unspecified": "the unspecified address (this machine)",
        "own-address": "one of this machine's own addresses (reaching it is reaching loopback)",
        "link-local": "a link-local address (cloud metadata lives there)",
        "private": "a private (RFC 1918) address",
        "shared-address-space": "a shared (CGNAT, 100.64.0.0/10) address",
        "unique-local": "a unique-local IPv6 address (fc00::/7)",
        "multicast": "a multicast address",
        "reserved": "a reserved address",
        "non-global": "an address that is not globally routable",
    }.get(rule, f"refused ({rule})")
    how = _HOW_TO_ALLOW.get(
        rule,
        "unless an operator allow-lists it (MODYARD_EGRESS_ALLOW_CIDRS, or the workspace's "
        "egress allow-list: PUT /v1/workspaces/{workspace}/egress)",
    )
    target = host if host == address else f"{host} ({address})"
    return f"{target} is {kind}; outbound calls there are refused {how}"


def _shown(url: URL) -> str:
    try:
        return str(url.with_user(None).with_query(None).with_fragment(None))[:200]
    except (TypeError, ValueError):
        return "the URL"


__all__ = [
    "METADATA_NAMES",
    "PROBLEM_SLUG",
    "PROBLEM_TYPE",
    "Allowance",
    "EgressPolicy",
    "EgressRefused",
    "PlatformEndpoints",
    "address_class",
    "embedded_ipv4",
    "host_matches",
    "own_addresses",
    "parse_cidr",
    "parse_host_pattern",
    "platform_endpoints",
    "split_list",
]

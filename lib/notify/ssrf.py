"""The guard between an admin-supplied alert URL and the network (server-side request forgery).

A channel URL is typed by a person, so a careless or hostile one could make the server post to
itself, to the cloud metadata service or to a private network. Every attempt therefore resolves
the host once, refuses it when any address is not a public internet address, and connects to
exactly the addresses it checked (no second lookup a DNS answer could change in between). The
only way to reach an internal host, or to use plain http://, is ``SWITCHBOARD_ALERT_ALLOW``.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import httpcore

from lib.notify.deadline import Deadline

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[IPAddress]]
T = TypeVar("T")

ALLOW_VARIABLE = "SWITCHBOARD_ALERT_ALLOW"

_v4 = ipaddress.IPv4Network
_v6 = ipaddress.IPv6Network
# Every block of IANA's special-purpose address registries (IPv4 and IPv6, RFC 6890 and its
# updates) and multicast, checked before Python's ``is_global``: its tables vary between Python
# releases and, in 3.11, call 192.0.0.8, ::ffff:0:a.b.c.d, 3fff::/20 and the AS112 blocks
# global. Checked in this order; the first block that holds the address names the refusal.
SPECIAL_PURPOSE: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = (
    ("an unspecified address", (_v4("0.0.0.0/8"), _v6("::/128"))),
    ("a loopback address", (_v4("127.0.0.0/8"), _v6("::1/128"))),
    ("a link-local address (cloud metadata services live there)", (_v4("169.254.0.0/16"), _v6("fe80::/10"))),
    ("a private address", (_v4("10.0.0.0/8"), _v4("172.16.0.0/12"), _v4("192.168.0.0/16"))),
    ("a carrier-grade NAT address", (_v4("100.64.0.0/10"),)),
    ("a unique local IPv6 address", (_v6("fc00::/7"),)),
    ("a site-local IPv6 address", (_v6("fec0::/10"),)),
    ("a local-use NAT64 address", (_v6("64:ff9b:1::/48"),)),
    ("a multicast address", (_v4("224.0.0.0/4"), _v6("ff00::/8"))),
    ("a broadcast address", (_v4("255.255.255.255/32"),)),
    ("a reserved address", (_v4("240.0.0.0/4"),)),
    (
        "a documentation address",
        (_v4("192.0.2.0/24"), _v4("198.51.100.0/24"), _v4("203.0.113.0/24"), _v6("2001:db8::/32"), _v6("3fff::/20")),
    ),
    ("a benchmarking address", (_v4("198.18.0.0/15"), _v6("2001:2::/48"))),
    ("an address of the IETF's protocol assignments", (_v4("192.0.0.0/24"), _v6("2001::/23"))),
    (
        "an anycast service address (AS112, AMT, 6to4 relays)",
        (
            _v4("192.31.196.0/24"),
            _v4("192.52.193.0/24"),
            _v4("192.88.99.0/24"),
            _v4("192.175.48.0/24"),
            _v6("2620:4f:8000::/48"),
        ),
    ),
    ("a discard-only or dummy IPv6 address", (_v6("100::/64"), _v6("100:0:0:1::/64"))),
    ("an SRv6 segment identifier", (_v6("5f00::/16"),)),
    ("an obsolete IPv4-compatible or IPv4-translated IPv6 address", (_v6("::/96"), _v6("::ffff:0:0:0/96"))),
)
# IPv6 forms that stand for the IPv4 address they carry: IPv4-mapped (what a dual-stack socket
# connects to as IPv4), NAT64's well-known prefix, 6to4. They pass when that address is public.
CARRIERS = (_v6("::ffff:0:0/96"), _v6("64:ff9b::/96"), _v6("2002::/16"))
_GLOBAL_UNICAST = _v6("2000::/3")  # the only IPv6 space allocated for the public internet
_TRANSLATED = (_v6("::ffff:0:0:0/96"), _v6("64:ff9b::/96"), _v6("::/96"))  # the last 32 bits are IPv4


def embedded_v4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries: IPv4-mapped, IPv4-translated (SIIT), NAT64,
    IPv4-compatible, 6to4, or a Teredo client's."""
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address.teredo:
        return address.teredo[1]
    if any(address in net for net in _TRANSLATED) and int(address) & 0xFFFFFFFF > 1:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refusal(address: IPAddress) -> str | None:
    """Why alerts may not go to ``address`` (its kind, for people), or None for a public one.
    An IPv6 address is refused when the IPv4 address it carries is, whatever its own block."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = embedded_v4(address)
        if inner is not None:
            reason = refusal(inner)
            if reason:
                return f"{reason}, written as IPv6"
            if any(address in net for net in CARRIERS):
                return None
    for reason, networks in SPECIAL_PURPOSE:
        if any(address in net for net in networks if net.version == address.version):
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return "an IPv6 address outside the global unicast range"
    return None if address.is_global else "not a public internet address"


@dataclass(frozen=True)
class Allow:
    """What ``SWITCHBOARD_ALERT_ALLOW`` lets through: hosts by name, and networks."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> Allow:
        """From entries as ``Settings.alert_allow`` holds them (checked there): host names
        and networks such as ``127.0.0.1`` or ``10.0.0.0/8``. Callers pass
        ``get_settings().alert_allow``: lib.kernel.config brings SQLAlchemy, which this layer must not."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def covers(self, address: IPAddress) -> bool:
        return any(address in net for net in self.networks if net.version == address.version)

    def names(self, host: str) -> bool:
        """``host`` (a URL's host name or IP literal) is on the list itself."""
        host = host.lower().rstrip(".")
        if host in self.hosts:
            return True
        literal = ip_literal(host)
        return literal is not None and self.covers(literal)


def ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


class Refused(Exception):
    """The guard refused a destination; the message (no URL) says why and what to do."""


class Unresolved(Exception):
    """The host name did not resolve (may be temporary)."""


def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for ``host``, in its order, once each."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


@dataclass(frozen=True)
class Pinned:
    """A host and the addresses checked for it: connect to these, never resolve it again."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]

    def connect(
        self,
        open_one: Callable[[str, float], T],
        failures: tuple[type[Exception], ...],
        *,
        deadline: Deadline,
        timeout: float | None,
    ) -> T:
        """``open_one(address, seconds)`` for each checked address in turn, until one connects;
        each gets ``timeout``, or its share of the attempt's time left (``Deadline.share``)."""
        error: Exception | None = None
        for index, address in enumerate(self.addresses):
            try:
                return open_one(str(address), deadline.share(timeout, len(self.addresses) - index))
            except failures as exc:
                error = exc
        assert error is not None  # addresses is never empty
        raise error


def pin(host: str, port: int, *, allow: Allow, resolve: Resolver = resolve_host) -> Pinned:
    """Resolve ``host`` once and check every address it has; raises :class:`Refused` when any
    is internal (unless allowed), :class:`Unresolved` when it has none."""
    try:
        addresses = tuple(resolve(host, port))
    except TimeoutError:
        raise Unresolved(f"Looking up {host} took too long; check the host name and this server's DNS.") from None
    except (OSError, UnicodeError):
        addresses = ()
    if not addresses:
        raise Unresolved(f"{host} did not resolve to any address; check the host name.")
    if not allow.names(host):
        for address in addresses:
            reason = refusal(address)
            if reason and not allow.covers(address):
                raise Refused(
                    f"{host} resolves to {address}, {reason}. Alerts go only to public "
                    f"internet addresses; if this host is meant to be internal, add it "
                    f"to {ALLOW_VARIABLE}."
                )
    return Pinned(host, port, addresses)


class PinnedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting to the pinned addresses instead of resolving the
    URL's host again. httpcore still uses the host name for TLS (SNI and the certificate
    check) and the Host header, so only where the socket goes changes."""

    def __init__(self, pinned: Pinned, deadline: Deadline) -> None:
        self.pinned = pinned
        self.deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        if (host.lower(), port) != (self.pinned.host, self.pinned.port):  # a pool for one origin
            raise httpcore.ConnectError("the connection was not for the checked host")
        connect = super().connect_tcp
        stream = self.pinned.connect(
            lambda address, seconds: connect(address, port, seconds, local_address, socket_options),
            (httpcore.ConnectError, httpcore.ConnectTimeout),
            deadline=self.deadline,
            timeout=timeout,
        )
        try:
            self.deadline.watch(stream.get_extra_info("socket"))
        except OSError as exc:  # closed by watch
            raise httpcore.ConnectError(str(exc)) from exc
        return stream


def connection_failure(host: str, exc: BaseException, timeout: float) -> str:
    """Why connecting to or talking with ``host`` failed, for people: our words, never the
    exception's (which could quote a URL)."""
    chain = [exc, exc.__cause__, exc.__context__]
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain):
        return (
            f"{host}'s TLS certificate is not trusted or not made for this host name; the "
            "receiver's admin must install a valid certificate."
        )
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return f"The TLS handshake with {host} failed."
    if any(isinstance(e, (TimeoutError, httpcore.TimeoutException)) for e in chain):
        return timed_out(host, timeout)
    errno_text = next((e.strerror for e in chain if isinstance(e, OSError) and e.strerror), None)
    if errno_text:
        return f"The connection to {host} failed: {errno_text.lower()}."
    return f"{host} closed the connection without a complete answer."


def timed_out(host: str, timeout: float) -> str:
    return f"{host} did not answer within {timeout:g} s."

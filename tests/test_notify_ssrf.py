"""The SSRF guard: every internal address family is refused (IPv4 and IPv6, and IPv6 forms of
internal IPv4), a name is resolved once per attempt and the connection goes to the address
that was checked, redirects are never followed, and only SWITCHBOARD_ALERT_ALLOW opens a way."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.kernel.config import load_settings
from lib.kernel.errors import ConfigError, ValidationError
from lib.notify.models import Destination
from lib.notify.send import check_destination, deliver
from lib.notify.ssrf import (
    CARRIERS,
    SPECIAL_PURPOSE,
    Allow,
    IPAddress,
    IPNetwork,
    Refused,
    embedded_v4,
    pin,
    refusal,
)
from tests.fixtures.notify import LOCAL, sample_event, tls_contexts
from tests.fixtures.receiver import Answer, Receiver

LINK_LOCAL = "a link-local address (cloud metadata services live there)"
REFUSED = [
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.254", "a private address"),
    ("192.168.1.1", "a private address"),
    ("127.0.0.1", "a loopback address"),
    ("127.8.9.10", "a loopback address"),
    ("::1", "a loopback address"),
    ("169.254.169.254", LINK_LOCAL),
    ("169.254.0.1", LINK_LOCAL),
    ("fe80::1", LINK_LOCAL),
    ("fe80::a9fe:a9fe", LINK_LOCAL),
    ("100.64.0.1", "a carrier-grade NAT address"),
    ("100.127.255.254", "a carrier-grade NAT address"),
    ("224.0.0.1", "a multicast address"),
    ("239.255.255.250", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("ff0e::1", "a multicast address"),
    ("0.0.0.0", "an unspecified address"),
    ("::", "an unspecified address"),
    ("240.0.0.1", "a reserved address"),
    ("255.255.255.255", "a broadcast address"),
    ("fc00::1", "a unique local IPv6 address"),
    ("fd12:3456::1", "a unique local IPv6 address"),
    ("fec0::1", "a site-local IPv6 address"),
    ("64:ff9b:1::a00:1", "a local-use NAT64 address"),
    ("192.0.2.10", "a documentation address"),
    ("2001:db8::1", "a documentation address"),
    ("3fff::1", "a documentation address"),
    ("198.18.0.1", "a benchmarking address"),
    # Python 3.11's is_global calls these global (issue 21): IANA's registry does not.
    ("192.0.0.8", "an address of the IETF's protocol assignments"),
    ("192.31.196.1", "an anycast service address (AS112, AMT, 6to4 relays)"),
    ("2620:4f:8000::1", "an anycast service address (AS112, AMT, 6to4 relays)"),
    ("100:0:0:1::1", "a discard-only or dummy IPv6 address"),
    ("5f00::1", "an SRv6 segment identifier"),
    ("::ffff:0:808:808", "an obsolete IPv4-compatible or IPv4-translated IPv6 address"),
    ("4000::1", "an IPv6 address outside the global unicast range"),
    # IPv6 forms of internal IPv4 addresses
    ("::ffff:127.0.0.1", "a loopback address, written as IPv6"),
    ("::ffff:169.254.169.254", LINK_LOCAL + ", written as IPv6"),
    ("::ffff:10.0.0.1", "a private address, written as IPv6"),
    ("::ffff:100.64.0.1", "a carrier-grade NAT address, written as IPv6"),
    ("2002:7f00:1::1", "a loopback address, written as IPv6"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::", LINK_LOCAL + ", written as IPv6"),
    ("2002:c0a8:101::", "a private address, written as IPv6"),  # 6to4 of 192.168.1.1
    ("64:ff9b::7f00:1", "a loopback address, written as IPv6"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a9fe:a9fe", LINK_LOCAL + ", written as IPv6"),
    ("64:ff9b::a00:1", "a private address, written as IPv6"),
    ("::127.0.0.1", "a loopback address, written as IPv6"),  # IPv4-compatible
    ("::ffff:0:127.0.0.1", "a loopback address, written as IPv6"),  # IPv4-translated (SIIT)
    ("::ffff:0:10.1.2.3", "a private address, written as IPv6"),
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "a private address, written as IPv6"),  # Teredo, client 10.0.0.1
]
PUBLIC = [
    "93.184.215.14",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "2a00:1450:4001:80b::200e",
    "::ffff:8.8.8.8",
    "64:ff9b::808:808",
    "2002:808:808::1",
]


BLOCKS = [net for _reason, networks in SPECIAL_PURPOSE for net in networks]
REFUSED_V4 = [net for net in BLOCKS if net.version == 4]


def inside(net: IPNetwork) -> st.SearchStrategy[IPAddress]:
    """Any address of ``net``, its first and last included."""
    return st.integers(int(net.network_address), int(net.broadcast_address)).map(
        lambda n: ipaddress.ip_address(n) if net.version == 4 else ipaddress.IPv6Address(n)
    )


def written_as_ipv6(v4: ipaddress.IPv4Address, form: str, noise: int) -> ipaddress.IPv6Address:
    """``v4`` in one of the IPv6 forms that carry an IPv4 address (``noise`` fills the bits the
    form leaves free)."""
    value = int(v4)
    if form == "mapped":
        return ipaddress.IPv6Address((0xFFFF << 32) | value)
    if form == "translated":  # SIIT, ::ffff:0:a.b.c.d
        return ipaddress.IPv6Address((0xFFFF << 48) | value)
    if form == "compatible":
        return ipaddress.IPv6Address(value)
    if form == "nat64":
        return ipaddress.IPv6Address((0x64FF9B << 96) | value)
    if form == "6to4":
        return ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | (noise & (2**80 - 1)))
    assert form == "teredo"  # 2001:0:server:flags:port:client, the client's bits inverted
    return ipaddress.IPv6Address((0x20010000 << 96) | ((noise & (2**64 - 1)) << 32) | (value ^ 0xFFFFFFFF))


@given(st.sampled_from(BLOCKS).flatmap(inside))
def test_every_address_of_every_special_purpose_block_is_refused(address: IPAddress) -> None:
    assert refusal(address) is not None


@given(
    st.sampled_from(REFUSED_V4).flatmap(inside),
    st.sampled_from(["mapped", "translated", "compatible", "nat64", "6to4", "teredo"]),
    st.integers(0, 2**80 - 1),
)
def test_a_refused_ipv4_address_is_refused_in_every_ipv6_form(v4: ipaddress.IPv4Address, form: str, noise: int) -> None:
    address = written_as_ipv6(v4, form, noise)
    assert embedded_v4(address) == v4 or int(v4) <= 1  # ::, ::1 are themselves
    assert refusal(address) is not None


@given(
    st.one_of(
        st.integers(0, 2**32 - 1).map(ipaddress.IPv4Address), st.integers(0, 2**128 - 1).map(ipaddress.IPv6Address)
    )
)
def test_whatever_passes_is_outside_every_listed_block_and_global(address: IPAddress) -> None:
    if refusal(address) is not None:
        return
    inner = embedded_v4(address) if isinstance(address, ipaddress.IPv6Address) else None
    if inner is not None and any(address in net for net in CARRIERS):
        address = inner  # a public IPv4 address written as IPv6
    assert not any(address in net for net in BLOCKS if net.version == address.version)
    assert address.is_global


@pytest.mark.parametrize(
    "address", [edge for net in BLOCKS for edge in {str(net.network_address), str(net.broadcast_address)}]
)
def test_the_edges_of_each_block_are_refused(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    [
        "192.0.0.8",
        "192.0.0.0",
        "192.0.0.255",
        "::ffff:0:8.8.8.8",
        "::ffff:0:127.0.0.1",
        "::ffff:0:0.0.0.0",
        "::ffff:0:255.255.255.255",
    ],
)
def test_the_two_forms_the_review_found_are_refused(address: str) -> None:
    """192.0.0.0/24 and ::ffff:0:0:0/96 (SIIT) passed Python 3.11's is_global."""
    assert refusal(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize(
    "address",
    [
        "192.0.1.0",
        "192.0.3.0",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "2001:200::1",
        "2003::1",
        "3ffe:ffff::1",
    ],
)
def test_the_neighbours_of_the_blocks_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def resolver(*addresses: str, calls: list[str] | None = None):  # type: ignore[no-untyped-def]
    """A resolver seam: every name resolves to ``addresses``; ``calls`` records each lookup."""

    def resolve(host: str, port: int) -> Sequence[IPAddress]:
        if calls is not None:
            calls.append(host)
        return [ipaddress.ip_address(a) for a in addresses]

    return resolve


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_each_internal_address_family_is_refused_with_its_name(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_a_name_resolving_to_an_internal_address_is_refused_before_any_connection(address: str, reason: str) -> None:
    attempt = deliver(
        Destination("slack", "https://hooks.example.test/services/T0/B0/x"),
        sample_event(),
        allow=Allow(),
        resolve=resolver(address),
    )
    assert (attempt.delivered, attempt.refused, attempt.status) == (False, True, None)
    assert f"hooks.example.test resolves to {ipaddress.ip_address(address)}, {reason}" in attempt.error
    assert "SWITCHBOARD_ALERT_ALLOW" in attempt.error and "/services/" not in attempt.error


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_an_internal_ip_literal_is_refused_when_the_channel_is_added(address: str, reason: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(ValidationError) as refused:
        check_destination("webhook", f"https://{host}/hook", allow=Allow())
    [error] = refused.value.errors
    assert (error.field, error.label) == ("url", "URL")
    assert reason in error.message and "SWITCHBOARD_ALERT_ALLOW" in error.message


def test_one_internal_address_among_public_ones_is_enough_to_refuse() -> None:
    with pytest.raises(Refused, match="resolves to 10.0.0.7, a private address"):
        pin("hooks.example.test", 443, allow=Allow(), resolve=resolver("8.8.8.8", "10.0.0.7"))


def test_the_real_localhost_resolves_to_loopback_and_is_refused() -> None:
    # The system resolver, not a seam.
    with pytest.raises(Refused, match=r"localhost resolves to (127\.0\.0\.1|::1), a loopback address"):
        pin("localhost", 443, allow=Allow())


def test_a_name_that_resolves_to_127_0_0_1_never_reaches_the_receiver_there() -> None:
    server_tls, client_tls = tls_contexts("hooks.example.test")
    with Receiver(tls=server_tls) as receiver:
        url = receiver.url(host="hooks.example.test")
        attempt = deliver(
            Destination("webhook", url, "whsec_" + "A" * 40),
            sample_event(),
            allow=Allow(),
            resolve=resolver("127.0.0.1"),
            ssl_context=client_tls,
        )
        assert attempt.refused and "resolves to 127.0.0.1, a loopback address" in attempt.error
        assert receiver.received == []
        # The same attempt with 127.0.0.1 on the allow-list gets through: the refusal was the guard.
        assert deliver(
            Destination("webhook", url, "whsec_" + "A" * 40),
            sample_event(),
            allow=LOCAL,
            resolve=resolver("127.0.0.1"),
            ssl_context=client_tls,
        ).delivered
        assert len(receiver.received) == 1


def test_localhost_is_refused_when_the_channel_is_added() -> None:
    for host in ("localhost", "localhost.", "printer.localhost"):
        with pytest.raises(ValidationError, match=f"{host}, this machine"):
            check_destination("webhook", f"https://{host}:8443/hook", allow=Allow())


def test_the_connection_goes_to_the_checked_address_and_tls_still_checks_the_name() -> None:
    # internal.example.test exists in no DNS: only the pinned address can reach the receiver,
    # whose certificate is for that name (not for 127.0.0.1), so SNI and the check use the name.
    server_tls, client_tls = tls_contexts("internal.example.test")
    calls: list[str] = []
    with Receiver(tls=server_tls) as receiver:
        url = receiver.url(host="internal.example.test")
        attempt = deliver(
            Destination("slack", url),
            sample_event(),
            allow=LOCAL,
            resolve=resolver("127.0.0.1", calls=calls),
            ssl_context=client_tls,
        )
        assert attempt.delivered, attempt.error
        assert receiver.received[0].headers["host"] == f"internal.example.test:{receiver.port}"
        assert calls == ["internal.example.test"]  # resolved once for the attempt

        # Every attempt resolves and checks again: the same name now answering with a private
        # address (DNS rebinding) is refused.
        again = deliver(
            Destination("slack", url),
            sample_event(),
            allow=LOCAL,
            resolve=resolver("10.0.0.7", calls=calls),
            ssl_context=client_tls,
        )
        assert again.refused and "10.0.0.7, a private address" in again.error
        assert calls == ["internal.example.test"] * 2 and len(receiver.received) == 1


def test_a_certificate_for_another_name_fails_although_the_address_is_right() -> None:
    server_tls, client_tls = tls_contexts("other.example.test")
    with Receiver(tls=server_tls) as receiver:
        attempt = deliver(
            Destination("slack", receiver.url(host="internal.example.test")),
            sample_event(),
            allow=LOCAL,
            resolve=resolver("127.0.0.1"),
            ssl_context=client_tls,
        )
    assert not attempt.delivered and not attempt.refused
    assert attempt.error == (
        "internal.example.test's TLS certificate is not trusted or not made for "
        "this host name; the receiver's admin must install a valid certificate."
    )


@pytest.mark.parametrize(
    "location", ["http://169.254.169.254/latest/meta-data/iam/", "http://10.0.0.1/admin", "http://127.0.0.1:1/"]
)
@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failure_and_is_not_followed(location: str, status: int) -> None:
    with Receiver(Answer(status, {"Location": location})) as receiver:
        attempt = deliver(Destination("teams", receiver.url()), sample_event(), allow=LOCAL)
    assert (attempt.delivered, attempt.status, attempt.refused) == (False, status, False)
    assert attempt.error == (
        f"127.0.0.1 answered HTTP {status}, a redirect. Redirects are not "
        "followed; set the channel's URL to the final address."
    )
    assert len(receiver.received) == 1


def test_plain_http_and_internal_addresses_only_for_what_the_allow_list_names() -> None:
    allow = Allow.of(load_settings({"SWITCHBOARD_ALERT_ALLOW": "hooks.corp.test, 10.20.0.0/16"}).alert_allow)
    check_destination("webhook", "http://hooks.corp.test/x", allow=allow)
    check_destination("webhook", "http://10.20.3.4:8080/x", allow=allow)
    check_destination("webhook", "https://10.20.3.4/x", allow=allow)
    with pytest.raises(ValidationError, match="must start with https://"):
        check_destination("webhook", "http://hooks.example.com/x", allow=allow)
    with pytest.raises(ValidationError, match="10.21.0.1, a private address"):
        check_destination("webhook", "https://10.21.0.1/x", allow=allow)
    # A listed name may resolve anywhere; another name only into a listed network.
    assert pin("hooks.corp.test", 80, allow=allow, resolve=resolver("192.168.9.9")).addresses
    assert pin("other.test", 443, allow=allow, resolve=resolver("10.20.0.9")).addresses
    with pytest.raises(Refused):
        pin("other.test", 443, allow=allow, resolve=resolver("10.20.0.9", "10.30.0.1"))


def test_the_allow_list_setting_is_parsed_and_a_bad_entry_names_the_variable() -> None:
    settings = load_settings({"SWITCHBOARD_ALERT_ALLOW": " 127.0.0.1, Hooks.Corp.Test., 10.0.0.0/8,::1 "})
    assert settings.alert_allow == ("127.0.0.1/32", "hooks.corp.test", "10.0.0.0/8", "::1/128")
    assert load_settings({}).alert_allow == ()
    for bad in ("http://hooks.corp.test", "hooks.corp.test:8080", "10.0.0.0/33", "a..b"):
        with pytest.raises(
            ConfigError, match=f"SWITCHBOARD_ALERT_ALLOW: '{bad}' is not a host name, IP address or network"
        ):
            load_settings({"SWITCHBOARD_ALERT_ALLOW": bad})

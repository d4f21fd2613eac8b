"""Where webhooks may be delivered: URL rules and refused addresses (SSRF)."""

from __future__ import annotations

import ipaddress
import socket
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from onepass.webhooks.errors import UnsafeWebhookTarget
from onepass.webhooks.resolver import SafeResolver, UnsafeAddressError, guarded_socket
from onepass.webhooks.safety import address_problem, check_url, parse_ip


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.5", "private"),
        ("172.16.3.4", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.100.100.200", "metadata"),
        ("169.254.10.10", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "this network"),  # noqa: S104 - an address checked, not bound
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("192.0.2.10", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("255.255.255.255", "broadcast"),
        ("0.1.2.3", "this network"),
        ("::ffff:127.0.0.1", "embedding 127.0.0.1"),
        ("::ffff:10.0.0.1", "embedding 10.0.0.1"),
        ("::ffff:0:127.0.0.1", "SIIT"),
        ("::ffff:0:8.8.8.8", "SIIT"),
        ("::127.0.0.1", "IPv4-compatible"),
        ("64:ff9b::a9fe:a9fe", "embedding 169.254.169.254"),
        ("64:ff9b::7f00:1", "embedding 127.0.0.1"),
        ("64:ff9b::a00:1", "embedding 10.0.0.1"),
        ("64:ff9b:1::1", "NAT64"),
        ("2002:7f00:1::1", "embedding 127.0.0.1"),
        ("2002:c0a8:101::", "embedding 192.168.1.1"),
        ("2002:a9fe:a9fe::1", "embedding 169.254.169.254"),
        ("2001:0:4136:e378::1", "Teredo"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("2001:2::1", "benchmarking"),
        ("2001:10::1", "ORCHID"),
        ("100::1", "discard-only"),
        ("5f00::1", "SRv6"),
        ("fec0::1", "site-local"),
        ("0:0:1::1", "outside 2000::/3"),
        ("4000::1", "outside 2000::/3"),
    ],
)
def test_refused_addresses_name_the_reason(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason in problem


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("https://[::1]:8443/hook", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "metadata"),
        ("https://10.1.2.3/", "private"),
        ("https://[::ffff:192.168.0.1]/", "192.168.0.1"),
        ("https://localhost/hook", "loopback"),
        ("https://api.localhost/hook", "loopback"),
        ("ftp://rp.example/hook", "http(s)"),
        ("rp.example/hook", "http(s)"),
        ("https://user:pw@rp.example/hook", "credentials"),
        ("https://rp.example:99999/hook", "not a valid URL"),
        ("https://[::ffff:0:127.0.0.1]/hook", "SIIT"),
        ("https://[fe80::1%25eth0]/hook", "zone id"),
        ("https://rp%2eexample/hook", "not a valid host name"),
        ("https://xn--/hook", "not a valid host name"),
    ],
)
def test_unsafe_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(UnsafeWebhookTarget, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_url(url, production=False, allow_private=False)


# What a URL parser and the C library's inet_aton read as an IPv4 address, each digit
# and dot written the ways IDNA (UTS #46, NFKC) maps back to ASCII.
FULLWIDTH = str.maketrans(
    "0123456789.", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17\uff18\uff19\uff0e"
)
CIRCLED = {
    "127": "\u2460\u2461\u2466",
    "10": "\u2469",
    "169": "\u2460\u2465\u2468",
    "254": "\u2461\u2464\u2463",
}
IDEOGRAPHIC_STOP = "\u3002"
HALFWIDTH_STOP = "\uff61"
BOLD_DIGITS = str.maketrans("0123456789", "".join(chr(0x1D7CE + d) for d in range(10)))


@pytest.mark.parametrize(
    ("url", "address"),
    [
        (f"http://{'127.0.0.1'.translate(FULLWIDTH)}:8080/x", "127.0.0.1"),
        (f"http://{CIRCLED['127']}.0.0.1/", "127.0.0.1"),
        (f"http://127{IDEOGRAPHIC_STOP}0{IDEOGRAPHIC_STOP}0{IDEOGRAPHIC_STOP}1/", "127.0.0.1"),
        (f"http://127{HALFWIDTH_STOP}0{HALFWIDTH_STOP}0{HALFWIDTH_STOP}1/", "127.0.0.1"),
        (f"http://{'127.0.0.1'.translate(BOLD_DIGITS)}/", "127.0.0.1"),
        (f"http://{CIRCLED['10']}.0.0.1/", "10.0.0.1"),
        (f"https://{CIRCLED['169']}.{CIRCLED['254']}.169.254/latest", "169.254.169.254"),
        (f"http://{'192.168.0.1'.translate(FULLWIDTH)}/", "192.168.0.1"),
        (f"http://{'100.100.100.200'.translate(FULLWIDTH)}/", "100.100.100.200"),
        (f"http://{'0.1.2.3'.translate(FULLWIDTH)}/", "0.1.2.3"),
        ("http://[::ffff:0:127.0.0.1]:8080/x", "::ffff:0:127.0.0.1"),
        ("http://[0:0:0:0:0:ffff:7f00:1]/", "embedding 127.0.0.1"),
        ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "localhost"),
        ("http://LOCALHOST./", "localhost"),
    ],
)
def test_unicode_and_alternative_hosts_are_refused_as_the_client_sees_them(
    url: str, address: str
) -> None:
    # aiohttp (yarl) IDNA-maps each of these hosts to the blocked address and
    # connects there without a resolver; the check must see the same host.
    with pytest.raises(UnsafeWebhookTarget, match="deliveries there are refused") as refused:
        check_url(url, production=False, allow_private=False)
    assert address in str(refused.value)


@pytest.mark.parametrize(
    "host", ["127.1", "0x7f.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "017700000001",
             "127.0.0.1.", "1.2.3.4.5", "rp.example.123", "8.8.8.010"],
)  # fmt: skip
def test_hosts_read_as_legacy_ipv4_numbers_are_refused(host: str) -> None:
    # getaddrinfo maps these onto an address (inet_aton); only a.b.c.d is accepted.
    with pytest.raises(UnsafeWebhookTarget, match="not a canonical IPv4 address"):
        check_url(f"http://{host}/hook", production=False, allow_private=True)


def test_an_accepted_unicode_host_is_returned_as_the_client_connects_to_it() -> None:
    public = f"https://{'8.8.8.8'.translate(FULLWIDTH)}/hook"
    assert check_url(public, production=True, allow_private=False).raw_host == "8.8.8.8"
    name = "https://\uff52\uff50.example/hook"
    assert check_url(name, production=True, allow_private=False).raw_host == "rp.example"


def test_production_requires_https() -> None:
    with pytest.raises(UnsafeWebhookTarget, match="https in production"):
        check_url("http://rp.example/hook", production=True, allow_private=False)
    assert (
        check_url("https://rp.example/hook", production=True, allow_private=False).host
        == "rp.example"
    )


def test_private_targets_pass_only_when_allowed() -> None:
    assert check_url("http://127.0.0.1:9/hook", production=False, allow_private=True).port == 9
    with pytest.raises(UnsafeWebhookTarget, match="https in production"):
        check_url("http://127.0.0.1:9/hook", production=True, allow_private=True)


async def test_resolver_refuses_a_name_that_resolves_to_loopback() -> None:
    # "localhost" resolves through the system resolver, as any RP host name would.
    resolver = SafeResolver(allow_private=False)
    try:
        with pytest.raises(
            UnsafeAddressError, match="localhost resolves only to refused addresses"
        ):
            await resolver.resolve("localhost", 443, socket.AF_UNSPEC)
    finally:
        await resolver.close()


async def test_resolver_returns_exactly_the_checked_addresses_when_allowed() -> None:
    resolver = SafeResolver(allow_private=True)
    try:
        results = await resolver.resolve("localhost", 443, socket.AF_INET)
    finally:
        await resolver.close()
    assert {r["host"] for r in results} == {"127.0.0.1"}
    assert all(r["port"] == 443 for r in results)


def test_the_socket_factory_refuses_a_blocked_address_and_opens_one_for_a_public_one() -> None:
    # aiohttp calls it with the address it is about to connect to, IP literals included.
    siit = (
        socket.AF_INET6,
        socket.SOCK_STREAM,
        socket.IPPROTO_TCP,
        "",
        ("::ffff:0:7f00:1", 80, 0, 0),
    )
    with pytest.raises(UnsafeAddressError, match=r"::ffff:0:7f00:1, an IPv4-translated address"):
        guarded_socket(siit)
    loopback = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))
    with pytest.raises(UnsafeAddressError, match=r"127\.0\.0\.1, a loopback address"):
        guarded_socket(loopback)
    public = (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("93.184.215.14", 443))
    with guarded_socket(public) as sock:
        assert sock.family == socket.AF_INET and sock.type == socket.SOCK_STREAM


# -- property: what check_url accepts, the HTTP client never sends to a refused address --

# Every character NFKC (the core of IDNA 2003's nameprep and of UTS #46) maps to ASCII
# that can spell an address, plus the label separators IDNA treats as dots.
_SPELLINGS: dict[str, list[str]] = {}
for _cp in range(0x80, 0x20000):
    _mapped = unicodedata.normalize("NFKC", chr(_cp))
    if _mapped and all(c in "0123456789abcdefx.:" for c in _mapped.lower()):
        _SPELLINGS.setdefault(_mapped.lower(), []).append(chr(_cp))
for _stop in ("\u3002", "\uff0e", "\uff61"):
    _SPELLINGS.setdefault(".", []).append(_stop)

_REFUSED_NETWORKS = [
    "127.0.0.0/8", "10.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10", "0.0.0.0/8",
    "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4", "::1/128", "::ffff:0:0/96",
    "::ffff:0:0:0/96", "64:ff9b::/96", "2002::/16", "2001::/32", "fc00::/7", "fe80::/10",
]  # fmt: skip


@st.composite
def _addresses(draw: st.DrawFn) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    network = draw(st.sampled_from([None, *_REFUSED_NETWORKS]))
    return draw(st.ip_addresses(network=network))


@st.composite
def _written(draw: st.DrawFn) -> str:
    """An address as a URL host, in one of the ways a URL parser or inet_aton reads it."""
    address = draw(_addresses())
    if isinstance(address, ipaddress.IPv6Address):
        text = draw(st.sampled_from([address.compressed, address.exploded]))
        if address.ipv4_mapped is not None and draw(st.booleans()):
            text = f"::ffff:{address.ipv4_mapped}"
        return f"[{text.upper() if draw(st.booleans()) else text}]"
    value, parts = int(address), str(address).split(".")
    return draw(
        st.sampled_from(
            [
                str(address),
                str(address) + ".",
                str(value),
                hex(value),
                ".".join(f"0{int(p):o}" for p in parts),
                f"{parts[0]}.{value & 0xFFFFFF}",
                f"{parts[0]}.{parts[1]}.{value & 0xFFFF}",
            ]
        )
    )


@st.composite
def _respelled(draw: st.DrawFn, host: str) -> str:
    """``host`` with some characters swapped for Unicode that maps back to them."""
    out = []
    for char in host:
        if char in _SPELLINGS and draw(st.booleans()):
            out.append(draw(st.sampled_from(_SPELLINGS[char])))
        else:
            out.append(char)
    return "".join(out)


_hosts = st.one_of(
    _written().flatmap(_respelled),
    st.text(
        alphabet=st.sampled_from([*"0123456789.:x[]%-a", *_SPELLINGS["1"], *_SPELLINGS["."]]),
        min_size=1,
        max_size=16,
    ),
    st.sampled_from([k for k in _SPELLINGS if len(k) > 1 and k[0].isdigit()]).map(
        lambda prefix: f"{prefix}0.0.1"
    ),
)


def _addresses_connected_to(host: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Where a connection to ``host`` can go without asking DNS: aiohttp's IP-literal
    path, and the C library's numeric parsing (getaddrinfo, AI_NUMERICHOST)."""
    found = set()
    if (literal := parse_ip(host)) is not None:
        found.add(literal)
    try:
        infos = socket.getaddrinfo(host, 80, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        infos = []
    found.update(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos)
    return found


@settings(max_examples=300, deadline=None)
@given(host=_hosts, port=st.sampled_from(["", ":8080"]))
def test_an_accepted_url_never_reaches_a_refused_address_literally(host: str, port: str) -> None:
    url = f"http://{host}{port}/hook"
    try:
        check_url(url, production=False, allow_private=False)
    except UnsafeWebhookTarget:
        return
    try:  # the host as aiohttp connects to it: yarl's parse, as ClientSession does
        host = URL(url).raw_host or ""
    except ValueError:
        return  # aiohttp refuses the URL too (InvalidURL): nothing is sent
    connected = _addresses_connected_to(host)
    assert all(address_problem(a) is None for a in connected), (url, connected)

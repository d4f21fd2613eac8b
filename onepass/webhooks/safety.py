"""Where webhooks may go: URL rules and address checks against SSRF.

A webhook URL is chosen by whoever registers an application, so 1pass must not
become a way to reach its own network: deliveries to loopback, private, link-local
(cloud metadata), carrier-grade NAT, reserved, multicast and broadcast addresses, and
to IPv6 forms that embed such an IPv4 address (IPv4-mapped, 6to4, NAT64) or translate
to one (SIIT, Teredo, local-use NAT64), are refused unless
``ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS=1`` (tests, local development).

The host is checked as the HTTP client will use it, not as typed: aiohttp parses the
URL with yarl, which maps a Unicode host through IDNA (UTS #46, which includes NFKC),
so an IPv4 address written with fullwidth (U+FF11 ...) or circled (U+2460 ...) digits
or ideographic full stops (U+3002) becomes an ASCII IP literal, which aiohttp connects
to without any resolver. ``check_url`` parses with yarl too and judges the resulting
host: an IP literal by its address; a host that ends in a number (``127.1``,
``0x7f.1``, ``2130706433``: forms the C library maps onto an address) is refused unless
it is a canonical dotted quad; anything else must be a DNS name.

Three layers, each enough on its own for the case it covers: ``check_url`` at
registration and again before every delivery (a URL stored before these rules, or
written to the database directly, is refused when it is due); ``resolver.SafeResolver``
for the addresses a name resolves to (checked when connecting, so no DNS-rebinding
window); and ``resolver.connector``'s socket factory, which checks the address of every
socket just before it connects, IP literals included.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache
from urllib.parse import urlsplit

from yarl import URL

from onepass.webhooks.errors import UnsafeWebhookTarget

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {
    ipaddress.ip_address("169.254.169.254"): "a cloud metadata service",
    ipaddress.ip_address("169.254.170.2"): "a cloud metadata service",
    ipaddress.ip_address("100.100.100.200"): "a cloud metadata service",
    ipaddress.ip_address("192.0.0.192"): "a cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "a cloud metadata service",
}

_V4_NETWORKS = [
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "a 'this network' address"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a limited broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
]

# Checked after the embedded IPv4 address of an IPv4-mapped, NAT64 (64:ff9b::/96) or
# 6to4 address (``_embedded_ipv4``); the first match names the reason. Everything
# outside 2000::/3, the only range IANA allocates for global unicast, is refused.
_V6_NETWORKS = [
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("::ffff:0:0:0/96", "an IPv4-translated address (SIIT, RFC 2765)"),
        ("::/96", "an IPv4-compatible address (deprecated)"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("100::/64", "a discard-only address"),
        ("5f00::/16", "an SRv6 segment identifier"),
        ("fc00::/7", "a unique local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        ("2001::/32", "a Teredo address"),
        ("2001:2::/48", "a benchmarking address"),
        ("2001:10::/28", "an ORCHID address"),
        ("2001:20::/28", "an ORCHIDv2 address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
    )
]
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")


def address_problem(address: IPAddress) -> str | None:
    """Why a delivery to ``address`` is refused, or None if it is a public address."""
    if address in _METADATA:
        return _METADATA[address]
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = address_problem(embedded)
            return f"an IPv6 address embedding {embedded}, {inner}" if inner else None
        for network, why in _V6_NETWORKS:
            if address in network:
                return why
        if address not in _GLOBAL_UNICAST:
            return "a reserved address (outside 2000::/3, the IPv6 global unicast range)"
    else:
        for network, why in _V4_NETWORKS:
            if address in network:
                return why
    if not address.is_global:
        return "an address that is not globally routable"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 or 6to4 IPv6 address."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def parse_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address if it is one (brackets and zone ids removed), else None."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


# WHATWG URL "ends in a number": such a host is an IPv4 address to a URL parser and to
# the C library's inet_aton (decimal, octal and hex parts, fewer than four parts).
_NUMBER = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)", re.IGNORECASE)
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_ALLOW_HINT = "(ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS=1 allows them, for development only)"


def delivery_host(target: URL) -> str:
    """The host aiohttp connects to for ``target``: yarl's IDNA-encoded host, several
    trailing dots squashed to one as aiohttp's connector does."""
    host = target.raw_host or ""
    if host.endswith(".."):
        host = host.rstrip(".") + "."
    return host


def _is_canonical_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(
        part.isascii()
        and part.isdigit()
        and len(part) <= 3
        and (part == "0" or not part.startswith("0"))
        and int(part) <= 255
        for part in parts
    )


def host_address(host: str) -> IPAddress | None:
    """The address an IP-literal ``host`` (as ``delivery_host`` gives it) connects to;
    None for a DNS name. ``UnsafeWebhookTarget`` for a host that is neither."""
    if ":" in host:
        if "%" in host:
            raise UnsafeWebhookTarget(
                f"webhook URL host [{host[:60]}] has an IPv6 zone id; webhooks go to global addresses"
            )
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeWebhookTarget(
                f"webhook URL host {host[:60]!r} is not a valid IPv6 address"
            ) from None
    labels = host.split(".")
    if labels[-1] == "" and len(labels) > 1:
        labels.pop()  # one trailing dot: a fully-qualified name
    if _NUMBER.fullmatch(labels[-1]):
        if not _is_canonical_ipv4(host):
            raise UnsafeWebhookTarget(
                f"webhook URL host {host[:60]!r} is not a canonical IPv4 address; "
                "write an IPv4 address as four decimal numbers, a.b.c.d"
            )
        return ipaddress.IPv4Address(host)
    if len(host) > 254 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeWebhookTarget(f"webhook URL host {host[:60]!r} is not a valid host name")
    return None


@lru_cache(maxsize=4096)
def check_url(url: str, *, production: bool, allow_private: bool, what: str = "webhook URL") -> URL:
    """Parse and check a webhook URL as aiohttp will use it; ``UnsafeWebhookTarget``
    says what is wrong. Returns the parsed URL (its ``raw_host`` is where it goes).

    https is required in production; http is allowed in development. A host that is
    an IP address (after IDNA mapping) or ``localhost`` is checked here; names are
    checked at connection time by ``SafeResolver``.
    """
    try:
        target = URL(url)  # exactly what aiohttp.ClientSession does with a str URL
        port = target.port
    except (ValueError, TypeError) as exc:  # UnicodeError (IDNA) is a ValueError
        raise UnsafeWebhookTarget(f"{what} {url[:200]!r} is not a valid URL: {exc}") from None
    if target.scheme not in ("http", "https") or not target.raw_host:
        raise UnsafeWebhookTarget(f"{what} {url[:200]!r} must be an absolute http(s) URL")
    if production and target.scheme != "https":
        raise UnsafeWebhookTarget(f"{what}s must use https in production")
    if target.raw_user is not None or target.raw_password is not None:
        raise UnsafeWebhookTarget(f"{what}s must not contain credentials (user:password@)")
    if target.raw_fragment:
        raise UnsafeWebhookTarget(f"{what}s must not contain a fragment")
    if port == 0:
        raise UnsafeWebhookTarget(f"{what} port 0 is not valid")
    host = delivery_host(target)
    address = host_address(host)
    if allow_private:
        return target
    if address is not None:
        problem = address_problem(address)
        if problem is not None:
            raise UnsafeWebhookTarget(
                f"{what} host {_shown(url, str(address))} is {problem}; "
                f"deliveries there are refused {_ALLOW_HINT}"
            )
    elif host.rstrip(".") == "localhost" or host.rstrip(".").endswith(".localhost"):
        raise UnsafeWebhookTarget(
            f"{what} host {_shown(url, host)} is loopback; deliveries there are refused "
            f"{_ALLOW_HINT}"
        )
    return target


def _shown(url: str, host: str) -> str:
    """``host``, and the host as typed when the HTTP client maps it to something else."""
    try:
        typed = urlsplit(url).hostname
    except ValueError:
        typed = None
    if typed is None or typed.rstrip(".") == host.rstrip("."):
        return host
    if (address := parse_ip(typed)) is not None and address == parse_ip(host):
        return typed
    return f"{typed[:60]!r} (to the HTTP client: {host})"

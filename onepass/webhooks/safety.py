"""Where webhooks may go: URL rules and address checks against SSRF.

A webhook URL is chosen by whoever registers an application, so 1pass must not
become a way to reach its own network: deliveries to loopback, private, link-local
(cloud metadata), carrier-grade NAT, reserved, multicast, and IPv6 forms that embed
such an IPv4 address (IPv4-mapped, 6to4, NAT64, Teredo) are refused unless
``ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS=1`` (tests, local development).

The check happens where the connection is made: ``resolver.SafeResolver`` is the
resolver of the dispatcher's aiohttp connector, so the addresses it lets through are
exactly the ones aiohttp connects to; a name cannot resolve to a public address when
checked and to a private one when connected (no DNS-rebinding window). An IP-literal
host never reaches a resolver, so ``check_url`` checks it.

Pure: the standard library only.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

from onepass.webhooks.errors import UnsafeWebhookTarget

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_METADATA = {
    ipaddress.ip_address("169.254.169.254"): "cloud metadata service",
    ipaddress.ip_address("169.254.170.2"): "cloud metadata service",
    ipaddress.ip_address("100.100.100.200"): "cloud metadata service",
    ipaddress.ip_address("192.0.0.192"): "cloud metadata service",
    ipaddress.ip_address("fd00:ec2::254"): "cloud metadata service",
}

_V4_NETWORKS = [
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "'this network' address"),
        ("10.0.0.0/8", "private address"),
        ("100.64.0.0/10", "carrier-grade NAT address"),
        ("127.0.0.0/8", "loopback address"),
        ("169.254.0.0/16", "link-local address"),
        ("172.16.0.0/12", "private address"),
        ("192.0.0.0/24", "IETF protocol assignment"),
        ("192.0.2.0/24", "documentation address"),
        ("192.88.99.0/24", "6to4 relay anycast address"),
        ("192.168.0.0/16", "private address"),
        ("198.18.0.0/15", "benchmarking address"),
        ("198.51.100.0/24", "documentation address"),
        ("203.0.113.0/24", "documentation address"),
        ("224.0.0.0/4", "multicast address"),
        ("240.0.0.0/4", "reserved address"),
    )
]

_V6_NETWORKS = [
    (ipaddress.ip_network(net), why)
    for net, why in (
        ("::/128", "unspecified address"),
        ("::1/128", "loopback address"),
        ("::/96", "IPv4-compatible address (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64 address"),
        ("100::/64", "discard-only address"),
        ("2001::/32", "Teredo address"),
        ("2001:db8::/32", "documentation address"),
        ("fc00::/7", "unique local (private) address"),
        ("fe80::/10", "link-local address"),
        ("fec0::/10", "site-local address"),
        ("ff00::/8", "multicast address"),
    )
]

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
            return f"embeds {embedded}, a {inner}" if inner else None
        for network, why in _V6_NETWORKS:
            if address in network:
                return why
    else:
        for network, why in _V4_NETWORKS:
            if address in network:
                return why
    if not address.is_global:
        return "address that is not globally routable"
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


@lru_cache(maxsize=4096)
def check_url(url: str, *, production: bool, allow_private: bool) -> SplitResult:
    """Parse and check a webhook URL; ``UnsafeWebhookTarget`` says what is wrong.

    https is required in production; http is allowed in development. A host that
    is an IP address (or ``localhost``) is checked here; names are checked at
    connection time by ``SafeResolver``.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeWebhookTarget(f"webhook URL {url[:200]!r} is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeWebhookTarget(f"webhook URL {url[:200]!r} must be an absolute http(s) URL")
    if production and parts.scheme != "https":
        raise UnsafeWebhookTarget("webhook URLs must use https in production")
    if parts.username is not None or parts.password is not None:
        raise UnsafeWebhookTarget("webhook URLs must not contain credentials (user:password@)")
    if parts.fragment:
        raise UnsafeWebhookTarget("webhook URLs must not contain a fragment")
    if port == 0:
        raise UnsafeWebhookTarget("webhook URL port 0 is not valid")
    if allow_private:
        return parts
    host = parts.hostname
    address = parse_ip(host)
    if address is not None:
        problem = address_problem(address)
        if problem is not None:
            raise UnsafeWebhookTarget(
                f"webhook URL host {address} is a {problem}; deliveries there are refused "
                "(ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS=1 allows them, for development only)"
            )
    elif host == "localhost" or host.endswith(".localhost"):
        raise UnsafeWebhookTarget(
            f"webhook URL host {host!r} is loopback; deliveries there are refused "
            "(ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS=1 allows them, for development only)"
        )
    return parts

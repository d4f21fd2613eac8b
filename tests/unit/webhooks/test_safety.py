"""Where webhooks may be delivered: URL rules and refused addresses (SSRF)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from onepass.webhooks.errors import UnsafeWebhookTarget
from onepass.webhooks.resolver import SafeResolver, UnsafeAddressError
from onepass.webhooks.safety import address_problem, check_url


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
        ("255.255.255.255", "reserved"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("192.0.2.10", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("::ffff:127.0.0.1", "embeds 127.0.0.1"),
        ("::ffff:10.0.0.1", "embeds 10.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254"),
        ("64:ff9b::7f00:1", "embeds 127.0.0.1"),
        ("64:ff9b:1::1", "NAT64"),
        ("2002:7f00:1::1", "embeds 127.0.0.1"),
        ("2002:c0a8:101::", "embeds 192.168.1.1"),
        ("2001:0:4136:e378::1", "Teredo"),
        ("2001:db8::1", "documentation"),
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
    ],
)
def test_unsafe_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(UnsafeWebhookTarget, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_url(url, production=False, allow_private=False)


def test_production_requires_https() -> None:
    with pytest.raises(UnsafeWebhookTarget, match="https in production"):
        check_url("http://rp.example/hook", production=True, allow_private=False)
    assert (
        check_url("https://rp.example/hook", production=True, allow_private=False).hostname
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

"""The dispatcher's connector: it connects only to addresses a webhook may be sent to.

``SafeResolver`` returns only the allowed addresses a name resolves to, so the
addresses checked are the ones connected to (no DNS-rebinding window). aiohttp never
asks a resolver about an IP-literal host, so ``connector`` also gives aiohttp a socket
factory that checks the address of every socket it is about to connect, whatever the
host looked like in the URL (see ``safety``).
"""

from __future__ import annotations

import socket

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from onepass.webhooks.safety import address_problem, parse_ip


class UnsafeAddressError(OSError):
    """Every address a webhook host resolved to is refused.

    An ``OSError`` so that aiohttp's connector reports it as a resolution failure
    (``ClientConnectorDNSError.os_error`` is this exception).
    """


class SafeResolver(AbstractResolver):
    """An aiohttp resolver that only returns addresses deliveries may go to."""

    def __init__(self, *, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        allowed = []
        refused: list[tuple[str, str]] = []
        for result in results:
            address = parse_ip(result["host"])
            problem = "unparseable address" if address is None else address_problem(address)
            if problem is None:
                allowed.append(result)
            else:
                refused.append((result["host"], problem))
        if not allowed:
            shown = ", ".join(f"{addr} ({why})" for addr, why in refused[:3])
            raise UnsafeAddressError(
                f"{host} resolves only to refused addresses: {shown} "
                "(ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS=1 allows them, for development only)"
            )
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket(addr_info: aiohttp.AddrInfoType) -> socket.socket:
    """A socket for ``addr_info``, the address aiohttp is about to connect to, if a
    webhook may go there; ``UnsafeAddressError`` otherwise.

    aiohttp's ``socket_factory`` (through aiohappyeyeballs): called once per address
    tried, with the very address then passed to ``connect()``, after the DNS cache, for
    names and IP literals alike. Refusing here sends nothing, not even a SYN.
    """
    family, type_, proto, _, sockaddr = addr_info
    host = str(sockaddr[0])
    address = parse_ip(host)
    problem = "an unparseable address" if address is None else address_problem(address)
    if problem is not None:
        raise UnsafeAddressError(
            f"refused to connect to {host}, {problem} "
            "(ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS=1 allows it, for development only)"
        )
    return socket.socket(family=family, type=type_, proto=proto)


def connector(*, limit: int, allow_private: bool) -> aiohttp.TCPConnector:
    """The dispatcher's connector: ``SafeResolver`` for names, and, unless private
    targets are allowed, ``guarded_socket`` for every address actually connected to."""
    return aiohttp.TCPConnector(
        limit=limit,
        limit_per_host=0,
        resolver=SafeResolver(allow_private=allow_private),
        socket_factory=None if allow_private else guarded_socket,
        ttl_dns_cache=10,
        keepalive_timeout=30,
    )

"""The dispatcher's DNS resolver: it returns only addresses a webhook may be sent to.

Plugged into aiohttp's connector, so the addresses checked here are the ones
connected to (see ``safety``).
"""

from __future__ import annotations

import socket

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

"""What a self-service form may be asked for, per client IP and per address."""

from __future__ import annotations

from dataclasses import dataclass

from onepass.accounts.throttle import Quota
from onepass.runtime import Runtime


class TooManyRequests(Exception):
    """Over the per-IP quota: a 429 that says nothing about any address."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many requests from this client; retry after {retry_after}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Quotas:
    per_ip: Quota
    per_address: Quota

    @classmethod
    def of(cls, runtime: Runtime, purpose: str, per_ip: int, per_address: int) -> Quotas:
        secret = runtime.settings.secret_key
        assert secret is not None
        window = runtime.settings.self_service_window
        return cls(
            Quota(runtime.cache, secret, f"{purpose}-ip", per_ip, window),
            Quota(runtime.cache, secret, f"{purpose}-address", per_address, window),
        )

    async def take(self, ip: str, address: str) -> bool:
        """Count a request: ``TooManyRequests`` over the IP's quota; False over the
        address's (the caller answers as always and sends nothing)."""
        if not await self.per_ip.take(ip):
            raise TooManyRequests(self.per_ip.window)
        return await self.per_address.take(address)

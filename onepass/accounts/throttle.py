"""Login throttling per account and per client IP, counted in the cache.

With Redis (``ONEPASS_REDIS_URL``) every process shares the counts; with the
in-process cache each worker counts alone.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from onepass.cache import Cache


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_ip: int
    window: int  # seconds


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after}s")
        self.retry_after = retry_after


def _key(kind: str, value: str) -> str:
    # Hashed: an email address never sits in the cache in clear.
    return f"login:fail:{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


class LoginThrottle:
    def __init__(self, cache: Cache, limits: Limits) -> None:
        self._cache = cache
        self._limits = limits

    async def check(self, email: str, ip: str) -> None:
        """Raise ``LoginThrottled`` if this account or this IP failed too often."""
        account = await self._cache.get(_key("account", email.strip().lower()))
        by_ip = await self._cache.get(_key("ip", ip))
        if (account and int(account) >= self._limits.per_account) or (
            by_ip and int(by_ip) >= self._limits.per_ip
        ):
            raise LoginThrottled(self._limits.window)

    async def failed(self, email: str, ip: str) -> None:
        await self._cache.incr(_key("account", email.strip().lower()), self._limits.window)
        await self._cache.incr(_key("ip", ip), self._limits.window)

    async def succeeded(self, email: str) -> None:
        await self._cache.delete(_key("account", email.strip().lower()))

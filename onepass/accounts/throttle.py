"""Login throttling per account and per client IP, counted in the cache.

An attempt is counted *before* its password is checked, with the cache's atomic
increment, and only attempts whose count is within the limit are checked: of any
number of concurrent attempts, at most the limit are verified (check-then-increment
would let every one of them through the check before the first failure is counted).
A success gives its attempt back.

With Redis (``ONEPASS_REDIS_URL``) every process shares the counts; with the
in-process cache (or while Redis does not answer) each worker counts alone.

Keys are an HMAC of the normalised email (or the IP) under a key derived from
``ONEPASS_SECRET_KEY``: an email address never sits in the cache in clear, and a
cache dump cannot be matched against a list of addresses without the secret.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from onepass.cache import Cache
from onepass.crypto import derive_key


@dataclass(frozen=True)
class Limits:
    per_account: int
    per_ip: int
    window: int  # seconds


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after}s")
        self.retry_after = retry_after


def _account(email: str) -> str:
    return email.strip().lower()


class LoginThrottle:
    def __init__(
        self, cache: Cache, limits: Limits, secret_key: str, namespace: str = "login"
    ) -> None:
        """``namespace``: whose counts these are (``login``: passwords; ``second-factor``:
        codes after a right password, which a right password does not reset)."""
        self._cache = cache
        self._limits = limits
        self._namespace = namespace
        self._key_hmac = derive_key(secret_key, "onepass/login-throttle/v1")

    def key(self, kind: str, value: str) -> str:
        digest = hmac.new(self._key_hmac, f"{kind}\x00{value}".encode(), hashlib.sha256)
        return f"{self._namespace}:fail:{kind}:{digest.hexdigest()[:32]}"

    async def attempt(self, email: str, ip: str) -> None:
        """Count an attempt for this account and this IP, before its password is
        checked; raise ``LoginThrottled`` if either is over its limit (nothing may
        then be checked).

        The account is counted first: an attempt refused for its account does not
        count against its IP. One refused for its IP gives the account its count
        back, so a locked-out address cannot lock an account out on top.
        """
        account_key = self.key("account", _account(email))
        if await self._cache.incr(account_key, self._limits.window) > self._limits.per_account:
            raise LoginThrottled(self._limits.window)
        if await self._cache.incr(self.key("ip", ip), self._limits.window) > self._limits.per_ip:
            await self._cache.decr(account_key)
            raise LoginThrottled(self._limits.window)

    async def succeeded(self, email: str, ip: str) -> None:
        """The password was right: the account's failures are forgotten, and the IP
        gets this attempt back (its other failures stand)."""
        await self._cache.delete(self.key("account", _account(email)))
        await self._cache.decr(self.key("ip", ip))


class Quota:
    """At most ``limit`` events per ``window`` seconds for each value (an address, an
    IP), counted in the cache under an HMAC of the value, like the login throttle."""

    def __init__(
        self, cache: Cache, secret_key: str, purpose: str, limit: int, window: int
    ) -> None:
        self._cache = cache
        self._key = derive_key(secret_key, f"onepass/quota/{purpose}/v1")
        self._purpose = purpose
        self.limit = limit
        self.window = window

    async def take(self, value: str) -> bool:
        """Count one event for ``value``; False when it is over the limit."""
        digest = hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()[:32]
        return await self._cache.incr(f"quota:{self._purpose}:{digest}", self.window) <= self.limit

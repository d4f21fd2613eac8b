"""Device Authorization Grant: the device access token request (RFC 8628 §3.4, §3.5).

A poll reads its device code (``oauth.statements.DEVICE_CODE_STATE``: this client's,
one indexed read, no write) and answers ``authorization_pending``, ``access_denied``,
``expired_token``, or ``invalid_grant`` for an unknown code, another client's, or one
already exchanged. A pending code polled before its interval is over is answered
``slow_down`` and its interval grows by 5 s (§3.5): the interval and the earliest next
poll are kept in the cache (Redis, shared by every worker, when set; else each
process's memory), so that the polls of many waiting devices cost no write. An
approved code is redeemed by one statement (``POLL_DEVICE_CODE``; on PostgreSQL with
the refresh token it issues), once: a second poll gets ``invalid_grant``. The tokens
are those of the code flow (``oauth.user_tokens``), for the approving user (their
canonical user with ENFORCE_CANONICAL_RESOLUTION on), with the auth_time, acr and amr
of the login they approved with.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from datetime import datetime
from typing import Any, NoReturn, Protocol

from onepass.clients.registry import ClientRecord
from onepass.db.direct import Row
from onepass.oauth.device import APPROVED, DENIED, GRANT_TYPE, SLOW_DOWN_STEP
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.statements import (
    DEVICE_CODE_STATE,
    POLL_DEVICE_CODE,
    POLL_DEVICE_CODE_PG,
)
from onepass.oauth.user_tokens import (
    AuthInfo,
    grantee,
    issue_tokens,
    plan_tokens,
    store_refresh_token,
)
from onepass.oauth_errors import (
    AccessDeniedError,
    AuthorizationPendingError,
    ExpiredTokenError,
    InvalidGrantError,
    InvalidRequestError,
    SlowDownError,
)

UNKNOWN = "the device_code is unknown, or not this client's"


class Pacing:
    """Each pending code's interval and earliest next poll, in this process, when there
    is no Redis: at most ``limit`` codes, the least recently polled dropped first in
    O(1) (a dropped code's next early poll is not slowed down: lenient, never wrong).
    The shared in-process cache sweeps all its entries when full, which tens of
    thousands of polling devices would make every poll pay."""

    def __init__(self, limit: int = 200_000) -> None:
        self._limit = limit
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def get(self, key: str) -> str | None:
        entry = self._entries.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._entries[key] = (value, time.monotonic() + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)


class DeviceCodeGrant:
    grant_type = GRANT_TYPE

    def __init__(self) -> None:
        self.pacing = Pacing()

    async def create_token_response(
        self,
        ctx: TokenContext,
        client: ClientRecord,
        form: dict[str, str],
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        device_code = form.get("device_code")
        if not device_code:
            raise InvalidRequestError("device_code is required")
        code_hash = ctx.hasher.hash(device_code[:512])
        now = ctx.clock.now()
        state = await ctx.direct.read(
            DEVICE_CODE_STATE, {"device_code_hash": code_hash, "client": client.id}
        )
        if state is None:
            raise InvalidGrantError(UNKNOWN)
        if not (
            state["status"] == APPROVED
            and state["redeemed_at"] is None
            and state["expires_at"] > now
        ):
            pacing = ctx.cache if ctx.cache is not None and ctx.settings.redis_url else self.pacing
            await _refuse(pacing, state, code_hash, now)
        # Planned as if the scope gave a refresh token (recorded only when it does).
        draft = plan_tokens(ctx, client, ["offline_access"], jkt)
        params = {
            "device_code_hash": code_hash,
            "client": client.id,
            "now": now,
            "enforce": ctx.settings.enforce_canonical_resolution,
            "access_token_jti": draft.access_token_jti,
            "access_token_expires_at": draft.access_token_expires_at,
            "refresh_family": draft.refresh_family,
        }
        if ctx.direct.dialect == "postgresql":
            statement_params = draft.statement_params(ctx.hasher) if draft.refresh else {}
            row = await ctx.direct.write_one(
                POLL_DEVICE_CODE_PG,
                {**_NO_REFRESH, **params, **statement_params, "refresh_scope": None},
            )
            redeemed = _redeemed(row, draft.access_token_jti)
            plan = draft.for_scope(ctx, client, redeemed["scope"].split())
            user = grantee(redeemed)  # the code is spent: none issued
        else:
            async with ctx.direct.write() as tx:
                row = await tx.one(POLL_DEVICE_CODE, params)
                if row is not None and row["access_token_jti"] == draft.access_token_jti:
                    plan = draft.for_scope(ctx, client, row["scope"].split())
                    user = grantee(row)  # a refusal rolls it back
                    await store_refresh_token(ctx, tx, plan, client=client, user=user, row=row)
            redeemed = _redeemed(row, draft.access_token_jti)
        auth = AuthInfo.of(redeemed)
        # The sub the client sees (``clients.subjects``: a pairwise client's sector's).
        return await issue_tokens(ctx, plan, client=client, user=user, auth=auth, nonce=None)


def _redeemed(row: Row | None, jti: str) -> Row:
    """The row when this poll redeemed the device code; a concurrent poll that got
    there first leaves ``invalid_grant``."""
    if row is None or row["access_token_jti"] != jti:
        raise InvalidGrantError("the device_code was already exchanged for tokens")
    return row


async def _refuse(pacing: PacingStore, state: Row, code_hash: str, now: datetime) -> NoReturn:
    """The §3.5 answer to a poll of a code that is not ready to redeem."""
    if state["redeemed_at"] is not None:
        raise InvalidGrantError("the device_code was already exchanged for tokens")
    if state["expires_at"] <= now:
        raise ExpiredTokenError("the device_code expired: start a new device authorization")
    if state["status"] == DENIED:
        raise AccessDeniedError("the user denied the authorization request")
    interval = await _paced(pacing, code_hash, state, now)
    if interval is not None:
        raise SlowDownError(f"polling too fast: wait at least {interval} seconds between requests")
    raise AuthorizationPendingError("the user has not yet approved or denied the request")


class PacingStore(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl: float) -> Any: ...


async def _paced(pacing: PacingStore, code_hash: str, state: Row, now: datetime) -> int | None:
    """Record this poll of a pending code; its new, longer interval when it came too
    early (the interval grows by 5 s for this and every later poll), else None."""
    key = f"device-poll:{code_hash[:48]}"
    now_ms = int(now.timestamp() * 1000)
    interval, next_ms, slowed = int(state["poll_interval"]), 0, False
    kept = await pacing.get(key)
    if kept:
        interval_text, _, next_text = kept.partition(":")
        interval, next_ms = int(interval_text), int(next_text)
        if now_ms < next_ms:
            interval, slowed = interval + SLOW_DOWN_STEP, True
    ttl = max(1.0, (state["expires_at"] - now).total_seconds())
    await pacing.set(key, f"{interval}:{now_ms + interval * 1000}", ttl)
    return interval if slowed else None


# The PostgreSQL statement's refresh-token parameters for a client without the refresh
# grant (its ``refresh_family`` is NULL, so nothing is inserted).
_NO_REFRESH: dict[str, Any] = {
    "refresh_hash": None,
    "created_at": None,
    "sliding_expires_at": None,
    "family_expires_at": None,
    "refresh_jkt": None,
}

"""Device Authorization Grant: the device access token request (RFC 8628 §3.4, §3.5).

A poll is one statement (``oauth.statements.POLL_DEVICE_CODE``; on PostgreSQL with the
refresh token it issues): it finds the device code of this client, keeps its polling
interval (a poll before the interval is over, while pending, grows it by 5 s and is
answered ``slow_down``), and redeems it when the person approved, once. Its row says
which answer to give: ``authorization_pending``, ``slow_down``, ``access_denied``,
``expired_token``, or ``invalid_grant`` for an unknown code, another client's, or one
already exchanged. The tokens are those of the code flow (``oauth.user_tokens``), for
the approving user (their canonical user with ENFORCE_CANONICAL_RESOLUTION on), with
the auth_time, acr and amr of the login they approved with.
"""

from __future__ import annotations

from typing import Any

from onepass.clients.registry import ClientRecord
from onepass.db.direct import Row
from onepass.oauth.device import APPROVED, DENIED, GRANT_TYPE
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.statements import POLL_DEVICE_CODE, POLL_DEVICE_CODE_PG
from onepass.oauth.user_tokens import (
    AuthInfo,
    Grantee,
    grantee,
    plan_tokens,
    sign_tokens,
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


class DeviceCodeGrant:
    grant_type = GRANT_TYPE

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
        # Planned as if the scope gave a refresh token (recorded only when it does).
        draft = plan_tokens(ctx, client, ["offline_access"], jkt)
        now = ctx.clock.now()
        params = {
            "device_code_hash": ctx.hasher.hash(device_code[:512]),
            "client": client.id,
            "now": now,
            "now_ms": int(now.timestamp() * 1000),
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
            redeemed = _refuse_unless_redeemed(row, draft.access_token_jti, now)
            plan = draft.for_scope(ctx, client, redeemed["scope"].split())
            user = _subject_for(client, grantee(redeemed))  # the code is spent: none issued
        else:
            async with ctx.direct.write() as tx:
                row = await tx.one(POLL_DEVICE_CODE, params)
                if row is not None and row["access_token_jti"] == draft.access_token_jti:
                    plan = draft.for_scope(ctx, client, row["scope"].split())
                    user = _subject_for(client, grantee(row))  # a refusal rolls it back
                    await store_refresh_token(ctx, tx, plan, client=client, user=user, row=row)
            redeemed = _refuse_unless_redeemed(row, draft.access_token_jti, now)
        return sign_tokens(
            ctx, plan, client=client, user=user, auth=AuthInfo.of(redeemed), nonce=None
        )


def _refuse_unless_redeemed(row: Row | None, jti: str, now: Any) -> Row:
    """The row when this poll redeemed the device code; otherwise the §3.5 answer."""
    if row is None:
        raise InvalidGrantError(UNKNOWN)
    if row["status"] == APPROVED and row["access_token_jti"] == jti:
        return row
    if row["redeemed_at"] is not None:
        raise InvalidGrantError("the device_code was already exchanged for tokens")
    if row["expires_at"] <= now:
        raise ExpiredTokenError("the device_code expired: start a new device authorization")
    if row["status"] == DENIED:
        raise AccessDeniedError("the user denied the authorization request")
    if row["slowed"]:
        raise SlowDownError(
            f"polling too fast: wait at least {row['poll_interval']} seconds between requests"
        )
    raise AuthorizationPendingError("the user has not yet approved or denied the request")


def _subject_for(client: ClientRecord, user: Grantee) -> Grantee:
    """The user as this client sees them (one place, for pairwise subjects at merge)."""
    return user


# The PostgreSQL statement's refresh-token parameters for a client without the refresh
# grant (its ``refresh_family`` is NULL, so nothing is inserted).
_NO_REFRESH: dict[str, Any] = {
    "refresh_hash": None,
    "created_at": None,
    "sliding_expires_at": None,
    "family_expires_at": None,
    "refresh_jkt": None,
}

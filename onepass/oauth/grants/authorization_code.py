"""Authorization Code Grant: the token request (RFC 6749 §4.1.3, RFC 7636 §4.5).

One write transaction: the code is redeemed by the ``UPDATE … RETURNING`` that checks it
(``oauth.statements``), which also records what the redemption issues; the redirect URI
and PKCE are checked on the returned row (a failed check rolls the redemption back, so
the code stays unused); the refresh token is inserted. When that statement finds
nothing, ``oauth.codes.refuse_code`` tells the client why, and revokes what a replayed
code issued.
"""

from __future__ import annotations

from typing import Any

from onepass.clients.registry import ClientRecord
from onepass.oauth import pkce
from onepass.oauth.codes import refuse_code
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.statements import REDEEM_CODE
from onepass.oauth.user_tokens import (
    AuthInfo,
    grantee,
    plan_tokens,
    sign_tokens,
    store_refresh_token,
)
from onepass.oauth_errors import InvalidGrantError, InvalidRequestError


class AuthorizationCodeGrant:
    grant_type = "authorization_code"

    async def create_token_response(
        self, ctx: TokenContext, client: ClientRecord, form: dict[str, str]
    ) -> dict[str, Any]:
        code = form.get("code")
        if code is None:
            raise InvalidRequestError("code is required")
        redirect_uri = form.get("redirect_uri")
        code_verifier = form.get("code_verifier")
        code_hash = ctx.hasher.hash(code[:512])
        # The code's scope is known once it is redeemed: planned as if it gave a refresh
        # token (the statement records the family only when its scope has offline_access).
        draft = plan_tokens(ctx, client, ["offline_access"])
        async with ctx.direct.write() as tx:
            row = await tx.one(
                REDEEM_CODE,
                {
                    "code_hash": code_hash,
                    "client": client.id,
                    "now": ctx.clock.now(),
                    "access_token_jti": draft.access_token_jti,
                    "access_token_expires_at": draft.access_token_expires_at,
                    "refresh_family": draft.refresh_family,
                },
            )
            if row is not None:
                check_redemption(row, redirect_uri, code_verifier)
                scope = row["scope"].split()
                plan = draft.for_scope(ctx, client, scope)
                user = await grantee(ctx, tx, row)
                auth = AuthInfo.of(row)
                await store_refresh_token(ctx, tx, plan, client=client, user=user, auth=auth)
        if row is None:
            await refuse_code(ctx.database, ctx.clock, code_hash, client)
        return sign_tokens(ctx, plan, client=client, user=user, auth=auth, nonce=row["nonce"])


def check_redemption(row: dict[str, Any], redirect_uri: str | None, verifier: str | None) -> None:
    """RFC 6749 §4.1.3 (the redirect URI of the request) and RFC 7636 §4.6 (PKCE)."""
    if redirect_uri is None:
        raise InvalidRequestError("redirect_uri is required: it was in the authorization request")
    if redirect_uri != row["redirect_uri"]:
        raise InvalidGrantError("redirect_uri differs from the one in the authorization request")
    challenge = row["code_challenge"]
    if challenge is not None:
        if verifier is None:
            raise InvalidRequestError("code_verifier is required (PKCE)")
        if not pkce.verify(verifier, challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge")
    elif verifier is not None:
        # RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
        raise InvalidGrantError(
            "code_verifier sent but the authorization request had no code_challenge"
        )

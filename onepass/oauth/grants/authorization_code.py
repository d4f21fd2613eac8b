"""Authorization Code Grant: the token request (RFC 6749 §4.1.3, RFC 7636 §4.5).

The code is redeemed by the ``UPDATE … RETURNING`` that checks it (client, expiry, not
used, the redirect URI, the PKCE challenge) and records what the redemption issues, and
the refresh token inserted, in one write (``oauth.statements``: one transaction of two
statements on SQLite, one statement on PostgreSQL). A request that fails a check leaves
the code unused. When nothing was redeemed, ``oauth.codes.refuse_code`` tells the client
why, and revokes what a replayed code issued.

Resource Indicators (RFC 8707): the code remembers the resource it was granted for;
the access token is for it (``oauth.resource_indicators``). A ``resource`` here must
name that one: another leaves the code unused and is ``invalid_target``.

DPoP (RFC 9449): with a proof, the tokens are bound to its key (a public client's refresh
token too); a code bound to a key (``dpop_jkt``, §10) is redeemed only with a proof of
it, by the same statement's ``WHERE``: another key, or none, leaves it unused.
"""

from __future__ import annotations

from typing import Any

from onepass.clients.registry import ClientRecord
from onepass.oauth import pkce
from onepass.oauth.codes import refuse_code
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.resource_indicators import resolve
from onepass.oauth.statements import REDEEM_CODE, REDEEM_CODE_PG
from onepass.oauth.user_tokens import (
    AuthInfo,
    grantee,
    issue_tokens,
    plan_tokens,
    store_refresh_token,
)
from onepass.oauth_errors import InvalidRequestError


class AuthorizationCodeGrant:
    grant_type = "authorization_code"

    async def create_token_response(
        self,
        ctx: TokenContext,
        client: ClientRecord,
        form: dict[str, str],
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        code = form.get("code")
        if code is None:
            raise InvalidRequestError("code is required")
        redirect_uri = form.get("redirect_uri")
        if redirect_uri is None:
            raise InvalidRequestError(
                "redirect_uri is required: it was in the authorization request"
            )
        verifier = form.get("code_verifier")
        # RFC 8707 §2.2: a resource here must be the one the code was granted for.
        asked = form.get("resource")
        requested = await resolve(ctx, client, asked, allowed=client.allowed_resources)
        code_hash = ctx.hasher.hash(code[:512])
        # The code's scope is known once it is redeemed: planned as if it gave a refresh
        # token (the statement records the family only when its scope has offline_access).
        draft = plan_tokens(ctx, client, ["offline_access"], jkt)
        params = {
            "code_hash": code_hash,
            "client": client.id,
            "now": ctx.clock.now(),
            "redirect_uri": redirect_uri,
            "challenge": pkce.challenge_of(verifier),
            "enforce": ctx.settings.enforce_canonical_resolution,
            "access_token_jti": draft.access_token_jti,
            "access_token_expires_at": draft.access_token_expires_at,
            "refresh_family": draft.refresh_family,
            "jkt": jkt,
            "resource": asked,
        }
        if ctx.direct.dialect == "postgresql":
            statement_params = draft.statement_params(ctx.hasher) if draft.refresh else {}
            row = await ctx.direct.write_one(
                REDEEM_CODE_PG,
                {
                    **_NO_REFRESH,
                    **params,
                    **statement_params,
                    "refresh_scope": None,
                },
            )
            if row is not None:
                plan = draft.for_scope(ctx, client, row["scope"].split())
                user = grantee(row)  # refused after the commit: the code is spent, none issued
        else:
            async with ctx.direct.write() as tx:
                row = await tx.one(REDEEM_CODE, params)
                if row is not None:
                    plan = draft.for_scope(ctx, client, row["scope"].split())
                    user = grantee(row)  # a refusal rolls the redemption back
                    await store_refresh_token(ctx, tx, plan, client=client, user=user, row=row)
        if row is None:
            await refuse_code(
                ctx.database, ctx.clock, code_hash, client, redirect_uri, verifier, jkt, asked
            )
        if row["resource"] is not None:
            granted = requested or await resolve(
                ctx, client, row["resource"], allowed=client.allowed_resources
            )
            plan = plan.for_resource(ctx, granted)
        auth = AuthInfo.of(row)
        return await issue_tokens(
            ctx, plan, client=client, user=user, auth=auth, nonce=row["nonce"]
        )


# The PostgreSQL statement's refresh-token parameters for a client without the refresh
# grant (its ``refresh_family`` is NULL, so nothing is inserted).
_NO_REFRESH: dict[str, Any] = {
    "refresh_hash": None,
    "created_at": None,
    "sliding_expires_at": None,
    "family_expires_at": None,
    "refresh_jkt": None,
}

"""Authorization Code Grant: the token request (RFC 6749 §4.1.3, RFC 7636 §4.5)."""

from __future__ import annotations

from typing import Any

from onepass.clients.registry import ClientRecord
from onepass.oauth.codes import redeem_code
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.user_tokens import AuthInfo, grant_user, issue_user_tokens
from onepass.oauth_errors import InvalidGrantError, InvalidRequestError


class AuthorizationCodeGrant:
    grant_type = "authorization_code"

    async def create_token_response(
        self, ctx: TokenContext, client: ClientRecord, form: dict[str, str]
    ) -> dict[str, Any]:
        code = form.get("code")
        if code is None:
            raise InvalidRequestError("code is required")
        async with ctx.database.session() as session:
            redemption = await redeem_code(
                session,
                ctx.hasher,
                ctx.clock,
                code=code,
                client=client,
                redirect_uri=form.get("redirect_uri"),
                code_verifier=form.get("code_verifier"),
            )
            row = redemption.code
            assert row is not None
            if not redemption.replayed:
                user = await grant_user(ctx, session, row.user_id)
                issued = await issue_user_tokens(
                    ctx,
                    session,
                    client=client,
                    user=user,
                    scope=row.scope.split(),
                    auth=AuthInfo(row.auth_time, row.acr, list(row.amr), row.sid),
                    nonce=row.nonce,
                )
                row.access_token_jti = issued.access_token_jti
                row.access_token_expires_at = issued.access_token_expires_at
                row.refresh_token_family = issued.refresh_family
        # Outside the transaction: a replay's revocations are committed first.
        if redemption.replayed:
            raise InvalidGrantError(
                "the authorization code was already used; tokens issued from it are revoked"
            )
        return issued.body

"""Client Credentials Grant (RFC 6749 §4.4).

The client acts on its own behalf: the access token's ``sub`` is its ``client_id``
(RFC 9068 §2.2), and scopes that speak about an end user are refused.

Resource Indicators (RFC 8707 §2): with ``resource`` (a resource server the client is
allowed), the token is for it: ``aud`` its identifier, only the scopes it defines (of
those granted), its lifetime and its signing algorithm.
"""

from __future__ import annotations

import secrets
from typing import Any

from onepass.clients.registry import ClientRecord
from onepass.clients.scopes import grant_scope, parse_scope
from onepass.oauth.grants.base import TokenContext
from onepass.oauth.resource_indicators import resolve
from onepass.oauth.tokens import bound, sign_access_token, token_type
from onepass.oauth_errors import InvalidRequestError


class ClientCredentialsGrant:
    grant_type = "client_credentials"

    def validate_token_request(self, client: ClientRecord, form: dict[str, str]) -> list[str]:
        if "audience" in form:  # RFC 8693's parameter: name the resource instead
            raise InvalidRequestError("audience is for token exchange; use 'resource' (RFC 8707)")
        return grant_scope(parse_scope(form.get("scope")), client.scopes, user_present=False)

    async def create_token_response(
        self,
        ctx: TokenContext,
        client: ClientRecord,
        form: dict[str, str],
        *,
        jkt: str | None = None,
    ) -> dict[str, Any]:
        scope = self.validate_token_request(client, form)
        settings = ctx.settings
        alg: str = settings.access_token_alg
        audience, ttl = settings.audience, settings.access_token_ttl
        if "resource" in form:
            resource = await resolve(
                ctx, client, form["resource"], allowed=client.allowed_resources
            )
            assert resource is not None
            alg, audience, ttl = (
                resource.signing_alg,
                resource.identifier,
                resource.access_token_ttl,
            )
            scope = resource.narrowed(scope)
        token = sign_access_token(
            ctx.keyring.signer(alg),
            issuer=settings.issuer,
            audience=audience,
            subject=client.client_id,
            client_id=client.client_id,
            scope=scope,
            now=int(ctx.clock.timestamp()),
            ttl=ttl,
            jti=secrets.token_urlsafe(16),
            extra=bound(jkt),
        )
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": token_type(jkt),
            "expires_in": ttl,
        }
        if scope:
            body["scope"] = " ".join(scope)
        return body

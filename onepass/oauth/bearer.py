"""Checking 1pass access tokens presented to 1pass itself (userinfo, introspection,
revocation) and ID tokens given back to it (logout's ``id_token_hint``).

The signature is checked by ``keys.jws`` (``cryptography``, the key the ``kid`` names,
its own ``alg``); the claims here.

A token is honoured only while the client it was issued to is registered: deleting a
client ends its access tokens at once (within ``ONEPASS_CLIENT_CACHE_TTL``) instead of
at their ``exp``, as it ends its refresh tokens and codes (RFC 6749 §10.4, RFC 9700
§4.10: an authorization server may not keep serving a grant it no longer backs).
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.registry import ClientCache, ClientRecord
from onepass.clock import Clock
from onepass.keys.jws import InvalidJWS, JWSVerifier
from onepass.keys.keyring import KeyRing
from onepass.oauth.revocation import is_access_token_revoked
from onepass.oauth.tokens import ACCESS_TOKEN_TYP
from onepass.oauth_errors import InvalidTokenError, TemporarilyUnavailableError
from onepass.services import Service
from onepass.settings import Settings

log = structlog.get_logger("onepass.oauth.bearer")

LEEWAY = 30
MAX_TOKEN_LENGTH = 8192


class AccessTokenVerifier:
    def __init__(
        self, keyring: KeyRing, settings: Settings, clock: Clock, clients: ClientCache
    ) -> None:
        self._jws = JWSVerifier(keyring)
        self._settings = settings
        self._clock = clock
        self._clients = clients

    @property
    def audience(self) -> str:
        """The ``aud`` of the tokens meant for 1pass itself (userinfo): ONEPASS_AUDIENCE;
        a token for a resource server (RFC 8707) has that server's identifier."""
        return self._settings.audience

    def decode(self, token: str) -> dict[str, Any]:
        """Signature, type, issuer and expiry; raises ``InvalidTokenError``."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidTokenError("the access token is malformed")
        try:
            header, claims = self._jws.verify(token)
        except InvalidJWS:
            raise InvalidTokenError("the access token is invalid") from None
        if header.get("typ") != ACCESS_TOKEN_TYP:
            raise InvalidTokenError("not an access token")
        if claims.get("iss") != self._settings.issuer:
            raise InvalidTokenError("the access token is from another issuer")
        exp = claims.get("exp")
        if (
            not isinstance(exp, int)
            or isinstance(exp, bool)
            or exp + LEEWAY < self._clock.timestamp()
        ):
            raise InvalidTokenError("the access token has expired")
        if not all(isinstance(claims.get(name), str) for name in ("jti", "sub", "client_id")):
            raise InvalidTokenError("the access token is invalid")
        return claims

    def decode_id_token_hint(self, token: str) -> dict[str, Any]:
        """An ID token we issued, expired or not (RP-Initiated Logout §2)."""
        if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise InvalidTokenError("id_token_hint is malformed")
        try:
            header, claims = self._jws.verify(token)
        except InvalidJWS:
            raise InvalidTokenError("id_token_hint was not issued by 1pass") from None
        if header.get("typ") == ACCESS_TOKEN_TYP or claims.get("iss") != self._settings.issuer:
            raise InvalidTokenError("id_token_hint is not a 1pass ID token")
        if not isinstance(claims.get("aud"), str) or not isinstance(claims.get("sub"), str):
            raise InvalidTokenError("id_token_hint is not a 1pass ID token")
        return claims

    async def issued_to_registered_client(self, client_id: str) -> bool:
        """Whether ``client_id`` (of a token 1pass issued) is still in the registry, by
        the per-process client cache that every protocol endpoint uses."""
        return await self.registered_client(client_id) is not None

    async def registered_client(self, client_id: str) -> ClientRecord | None:
        """The client ``client_id`` (of a token 1pass issued) while it is in the
        registry, by the per-process client cache that every protocol endpoint uses."""
        try:
            return await self._clients.get(client_id)
        except Exception as exc:  # database down: asyncpg raises OSError, not SQLAlchemyError
            log.error("bearer.client_lookup_failed", error=type(exc).__name__)
            raise TemporarilyUnavailableError(
                "the client registry is unavailable; try again shortly"
            ) from None

    async def verify(self, session: AsyncSession, token: str) -> dict[str, Any]:
        """``decode``, then refuse a revoked token or one whose client is gone."""
        claims = self.decode(token)
        if await is_access_token_revoked(session, claims["jti"]):
            raise InvalidTokenError("the access token was revoked")
        if not await self.issued_to_registered_client(claims["client_id"]):
            raise InvalidTokenError("the client of this access token is no longer registered")
        return claims


VERIFIER: Service[AccessTokenVerifier] = Service("oauth.verifier")

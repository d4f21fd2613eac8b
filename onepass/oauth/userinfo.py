"""UserInfo (OIDC Core §5.3): the claims an access token may read, in one database read.

The token is checked in memory (``AccessTokenVerifier.decode``: signature by the key its
``kid`` names, ``typ``, issuer, expiry). Then one statement (``statements.USERINFO``)
reads the user, whether the token was revoked and the user's canonical user; the client
is checked by the per-process client cache as every protocol endpoint does. With
``ENFORCE_CANONICAL_RESOLUTION`` on, a user merged into another is refused: the link is
read in the same statement, from the database, not from the canonical cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onepass.db.direct import DirectStore
from onepass.oauth.bearer import AccessTokenVerifier
from onepass.oauth.statements import USERINFO
from onepass.oauth_errors import InvalidRequestError, InvalidTokenError


def bearer_token(authorization: list[str], form: Mapping[str, str] | None) -> str:
    """RFC 6750 §2.1 (the ``Authorization`` header) or §2.2 (the form body): exactly one."""
    from_form = (form or {}).get("access_token")
    if len(authorization) > 1 or (authorization and from_form):
        raise InvalidRequestError("send the access token once")
    if authorization:
        scheme, _, token = authorization[0].partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidTokenError("use the Bearer scheme")
        return token.strip()
    if from_form:
        return from_form
    raise InvalidTokenError("an access token is required")


def userinfo_claims(user: Mapping[str, Any], scope: set[str]) -> dict[str, Any]:
    """The claims of ``user`` (a row or the ``User``'s fields) that ``scope`` releases."""
    claims: dict[str, Any] = {"sub": user["sub"]}
    if "email" in scope:
        claims["email"] = user["email"]
        claims["email_verified"] = bool(user["email_verified"])  # SQLite gives 0 or 1
    if "profile" in scope:
        if user["name"]:
            claims["name"] = user["name"]
        claims["updated_at"] = int(user["updated_at"].timestamp())
    return claims


class UserInfo:
    def __init__(self, verifier: AccessTokenVerifier, direct: DirectStore, enforce: bool) -> None:
        self._verifier = verifier
        self._direct = direct
        self._enforce = enforce  # ENFORCE_CANONICAL_RESOLUTION

    async def claims(self, token: str) -> dict[str, Any]:
        """The UserInfo response for ``token``, or ``InvalidTokenError`` (RFC 6750 §3.1)."""
        claims = self._verifier.decode(token)
        user = await self._direct.read(USERINFO, {"jti": claims["jti"], "sub": claims["sub"]})
        if user is not None and user["revoked"] is not None:
            raise InvalidTokenError("the access token was revoked")
        if not await self._verifier.issued_to_registered_client(claims["client_id"]):
            raise InvalidTokenError("the client of this access token is no longer registered")
        scope = set(str(claims.get("scope", "")).split())
        if "openid" not in scope:
            raise InvalidTokenError("the access token was not issued for openid")
        if user is None or user["disabled_at"] is not None:
            raise InvalidTokenError("the user of this token no longer exists")
        canonical = user["canonical_user_id"]
        if self._enforce and canonical is not None and canonical != user["id"]:
            raise InvalidTokenError("the user of this token was merged into another account")
        return userinfo_claims(user, scope)

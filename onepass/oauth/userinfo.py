"""UserInfo (OIDC Core §5.3): the claims an access token may read, in one database read.

The token is checked in memory (``AccessTokenVerifier.decode``: signature by the key its
``kid`` names, ``typ``, issuer, expiry). Then one statement (``statements.USERINFO``)
reads the user, whether the token was revoked and the user's canonical user; the client
is checked by the per-process client cache as every protocol endpoint does. With
``ENFORCE_CANONICAL_RESOLUTION`` on, a user merged into another is refused: the link is
read in the same statement, from the database, not from the canonical cache.

DPoP (RFC 9449 §7): a token bound to a key (``cnf.jkt``) is honoured only with the
``DPoP`` scheme and a proof of that key (checked by ``userinfo_endpoint``, its ``jti``
spent here once the token is known good); as a Bearer token it is refused, so a stolen
bound token is of no use without the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from onepass.clients.subjects import sector_of
from onepass.db.direct import DirectStore
from onepass.oauth.bearer import AccessTokenVerifier
from onepass.oauth.dpop import ALGS, DPoP, Proof, ProofRefused, resource_error
from onepass.oauth.statements import USERINFO, USERINFO_PAIRWISE
from onepass.oauth_errors import InvalidRequestError, InvalidTokenError

BEARER = "Bearer"
DPOP = "DPoP"


def access_token(authorization: list[str], form: Mapping[str, str] | None) -> tuple[str, str]:
    """The scheme and the token: RFC 6750 §2.1 (the ``Authorization`` header, Bearer),
    §2.2 (the form body) or RFC 9449 §7.1 (the header, DPoP); exactly one."""
    from_form = (form or {}).get("access_token")
    if len(authorization) > 1 or (authorization and from_form):
        raise InvalidRequestError("send the access token once")
    if authorization:
        scheme, _, token = authorization[0].partition(" ")
        scheme = {"bearer": BEARER, "dpop": DPOP}.get(scheme.lower(), "")
        if not scheme or not token.strip():
            raise InvalidTokenError("use the Bearer or DPoP scheme")
        return scheme, token.strip()
    if from_form:
        return BEARER, from_form
    raise InvalidTokenError("an access token is required")


def dpop_refusal(description: str) -> InvalidTokenError:
    """``invalid_token`` with a DPoP challenge (RFC 9449 §7.1)."""
    return InvalidTokenError(description, scheme=DPOP, params=ALGS)


def check_binding(claims: Mapping[str, Any], proof: Proof | None) -> None:
    """RFC 9449 §7.1: a bound token (``cnf.jkt``) only with a proof of its key, and a
    proof only with a bound token (no downgrade either way)."""
    cnf = claims.get("cnf")
    bound = cnf.get("jkt") if isinstance(cnf, dict) else None
    if proof is None:
        if bound is not None:
            raise dpop_refusal(
                "the access token is DPoP-bound: send it with the DPoP scheme and a proof"
            )
    elif bound is None:
        raise dpop_refusal("the access token is not DPoP-bound: send it with the Bearer scheme")
    elif bound != proof.jkt:
        raise dpop_refusal("the DPoP proof is not of the key the access token is bound to")


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
    def __init__(
        self, verifier: AccessTokenVerifier, direct: DirectStore, enforce: bool, dpop: DPoP
    ) -> None:
        self._verifier = verifier
        self._direct = direct
        self._enforce = enforce  # ENFORCE_CANONICAL_RESOLUTION
        self._dpop = dpop

    async def claims(self, token: str, proof: Proof | None = None) -> dict[str, Any]:
        """The UserInfo response for ``token`` (with the request's checked DPoP proof,
        if any), or ``InvalidTokenError`` (RFC 6750 §3.1, RFC 9449 §7.1)."""
        claims = self._verifier.decode(token)
        if claims.get("aud") != self._verifier.audience:  # RFC 8707: another server's token
            raise InvalidTokenError("the access token is for a resource server, not for userinfo")
        check_binding(claims, proof)
        if proof is not None:
            try:
                await self._dpop.take(proof)
            except ProofRefused as exc:
                raise resource_error(exc, self._dpop) from None
        params = {"jti": claims["jti"], "sub": claims["sub"]}
        user = await self._direct.read(USERINFO, params)
        client = await self._verifier.registered_client(claims["client_id"])
        # A pairwise client's token names the user by its sector's sub (``clients.subjects``):
        # read again by it (a public client's token, by far the most, reads once).
        sector = sector_of(client) if client is not None else None
        if sector is not None:
            user = await self._direct.read(USERINFO_PAIRWISE, {**params, "sector": sector})
        if user is not None and user["revoked"] is not None:
            raise InvalidTokenError("the access token was revoked")
        if client is None:
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

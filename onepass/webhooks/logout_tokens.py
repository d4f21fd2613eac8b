"""Logout tokens and the back-channel logout request (OpenID Connect Back-Channel
Logout 1.0 §2.4, §2.5, §2.8), as the dispatcher sends them.

An outbox entry of type ``oidc.backchannel_logout`` holds what the token says
(``payload``: ``client_id``, ``sub``, ``sid`` when it names one session, ``jti``, and
why, ``reason``); the token itself is signed at each attempt, so a retried or replayed
delivery carries a fresh ``iat`` and ``exp`` but the same ``jti`` (an RP can drop a
token whose ``jti`` it has seen).

Pure functions: no I/O, no clock of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from onepass.keys.jwt import JWTSigner

# §2.4: the member of ``events`` that makes a JWT a logout token.
BACKCHANNEL_LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
# §2.4 (and RFC 8725 §3.11): explicitly typed, so that it is never taken for an ID token.
TYP = "logout+jwt"
# §2.4: "a short time"; two minutes, as the spec's examples and FAPI-minded RPs expect.
TTL_SECONDS = 120
# §2.8: the RP answers 200 (or 204, which some frameworks send for an empty 200).
SUCCESS_STATUSES = frozenset({200, 204})
CONTENT_TYPE = "application/x-www-form-urlencoded"
# What the URL is called in refusals (``safety.check_url``'s ``what``).
URI_NAME = "back-channel logout URI"


def claims(*, issuer: str, client_id: str, payload: Mapping[str, Any], now: int) -> dict[str, Any]:
    """The claims of a logout token for ``client_id`` from an entry's ``payload``:
    ``iss``, ``aud``, ``iat``, ``exp``, ``jti``, ``events``, and ``sub`` and/or ``sid``
    (§2.4: at least one of them); never ``nonce``."""
    sub, sid = payload.get("sub"), payload.get("sid")
    if not sub and not sid:
        raise ValueError("a logout token names a sub or a sid (§2.4)")
    token: dict[str, Any] = {
        "iss": issuer,
        "aud": client_id,
        "iat": now,
        "exp": now + TTL_SECONDS,
        "jti": payload["jti"],
        "events": {BACKCHANNEL_LOGOUT_EVENT: {}},
    }
    if sub:
        token["sub"] = sub
    if sid:
        token["sid"] = sid
    return token


def sign(
    signer: JWTSigner, *, issuer: str, client_id: str, payload: Mapping[str, Any], now: int
) -> str:
    """The logout token, signed by ``signer`` (the key of the client's
    ``id_token_signed_response_alg``: §2.4 signs it as ID tokens are)."""
    return signer.sign(claims(issuer=issuer, client_id=client_id, payload=payload, now=now), TYP)


def request_body(token: str) -> bytes:
    """§2.5: ``logout_token=…``, form-encoded."""
    return urlencode({"logout_token": token}).encode("ascii")

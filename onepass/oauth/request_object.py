"""Signed request objects by value (JAR, RFC 9101), at ``/authorize`` and ``/par``.

A client may send its authorization request as a JWT it signed (``request``): then the
parameters are those inside the object, and only ``client_id`` beside it counts (§6.3:
"the authorization server MUST only use the parameters in the Request Object"); every
usual check of the request applies to them afterwards. The object is accepted when:

- it is a compact JWS (not encrypted: 1pass publishes no encryption key) of at most
  16 KB, signed with ES256, PS256, EdDSA or RS256 (``ALGORITHMS``; not RS256 for a
  client under the FAPI 2.0 profile, ``clients.profiles.signing_algs``) by a key of the
  client's JWK set, the same keys as ``private_key_jwt`` (inline or fetched from its
  ``jwks_uri``, again on an unknown ``kid``: ``clients.assertions.KeySource``). ``none``
  and the HMAC algorithms are refused: a symmetric object would need the client's
  secret as a key, and a public key must never serve as an HMAC secret;
- ``iss`` is the client_id, ``aud`` the issuer (or a list naming it), ``client_id``
  (when present) the one outside, ``exp`` present, not past, and at most 60 minutes
  away (FAPI 2.0 Message Signing allows an hour), ``nbf`` (when present) neither in the
  future nor more than 60 minutes old, ``iat`` (when present) not in the future;
- its ``typ`` (when present) is ``oauth-authz-req+jwt`` (§10.8) or ``JWT``;
- it holds no ``request`` or ``request_uri`` (§4), and its parameters are strings
  (``max_age`` may be a number, as OIDC Core §6.1 allows).

A ``jti`` is not taken once: a request object only asks. Replaying one starts a sign-in
the replayer could start with a plain URL, its code still needs the client's PKCE
verifier and credentials, and a pushed request is single-use already; taking the
``jti`` once would break a browser's reload of the page.

Refusals are ``invalid_request_object`` (§6.2); the reason is logged with the client_id.
"""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from onepass.clients import profiles
from onepass.clients.assertions import KeySource
from onepass.clients.registry import ClientRecord
from onepass.clock import Clock
from onepass.oauth_errors import InvalidRequestObjectError
from onepass.services import Service
from onepass.web import Params

log = structlog.get_logger("onepass.oauth.request_object")

ALGORITHMS = ("ES256", "PS256", "EdDSA", "RS256")
MAX_REQUEST_OBJECT = 16 * 1024
MAX_LIFETIME = 3600  # seconds an object may still have to live (exp - now)
MAX_AGE = 3600  # seconds an object's nbf may lie in the past
LEEWAY = 30  # seconds of clock difference tolerated
TYPES = frozenset({"oauth-authz-req+jwt", "jwt"})
# The object's JWT claims, not authorization parameters.
JWT_CLAIMS = frozenset({"iss", "aud", "exp", "nbf", "iat", "jti", "sub"})
# Parameters a request object may give as a number (OIDC Core §6.1).
NUMBERS = frozenset({"max_age"})
MAX_PARAMETERS = 50


class RequestObjectRefused(InvalidRequestObjectError):
    """An ``invalid_request_object``; ``reason`` (logged) may say more than the
    description the client gets."""


class RequestObjects:
    """Verifies request objects (``/authorize`` and ``/par`` ask it)."""

    def __init__(self, keys: KeySource, clock: Clock, issuer: str) -> None:
        self.keys = keys
        self.clock = clock
        self.issuer = issuer

    async def parameters(self, request_object: str, client: ClientRecord) -> Params:
        """The authorization parameters inside ``request_object``, verified as coming
        from ``client`` (with its ``client_id``), or ``RequestObjectRefused``."""
        try:
            return await self._parameters(request_object, client)
        except RequestObjectRefused as exc:
            log.info(
                "authorize.request_object_refused",
                client_id=client.client_id,
                reason=exc.description,
            )
            raise

    async def _parameters(self, request_object: str, client: ClientRecord) -> Params:
        header = _header(request_object)
        alg = header.get("alg")
        accepted = profiles.signing_algs(client, ALGORITHMS)
        if alg not in accepted:
            raise RequestObjectRefused(
                f"the request object must be signed with {', '.join(accepted)}"
                f" (not {str(alg)[:20]})"
            )
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in TYPES):
            raise RequestObjectRefused("the request object's typ must be oauth-authz-req+jwt")
        kid = header.get("kid")
        keys = await self.keys.key_set(client, refresh=False)
        if keys is None or (isinstance(kid, str) and not _has_kid(keys, kid)):
            keys = await self.keys.key_set(client, refresh=True)
        if keys is None:
            raise RequestObjectRefused(
                "the client has no registered keys (jwks or jwks_uri) to verify a request object"
            )
        try:
            verified = jws.deserialize_compact(request_object, keys, algorithms=[str(alg)])
            claims = orjson.loads(verified.payload)
        except (JoseError, ValueError, TypeError):
            raise RequestObjectRefused(
                "the request object's signature does not verify with the client's keys"
            ) from None
        if not isinstance(claims, dict):
            raise RequestObjectRefused("the request object's payload is not a JSON object")
        self._check_claims(claims, client.client_id)
        return _params(claims, client.client_id)

    def _check_claims(self, claims: dict[str, Any], client_id: str) -> None:
        now = self.clock.timestamp()
        if claims.get("iss") != client_id:
            raise RequestObjectRefused("the request object's iss must be the client_id")
        aud = claims.get("aud")
        if not (aud == self.issuer or (isinstance(aud, list) and self.issuer in aud)):
            raise RequestObjectRefused("the request object's aud must be the issuer")
        if "client_id" in claims and claims["client_id"] != client_id:
            raise RequestObjectRefused("the request object's client_id is not the client's")
        exp = _number(claims, "exp")
        if exp is None:
            raise RequestObjectRefused("the request object must have exp")
        if exp <= now - LEEWAY:
            raise RequestObjectRefused("the request object has expired")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise RequestObjectRefused("the request object's exp is more than 60 minutes away")
        nbf = _number(claims, "nbf")
        if nbf is not None and nbf > now + LEEWAY:
            raise RequestObjectRefused("the request object's nbf is in the future")
        if nbf is not None and nbf < now - MAX_AGE - LEEWAY:
            raise RequestObjectRefused("the request object's nbf is more than 60 minutes old")
        iat = _number(claims, "iat")
        if iat is not None and iat > now + LEEWAY:
            raise RequestObjectRefused("the request object's iat is in the future")


def _header(request_object: str) -> dict[str, Any]:
    """The protected header of a compact JWS, read before anything is verified."""
    if len(request_object) > MAX_REQUEST_OBJECT:
        raise RequestObjectRefused("the request object is larger than 16 KB")
    if request_object.count(".") == 4:
        raise RequestObjectRefused("encrypted request objects are not supported: sign it")
    if request_object.count(".") != 2:
        raise RequestObjectRefused("the request object is not a compact JWS")
    try:
        header = jws.extract_compact(request_object.encode("ascii")).protected
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise RequestObjectRefused("the request object cannot be read") from None
    if not isinstance(header, dict):
        raise RequestObjectRefused("the request object cannot be read")
    return header


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys)


def _number(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise RequestObjectRefused(f"the request object's {name} must be a number")
    return float(value)


def _params(claims: dict[str, Any], client_id: str) -> Params:
    """The authorization parameters among ``claims`` (RFC 9101 §4), as the strings a
    query would carry; ``client_id`` the outer one."""
    if "request" in claims or "request_uri" in claims:
        raise RequestObjectRefused("a request object cannot hold request or request_uri")
    params = Params()
    for name, value in claims.items():
        if name in JWT_CLAIMS:
            continue
        if len(params) >= MAX_PARAMETERS:
            raise RequestObjectRefused("the request object has too many parameters")
        if isinstance(value, str):
            if value:  # empty means omitted (RFC 6749 §3.1)
                params[name] = value
        elif name in NUMBERS and isinstance(value, int) and not isinstance(value, bool):
            params[name] = str(value)
        else:
            raise RequestObjectRefused(
                f"the request object's parameter {_printable(name)} must be a string"
            )
    params["client_id"] = client_id
    return params


def _printable(name: str) -> str:
    cleaned = "".join(ch for ch in name[:40] if 0x20 <= ord(ch) <= 0x7E)
    return cleaned or "?"


REQUEST_OBJECTS: Service[RequestObjects] = Service("oauth.request_objects")

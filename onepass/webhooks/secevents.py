"""Security Event Tokens (RFC 8417) of the OpenID Shared Signals Framework 1.0, with the
CAEP 1.0 and RISC 1.0 events 1pass sends, as the dispatcher (push, RFC 8935) and the
poll endpoint (RFC 8936) hand them out.

An outbox entry of type ``ssf.set`` (and a row of ``ssf_queued_sets``) holds what the
SET says (``payload``: ``client_id``, ``jti``, ``events``, ``sub_id``, ``txn``, ``toe``
— the time of the event); the SET itself is signed each time it is handed out, so a
retried, replayed or re-polled SET carries a fresh ``iat`` but the same ``jti`` (a
receiver drops a ``jti`` it has seen: RFC 8417 §4.1, RFC 8935 §4).

Pure functions: no I/O, no clock of their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from onepass.keys.jwt import JWTSigner

# SSF 1.0 §4.1.9 (RFC 8417 §2.3): explicitly typed, never taken for another JWT.
TYP = "secevent+jwt"
# RFC 8935 §2: the request's media type.
CONTENT_TYPE = "application/secevent+jwt"
# SSF 1.0 §7.1 ``delivery_methods_supported``.
PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DELIVERY_METHODS = (PUSH, POLL)
# What the URL is called in refusals (``safety.check_url``'s ``what``).
URI_NAME = "SSF push endpoint URL"

_CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
_RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SESSION_REVOKED = _CAEP + "session-revoked"
CREDENTIAL_CHANGE = _CAEP + "credential-change"
ACCOUNT_DISABLED = _RISC + "account-disabled"
ACCOUNT_ENABLED = _RISC + "account-enabled"
ACCOUNT_PURGED = _RISC + "account-purged"
IDENTIFIER_CHANGED = _RISC + "identifier-changed"
# SSF 1.0 §8.1.4: sent on request (the verification endpoint); always delivered.
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
# A merge (``identity.link.created`` as a SET): 1pass's own event type, one fixed URI
# whatever the issuer, so that an RP's code names it once.
IDENTITY_LINK_CREATED = "https://1pass.dev/secevent/identity-link-created"

# What a stream may request (``events_supported``); ``events_delivered`` is the
# requested ones among these (§8.1.1).
SUPPORTED = (
    SESSION_REVOKED,
    CREDENTIAL_CHANGE,
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    ACCOUNT_PURGED,
    IDENTIFIER_CHANGED,
    IDENTITY_LINK_CREATED,
)

# CAEP 1.0 §3.3 ``credential_type`` values 1pass changes.
PASSWORD = "password"
FIDO2_PLATFORM = "fido2-platform"
APP = "app"  # a TOTP authenticator app


def subject(issuer: str, sub: str) -> dict[str, str]:
    """SSF 1.0 §3 (RFC 9493 §3.2.3): the ``iss_sub`` subject identifier."""
    return {"format": "iss_sub", "iss": issuer, "sub": sub}


def claims(*, issuer: str, payload: Mapping[str, Any], now: int) -> dict[str, Any]:
    """The SET's claims from an entry's ``payload``: ``iss``, ``aud`` (the client_id),
    ``iat``, ``jti``, ``events``, and ``sub_id`` and ``txn`` when it has them. No
    ``sub`` (SSF 1.0 §4.1.2: the subject is ``sub_id``) and no ``exp`` (RFC 8417 §2.2:
    a SET states a fact; a receiver dedupes by ``jti``)."""
    events = payload.get("events")
    if not isinstance(events, dict) or not events:
        raise ValueError("a SET has at least one event (RFC 8417 §2.2)")
    token: dict[str, Any] = {
        "iss": issuer,
        "aud": payload["client_id"],
        "iat": now,
        "jti": payload["jti"],
        "events": events,
    }
    if payload.get("sub_id"):
        token["sub_id"] = payload["sub_id"]
    if payload.get("txn"):
        token["txn"] = payload["txn"]
    if isinstance(payload.get("toe"), int):
        token["toe"] = payload["toe"]
    return token


def sign(signer: JWTSigner, *, issuer: str, payload: Mapping[str, Any], now: int) -> str:
    """The SET, signed by ``signer`` (1pass's key for the client's ID token algorithm)."""
    return signer.sign(claims(issuer=issuer, payload=payload, now=now), TYP)


def push_error(body: str | None) -> str | None:
    """RFC 8935 §2.3: a receiver's 400 says why in ``{"err", "description"}``; that
    sentence (for ``last_error``), or None when the body is not such an object."""
    if not body:
        return None
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("err"), str):
        return None
    err: str = parsed["err"][:100]
    description = parsed.get("description")
    if isinstance(description, str) and description:
        return f"{err}: {description[:300]}"
    return err

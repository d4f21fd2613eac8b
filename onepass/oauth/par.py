"""Pushed authorization requests (RFC 9126).

A client sends its authorization request's parameters to ``/par`` with its
credentials, as it would to ``/token``; they are validated there exactly as
``/authorize`` validates them (so a bad redirect URI, a missing PKCE challenge or an
unknown scope is a JSON error to the client, never a redirect), stored, and answered
with a ``request_uri`` (``urn:ietf:params:oauth:request_uri:…``, 256 random bits; only
its keyed hash is stored) that lives ``ONEPASS_PAR_TTL`` seconds (60). The browser then
goes to ``/authorize?client_id=…&request_uri=…``: the request is taken once, by the
client that pushed it, and the sign-in goes on as for any request. Parameters given
beside ``request_uri`` at ``/authorize`` are ignored (§4), except ``client_id``, which
must be the pusher's.

A client registered with ``require_pushed_authorization_requests`` (or every client,
``ONEPASS_REQUIRE_PUSHED_AUTHORIZATION_REQUESTS``) may only send ``request_uri``s to
``/authorize`` (§6).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.registry import ClientRecord
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.oauth.models import PushedAuthorizationRequest
from onepass.web import Params

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"
MAX_REQUEST_URI = 200


def required(client: ClientRecord, everyone: bool) -> bool:
    """Whether this client's authorization requests must come through ``/par``."""
    return everyone or client.require_pushed_authorization_requests


def _hash(hasher: KeyedHasher, request_uri: str) -> str:
    return hasher.hash("par\x00" + request_uri)


async def push(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    client: ClientRecord,
    params: Params,
    ttl: int,
) -> str:
    """Store the (already validated) request of ``client``; the ``request_uri``."""
    now = clock.now()
    # Expired or used requests are of no use to anyone: the next push removes them.
    await session.execute(
        delete(PushedAuthorizationRequest).where(PushedAuthorizationRequest.expires_at < now)
    )
    request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    session.add(
        PushedAuthorizationRequest(
            request_uri_hash=_hash(hasher, request_uri),
            oauth_application_id=client.id,
            parameters=dict(params),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    await session.flush()
    return request_uri


async def take(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    client: ClientRecord,
    request_uri: str,
) -> Params | None:
    """The parameters pushed as ``request_uri`` by ``client``, taken once (one
    conditional ``UPDATE``: of two browsers with one URI, one gets it); None for an
    unknown, expired, used, or another client's request."""
    if not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > MAX_REQUEST_URI:
        return None
    now = clock.now()
    t = PushedAuthorizationRequest
    result = await session.execute(
        update(t)
        .where(
            t.request_uri_hash == _hash(hasher, request_uri),
            t.oauth_application_id == client.id,
            t.used_at.is_(None),
            t.expires_at > now,
        )
        .values(used_at=now)
        .returning(t.parameters)
        .execution_options(synchronize_session=False)
    )
    row = cast("CursorResult[Any]", result).first()
    if row is None:
        return None
    params = Params()
    params.update({str(k): str(v) for k, v in dict(row[0]).items()})
    return params

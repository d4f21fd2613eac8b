"""Resource servers (RFC 8707 §2): the protected resources a client may ask tokens for.

A resource server is named by its identifier, an absolute URI without a fragment, which
is the ``aud`` of every access token issued for it. It defines its scopes (a token for it
carries only those, never the OpenID Connect ones), its access tokens' lifetime and the
algorithm they are signed with (one the key ring keeps keys for).

Here, in the clients package, because a client's allowed resources and its token
exchange policy name resource servers and are checked against them when the client is
registered, and because the protocol (``onepass.oauth``, above) reads both through the
same per-process caches; a package of its own would need a layer of its own between
clients and oauth for one table.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication, ResourceServer
from onepass.clients.scopes import USER_SCOPES, parse_scope
from onepass.clock import Clock
from onepass.db import Database
from onepass.keys.jwt import SUPPORTED_ALGS
from onepass.refusals import Conflict, Invalid, NotFound, Refusal
from onepass.services import Service

# Token Exchange (RFC 8693 §2.1): a client has this grant exactly when its exchange
# policy names a resource server (``registry.ClientSettings.checked``).
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
MIN_TTL = 60
MAX_TTL = 86400
MAX_IDENTIFIER = 2048


class ResourceError(Refusal):
    """A resource server that cannot be registered, changed or found; the message says why."""


class ResourceNotFound(ResourceError, NotFound):
    pass


class ResourceExists(ResourceError, Conflict):
    pass


class InvalidResource(ResourceError, Invalid):
    pass


def identifier_problem(uri: str) -> str | None:
    """Why ``uri`` cannot name a resource (RFC 8707 §2: an absolute URI, no fragment),
    or None. A query is allowed by the RFC but discouraged; 1pass refuses none."""
    if not uri or len(uri) > MAX_IDENTIFIER:
        return f"a resource identifier is 1 to {MAX_IDENTIFIER} characters"
    if any(c.isspace() or not c.isprintable() for c in uri):
        return "a resource identifier must not contain spaces or control characters"
    if "#" in uri:
        return "a resource identifier must not contain a fragment (RFC 8707 §2)"
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "a resource identifier must be an absolute URI (RFC 8707 §2)"
    if not parts.scheme or not (parts.netloc or parts.path):
        return "a resource identifier must be an absolute URI (RFC 8707 §2)"
    return None


def check_identifier(uri: str) -> str:
    problem = identifier_problem(uri)
    if problem is not None:
        raise InvalidResource(problem)
    return uri


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    try:
        parsed = parse_scope(" ".join(scopes))
    except Exception:
        raise InvalidResource("a scope contains a character RFC 6749 §3.3 does not allow") from None
    if not parsed:
        raise InvalidResource("a resource server defines at least one scope (--scope)")
    oidc = [s for s in parsed if s in USER_SCOPES]
    if oidc:
        raise InvalidResource(
            f"{oidc[0]} is an OpenID Connect scope, not a resource server's: tokens for a "
            "resource carry only its own scopes"
        )
    return parsed


def _check_ttl(ttl: int) -> int:
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidResource(f"the access token lifetime must be {MIN_TTL} s to {MAX_TTL} s")
    return ttl


def _check_alg(alg: str, signing_algs: Collection[str]) -> str:
    if alg not in SUPPORTED_ALGS:
        raise InvalidResource(f"the signing algorithm must be one of {', '.join(SUPPORTED_ALGS)}")
    if alg not in signing_algs:
        raise InvalidResource(
            f"{alg} has no signing key on this server: ONEPASS_SIGNING_ALGS is "
            f"{','.join(signing_algs)} (add {alg} to it and restart)"
        )
    return alg


async def create_resource(
    session: AsyncSession,
    clock: Clock,
    *,
    identifier: str,
    scopes: Iterable[str],
    name: str | None,
    access_token_ttl: int,
    signing_alg: str,
    signing_algs: Collection[str],
) -> ResourceServer:
    check_identifier(identifier)
    name = (name or identifier).strip()[:200]
    if not name:
        raise InvalidResource("a name is 1 to 200 characters")
    resource = ResourceServer(
        identifier=identifier,
        name=name,
        scopes=_check_scopes(scopes),
        access_token_ttl=_check_ttl(access_token_ttl),
        signing_alg=_check_alg(signing_alg, signing_algs),
    )
    if await _by_identifier(session, identifier) is not None:
        raise ResourceExists(f"a resource server {identifier[:200]!r} is already registered")
    resource.created_at = resource.updated_at = clock.now()
    session.add(resource)
    await session.flush()
    return resource


async def update_resource(
    session: AsyncSession,
    clock: Clock,
    resource: ResourceServer,
    *,
    name: str | None = None,
    scopes: Iterable[str] | None = None,
    access_token_ttl: int | None = None,
    signing_alg: str | None = None,
    signing_algs: Collection[str],
) -> list[str]:
    """The fields that changed (none: nothing written). The identifier never changes:
    it is the audience of tokens already issued; register a new resource server."""
    changes: dict[str, Any] = {}
    if name is not None:
        name = name.strip()[:200]
        if not name:
            raise InvalidResource("a name is 1 to 200 characters")
        changes["name"] = name
    if scopes is not None:
        changes["scopes"] = _check_scopes(scopes)
    if access_token_ttl is not None:
        changes["access_token_ttl"] = _check_ttl(access_token_ttl)
    if signing_alg is not None and signing_alg != resource.signing_alg:
        changes["signing_alg"] = _check_alg(signing_alg, signing_algs)
    changed = []
    for field, value in changes.items():
        if getattr(resource, field) != value:
            setattr(resource, field, value)
            changed.append(field)
    if changed:
        resource.updated_at = clock.now()
    return changed


async def delete_resource(
    session: AsyncSession, clock: Clock, resource: ResourceServer
) -> list[str]:
    """Delete ``resource`` and take it out of every client's allowed resources and token
    exchange policy (a client left with none loses the exchange grant), in the caller's
    transaction; the client_ids that lost it."""
    touched = []
    for app in await session.scalars(select(OAuthApplication)):
        allowed = app.allowed_resources or []
        exchange = app.token_exchange_resources or []
        if resource.identifier in allowed or resource.identifier in exchange:
            app.allowed_resources = [r for r in allowed if r != resource.identifier] or None
            app.token_exchange_resources = [r for r in exchange if r != resource.identifier] or None
            if not app.token_exchange_resources:
                app.grant_types = [g for g in app.grant_types if g != TOKEN_EXCHANGE]
            app.updated_at = clock.now()
            touched.append(app.client_id)
    await session.delete(resource)
    return touched


async def _by_identifier(session: AsyncSession, identifier: str) -> ResourceServer | None:
    return await session.scalar(
        select(ResourceServer).where(ResourceServer.identifier == identifier)
    )


async def find_resource(session: AsyncSession, ref: str) -> ResourceServer:
    """By identifier, or by internal id."""
    if "\x00" in ref:
        raise ResourceNotFound(f"no resource server {ref[:80]!r}")
    resource = await _by_identifier(session, ref)
    if resource is None and ref.isascii() and ref.isdigit() and len(ref) <= 18:
        resource = await session.get(ResourceServer, int(ref))
    if resource is None:
        raise ResourceNotFound(f"no resource server {ref[:200]!r}")
    return resource


async def list_resources(session: AsyncSession) -> list[ResourceServer]:
    return list(await session.scalars(select(ResourceServer).order_by(ResourceServer.id)))


async def require_known(session: AsyncSession, identifiers: Iterable[str]) -> None:
    """``InvalidResource`` unless every identifier names a registered resource server."""
    wanted = set(identifiers)
    if not wanted:
        return
    known = set(
        await session.scalars(
            select(ResourceServer.identifier).where(ResourceServer.identifier.in_(wanted))
        )
    )
    missing = sorted(wanted - known)
    if missing:
        raise InvalidResource(
            f"no resource server {missing[0][:200]!r}: register it first "
            "(onepass resources create --identifier URI --scope S)"
        )


def describe_resource(resource: ResourceServer) -> dict[str, Any]:
    return {
        "id": resource.id,
        "identifier": resource.identifier,
        "name": resource.name,
        "scopes": resource.scopes,
        "access_token_ttl": resource.access_token_ttl,
        "signing_alg": resource.signing_alg,
        "created_at": resource.created_at,
        "updated_at": resource.updated_at,
    }


@dataclass(frozen=True)
class ResourceRecord:
    """A resource server as the protocol sees it, immutable and cacheable."""

    identifier: str
    scopes: frozenset[str]
    access_token_ttl: int
    signing_alg: str

    @classmethod
    def of(cls, resource: ResourceServer) -> ResourceRecord:
        return cls(
            resource.identifier,
            frozenset(resource.scopes),
            resource.access_token_ttl,
            resource.signing_alg,
        )

    def narrowed(self, scope: Iterable[str]) -> list[str]:
        """The scopes of ``scope`` this resource defines, in order (RFC 8707 §2.2)."""
        return [s for s in scope if s in self.scopes]


class ResourceCache:
    """Every resource server, read at most once per ``ttl`` seconds in this process (the
    table is small: one query loads it all). A change made by any process is seen
    everywhere within ``ttl``, as the client cache's. Only requests that name a
    resource, or whose grant has one, ask: the default path never does."""

    def __init__(
        self, database: Database, ttl: float, *, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._database = database
        self._ttl = ttl
        self._monotonic = monotonic
        self._records: dict[str, ResourceRecord] = {}
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self, identifier: str) -> ResourceRecord | None:
        if self._monotonic() >= self._expires:
            async with self._lock:
                if self._monotonic() >= self._expires:
                    async with self._database.session(readonly=True) as session:
                        rows = await list_resources(session)
                    self._records = {r.identifier: ResourceRecord.of(r) for r in rows}
                    self._expires = self._monotonic() + self._ttl
        return self._records.get(identifier)


RESOURCES: Service[ResourceCache] = Service("clients.resources")

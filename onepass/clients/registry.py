"""OAuth applications (RPs): registration, lookup, secrets, and a per-process cache.

Field names follow RFC 7591 (OAuth 2.0 Dynamic Client Registration) and OpenID
Connect Dynamic Client Registration 1.0.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients import auth as client_auth
from onepass.clients.models import OAuthApplication
from onepass.clients.scopes import parse_scope
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.db import Database
from onepass.ids import random_identifier
from onepass.refusals import NotFound, Refusal
from onepass.services import Service

GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
ID_TOKEN_ALGS = ("RS256", "ES256")


class ClientError(Refusal):
    """A client registration or lookup that cannot be done; the message says why."""


class ClientNotFound(ClientError, NotFound):
    pass


@dataclass(frozen=True)
class ClientRecord:
    """What the token endpoint needs to know about a client, immutable and cacheable."""

    id: int
    client_id: str
    client_secret_hash: str | None
    grant_types: frozenset[str]
    scopes: frozenset[str]
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    client_name: str = ""
    first_party: bool = False
    id_token_signed_response_alg: str = "RS256"

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @classmethod
    def of(cls, app: OAuthApplication) -> ClientRecord:
        return cls(
            id=app.id,
            client_id=app.client_id,
            client_secret_hash=app.client_secret_hash,
            grant_types=frozenset(app.grant_types),
            scopes=frozenset(parse_scope(app.scope)),
            token_endpoint_auth_method=app.token_endpoint_auth_method,
            redirect_uris=tuple(app.redirect_uris),
            post_logout_redirect_uris=tuple(app.post_logout_redirect_uris),
            client_name=app.client_name,
            first_party=app.first_party,
            id_token_signed_response_alg=app.id_token_signed_response_alg,
        )


@dataclass(frozen=True)
class NewClient:
    application: OAuthApplication
    client_secret: str | None  # shown once


def generate_client_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


def _check_uri(uri: str, what: str, *, production: bool) -> str:
    parts = urlsplit(uri)
    if parts.scheme not in ("https", "http") and not (parts.scheme and "." in parts.scheme):
        raise ClientError(f"{what} {uri!r} must be an absolute URL")
    if not parts.netloc and parts.scheme in ("http", "https"):
        raise ClientError(f"{what} {uri!r} has no host")
    if parts.fragment or "#" in uri:
        raise ClientError(f"{what} {uri!r} must not contain a fragment (RFC 6749 §3.1.2)")
    loopback = parts.hostname in ("127.0.0.1", "::1", "localhost")
    if production and parts.scheme == "http" and not loopback:
        raise ClientError(f"{what} {uri!r} must use https in production")
    return uri


async def create_client(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    *,
    name: str,
    redirect_uris: list[str] | None = None,
    post_logout_redirect_uris: list[str] | None = None,
    grant_types: list[str] | None = None,
    scope: str | None = None,
    public: bool = False,
    token_endpoint_auth_method: str | None = None,
    id_token_signed_response_alg: str = "RS256",
    first_party: bool = False,
    webhook_url: str | None = None,
    webhook_events: list[str] | None = None,
    production: bool = False,
) -> NewClient:
    name = name.strip()
    if not name or len(name) > 200:
        raise ClientError("name must be 1 to 200 characters")
    redirect_uris = [
        _check_uri(u, "redirect URI", production=production) for u in redirect_uris or []
    ]
    post_logout = [
        _check_uri(u, "post-logout redirect URI", production=production)
        for u in post_logout_redirect_uris or []
    ]
    grant_types = list(dict.fromkeys(grant_types or ["authorization_code"]))
    unknown = [g for g in grant_types if g not in GRANT_TYPES]
    if unknown:
        raise ClientError(
            f"unsupported grant type {unknown[0]!r}; supported: {', '.join(GRANT_TYPES)}"
        )
    if "authorization_code" in grant_types and not redirect_uris:
        raise ClientError("the authorization_code grant needs at least one --redirect-uri")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise ClientError("the refresh_token grant comes with authorization_code")
    method = token_endpoint_auth_method or (
        client_auth.NONE if public else client_auth.CLIENT_SECRET_BASIC
    )
    if method not in client_auth.AUTH_METHODS:
        raise ClientError(f"unsupported token_endpoint_auth_method {method!r}")
    if public != (method == client_auth.NONE):
        raise ClientError(
            "public clients authenticate with 'none'; confidential ones with a secret"
        )
    if public and "client_credentials" in grant_types:
        raise ClientError("a public client cannot use the client_credentials grant")
    if id_token_signed_response_alg not in ID_TOKEN_ALGS:
        raise ClientError(f"id_token_signed_response_alg must be one of {', '.join(ID_TOKEN_ALGS)}")
    if scope is None:
        scope = "openid profile email offline_access" if "authorization_code" in grant_types else ""
    try:
        scopes = parse_scope(scope)
    except Exception:
        raise ClientError("scope contains a character RFC 6749 §3.3 does not allow") from None
    if webhook_url is not None:
        parts = urlsplit(webhook_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ClientError(f"webhook URL {webhook_url!r} must be an absolute http(s) URL")
        if production and parts.scheme != "https":
            raise ClientError("webhook URLs must use https in production")

    secret = None if public else generate_client_secret()
    now = clock.now()
    app = OAuthApplication(
        client_id=random_identifier(24),
        client_secret_hash=hasher.hash(secret) if secret else None,
        client_name=name,
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=post_logout,
        grant_types=grant_types,
        response_types=["code"] if "authorization_code" in grant_types else [],
        scope=" ".join(scopes),
        token_endpoint_auth_method=method,
        id_token_signed_response_alg=id_token_signed_response_alg,
        first_party=first_party,
        webhook_url=webhook_url,
        webhook_events=list(dict.fromkeys(webhook_events or [])),
        created_at=now,
        updated_at=now,
    )
    session.add(app)
    await session.flush()
    return NewClient(app, secret)


async def find_client(session: AsyncSession, app_id: str) -> OAuthApplication:
    """Find by ``client_id`` or internal id (the CLI's APP_ID)."""
    if "\x00" in app_id:  # PostgreSQL refuses NUL in text: not found, not an outage
        raise ClientNotFound(f"no application with client_id or id {app_id[:80]!r}")
    app = await session.scalar(select(OAuthApplication).where(OAuthApplication.client_id == app_id))
    # An id fits in 64 bits (SQLite raises OverflowError past them, asyncpg DataError).
    if app is None and app_id.isascii() and app_id.isdigit() and len(app_id) <= 18:
        app = await session.get(OAuthApplication, int(app_id))
    if app is None:
        raise ClientNotFound(f"no application with client_id or id {app_id[:80]!r}")
    return app


async def list_clients(session: AsyncSession) -> list[OAuthApplication]:
    return list(await session.scalars(select(OAuthApplication).order_by(OAuthApplication.id)))


async def rotate_secret(
    session: AsyncSession, hasher: KeyedHasher, clock: Clock, app_id: str
) -> tuple[OAuthApplication, str]:
    app = await find_client(session, app_id)
    if app.is_public:
        raise ClientError("a public client has no secret")
    secret = generate_client_secret()
    app.client_secret_hash = hasher.hash(secret)
    app.updated_at = clock.now()
    return app, secret


async def delete_client(session: AsyncSession, app_id: str) -> OAuthApplication:
    app = await find_client(session, app_id)
    await session.execute(delete(OAuthApplication).where(OAuthApplication.id == app.id))
    return app


async def load_record(session: AsyncSession, client_id: str) -> ClientRecord | None:
    """The client as the protocol sees it, or None for one 1pass does not serve.

    The one place that decides it: every endpoint that takes a client or a token of
    one (``/authorize`` and its forms, ``/token``, ``/userinfo``, ``/introspect``,
    ``/revoke``, ``/logout``'s hint, the webhook key endpoint) asks through
    ``ClientCache``. Today only a deleted client is not served; a ``disabled`` state
    (``onepass clients disable``, DESIGN.md's day-2 commands) belongs here too.
    """
    app = await session.scalar(
        select(OAuthApplication).where(OAuthApplication.client_id == client_id)
    )
    return ClientRecord.of(app) if app else None


class ClientCache:
    """Clients by ``client_id``, each trusted for ``ttl`` seconds in this process.

    The token endpoint asks here instead of the database: a change or deletion made
    by any process is seen everywhere within ``ttl``. Unknown client ids are cached
    too (a repeated made-up id costs one query per ``ttl``), concurrent misses for
    one id share a single query, and the oldest entry makes room for a new one.
    """

    def __init__(
        self,
        database: Database,
        ttl: float,
        *,
        max_entries: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._ttl = ttl
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._entries: dict[str, tuple[ClientRecord | None, float]] = {}
        self._loading: dict[str, asyncio.Future[ClientRecord | None]] = {}

    async def get(self, client_id: str) -> ClientRecord | None:
        entry = self._entries.get(client_id)
        if entry is not None and entry[1] > self._monotonic():
            return entry[0]
        pending = self._loading.get(client_id)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # this waiter itself was cancelled
                return await self.get(client_id)  # the loader was: load again
        return await self._load(client_id)

    async def _load(self, client_id: str) -> ClientRecord | None:
        future: asyncio.Future[ClientRecord | None] = asyncio.get_running_loop().create_future()
        self._loading[client_id] = future
        try:
            async with self._database.session(readonly=True) as session:
                record = await load_record(session, client_id)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it twice
            raise
        finally:
            del self._loading[client_id]
        self._entries.pop(client_id, None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        self._entries[client_id] = (record, self._monotonic() + self._ttl)
        future.set_result(record)
        return record


CLIENTS: Service[ClientCache] = Service("clients.cache")

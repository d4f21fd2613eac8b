"""Which ``sub`` an RP sees for a user (OpenID Connect Core 1.0 §8): the one place.

A client's ``subject_type`` is ``public`` (1pass's default: every RP sees the user's
own ``users.sub``) or ``pairwise`` (§8.1): every RP of one *sector* sees the same
``sub`` for a user, RPs of different sectors see different ones, and none of them can
work out the public ``sub`` from it. The sector is the host of the client's
``sector_identifier_uri`` when it has one, else the host its redirect URIs share
(OpenID Connect Dynamic Client Registration 1.0 §5: several hosts need a
``sector_identifier_uri``).

A pairwise ``sub`` is 256 random bits, made the first time the sector's RPs see the
user and kept in ``pairwise_subjects`` (sector, user, sub). Nothing derives it from a
key, so rotating ``ONEPASS_SECRET_KEY`` (or any other key) changes no RP's ``sub``;
the table is also what maps a ``sub`` back to its user, by one index probe (userinfo,
introspection, logout's ``id_token_hint``). Merges resolve per sector: tokens issued
for a merged user's canonical user carry the canonical user's ``sub`` of the sector.

``subject_for`` (ORM) and ``direct_subject_for`` (the grants' hot path, straight to
the driver) are the one rule; both give a public client its ``users.sub`` without
reading anything.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import User
from onepass.clients.models import PairwiseSubject
from onepass.clock import Clock
from onepass.db.direct import DirectStore, statement
from onepass.refusals import Invalid

if TYPE_CHECKING:
    from onepass.clients.models import OAuthApplication
    from onepass.clients.registry import ClientRecord

PUBLIC = "public"
PAIRWISE = "pairwise"
SUBJECT_TYPES = (PUBLIC, PAIRWISE)

# A sector identifier document (Registration §5): a JSON array of URIs, fetched once at
# registration and whenever the redirect URIs change.
MAX_SECTOR_DOCUMENT_BYTES = 64 * 1024
MAX_SECTOR_DOCUMENT_URIS = 200


class SubjectSettingsRefused(Invalid):
    """A subject type, sector identifier URI or sector document a client cannot have."""


def _host(uri: str) -> str | None:
    try:
        host = urlsplit(uri).hostname
    except ValueError:
        return None
    return host.lower() if host else None


def check_subject_settings(
    subject_type: str,
    redirect_uris: Sequence[str],
    sector_identifier_uri: str | None,
    *,
    production: bool,
) -> None:
    """``SubjectSettingsRefused`` unless these settings give a client one sector: a
    known subject type; an https ``sector_identifier_uri`` without credentials or a
    fragment (http only on this machine, outside production, for tests); and for a
    pairwise client without one, redirect URIs that all have the same host."""
    if subject_type not in SUBJECT_TYPES:
        raise SubjectSettingsRefused(
            f"subject_type must be one of {', '.join(SUBJECT_TYPES)} (OpenID Connect Core §8)"
        )
    uri = sector_identifier_uri
    if uri is not None:
        if any(c.isspace() or not c.isprintable() for c in uri):
            raise SubjectSettingsRefused(
                "sector_identifier_uri must not contain spaces or controls"
            )
        try:
            parts = urlsplit(uri)
            host = parts.hostname
        except ValueError:
            raise SubjectSettingsRefused(
                f"sector_identifier_uri {uri[:200]!r} is not a valid URL"
            ) from None
        loopback = host in ("127.0.0.1", "::1", "localhost")
        if not host or not (
            parts.scheme == "https" or (parts.scheme == "http" and loopback and not production)
        ):
            raise SubjectSettingsRefused(
                f"sector_identifier_uri {uri[:200]!r} must be an absolute https URL "
                "(OpenID Connect Registration §2)"
            )
        if parts.username is not None or parts.password is not None or parts.fragment:
            raise SubjectSettingsRefused(
                "sector_identifier_uri must not contain credentials or a fragment"
            )
        return
    if subject_type != PAIRWISE:
        return
    hosts = {_host(u) for u in redirect_uris}
    if not hosts:
        raise SubjectSettingsRefused(
            "a pairwise client needs redirect URIs or a sector_identifier_uri: its sector "
            "is their host"
        )
    if None in hosts:
        raise SubjectSettingsRefused(
            "a pairwise client whose redirect URIs have no host (a custom scheme) needs a "
            "sector_identifier_uri"
        )
    if len(hosts) > 1:
        raise SubjectSettingsRefused(
            "the redirect URIs are on several hosts ("
            + ", ".join(sorted(h for h in hosts if h))
            + "): a pairwise client needs a sector_identifier_uri listing them "
            "(OpenID Connect Registration §5)"
        )


def check_sector_document(body: bytes, redirect_uris: Sequence[str]) -> None:
    """``SubjectSettingsRefused`` unless ``body`` (the document at the client's
    ``sector_identifier_uri``) is a JSON array of URIs holding every redirect URI."""
    if len(body) > MAX_SECTOR_DOCUMENT_BYTES:
        raise SubjectSettingsRefused("the sector identifier document is larger than 64 KB")
    try:
        document: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise SubjectSettingsRefused("the sector identifier document is not JSON") from None
    if (
        not isinstance(document, list)
        or not all(isinstance(u, str) for u in document)
        or len(document) > MAX_SECTOR_DOCUMENT_URIS
    ):
        raise SubjectSettingsRefused(
            "the sector identifier document must be a JSON array of redirect URIs "
            f"(at most {MAX_SECTOR_DOCUMENT_URIS})"
        )
    missing = [u for u in redirect_uris if u not in document]
    if missing:
        raise SubjectSettingsRefused(
            f"the sector identifier document does not list the redirect URI {missing[0][:200]!r} "
            "(OpenID Connect Registration §5: it must list every one)"
        )


def sector_of(client: ClientRecord | OAuthApplication) -> str | None:
    """The client's sector (a host), or None for a public client."""
    return sector(
        client.subject_type, client.redirect_uris, client.sector_identifier_uri, client.client_id
    )


def sector(
    subject_type: str,
    redirect_uris: Sequence[str],
    sector_identifier_uri: str | None,
    client_id: str = "",
) -> str | None:
    """The sector of a client of these settings (a host), or None for a public one."""
    if subject_type != PAIRWISE:
        return None
    if sector_identifier_uri is not None:
        return _host(sector_identifier_uri) or sector_identifier_uri
    # Registration refuses redirect URIs on several hosts; the first one decides if a
    # row was written otherwise.
    return next((h for h in map(_host, redirect_uris) if h), client_id)


def _new_sub() -> str:
    return secrets.token_urlsafe(32)  # 256 bits, 43 characters


def _insert(dialect: str) -> Any:
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(PairwiseSubject)


async def pairwise_subject(session: AsyncSession, clock: Clock, sector: str, user_id: int) -> str:
    """The ``sub`` of ``user_id`` in ``sector``, made on first use (concurrent first uses
    agree: the loser's row is not inserted and the winner's is read)."""
    query = select(PairwiseSubject.sub).where(
        PairwiseSubject.sector == sector, PairwiseSubject.user_id == user_id
    )
    sub = await session.scalar(query)
    if sub is not None:
        return sub
    dialect = session.get_bind().dialect.name
    await session.execute(
        _insert(dialect)
        .values(sector=sector, user_id=user_id, sub=_new_sub(), created_at=clock.now())
        .on_conflict_do_nothing()
    )
    sub = await session.scalar(query)
    assert sub is not None, "inserted, or inserted by a concurrent first use"
    return sub


async def subject_for(
    session: AsyncSession,
    clock: Clock,
    client: ClientRecord | OAuthApplication,
    user_id: int,
    public_sub: str,
) -> str:
    """The ``sub`` ``client`` sees for the user ``user_id`` (whose own is
    ``public_sub``): that one for a public client, the sector's for a pairwise one."""
    sector = sector_of(client)
    if sector is None:
        return public_sub
    return await pairwise_subject(session, clock, sector, user_id)


async def existing_subject(
    session: AsyncSession,
    client: ClientRecord | OAuthApplication,
    user_id: int,
    public_sub: str,
) -> str | None:
    """``subject_for`` without writing (a read-only session): None when the client is
    pairwise and its sector has no ``sub`` for the user yet."""
    sector = sector_of(client)
    if sector is None:
        return public_sub
    return await session.scalar(
        select(PairwiseSubject.sub).where(
            PairwiseSubject.sector == sector, PairwiseSubject.user_id == user_id
        )
    )


async def user_of_subject(
    session: AsyncSession, client: ClientRecord | OAuthApplication, sub: str
) -> int | None:
    """The user ``client`` knows by ``sub`` (a token's), or None: the reverse of
    ``subject_for``, one index probe."""
    sector = sector_of(client)
    if sector is None:
        return await session.scalar(select(User.id).where(User.sub == sub))
    return await session.scalar(
        select(PairwiseSubject.user_id).where(
            PairwiseSubject.sub == sub, PairwiseSubject.sector == sector
        )
    )


# ------------------------------------------------------- the grants' hot path (direct)

_PAIRWISE_SUB = statement(
    "SELECT sub FROM pairwise_subjects WHERE sector = :sector AND user_id = :user_id"
)
_NEW_PAIRWISE_SUB = statement(
    """
    INSERT INTO pairwise_subjects (sector, user_id, sub, created_at)
    VALUES (:sector, :user_id, :sub, :created_at)
    ON CONFLICT DO NOTHING
    """,
    datetimes=("created_at",),
)


async def direct_subject_for(
    direct: DirectStore,
    clock: Clock,
    client: ClientRecord,
    user_id: int,
    public_sub: str,
) -> str:
    """``subject_for`` on the direct store (``onepass.db.direct``): nothing read for a
    public client; one point read for a pairwise one, and a write the first time."""
    sector = sector_of(client)
    if sector is None:
        return public_sub
    params = {"sector": sector, "user_id": user_id}
    row = await direct.read(_PAIRWISE_SUB, params)
    if row is None:
        async with direct.write() as tx:
            await tx.execute(
                _NEW_PAIRWISE_SUB, {**params, "sub": _new_sub(), "created_at": clock.now()}
            )
        row = await direct.read(_PAIRWISE_SUB, params)
    assert row is not None, "inserted, or inserted by a concurrent first use"
    sub: str = row["sub"]
    return sub

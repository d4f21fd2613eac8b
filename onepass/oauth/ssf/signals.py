"""Which streams hear of a change to a user, and what they are told: a SET per stream
that requested the event, written in the transaction of the change (the outbox's
``ssf.set`` entries for an enabled push stream, ``ssf_queued_sets`` for a poll stream or
a paused one; nothing for a disabled one: SSF 1.0 §8.1.2).

Only RPs that know the user hear of them: an RP the user consented to, one that was
issued a refresh token of theirs (revoked or not), or one a login session of theirs
signed in to (``login_session_clients``: first-party RPs skip consent). With
``ENFORCE_CANONICAL_RESOLUTION`` on, an RP that knows the user by their canonical user
counts too, as for back-channel logout. Call these before what says who knew the user
is deleted (a deletion forgets consents and sessions).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import LoginSession, LoginSessionClient, User
from onepass.clients import subjects
from onepass.clients.models import OAuthApplication
from onepass.clock import Clock
from onepass.identity.canonical import canonical_user_id
from onepass.oauth.models import Consent, RefreshToken
from onepass.settings import Settings
from onepass.webhooks import outbox, secevents
from onepass.webhooks.events import EventType
from onepass.webhooks.models import SsfQueuedSet, SsfStream

ENABLED, PAUSED, DISABLED = "enabled", "paused", "disabled"


async def _subject_for(
    session: AsyncSession, clock: Clock, app: OAuthApplication, user_id: int, *, enforce: bool
) -> str:
    """The ``sub`` ``app`` knows the user by: the one place SETs take it from. The
    canonical user's with ``ENFORCE_CANONICAL_RESOLUTION`` on, as in ID tokens; its
    sector's pairwise ``sub`` for a pairwise RP (``clients.subjects``)."""
    shown = await canonical_user_id(session, user_id) if enforce else user_id
    sub = await session.scalar(select(User.sub).where(User.id == shown))
    if sub is None and shown != user_id:
        shown = user_id
        sub = await session.scalar(select(User.sub).where(User.id == user_id))
    assert sub is not None, "the user exists"
    return await subjects.subject_for(session, clock, app, shown, sub)


async def _knowing(session: AsyncSession, user_ids: set[int]) -> list[int]:
    """The applications that know one of ``user_ids`` (see the module's docstring)."""
    consented = select(Consent.oauth_application_id).where(Consent.user_id.in_(user_ids))
    holding = select(RefreshToken.oauth_application_id).where(RefreshToken.user_id.in_(user_ids))
    signed_in = (
        select(LoginSessionClient.oauth_application_id)
        .join(LoginSession, LoginSession.id == LoginSessionClient.login_session_id)
        .where(LoginSession.user_id.in_(user_ids))
    )
    return sorted(set(await session.scalars(union(consented, holding, signed_in))))


async def _streams(
    session: AsyncSession, app_ids: list[int], event: str
) -> list[tuple[SsfStream, OAuthApplication]]:
    """The live streams of ``app_ids`` that deliver ``event``, with their applications."""
    if not app_ids:
        return []
    rows = (
        await session.execute(
            select(SsfStream, OAuthApplication)
            .join(OAuthApplication, OAuthApplication.id == SsfStream.oauth_application_id)
            .where(
                SsfStream.oauth_application_id.in_(app_ids),
                SsfStream.status != DISABLED,
                OAuthApplication.disabled_at.is_(None),
            )
            .order_by(SsfStream.id)
        )
    ).all()
    return [(s, a) for s, a in rows if event in (s.events_delivered or [])]


async def enqueue(
    session: AsyncSession,
    clock: Clock,
    stream: SsfStream,
    app: OAuthApplication,
    *,
    events: dict[str, Any],
    sub_id: Mapping[str, str] | None,
    txn: str | None = None,
) -> bool:
    """One SET for ``stream``'s RP, in the caller's transaction; False when dropped (a
    disabled stream)."""
    if stream.status == DISABLED:
        return False
    jti = secrets.token_urlsafe(16)
    payload: dict[str, Any] = {
        "client_id": app.client_id,
        # The SET's jti: the same for every attempt, replay and poll of it.
        "jti": jti,
        "events": events,
        "toe": int(clock.timestamp()),
    }
    if sub_id is not None:
        payload["sub_id"] = dict(sub_id)
    if txn:
        payload["txn"] = txn
    if stream.delivery_method == secevents.PUSH and stream.status == ENABLED:
        event = outbox.Event(EventType.SSF_SET, payload, f"ssf.set:{jti}")
        await outbox.enqueue_many(session, app, [event], clock=clock, skip_duplicates=True)
    else:
        session.add(
            SsfQueuedSet(ssf_stream_id=stream.id, jti=jti, payload=payload, created_at=clock.now())
        )
        await session.flush()
    return True


async def tell(
    session: AsyncSession,
    clock: Clock,
    settings: Settings,
    user_id: int,
    event: str,
    body: Mapping[str, Any] | None = None,
    *,
    txn: str | None = None,
) -> int:
    """Tell every stream that requested ``event`` (a CAEP/RISC event URI) and whose RP
    knows the user; ``body`` is the event's members. Returns how many SETs were
    written."""
    enforce = settings.enforce_canonical_resolution
    user_ids = {user_id}
    if enforce:
        user_ids.add(await canonical_user_id(session, user_id))
    rows = await _streams(session, await _knowing(session, user_ids), event)
    told = 0
    for stream, app in rows:
        sub = await _subject_for(session, clock, app, user_id, enforce=enforce)
        if await enqueue(
            session,
            clock,
            stream,
            app,
            events={event: dict(body or {})},
            sub_id=secevents.subject(settings.issuer, sub),
            txn=txn,
        ):
            told += 1
    return told


def credential_change(
    clock: Clock, credential_type: str, change_type: str, initiator: str
) -> dict[str, Any]:
    """CAEP 1.0 §3.3 credential-change's members."""
    return {
        "credential_type": credential_type,
        "change_type": change_type,
        "initiating_entity": initiator,
        "event_timestamp": int(clock.timestamp()),
    }


def timestamped(clock: Clock, **members: Any) -> dict[str, Any]:
    """An event's members with CAEP's ``event_timestamp``."""
    return {**members, "event_timestamp": int(clock.timestamp())}


async def tell_merge(
    session: AsyncSession, clock: Clock, settings: Settings, source_id: int, target_id: int
) -> int:
    """A merge as a SET (``secevents.IDENTITY_LINK_CREATED``): the subject is the merged
    user (its own ``sub``, as the RP knew it), ``target_sub_id`` the user it now is.
    Told to the streams that asked for it whose RP knows either user; call it before
    the merge changes anything."""
    rows = await _streams(
        session, await _knowing(session, {source_id, target_id}), secevents.IDENTITY_LINK_CREATED
    )
    told = 0
    for stream, app in rows:
        source = await _subject_for(session, clock, app, source_id, enforce=False)
        target = await _subject_for(session, clock, app, target_id, enforce=False)
        body = timestamped(clock, target_sub_id=secevents.subject(settings.issuer, target))
        if await enqueue(
            session,
            clock,
            stream,
            app,
            events={secevents.IDENTITY_LINK_CREATED: body},
            sub_id=secevents.subject(settings.issuer, source),
        ):
            told += 1
    return told

"""OpenID Connect Back-Channel Logout 1.0: whom to tell when sessions end (§2.3), told
through the webhook outbox in the transaction of the change that ends them.

Who had a session: the RPs a login session signed in to (an authorization code issued
under it: ``login_session_clients``, written by ``oauth.codes.issue_code``), and the
RPs holding a live refresh token issued under it (its ``sid``). Each such RP with a
``backchannel_logout_uri`` gets an outbox entry of type ``oidc.backchannel_logout``;
the dispatcher signs its logout token when it sends it (``webhooks.logout_tokens``).

- One session ends (``logout_session``: RP-initiated logout, a sign-out from the
  account page, an operator ending that session): the token names the session
  (``sid``) and the user (``sub``).
- Every session of a user ends (``logout_user``: an operator ends them, a password is
  reset or set, the user is disabled, deleted or merged into another): the RPs of the
  user's live sessions, and those holding a live refresh token of the user. An RP
  gets one token naming the user (``sub``: log out every session of theirs), or, when
  it registered ``backchannel_logout_session_required``, one per session (``sid`` and
  ``sub``).

Call these before the sessions end (and, for a user, before the refresh tokens are
revoked or the sessions deleted): they read what is live. ``sub`` is the one the RP
knows: the canonical user's with ``ENFORCE_CANONICAL_RESOLUTION`` on, as in ID tokens.

Idempotency keys: ``oidc.backchannel_logout:sid:SID`` for a token naming a session
(a session ends once: told twice, an RP is sent one token), and
``oidc.backchannel_logout:sub:SUB:DIGEST`` for a user-wide one, DIGEST over the
sessions it covers (the same logout again enqueues nothing).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import LoginSession, LoginSessionClient, User
from onepass.clients import subjects
from onepass.clients.models import OAuthApplication
from onepass.clock import Clock
from onepass.identity.canonical import canonical_user_id
from onepass.oauth.models import RefreshToken
from onepass.webhooks import outbox
from onepass.webhooks.events import EventType

EVENT = EventType.OIDC_BACKCHANNEL_LOGOUT

# Why sessions ended (the entry's ``reason``, for operators; not in the token).
RP_LOGOUT = "rp_logout"
SIGNED_OUT = "signed_out"
SESSIONS_REVOKED = "sessions_revoked"
SESSION_REVOKED = "session_revoked"
PASSWORD_RESET = "password_reset"
PASSWORD_SET = "password_set"
SECOND_FACTOR_RESET = "second_factor_reset"
USER_DISABLED = "user_disabled"
USER_DELETED = "user_deleted"
USER_MERGED = "user_merged"


async def _sub(session: AsyncSession, user_id: int, enforce: bool) -> tuple[int, str]:
    """The user RPs know (ID tokens': the canonical user with enforcement on) and its
    public ``sub``; a pairwise RP's is ``subjects.subject_for`` of them."""
    shown = await canonical_user_id(session, user_id) if enforce else user_id
    sub = await session.scalar(select(User.sub).where(User.id == shown))
    if sub is None and shown != user_id:
        shown = user_id
        sub = await session.scalar(select(User.sub).where(User.id == user_id))
    assert sub is not None, "the user exists"
    return shown, sub


def _live_tokens(clock: Clock) -> Any:
    now = clock.now()
    return (
        RefreshToken.revoked_at.is_(None),
        RefreshToken.rotated_at.is_(None),
        RefreshToken.expires_at > now,
        RefreshToken.family_expires_at > now,
    )


async def _applications(session: AsyncSession, app_ids: Iterable[int]) -> list[OAuthApplication]:
    """The applications among ``app_ids`` that have a back-channel logout URI."""
    wanted = sorted(set(app_ids))
    if not wanted:
        return []
    return list(
        await session.scalars(
            select(OAuthApplication)
            .where(
                OAuthApplication.id.in_(wanted),
                OAuthApplication.backchannel_logout_uri.is_not(None),
            )
            .order_by(OAuthApplication.id)
        )
    )


async def _enqueue(
    session: AsyncSession,
    clock: Clock,
    app: OAuthApplication,
    *,
    sub: str,
    sid: str | None,
    key: str,
    reason: str,
) -> int:
    payload: dict[str, Any] = {
        "client_id": app.client_id,
        "sub": sub,
        "sid": sid,
        # The logout token's jti: the same for every attempt of this entry, replays too.
        "jti": secrets.token_urlsafe(16),
        "reason": reason,
    }
    ids = await outbox.enqueue_many(
        session, app, [outbox.Event(EVENT, payload, key)], clock=clock, skip_duplicates=True
    )
    return len(ids)


def _sid_key(sid: str) -> str:
    return f"{EVENT.value}:sid:{sid}"


async def logout_session(
    session: AsyncSession,
    clock: Clock,
    login: LoginSession,
    *,
    enforce: bool,
    reason: str,
) -> int:
    """Tell every RP the login session ``login`` signed in to that it ends (a token
    with its ``sid`` and the user's ``sub``); returns how many entries were enqueued."""
    user_ids = {login.user_id}
    if enforce:
        user_ids.add(await canonical_user_id(session, login.user_id))
    signed_in = select(LoginSessionClient.oauth_application_id).where(
        LoginSessionClient.login_session_id == login.id
    )
    holding = select(RefreshToken.oauth_application_id).where(
        RefreshToken.user_id.in_(user_ids), RefreshToken.sid == login.sid, *_live_tokens(clock)
    )
    app_ids = set(await session.scalars(signed_in)) | set(await session.scalars(holding))
    apps = await _applications(session, app_ids)
    if not apps:
        return 0
    shown, public_sub = await _sub(session, login.user_id, enforce)
    enqueued = 0
    for app in apps:
        sub = await subjects.subject_for(session, clock, app, shown, public_sub)
        enqueued += await _enqueue(
            session, clock, app, sub=sub, sid=login.sid, key=_sid_key(login.sid), reason=reason
        )
    return enqueued


async def logout_user(
    session: AsyncSession,
    clock: Clock,
    user_id: int,
    *,
    enforce: bool,
    reason: str,
) -> int:
    """Tell every RP that had a session of the user that all of them end: the RPs of
    the user's live login sessions and those holding a live refresh token of the user.
    Returns how many entries were enqueued."""
    now = clock.now()
    sessions: dict[int, str] = dict(
        (
            await session.execute(
                select(LoginSession.id, LoginSession.sid).where(
                    LoginSession.user_id == user_id,
                    LoginSession.revoked_at.is_(None),
                    LoginSession.expires_at > now,
                )
            )
        ).all()
    )
    sids_of: defaultdict[int, set[str | None]] = defaultdict(set)
    if sessions:
        signed_in = await session.execute(
            select(
                LoginSessionClient.login_session_id, LoginSessionClient.oauth_application_id
            ).where(LoginSessionClient.login_session_id.in_(list(sessions)))
        )
        for login_id, app_id in signed_in.all():
            sids_of[app_id].add(sessions[login_id])
    token_owner = [RefreshToken.user_id == user_id]
    if sessions:
        token_owner.append(RefreshToken.sid.in_(list(sessions.values())))
    holding = await session.execute(
        select(RefreshToken.oauth_application_id, RefreshToken.sid)
        .where(or_(*token_owner), *_live_tokens(clock))
        .distinct()
    )
    for app_id, token_sid in holding.all():
        sids_of[app_id].add(token_sid)
    apps = await _applications(session, sids_of)
    if not apps:
        return 0
    shown, public_sub = await _sub(session, user_id, enforce)
    enqueued = 0
    for app in apps:
        sub = await subjects.subject_for(session, clock, app, shown, public_sub)
        sids = sorted(s for s in sids_of[app.id] if s)
        if app.backchannel_logout_session_required and sids:
            for sid in sids:
                enqueued += await _enqueue(
                    session, clock, app, sub=sub, sid=sid, key=_sid_key(sid), reason=reason
                )
            continue
        digest = hashlib.sha256("\n".join(sids).encode()).hexdigest()[:16]
        enqueued += await _enqueue(
            session,
            clock,
            app,
            sub=sub,
            sid=None,
            key=f"{EVENT.value}:sub:{sub}:{digest}",
            reason=reason,
        )
    return enqueued

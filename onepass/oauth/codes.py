"""Consent and authorization codes (RFC 6749 §4.1.2, §4.1.3, §10.5)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts.models import LoginSession, LoginSessionClient, User
from onepass.clients.registry import ClientRecord
from onepass.clock import Clock
from onepass.crypto import KeyedHasher
from onepass.db import Database
from onepass.oauth import pkce
from onepass.oauth.authorize import AuthorizationRequest
from onepass.oauth.dpop import check_binding
from onepass.oauth.models import AuthorizationCode, Consent
from onepass.oauth.revocation import revoke_access_token, revoke_family
from onepass.oauth_errors import InvalidGrantError, InvalidRequestError, InvalidTargetError

# RFC 8707 §2.2: a token request may narrow the grant's resources, never add one.
NOT_GRANTED = "the grant was not made for this resource (RFC 8707): ask for it at /authorize"


async def needs_consent(
    session: AsyncSession, user_id: int, client: ClientRecord, scopes: list[str]
) -> bool:
    """First-party clients never ask; others ask for scopes not granted before."""
    if client.first_party:
        return False
    granted = await session.scalar(
        select(Consent.scopes).where(
            Consent.user_id == user_id, Consent.oauth_application_id == client.id
        )
    )
    return not set(scopes) <= set(granted or [])


async def grant_consent(
    session: AsyncSession, clock: Clock, user_id: int, client: ClientRecord, scopes: list[str]
) -> None:
    consent = await session.scalar(
        select(Consent).where(Consent.user_id == user_id, Consent.oauth_application_id == client.id)
    )
    if consent is None:
        session.add(
            Consent(
                user_id=user_id,
                oauth_application_id=client.id,
                scopes=sorted(set(scopes)),
                granted_at=clock.now(),
            )
        )
    else:
        consent.scopes = sorted(set(consent.scopes) | set(scopes))
        consent.granted_at = clock.now()
    await session.flush()


async def issue_code(
    session: AsyncSession,
    hasher: KeyedHasher,
    clock: Clock,
    *,
    client: ClientRecord,
    user: User,
    login: LoginSession,
    request: AuthorizationRequest,
    ttl: int,
) -> str:
    code = secrets.token_urlsafe(32)
    now = clock.now()
    session.add(
        AuthorizationCode(
            code_hash=hasher.hash(code),
            oauth_application_id=client.id,
            user_id=user.id,
            login_session_id=login.id,
            redirect_uri=request.redirect_uri,
            scope=" ".join(request.scope),
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
            auth_time=login.auth_time,
            acr=login.acr,
            amr=list(login.amr),
            sid=login.sid,
            dpop_jkt=request.dpop_jkt,
            resource=request.resource,
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
        )
    )
    await session.flush()
    await _remember_client(session, login.id, client.id, now)
    return code


async def _remember_client(
    session: AsyncSession, login_id: int, app_id: int, now: datetime
) -> None:
    """The RP signed in under this login session (OpenID Connect Back-Channel Logout 1.0
    §2.3): it is told when the session ends (``oauth.backchannel``). Once per pair,
    in the code's transaction: a second code for the same RP writes nothing."""
    bind = session.bind
    insert = pg_insert if bind is not None and bind.dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(LoginSessionClient)
        .values(login_session_id=login_id, oauth_application_id=app_id, created_at=now)
        .on_conflict_do_nothing(index_elements=["login_session_id", "oauth_application_id"])
    )


async def refuse_code(
    database: Database,
    clock: Clock,
    code_hash: str,
    client: ClientRecord,
    redirect_uri: str,
    verifier: str | None,
    jkt: str | None = None,
    resource: str | None = None,
) -> NoReturn:
    """Why a code could not be redeemed (``oauth.grants.authorization_code``).

    A code presented a second time is a replay (RFC 6749 §4.1.2): every token issued
    from it is revoked, committed before the ``invalid_grant`` answer. A code bound to a
    DPoP key (``dpop_jkt``) and asked for without a proof of that key was not redeemed,
    and stays usable by its client with the right key (RFC 9449 §10).
    """
    async with database.session() as session:
        row = await session.scalar(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == code_hash)
        )
        if row is None or row.oauth_application_id != client.id:
            raise InvalidGrantError(
                "the authorization code is invalid or was issued to another client"
            )
        if row.redeemed_at is None:
            if row.expires_at <= clock.now():
                raise InvalidGrantError("the authorization code has expired")
            check_redemption(row, redirect_uri, verifier)
            check_binding(row.dpop_jkt, jkt, "authorization code")
            if resource is not None and resource != row.resource:
                raise InvalidTargetError(NOT_GRANTED)
            raise InvalidGrantError("the authorization code could not be used; try again")
        await revoke_code_tokens(session, clock, row)
    raise InvalidGrantError(
        "the authorization code was already used; tokens issued from it are revoked"
    )


def check_redemption(row: AuthorizationCode, redirect_uri: str, verifier: str | None) -> None:
    """RFC 6749 §4.1.3 (the redirect URI of the request) and RFC 7636 §4.6 (PKCE)."""
    if redirect_uri != row.redirect_uri:
        raise InvalidGrantError("redirect_uri differs from the one in the authorization request")
    if row.code_challenge is not None:
        if verifier is None:
            raise InvalidRequestError("code_verifier is required (PKCE)")
        if not pkce.verify(verifier, row.code_challenge):
            raise InvalidGrantError("code_verifier does not match the code_challenge")
    elif verifier is not None:
        # RFC 9700 §2.1.1: a verifier without a challenge is a downgrade attempt.
        raise InvalidGrantError(
            "code_verifier sent but the authorization request had no code_challenge"
        )


async def revoke_code_tokens(session: AsyncSession, clock: Clock, row: AuthorizationCode) -> None:
    if row.access_token_jti and row.access_token_expires_at:
        await revoke_access_token(
            session, clock, row.access_token_jti, row.access_token_expires_at, "code_replay"
        )
    if row.refresh_token_family:
        await revoke_family(session, clock, row.refresh_token_family, "code_replay")

"""A user's consents, as an operator sees and revokes them (`users consents`,
`users revoke-consent`). Revoking a consent also revokes the refresh tokens that
application holds for the user (and the access tokens issued with them): the next
authorization asks again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.clock import Clock
from onepass.oauth.models import Consent, RefreshToken
from onepass.oauth.revocation import revoke_family
from onepass.refusals import NotFound


class NoConsent(NotFound):
    pass


@dataclass(frozen=True)
class ConsentView:
    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: datetime | None  # None: no consent row (a first-party application)
    refresh_tokens: int  # live refresh tokens the application holds for the user
    # The application needs two steps at every sign-in (``require_second_factor``).
    requires_second_factor: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "client_name": self.client_name,
            "scopes": self.scopes,
            "granted_at": self.granted_at,
            "refresh_tokens": self.refresh_tokens,
        }


async def list_consents(session: AsyncSession, clock: Clock, user_id: int) -> list[ConsentView]:
    """Every application the user consented to, or that holds a live refresh token for
    the user (first-party applications ask no consent), by client_id."""
    consents = {
        app_id: consent
        for consent, app_id in (
            await session.execute(
                select(Consent, Consent.oauth_application_id).where(Consent.user_id == user_id)
            )
        ).all()
    }
    live = dict(
        (
            await session.execute(
                select(RefreshToken.oauth_application_id, func.count())
                .where(
                    RefreshToken.user_id == user_id,
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.rotated_at.is_(None),
                    RefreshToken.expires_at > clock.now(),
                )
                .group_by(RefreshToken.oauth_application_id)
            )
        ).all()
    )
    app_ids = set(consents) | set(live)
    if not app_ids:
        return []
    apps = await session.scalars(select(OAuthApplication).where(OAuthApplication.id.in_(app_ids)))
    views = []
    for app in apps:
        consent = consents.get(app.id)
        views.append(
            ConsentView(
                app.client_id,
                app.client_name,
                list(consent.scopes) if consent is not None else [],
                consent.granted_at if consent is not None else None,
                int(live.get(app.id, 0)),
                app.require_second_factor and app.disabled_at is None,
            )
        )
    return sorted(views, key=lambda v: v.client_id)


async def revoke_consent(
    session: AsyncSession, clock: Clock, user_id: int, app: OAuthApplication
) -> tuple[bool, int]:
    """Forget the user's consent to ``app`` and revoke the refresh tokens ``app`` holds
    for the user; returns (a consent was removed, refresh tokens revoked). Refuses
    (``NoConsent``) when there was neither."""
    removed = await session.execute(
        delete(Consent)
        .where(Consent.user_id == user_id, Consent.oauth_application_id == app.id)
        .returning(Consent.id)
    )
    had_consent = removed.first() is not None
    families = set(
        await session.scalars(
            select(RefreshToken.family_id).where(
                RefreshToken.user_id == user_id,
                RefreshToken.oauth_application_id == app.id,
                RefreshToken.revoked_at.is_(None),
            )
        )
    )
    revoked = sum([await revoke_family(session, clock, f, "consent_revoked") for f in families])
    if not had_consent and not revoked:
        raise NoConsent(f"user {user_id} has no consent or token for {app.client_id!r}")
    return had_consent, revoked


async def forget_user(session: AsyncSession, user_id: int) -> int:
    """Delete every consent of a user (``users delete``); returns how many."""
    removed = await session.execute(
        delete(Consent).where(Consent.user_id == user_id).returning(Consent.id)
    )
    return len(removed.all())

"""The playbook's rule "backfill every RP before flipping ENFORCE_CANONICAL_RESOLUTION",
as a check (``onepass identity enforce-check``) and a start-up guard."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import String, and_, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clients.models import OAuthApplication
from onepass.identity.models import IdentityLink
from onepass.webhooks.events import EventType
from onepass.webhooks.models import WebhookOutboxEntry
from onepass.webhooks.outbox import subscribed
from onepass.webhooks.outbox_queries import Status, condition, tally


@dataclass(frozen=True)
class ApplicationLinkState:
    oauth_application_id: int
    client_id: str
    client_name: str
    links: int
    delivered: int
    never_enqueued: int
    pending: int
    dead: int

    @property
    def missing(self) -> int:
        """Links this RP does not hold yet: never enqueued, still pending, or dead."""
        return self.never_enqueued + self.pending + self.dead

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "missing": self.missing}


def link_key_expression(application_id: int) -> Any:
    """SQL for the idempotency key the merge service gives a (link, application) pair."""
    return (
        literal(f"{EventType.IDENTITY_LINK_CREATED.value}:")
        + cast(IdentityLink.id, String)
        + literal(f":{application_id}")
    )


async def subscribed_applications(session: AsyncSession) -> list[OAuthApplication]:
    apps = await session.scalars(
        select(OAuthApplication)
        .where(OAuthApplication.webhook_url.is_not(None))
        .order_by(OAuthApplication.id)
    )
    return [a for a in apps if subscribed(a, EventType.IDENTITY_LINK_CREATED)]


async def link_delivery_state(session: AsyncSession) -> list[ApplicationLinkState]:
    """For every RP subscribed to ``identity.link.created``: which links it holds."""
    states = []
    entry = WebhookOutboxEntry
    for app in await subscribed_applications(session):
        joined = and_(
            entry.oauth_application_id == app.id,
            entry.idempotency_key == link_key_expression(app.id),
        )
        row = (
            await session.execute(
                select(
                    func.count(IdentityLink.id),
                    tally(condition(Status.DELIVERED, entry)),
                    tally(entry.id.is_(None)),
                    # Outer-joined: a link never enqueued has an all-NULL entry, which
                    # the pending condition alone would count.
                    tally(and_(entry.id.is_not(None), condition(Status.PENDING, entry))),
                    tally(condition(Status.DEAD, entry)),
                )
                .select_from(IdentityLink)
                .outerjoin(entry, joined)
            )
        ).one()
        links, delivered, never, pending, dead = (int(v or 0) for v in row)
        states.append(
            ApplicationLinkState(
                app.id, app.client_id, app.client_name, links, delivered, never, pending, dead
            )
        )
    return states


class EnforcementNotSafe(Exception):
    pass


async def guard_enforcement(session: AsyncSession, *, force: bool) -> list[ApplicationLinkState]:
    """Raise ``EnforcementNotSafe`` if some RP lacks links (unless ``force``)."""
    lacking = [s for s in await link_delivery_state(session) if s.missing]
    if lacking and not force:
        names = ", ".join(
            f"{s.client_name} ({s.client_id}): {s.missing} missing" for s in lacking[:5]
        )
        raise EnforcementNotSafe(
            "ENFORCE_CANONICAL_RESOLUTION is on but some RPs have not received every identity "
            f"link ({names}). Run `onepass webhooks backfill-links --all`, wait for delivery "
            "(`onepass identity enforce-check`), or set ONEPASS_FORCE_CANONICAL_ENFORCEMENT=1 "
            "to start anyway."
        )
    return lacking

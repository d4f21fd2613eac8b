"""Operators' invitations (``ONEPASS_SIGNUP=invite``, ``onepass users invite``): a
single-use link mailed to an address, where the person chooses a name and a password
(``selfservice.signup`` creates the account). Here, below the playbook, so that the
playbook's procedure can make one in its own transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import links
from onepass.accounts import service as accounts
from onepass.accounts.links import LinkKind
from onepass.accounts.models import AccountToken, User
from onepass.mail import outbox
from onepass.runtime import Runtime


def invite_link(runtime: Runtime, token: str) -> str:
    return f"{runtime.settings.issuer}/signup?invite={token}"


def confirm_link(runtime: Runtime, token: str) -> str:
    """The link that confirms an open sign-up's address."""
    return f"{runtime.settings.issuer}/signup/confirm?token={token}"


async def invite(
    session: AsyncSession, runtime: Runtime, email: str, *, language: str, invited_by: str
) -> tuple[str, AccountToken]:
    """An invitation to ``email``, mailed in ``session``'s transaction: its link and its
    row. ``InvalidAccount`` for what is not an address, ``EmailInUse`` when the address
    has an account."""
    email = accounts.check_email(email)
    address = accounts.normalize_email(email)
    if await session.scalar(select(User.id).where(User.email_normalized == address)):
        raise accounts.EmailInUse(f"a user with the email {email!r} already exists")
    ttl = runtime.settings.invite_ttl
    issued = await links.issue(
        session,
        runtime.hasher,
        runtime.clock,
        LinkKind.INVITE,
        ttl,
        email=email,
        details={"invited_by": invited_by},
    )
    link = invite_link(runtime, issued.token)
    mail = outbox.compose("invite", email, language, {"link": link, "days": max(1, ttl // 86400)})
    await outbox.enqueue(session, runtime.box, runtime.clock, mail, user_id=None)
    return link, issued.row

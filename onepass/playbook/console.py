"""The playbook's console chapter: an administrator's console sessions are audited like
every procedure (``console.login``, ``console.logout``, refused sign-ins). The sign-in
itself is ``accounts.signin``'s, through the console's door (``admin.console_service``);
these functions write its audit rows, so the playbook stays their only writer."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clock import Clock
from onepass.db import Database
from onepass.operators import audit
from onepass.operators.audit import Actor

LOGIN = "console.login"
LOGOUT = "console.logout"


def record_sign_in(session: AsyncSession, clock: Clock, actor: Actor, email: str) -> None:
    """In the transaction that creates the console session."""
    audit.add(session, clock, actor, LOGIN, email)


async def record_refused_sign_in(
    database: Database, clock: Clock, actor: Actor, email: str, reason: str
) -> None:
    """In a transaction of its own: the sign-in's own was rolled back."""
    await audit.record(database, clock, actor, LOGIN, email, audit.DENIED, message=reason)


def record_sign_out(session: AsyncSession, clock: Clock, actor: Actor, email: str) -> None:
    """In the transaction that ends the console session."""
    audit.add(session, clock, actor, LOGOUT, email)

"""Secrets of the installation kept in the database, sealed with ONEPASS_SECRET_KEY.

One so far: the key that client secrets, tokens and other high-entropy secrets are
hashed under (``crypto.KeyedHasher``). It is derived from ONEPASS_SECRET_KEY until the
first ``onepass secrets rotate``, which stores it here, sealed under the new key, so
that every stored hash keeps verifying after the old key is gone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from onepass.crypto import KeyedHasher, SecretBox
from onepass.db.base import Base
from onepass.db.types import UTCDateTime

HASH_PEPPER = "hash-pepper"


def context(name: str) -> str:
    return f"installation:{name}"


class InstallationSecret(Base):
    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


async def load_pepper(session: AsyncSession, box: SecretBox) -> bytes | None:
    """The stored hashing key, or None before the first rotation."""
    sealed = await session.scalar(
        select(InstallationSecret.sealed).where(InstallationSecret.name == HASH_PEPPER)
    )
    return None if sealed is None else box.decrypt(sealed, context(HASH_PEPPER))


async def apply(session: AsyncSession, box: SecretBox, hasher: KeyedHasher) -> bool:
    """Point ``hasher`` at the stored hashing key if there is one; True if there was."""
    pepper = await load_pepper(session, box)
    if pepper is not None:
        hasher.use(pepper)
    return pepper is not None

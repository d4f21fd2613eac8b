"""What one process holds in every command and request: settings, database, cache, clock.

Built in the application's lifespan (``Services.runtime``, ``onepass.services``) and
by CLI commands.
"""

from __future__ import annotations

from dataclasses import dataclass

from onepass.cache import Cache, create_cache
from onepass.clock import Clock, SystemClock
from onepass.crypto import DecryptionError, KeyedHasher, SecretBox
from onepass.db import Database, installation
from onepass.db.direct import DirectStore
from onepass.settings import Settings


@dataclass
class Runtime:
    settings: Settings
    database: Database
    cache: Cache
    box: SecretBox
    hasher: KeyedHasher
    clock: Clock

    @classmethod
    def build(cls, settings: Settings, clock: Clock | None = None) -> Runtime:
        settings = settings.with_secret_key()
        assert settings.secret_key is not None
        clock = clock or SystemClock()
        return cls(
            settings=settings,
            database=Database(settings.database_url),
            cache=create_cache(settings.redis_url, clock),
            box=SecretBox(settings.secret_key, settings.secret_key_fallback_list),
            hasher=KeyedHasher(settings.secret_key),
            clock=clock,
        )

    @property
    def direct(self) -> DirectStore:
        """The hot paths' statements, straight to the driver (``onepass.db.direct``)."""
        return self.database.direct

    async def load_installation_secrets(self) -> None:
        """Hash under the installation's stored hashing key, once ONEPASS_SECRET_KEY has
        been rotated (``onepass.db.installation``). A database without the table (not
        migrated yet) has none; a stored key that does not decrypt raises
        ``DecryptionError``."""
        try:
            async with self.database.session(readonly=True) as session:
                await installation.apply(session, self.box, self.hasher)
        except DecryptionError:
            raise
        except Exception as exc:
            if "installation_secrets" in str(exc):
                return  # the schema predates it: nothing was rotated
            raise

    async def close(self) -> None:
        await self.cache.close()
        await self.database.close()

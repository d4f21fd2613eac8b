"""Test data, made through the same services the product uses."""

from __future__ import annotations

from dataclasses import dataclass

from onepass.oauth import clients
from onepass.runtime import Runtime


@dataclass
class Client:
    id: int
    client_id: str
    client_secret: str | None


async def make_client(runtime: Runtime, **options: object) -> Client:
    options.setdefault("name", "test app")
    options.setdefault("grant_types", ["client_credentials"])
    options.setdefault("scope", "api:read api:write")
    async with runtime.database.session() as session:
        new = await clients.create_client(session, runtime.hasher, runtime.clock, **options)  # type: ignore[arg-type]
        return Client(new.application.id, new.application.client_id, new.client_secret)

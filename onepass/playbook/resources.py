"""The playbook's resource servers chapter (RFC 8707): register, change and delete a
resource server. Each change and its audit row commit in one transaction; every
process sees it within the resource cache's TTL (``ONEPASS_CLIENT_CACHE_TTL``), as a
client's change. The rules are ``onepass.clients.resources``'s."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from onepass.clients import resources
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.playbook.actions import CREATE_RESOURCE, DELETE_RESOURCE, UPDATE_RESOURCE
from onepass.runtime import Runtime


async def create(
    runtime: Runtime,
    actor: Actor,
    *,
    identifier: str,
    scopes: Iterable[str],
    name: str | None = None,
    access_token_ttl: int | None = None,
    signing_alg: str | None = None,
) -> dict[str, Any]:
    """Register a resource server; its tokens' lifetime and algorithm default to the
    access tokens' (``ONEPASS_ACCESS_TOKEN_TTL``, ``ONEPASS_ACCESS_TOKEN_ALG``)."""
    settings = runtime.settings
    async with runtime.database.session() as session:
        resource = await resources.create_resource(
            session,
            runtime.clock,
            identifier=identifier,
            scopes=scopes,
            name=name,
            access_token_ttl=access_token_ttl or settings.access_token_ttl,
            signing_alg=signing_alg or settings.access_token_alg,
            signing_algs=settings.signing_algorithms,
        )
        audit.add(
            session,
            runtime.clock,
            actor,
            CREATE_RESOURCE,
            resource.identifier[:300],
            detail={"scopes": resource.scopes},
        )
        return resources.describe_resource(resource)


async def update(
    runtime: Runtime,
    actor: Actor,
    ref: str,
    *,
    name: str | None = None,
    scopes: Iterable[str] | None = None,
    access_token_ttl: int | None = None,
    signing_alg: str | None = None,
) -> dict[str, Any]:
    """Change a resource server (not its identifier), audited with what changed; tokens
    already issued keep their claims until they expire."""
    async with runtime.database.session() as session:
        resource = await resources.find_resource(session, ref)
        changed = await resources.update_resource(
            session,
            runtime.clock,
            resource,
            name=name,
            scopes=scopes,
            access_token_ttl=access_token_ttl,
            signing_alg=signing_alg,
            signing_algs=runtime.settings.signing_algorithms,
        )
        audit.add(
            session,
            runtime.clock,
            actor,
            UPDATE_RESOURCE,
            resource.identifier[:300],
            detail={"changed": changed},
        )
        return resources.describe_resource(resource)


async def delete(runtime: Runtime, actor: Actor, ref: str) -> dict[str, Any]:
    """Delete a resource server and take it out of every client's allowed resources and
    exchange policy: no new token names it (tokens already issued run to their ``exp``)."""
    async with runtime.database.session() as session:
        resource = await resources.find_resource(session, ref)
        result: dict[str, Any] = {"identifier": resource.identifier, "deleted": True}
        result["clients"] = await resources.delete_resource(session, runtime.clock, resource)
        audit.add(
            session,
            runtime.clock,
            actor,
            DELETE_RESOURCE,
            result["identifier"][:300],
            detail={"clients": result["clients"]},
        )
        return result

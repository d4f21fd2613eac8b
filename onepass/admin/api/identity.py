"""``/api/v1/admin``: merge users; drop cached canonical-user resolutions."""

from __future__ import annotations

from typing import Annotated

from fastapi import Request, Response
from pydantic import Field

from onepass.admin.api.base import (
    Body,
    Caller,
    RequiredText,
    Text,
    acting,
    body_of,
    change,
    router,
)
from onepass.admin.errors import AdminError
from onepass.identity.canonical import RESOLVER, CanonicalResolver
from onepass.playbook import actions, cache, merges

# -- identity -------------------------------------------------------------------------


class MergeBody(Body):
    source: RequiredText
    target: RequiredText
    reason: Text = None
    action_request_nonce: Text = None


class InvalidateCanonicalBody(Body):
    user: Text = None
    every: bool = Field(False, alias="all")
    action_request_nonce: Text = None


@router.post(
    "/users/merge",
    name="merge_users",
    openapi_extra=MergeBody.openapi(),
)
async def post_users_merge(
    request: Request, who: Annotated[Caller, acting(actions.MERGE_USERS)]
) -> Response:
    """Merge ``source`` into ``target`` (step-up, target ``SOURCE->TARGET``)."""
    body = await body_of(request, MergeBody)
    source, into, reason = body.source, body.target, body.reason
    resolver: CanonicalResolver = RESOLVER.of(request)
    return await change(
        who,
        actions.MERGE_USERS,
        f"{source}->{into}",
        body.action_request_nonce,
        lambda who: merges.merge_by_reference(
            who.runtime, resolver, who.actor, source, into, reason=reason
        ),
    )


@router.post(
    "/cache/invalidate_canonical",
    name="invalidate_canonical",
    openapi_extra=InvalidateCanonicalBody.openapi(),
)
async def post_invalidate_canonical(
    request: Request, who: Annotated[Caller, acting(actions.INVALIDATE_CANONICAL)]
) -> Response:
    """Drop cached canonical-user resolutions: ``{"user": …}`` or ``{"all": true}`` (step-up,
    target the user or ``*``)."""
    body = await body_of(request, InvalidateCanonicalBody)
    user, every = body.user, body.every
    if (user is None) == (not every):
        raise AdminError("invalid_request", 'give exactly one of "user" or "all": true')
    resolver: CanonicalResolver = RESOLVER.of(request)
    return await change(
        who,
        actions.INVALIDATE_CANONICAL,
        "*" if every else (user or ""),
        body.action_request_nonce,
        lambda who: cache.invalidate_canonical(
            who.runtime, resolver, who.actor, None if every else user
        ),
    )

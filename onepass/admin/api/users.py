"""``/api/v1/admin/users``: search users, a user's detail (canonical user, identity
links, live sessions, consents), and the playbook's users chapter: update, disable,
enable, delete, set a password, end sessions, revoke a consent (each a step-up action
on the user, ``users:write``). Reads need ``users:read``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Query, Request, Response
from pydantic import BaseModel, Field

from onepass.accounts import service as accounts
from onepass.admin.api.base import (
    Body,
    Caller,
    ChangeBody,
    RequiredText,
    Text,
    _json,
    acting,
    answered,
    body_of,
    change,
    router,
    scoped,
)
from onepass.admin.errors import AdminError
from onepass.playbook import actions, users

UsersReader = Annotated[Caller, Depends(scoped("users:read"))]

# -- response models (what /openapi.json documents) ------------------------------------


class UserOut(BaseModel):
    id: int
    sub: str
    email: str
    email_verified: bool
    name: str | None
    created_at: datetime
    updated_at: datetime
    disabled_at: datetime | None
    disabled: bool
    deleted: bool
    deleted_at: datetime | None


class UserList(BaseModel):
    users: list[UserOut]


class LinkOut(BaseModel):
    link_id: int
    source_id: int
    source_sub: str | None
    target_id: int
    target_sub: str | None
    created_at: datetime
    actor: str
    reason: str | None


class SessionOut(BaseModel):
    id: int
    sid: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    acr: str
    ip_address: str | None
    user_agent: str | None


class ConsentOut(BaseModel):
    client_id: str
    client_name: str
    scopes: list[str]
    granted_at: datetime | None
    refresh_tokens: int


class UserDetail(UserOut):
    canonical_id: int
    canonical_sub: str | None
    is_admin: bool
    links: list[LinkOut]
    sessions: list[SessionOut]
    consents: list[ConsentOut]


class UserChanged(BaseModel):
    id: int
    sub: str
    changed: bool | list[str] | None = None
    disabled: bool | None = None
    deleted: bool | None = None
    sessions_ended: int | None = None
    refresh_tokens_revoked: int | None = None
    consents_deleted: int | None = None
    webhooks_enqueued: int | None = None
    logouts_enqueued: int | None = Field(
        None, description="back-channel logouts enqueued for the RPs of the ended sessions"
    )


class ConsentRevoked(BaseModel):
    id: int
    sub: str
    client_id: str
    consent_removed: bool
    refresh_tokens_revoked: int


# -- request bodies -----------------------------------------------------------------


class RevokeSessionsBody(ChangeBody):
    session: Text = Field(None, description="only this live session: its id or sid")


class UpdateBody(Body):
    email: Text = None
    name: Text = None
    email_verified: bool | None = None
    action_request_nonce: Text = None


class PasswordBody(Body):
    password: RequiredText
    action_request_nonce: Text = None


# -- reads ----------------------------------------------------------------------------


@router.get("/users", responses={200: {"model": UserList}})
async def list_users(
    who: UsersReader,
    q: str = Query("", max_length=320, description="An id, a sub, or part of an email."),
    limit: int = Query(100, ge=1, le=1000),
) -> Response:
    """Users whose id or sub is ``q`` or whose email contains it (every user, the first
    ``limit``, without ``q``)."""
    async with who.runtime.database.session(readonly=True) as session:
        found = await accounts.search_users(session, q, limit=limit)
    return _json({"users": [users.describe(u) for u in found]})


@router.get("/users/{user}", responses={200: {"model": UserDetail}})
async def user_detail(who: UsersReader, user: str) -> Response:
    """One user (by id, sub or email): canonical user, identity links, live sessions,
    consents."""
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            return _json(await users.show(session, who.runtime.clock, user))


# -- changes (step-up) ----------------------------------------------------------------


@router.post(
    "/users/{user}/update",
    name="update_user",
    openapi_extra=UpdateBody.openapi(),
    responses={200: {"model": UserChanged}},
)
async def post_update(
    request: Request, who: Annotated[Caller, acting(actions.UPDATE_USER)], user: str
) -> Response:
    """Change ``email``, ``name`` or ``email_verified`` (step-up ``users.update``); RPs
    get ``user.updated``."""
    body = await body_of(request, UpdateBody)
    if body.email is None and body.name is None and body.email_verified is None:
        raise AdminError(
            "invalid_request", 'give at least one of "email", "name", "email_verified"'
        )
    return await change(
        who,
        actions.UPDATE_USER,
        user,
        body.action_request_nonce,
        lambda who: users.update_user(
            who.runtime,
            who.actor,
            user,
            email=body.email,
            name=body.name,
            email_verified=body.email_verified,
        ),
    )


async def _simple(request: Request, who: Caller, action: str, user: str) -> Response:
    body = await body_of(request, ChangeBody)
    do = {
        actions.DISABLE_USER: users.disable_user,
        actions.ENABLE_USER: users.enable_user,
        actions.DELETE_USER: users.delete_user,
    }[action]
    return await change(
        who, action, user, body.action_request_nonce, lambda who: do(who.runtime, who.actor, user)
    )


@router.post(
    "/users/{user}/disable",
    name="disable_user",
    openapi_extra=ChangeBody.openapi(),
    responses={200: {"model": UserChanged}},
)
async def post_disable(
    request: Request, who: Annotated[Caller, acting(actions.DISABLE_USER)], user: str
) -> Response:
    """No more sign-in; sessions end, tokens revoked (step-up ``users.disable``)."""
    return await _simple(request, who, actions.DISABLE_USER, user)


@router.post(
    "/users/{user}/enable",
    name="enable_user",
    openapi_extra=ChangeBody.openapi(),
    responses={200: {"model": UserChanged}},
)
async def post_enable(
    request: Request, who: Annotated[Caller, acting(actions.ENABLE_USER)], user: str
) -> Response:
    """Enable a disabled user again (step-up ``users.enable``)."""
    return await _simple(request, who, actions.ENABLE_USER, user)


@router.post(
    "/users/{user}/delete",
    name="delete_user",
    openapi_extra=ChangeBody.openapi(),
    responses={200: {"model": UserChanged}},
)
async def post_delete(
    request: Request, who: Annotated[Caller, acting(actions.DELETE_USER)], user: str
) -> Response:
    """Erase the user's personal data, keep an anonymised row, revoke everything
    (step-up ``users.delete``, its target the user); RPs get ``user.deleted``."""
    return await _simple(request, who, actions.DELETE_USER, user)


@router.post(
    "/users/{user}/revoke_sessions",
    name="revoke_sessions",
    openapi_extra=RevokeSessionsBody.openapi(),
    responses={200: {"model": UserChanged}},
)
async def post_revoke_sessions(
    request: Request, who: Annotated[Caller, acting(actions.REVOKE_SESSIONS)], user: str
) -> Response:
    """End every login session of the user, or the one ``session`` names (its id or
    sid), step-up ``users.revoke_sessions``; the RPs that had them get a back-channel
    logout."""
    body = await body_of(request, RevokeSessionsBody)
    return await change(
        who,
        actions.REVOKE_SESSIONS,
        user,
        body.action_request_nonce,
        lambda who: users.revoke_sessions(who.runtime, who.actor, user, session_ref=body.session),
    )


@router.post(
    "/users/{user}/set_password",
    name="set_password",
    openapi_extra=PasswordBody.openapi(),
    responses={200: {"model": UserChanged}},
)
async def post_set_password(
    request: Request, who: Annotated[Caller, acting(actions.SET_PASSWORD)], user: str
) -> Response:
    """A new password (step-up ``users.set_password``); the user's sessions end."""
    body = await body_of(request, PasswordBody)
    return await change(
        who,
        actions.SET_PASSWORD,
        user,
        body.action_request_nonce,
        lambda who: users.set_password(who.runtime, who.actor, user, body.password),
    )


@router.post(
    "/users/{user}/consents/{client_id}/revoke",
    name="revoke_consent",
    openapi_extra=ChangeBody.openapi(),
    responses={200: {"model": ConsentRevoked}},
)
async def post_revoke_consent(
    request: Request,
    who: Annotated[Caller, acting(actions.REVOKE_CONSENT)],
    user: str,
    client_id: str,
) -> Response:
    """Forget the consent and revoke the application's refresh tokens for the user
    (step-up ``users.revoke_consent``, target ``USER/CLIENT_ID``)."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.REVOKE_CONSENT,
        f"{user}/{client_id}",
        body.action_request_nonce,
        lambda who: users.revoke_consent(who.runtime, who.actor, user, client_id),
    )

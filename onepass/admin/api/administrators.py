"""``/api/v1/admin/administrators``: list them (``admins:read``); disable, enable, reset
the second factor (step-up actions on the administrator's email, ``admins:write``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request, Response
from pydantic import BaseModel

from onepass.admin.api.base import (
    Caller,
    ChangeBody,
    _json,
    acting,
    body_of,
    change,
    router,
    scoped,
)
from onepass.operators import service
from onepass.playbook import actions, admins

AdminsReader = Annotated[Caller, Depends(scoped("admins:read"))]


class AdministratorOut(BaseModel):
    id: int
    email: str
    totp_enrolled: bool
    disabled: bool
    disabled_at: datetime | None
    created_at: datetime


class AdministratorList(BaseModel):
    administrators: list[AdministratorOut]


class AdministratorChanged(AdministratorOut):
    changed: bool | None = None
    sessions_ended: int | None = None
    nonces_voided: int | None = None
    tokens_revoked: int | None = None


@router.get("/administrators", responses={200: {"model": AdministratorList}})
async def list_administrators(who: AdminsReader) -> Response:
    """Every administrator, whether their second factor is enrolled, whether disabled."""
    async with who.runtime.database.session(readonly=True) as session:
        found = await service.list_admins(session)
    return _json({"administrators": [admins.describe_admin(u) for u in found]})


@router.post(
    "/administrators/{email}/disable",
    name="disable_admin",
    openapi_extra=ChangeBody.openapi(),
    responses={200: {"model": AdministratorChanged}},
)
async def post_disable(
    request: Request, who: Annotated[Caller, acting(actions.DISABLE_ADMIN)], email: str
) -> Response:
    """Console sessions end; admin tokens and unspent nonces are void (step-up
    ``admins.disable``). An administrator cannot disable their own account."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.DISABLE_ADMIN,
        email,
        body.action_request_nonce,
        lambda who: admins.set_disabled(who.runtime, who.actor, email=email, disabled=True),
    )


@router.post(
    "/administrators/{email}/enable",
    name="enable_admin",
    openapi_extra=ChangeBody.openapi(),
    responses={200: {"model": AdministratorChanged}},
)
async def post_enable(
    request: Request, who: Annotated[Caller, acting(actions.ENABLE_ADMIN)], email: str
) -> Response:
    """Enable a disabled administrator again (step-up ``admins.enable``); they need new
    admin tokens."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.ENABLE_ADMIN,
        email,
        body.action_request_nonce,
        lambda who: admins.set_disabled(who.runtime, who.actor, email=email, disabled=False),
    )


@router.post(
    "/administrators/{email}/reset_totp",
    name="reset_totp",
    openapi_extra=ChangeBody.openapi(),
    responses={200: {"model": AdministratorChanged}},
)
async def post_reset_totp(
    request: Request, who: Annotated[Caller, acting(actions.RESET_TOTP)], email: str
) -> Response:
    """Remove the administrator's second factor (step-up ``admins.reset_totp``): their
    nonces are void and console sessions end until `onepass admin enroll-totp`."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.RESET_TOTP,
        email,
        body.action_request_nonce,
        lambda who: admins.reset_totp(who.runtime, who.actor, email=email),
    )

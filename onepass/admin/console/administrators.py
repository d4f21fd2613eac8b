"""The console's administrators: the list, an administrator's page, and the changes
`onepass admin …` makes: disable, enable, reset their TOTP second factor. Each change
is ``act``: a fresh TOTP code, then the playbook function."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from onepass.admin.console.web import (
    SignedIn,
    act,
    done_notice,
    gettext_of,
    guarded,
    language_of,
    printable,
    problem_page,
    read_form,
    redirect_to,
    render_page,
    router,
    when_text,
)
from onepass.admin.console_service import ConsoleSession
from onepass.i18n import N_
from onepass.operators import service
from onepass.playbook import actions
from onepass.playbook import admins as playbook
from onepass.refusals import NotFound
from onepass.services import runtime_of

MAX_EMAIL = 320
NOTICES = {
    "disabled": N_(
        "The administrator is disabled: their console sessions ended, their admin tokens "
        "are revoked."
    ),
    "enabled": N_("The administrator is enabled; they need new admin tokens."),
    "totp": N_(
        "The administrator's second factor was removed: `onepass admin enroll-totp` gives "
        "them a new one."
    ),
}


def admin_path(email: str) -> str:
    return "/admin/administrators/" + quote(email, safe="@")


@router.get("/administrators")
@guarded
async def administrators(request: Request, console: SignedIn) -> Response:
    language = language_of(request)
    runtime = runtime_of(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        found = await service.list_admins(session)
    rows = [
        {
            **playbook.describe_admin(a),
            "path": admin_path(a.email_normalized),
            "created": when_text(a.created_at, now),
            "you": a.id == console.user.id,
        }
        for a in found
    ]
    return render_page(
        request,
        "admin/administrators.html",
        {"nav": "administrators", "rows": rows},
        console=console,
        language=language,
    )


def _not_found(request: Request, console: ConsoleSession, ref: str, language: str) -> Response:
    _ = gettext_of(language)
    return problem_page(
        request,
        _("No such administrator"),
        _("No administrator with the email %(ref)s.") % {"ref": repr(ref[:80])},
        404,
        console,
        language,
    )


def _usable(email: str) -> bool:
    return bool(email) and len(email) <= MAX_EMAIL and printable(email)


async def _admin_page(
    request: Request,
    console: ConsoleSession,
    email: str,
    *,
    language: str,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    if not _usable(email):
        return _not_found(request, console, email, language)
    async with runtime.database.session(readonly=True) as session:
        try:
            found = await service.find_admin(session, email)
        except NotFound:
            return _not_found(request, console, email, language)
    data = playbook.describe_admin(found)
    return render_page(
        request,
        "admin/administrator.html",
        {
            "nav": "administrators",
            "admin": data,
            "path": admin_path(found.email_normalized),
            "created": when_text(data["created_at"], now),
            "disabled_at": when_text(data["disabled_at"], now) if data["disabled_at"] else None,
            "you": found.id == console.user.id,
            "error": error,
            "notice": notice,
        },
        status,
        console=console,
        language=language,
        headers=headers,
    )


@router.get("/administrators/{email}")
@guarded
async def administrator(request: Request, console: SignedIn, email: str) -> Response:
    language = language_of(request)
    notice = done_notice(request, language, NOTICES)
    return await _admin_page(request, console, email, language=language, notice=notice)


async def _change(
    request: Request, console: ConsoleSession, email: str, action: str, done_key: str, do: Any
) -> Response:
    language = language_of(request)
    form = await read_form(request)
    if not _usable(email):
        return _not_found(request, console, email, language)
    async with runtime_of(request).database.session(readonly=True) as session:
        try:
            found = await service.find_admin(session, email)  # before a code is spent
        except NotFound:
            return _not_found(request, console, email, language)
    done = await act(
        request,
        console,
        form,
        action,
        found.email_normalized,
        language=language,
        show=functools.partial(_admin_page, request, console, email, language=language),
        do=do,
    )
    if isinstance(done, Response):
        return done
    return redirect_to(admin_path(found.email_normalized) + "?done=" + done_key)


@router.post("/administrators/{email}/disable")
@guarded
async def disable(request: Request, console: SignedIn, email: str) -> Response:
    return await _change(
        request,
        console,
        email,
        actions.DISABLE_ADMIN,
        "disabled",
        lambda runtime, actor, target: playbook.set_disabled(
            runtime, actor, email=target, disabled=True
        ),
    )


@router.post("/administrators/{email}/enable")
@guarded
async def enable(request: Request, console: SignedIn, email: str) -> Response:
    return await _change(
        request,
        console,
        email,
        actions.ENABLE_ADMIN,
        "enabled",
        lambda runtime, actor, target: playbook.set_disabled(
            runtime, actor, email=target, disabled=False
        ),
    )


@router.post("/administrators/{email}/reset_totp")
@guarded
async def reset_totp(request: Request, console: SignedIn, email: str) -> Response:
    return await _change(
        request,
        console,
        email,
        actions.RESET_TOTP,
        "totp",
        lambda runtime, actor, target: playbook.reset_totp(runtime, actor, email=target),
    )

"""``/admin/passkeys``: the signed-in administrator's own passkeys, with which they
may confirm a change instead of typing a code (step-up). Adding or removing one is a
change like any other: a fresh TOTP code first (``act``); each is audited
(``admins.add_passkey``, ``admins.remove_passkey``). An administrator manages only
their own: a passkey is registered by the browser of the person it belongs to."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from onepass.accounts import passkeys
from onepass.admin.console.web import (
    SignedIn,
    act,
    done_notice,
    gettext_of,
    guarded,
    language_of,
    passkey_rp,
    read_form,
    redirect_to,
    render_page,
    router,
    when_text,
)
from onepass.admin.console_service import ConsoleSession
from onepass.i18n import N_
from onepass.playbook import actions
from onepass.playbook import admins as playbook
from onepass.services import runtime_of

PATH = "/admin/passkeys"
ADD_NEEDS_A_CODE = N_(
    "Adding a passkey is approved with a code from your authenticator app, not with "
    "another passkey. Nothing was changed."
)
NOTICES = {
    "added": N_("The passkey is added: confirm changes with it instead of a code."),
    "removed": N_("The passkey is removed."),
}


async def _page(
    request: Request,
    console: ConsoleSession,
    *,
    language: str,
    notice: str | None = None,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    rp = passkey_rp(request)
    registration = None
    if rp.usable and len(console.passkeys) < passkeys.MAX_PASSKEYS:
        registration = passkeys.registration(
            rp,
            runtime.box,
            console.user,
            console.passkeys,
            runtime.clock.timestamp(),
            verified=True,
        )
    keys = [
        {
            "id": key.id,
            "name": key.name,
            "added": when_text(key.created_at, now),
            "used": when_text(key.last_used_at, now) if key.last_used_at else None,
        }
        for key in console.passkeys
    ]
    return render_page(
        request,
        "admin/passkeys.html",
        {
            "nav": "passkeys",
            "keys": keys,
            "passkey": registration,
            "usable": rp.usable,
            "notice": notice,
            "error": error,
        },
        status,
        console=console,
        language=language,
        headers=headers,
    )


@router.get("/passkeys")
@guarded
async def passkeys_page(request: Request, console: SignedIn) -> Response:
    language = language_of(request)
    notice = done_notice(request, language, NOTICES)
    return await _page(request, console, language=language, notice=notice)


@router.post("/passkeys")
@guarded
async def add(request: Request, console: SignedIn) -> Response:
    """Register the passkey this browser just created, after a fresh TOTP code."""
    language = language_of(request)
    form = await read_form(request)
    answer = passkeys.Answer(
        (form or {}).get("passkey_state", ""), (form or {}).get("credential", "")
    )
    name = passkeys.clean_name((form or {}).get("name", ""), "Passkey")
    if form is not None and form.get("step_up_credential"):
        # Adding a key is approved by a code: one stolen key must not add another.
        return await _page(
            request,
            console,
            language=language,
            error=gettext_of(language)(ADD_NEEDS_A_CODE),
            status=400,
        )

    def do(runtime: Any, actor: Any, target: str) -> Any:
        return playbook.add_passkey(
            runtime, actor, email=target, rp=passkey_rp(request), answer=answer, name=name
        )

    done = await act(
        request,
        console,
        form,
        actions.ADD_ADMIN_PASSKEY,
        console.user.email_normalized,
        language=language,
        show=functools.partial(_page, request, console, language=language),
        do=do,
    )
    if isinstance(done, Response):
        return done
    return redirect_to(PATH + "?done=added")


@router.post("/passkeys/remove")
@guarded
async def remove(request: Request, console: SignedIn) -> Response:
    language = language_of(request)
    form = await read_form(request)
    raw = (form or {}).get("passkey_id", "")
    passkey_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else 0

    def do(runtime: Any, actor: Any, target: str) -> Any:
        return playbook.remove_passkey(runtime, actor, email=target, passkey_id=passkey_id)

    done = await act(
        request,
        console,
        form,
        actions.REMOVE_ADMIN_PASSKEY,
        console.user.email_normalized,
        language=language,
        show=functools.partial(_page, request, console, language=language),
        do=do,
    )
    if isinstance(done, Response):
        return done
    return redirect_to(PATH + "?done=removed")

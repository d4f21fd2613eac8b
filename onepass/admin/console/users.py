"""The console's users: a search by email, sub or id, a user's page (canonical user,
identity links, sessions, consents, state), and the changes `onepass users …` makes:
disable, enable, end their sessions, set a new password, revoke a consent. Each change
is ``act``: a fresh TOTP code, then the playbook function."""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from onepass.accounts import service as accounts
from onepass.admin.console.web import (
    PAGE_SIZE,
    SignedIn,
    act,
    csrf_ok,
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
from onepass.playbook import actions
from onepass.playbook import users as playbook
from onepass.refusals import NotFound
from onepass.runtime import Runtime
from onepass.services import runtime_of

MAX_REF = 320
NOTICES = {
    "disabled": N_("The user is disabled: their sessions ended and their tokens are revoked."),
    "enabled": N_("The user is enabled."),
    "sessions": N_("The user's sessions ended."),
    "password": N_("The password was set and the user's sessions ended."),
    "consent": N_("The consent was revoked."),
}


def user_path(user_id: int) -> str:
    return f"/admin/users/{user_id}"


def _usable(ref: str) -> bool:
    return bool(ref) and len(ref) <= MAX_REF and printable(ref)


# -- search ---------------------------------------------------------------------------


@router.get("/users")
@guarded
async def users(request: Request, console: SignedIn) -> Response:
    language = language_of(request)
    _ = gettext_of(language)
    query = (request.query_params.get("q") or "").strip()
    context: dict[str, Any] = {"nav": "users", "q": query, "rows": []}
    if len(query) > MAX_REF or not printable(query):
        context.update(
            q="",
            error=_("Search by an email, a sub or an id (printable, at most 320 characters)."),
        )
        return render_page(
            request, "admin/users.html", context, 400, console=console, language=language
        )
    runtime = runtime_of(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        found = await accounts.search_users(session, query, limit=PAGE_SIZE)
    context["rows"] = [
        {
            "id": u.id,
            "path": user_path(u.id),
            "sub": u.sub,
            "email": u.email,
            "created": when_text(u.created_at, now),
            "disabled": u.disabled_at is not None,
            "deleted": u.deleted_at is not None,
        }
        for u in found
    ]
    return render_page(request, "admin/users.html", context, console=console, language=language)


# -- a user ---------------------------------------------------------------------------


def _not_found(request: Request, console: ConsoleSession, ref: str, language: str) -> Response:
    _ = gettext_of(language)
    return problem_page(
        request,
        _("No such user"),
        _("No user with id, sub or email %(ref)s.") % {"ref": repr(ref[:80])},
        404,
        console,
        language,
    )


async def _user_page(
    request: Request,
    console: ConsoleSession,
    user_ref: str,
    *,
    language: str,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    if not _usable(user_ref):
        return _not_found(request, console, user_ref, language)
    async with runtime.database.session(readonly=True) as session:
        try:
            user = await playbook.show(session, runtime.clock, user_ref)
        except NotFound:
            return _not_found(request, console, user_ref, language)
    return render_page(
        request,
        "admin/user.html",
        {
            "nav": "users",
            "user": user,
            "path": user_path(user["id"]),
            "created": when_text(user["created_at"], now),
            "disabled_at": when_text(user["disabled_at"], now) if user["disabled_at"] else None,
            "deleted_at": when_text(user["deleted_at"], now) if user["deleted_at"] else None,
            "sessions": [
                {
                    **s,
                    "created": when_text(s["created_at"], now),
                    "last_seen": when_text(s["last_seen_at"], now),
                    "expires": when_text(s["expires_at"], now),
                }
                for s in user["sessions"]
            ],
            "consents": [
                {
                    **c,
                    "granted": when_text(c["granted_at"], now) if c["granted_at"] else "—",
                    "client_path": "/admin/applications/" + quote(str(c["client_id"]), safe=""),
                }
                for c in user["consents"]
            ],
            "links": [
                {**link, "created": when_text(link["created_at"], now)} for link in user["links"]
            ],
            "error": error,
            "notice": notice,
        },
        status,
        console=console,
        language=language,
        headers=headers,
    )


@router.get("/users/{user}")
@guarded
async def user_detail(request: Request, console: SignedIn, user: str) -> Response:
    language = language_of(request)
    notice = done_notice(request, language, NOTICES)
    return await _user_page(request, console, user, language=language, notice=notice)


# -- changes --------------------------------------------------------------------------


async def _change(
    request: Request,
    console: ConsoleSession,
    user_ref: str,
    action: str,
    done_key: str,
    do: Any,
    *,
    target_of: Any = None,
    check: Any = None,
) -> Response:
    """The common path of a change to a user: the user exists (before a code is spent),
    the form is checked (``check(form)`` → an error or None), then ``act``."""
    language = language_of(request)
    form = await read_form(request)
    if not _usable(user_ref):
        return _not_found(request, console, user_ref, language)
    runtime = runtime_of(request)
    async with runtime.database.session(readonly=True) as session:
        try:
            found = await accounts.find_user(session, user_ref)
        except NotFound:
            return _not_found(request, console, user_ref, language)
    show = functools.partial(_user_page, request, console, user_ref, language=language)
    if check is not None and form is not None and csrf_ok(request, form):
        problem = check(form, gettext_of(language))
        if problem is not None:
            return await show(error=problem, status=400)
    target = str(found.id) if target_of is None else target_of(found.id, form or {})
    done = await act(
        request, console, form, action, target, language=language, show=show, do=do(form or {})
    )
    if isinstance(done, Response):
        return done
    return redirect_to(user_path(found.id) + "?done=" + done_key)


@router.post("/users/{user}/disable")
@guarded
async def disable(request: Request, console: SignedIn, user: str) -> Response:
    return await _change(
        request,
        console,
        user,
        actions.DISABLE_USER,
        "disabled",
        lambda form: playbook.disable_user,
    )


@router.post("/users/{user}/enable")
@guarded
async def enable(request: Request, console: SignedIn, user: str) -> Response:
    return await _change(
        request, console, user, actions.ENABLE_USER, "enabled", lambda form: playbook.enable_user
    )


@router.post("/users/{user}/revoke_sessions")
@guarded
async def revoke_sessions(request: Request, console: SignedIn, user: str) -> Response:
    return await _change(
        request,
        console,
        user,
        actions.REVOKE_SESSIONS,
        "sessions",
        lambda form: playbook.revoke_sessions,
    )


def _password_problem(form: dict[str, str], _: Any) -> str | None:
    password = form.get("password", "")
    if not password:
        return str(_("Enter the new password."))
    if password != form.get("password_again", ""):
        return str(_("The two passwords differ."))
    return None


@router.post("/users/{user}/set_password")
@guarded
async def set_password(request: Request, console: SignedIn, user: str) -> Response:
    def do(form: dict[str, str]) -> Any:
        async def run(runtime: Runtime, actor: Any, target: str) -> Any:
            return await playbook.set_password(runtime, actor, target, form.get("password", ""))

        return run

    return await _change(
        request, console, user, actions.SET_PASSWORD, "password", do, check=_password_problem
    )


def _consent_problem(form: dict[str, str], _: Any) -> str | None:
    client_id = form.get("client_id", "").strip()
    if not client_id or len(client_id) > 200 or not printable(client_id):
        return str(_("Choose the application whose consent to revoke."))
    return None


@router.post("/users/{user}/revoke_consent")
@guarded
async def revoke_consent(request: Request, console: SignedIn, user: str) -> Response:
    def do(form: dict[str, str]) -> Any:
        async def run(runtime: Runtime, actor: Any, target: str) -> Any:
            user_id, _, client_id = target.rpartition("/")
            return await playbook.revoke_consent(runtime, actor, user_id, client_id)

        return run

    return await _change(
        request,
        console,
        user,
        actions.REVOKE_CONSENT,
        "consent",
        do,
        target_of=lambda user_id, form: f"{user_id}/{form.get('client_id', '').strip()}",
        check=_consent_problem,
    )

"""The console's applications (RPs): a list with a search box, an application's page
(its registration, webhook status, state), its edit form, rotating its secret, and
disabling or enabling it. Each change is ``act``: a fresh TOTP code, then the
playbook function `onepass clients …` and the admin API call."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import Response

from onepass.admin import console_service
from onepass.admin.console.web import (
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
from onepass.clients import auth as client_auth
from onepass.clients import registry
from onepass.clients.registry import ClientChanges, ClientNotFound, describe_client, find_client
from onepass.durations import parse_duration
from onepass.i18n import N_
from onepass.playbook import actions
from onepass.playbook import clients as playbook
from onepass.services import runtime_of

MAX_FIELD = 4000  # a form field of the edit page (a list of URIs, one a line)
NOTICES = {
    "updated": N_("The application was changed."),
    "disabled": N_("The application is disabled."),
    "enabled": N_("The application is enabled."),
}


def app_path(client_id: str) -> str:
    return "/admin/applications/" + quote(client_id, safe="")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


# -- list -----------------------------------------------------------------------------


@router.get("/applications")
@guarded
async def applications(request: Request, console: SignedIn) -> Response:
    language = language_of(request)
    _ = gettext_of(language)
    query = (request.query_params.get("q") or "").strip()
    context: dict[str, Any] = {"nav": "applications", "q": query[:200], "rows": []}
    if len(query) > 200 or not printable(query):
        context["error"] = _("Search by a name or a client_id (printable, at most 200 characters).")
        context["q"] = ""
        return render_page(
            request, "admin/applications.html", context, 400, console=console, language=language
        )
    runtime = runtime_of(request)
    async with runtime.database.session(readonly=True) as session:
        apps = await registry.list_clients(session)
        dead = {
            d.oauth_application_id: d.dead_count
            for d in await console_service.dead_by_application(session)
        }
    needle = query.casefold()
    context["rows"] = [
        {
            "client_id": a.client_id,
            "path": app_path(a.client_id),
            "client_name": a.client_name,
            "grant_types": " ".join(a.grant_types),
            "disabled": a.disabled_at is not None,
            "dead": dead.get(a.id, 0),
            "registered_dynamically": a.registration_source is not None,
        }
        for a in apps
        if not needle or needle in a.client_id.casefold() or needle in a.client_name.casefold()
    ]
    return render_page(
        request, "admin/applications.html", context, console=console, language=language
    )


# -- an application -------------------------------------------------------------------


async def _found(request: Request, app_ref: str) -> Any:
    async with runtime_of(request).database.session(readonly=True) as session:
        if not printable(app_ref) or len(app_ref) > 200:
            raise ClientNotFound("not a client_id")
        return await find_client(session, app_ref)


def _not_found(request: Request, console: ConsoleSession, app_ref: str, language: str) -> Response:
    _ = gettext_of(language)
    return problem_page(
        request,
        _("No such application"),
        _("No application with client_id or id %(ref)s.") % {"ref": repr(app_ref[:80])},
        404,
        console,
        language,
    )


async def _app_page(
    request: Request,
    console: ConsoleSession,
    app_ref: str,
    *,
    language: str,
    error: str | None = None,
    notice: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now()
    async with runtime.database.session(readonly=True) as session:
        try:
            if not printable(app_ref) or len(app_ref) > 200:
                raise ClientNotFound("not a client_id")
            app = await find_client(session, app_ref)
        except ClientNotFound:
            return _not_found(request, console, app_ref, language)
        pending, dead = await console_service.webhook_counts(session, app.id)
    data = describe_client(app)
    return render_page(
        request,
        "admin/application.html",
        {
            "nav": "applications",
            "app": data,
            "path": app_path(app.client_id),
            "scopes": app.scope.split(),
            "pending": pending,
            "dead": dead,
            "has_secret": not app.is_public,
            "disabled_at": when_text(app.disabled_at, now) if app.disabled_at else None,
            "previous_secret_until": when_text(data["previous_secret_expires_at"], now)
            if data["previous_secret_expires_at"]
            else None,
            "error": error,
            "notice": notice,
        },
        status,
        console=console,
        language=language,
        headers=headers,
    )


@router.get("/applications/{app}")
@guarded
async def application(request: Request, console: SignedIn, app: str) -> Response:
    language = language_of(request)
    notice = done_notice(request, language, NOTICES)
    return await _app_page(request, console, app, language=language, notice=notice)


# -- edit -----------------------------------------------------------------------------


def _form_of(app: dict[str, Any]) -> dict[str, str]:
    """The edit form's fields, from the registration."""
    return {
        "client_name": app["client_name"],
        "redirect_uris": "\n".join(app["redirect_uris"]),
        "post_logout_redirect_uris": "\n".join(app["post_logout_redirect_uris"]),
        "policy_uri": app["policy_uri"] or "",
        "tos_uri": app["tos_uri"] or "",
        "grant_types": " ".join(app["grant_types"]),
        "scope": app["scope"],
        "token_endpoint_auth_method": app["token_endpoint_auth_method"],
        "first_party": "on" if app["first_party"] else "",
        "require_second_factor": "on" if app["require_second_factor"] else "",
        "webhook_url": app["webhook_url"] or "",
        "webhook_events": " ".join(app["webhook_events"]),
    }


def _page_change(app: dict[str, Any], form: dict[str, str], key: str) -> str | None:
    """The RP's privacy policy or terms URL as ``ClientChanges`` takes it: None when the
    form leaves it as it is, "" when the field is emptied (as for the webhook URL)."""
    value = form.get(key, "").strip()
    return value if value != (app[key] or "") else None


def changes_of(app: dict[str, Any], form: dict[str, str]) -> ClientChanges:
    """What the edit form changes, as `clients update` would be told: only the fields
    that differ from the registration; URIs as the ones added and removed."""
    redirect = _lines(form.get("redirect_uris", ""))
    post_logout = _lines(form.get("post_logout_redirect_uris", ""))
    name = form.get("client_name", "").strip()
    grants = form.get("grant_types", "").split()
    scopes = form.get("scope", "").split()
    method = form.get("token_endpoint_auth_method", "").strip()
    first_party = form.get("first_party") == "on"
    two_steps = form.get("require_second_factor") == "on"
    webhook_url = form.get("webhook_url", "").strip()
    events = form.get("webhook_events", "").split()
    current_redirect = app["redirect_uris"]
    current_post_logout = app["post_logout_redirect_uris"]
    return ClientChanges(
        name=name if name != app["client_name"] else None,
        add_redirect_uris=tuple(u for u in redirect if u not in current_redirect),
        remove_redirect_uris=tuple(u for u in current_redirect if u not in redirect),
        add_post_logout_redirect_uris=tuple(u for u in post_logout if u not in current_post_logout),
        remove_post_logout_redirect_uris=tuple(
            u for u in current_post_logout if u not in post_logout
        ),
        policy_uri=_page_change(app, form, "policy_uri"),
        tos_uri=_page_change(app, form, "tos_uri"),
        grant_types=tuple(grants) if grants != app["grant_types"] else None,
        scopes=tuple(scopes) if scopes != app["scope"].split() else None,
        token_endpoint_auth_method=method
        if method and method != app["token_endpoint_auth_method"]
        else None,
        first_party=first_party if first_party != app["first_party"] else None,
        require_second_factor=two_steps if two_steps != app["require_second_factor"] else None,
        webhook_url=webhook_url if webhook_url != (app["webhook_url"] or "") else None,
        webhook_events=tuple(events) if events != app["webhook_events"] else None,
    )


async def _edit_page(
    request: Request,
    console: ConsoleSession,
    app_ref: str,
    *,
    language: str,
    values: dict[str, str] | None = None,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    try:
        app = await _found(request, app_ref)
    except ClientNotFound:
        return _not_found(request, console, app_ref, language)
    data = describe_client(app)
    current = _form_of(data)
    shown = {k: (values or {}).get(k, v) for k, v in current.items()}
    if values is not None:
        shown["first_party"] = values.get("first_party", "")
        shown["require_second_factor"] = values.get("require_second_factor", "")
    return render_page(
        request,
        "admin/application_edit.html",
        {
            "nav": "applications",
            "app": data,
            "path": app_path(app.client_id),
            "form": shown,
            "grant_types": registry.GRANT_TYPES,
            "auth_methods": client_auth.AUTH_METHODS,
            "error": error,
        },
        status,
        console=console,
        language=language,
        headers=headers,
    )


@router.get("/applications/{app}/edit")
@guarded
async def edit_form(request: Request, console: SignedIn, app: str) -> Response:
    return await _edit_page(request, console, app, language=language_of(request))


@router.post("/applications/{app}/edit")
@guarded
async def edit(request: Request, console: SignedIn, app: str) -> Response:
    language = language_of(request)
    _ = gettext_of(language)
    form = await read_form(request)
    try:
        found = await _found(request, app)
    except ClientNotFound:
        return _not_found(request, console, app, language)
    values = {k: v for k, v in (form or {}).items() if k not in ("csrf_token", "totp_code")}
    show = functools.partial(_edit_page, request, console, app, language=language, values=values)
    if form is not None and csrf_ok(request, form):
        if any(len(v) > MAX_FIELD or "\x00" in v for v in values.values()):
            return await show(
                error=_("A field is too long or holds a control character."), status=400
            )
        changes = changes_of(describe_client(found), form)
        if changes == ClientChanges():
            return await show(
                error=_("Nothing to change: the form is the registration as it is."), status=400
            )
    else:
        changes = ClientChanges()
    done = await act(
        request,
        console,
        form,
        actions.UPDATE_CLIENT,
        found.client_id,
        language=language,
        show=show,
        do=lambda runtime, actor, target: playbook.update(runtime, actor, target, changes),
    )
    if isinstance(done, Response):
        return done
    if done.get("webhook_signing_key"):
        return _secret_page(
            request,
            console,
            language,
            client_id=done["client_id"],
            key=done["webhook_signing_key"],
        )
    return redirect_to(app_path(done["client_id"]) + "?done=updated")


# -- rotate the secret ----------------------------------------------------------------


def _secret_page(
    request: Request,
    console: ConsoleSession,
    language: str,
    *,
    client_id: str,
    secret: str | None = None,
    previous_until: str | None = None,
    key: dict[str, Any] | None = None,
) -> Response:
    """The one page that shows a new secret: not cached, not in a URL."""
    return render_page(
        request,
        "admin/application_secret.html",
        {
            "nav": "applications",
            "client_id": client_id,
            "path": app_path(client_id),
            "secret": secret,
            "previous_until": previous_until,
            "key": key,
        },
        console=console,
        language=language,
    )


@router.post("/applications/{app}/rotate_secret")
@guarded
async def rotate_secret(request: Request, console: SignedIn, app: str) -> Response:
    language = language_of(request)
    _ = gettext_of(language)
    form = await read_form(request)
    try:
        found = await _found(request, app)
    except ClientNotFound:
        return _not_found(request, console, app, language)
    show = functools.partial(_app_page, request, console, app, language=language)
    grace = timedelta(0)
    if form is not None and csrf_ok(request, form):
        try:
            seconds = parse_duration(form.get("grace", "").strip() or "0")
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= registry.MAX_SECRET_GRACE.total_seconds():
            return await show(
                error=_("The grace is a duration from 0 to 30d, such as 0, 30m, 24h or 7d."),
                status=400,
            )
        grace = timedelta(seconds=seconds)
    done = await act(
        request,
        console,
        form,
        actions.ROTATE_CLIENT_SECRET,
        found.client_id,
        language=language,
        show=show,
        do=lambda runtime, actor, target: playbook.rotate_secret(
            runtime, actor, target, grace=grace
        ),
    )
    if isinstance(done, Response):
        return done
    now = runtime_of(request).clock.now()
    until = done["previous_secret_expires_at"]
    return _secret_page(
        request,
        console,
        language,
        client_id=done["client_id"],
        secret=done["client_secret"],
        previous_until=when_text(until, now) if until else None,
    )


# -- disable, enable ------------------------------------------------------------------


async def _set_disabled(
    request: Request, console: ConsoleSession, app: str, *, disabled: bool
) -> Response:
    language = language_of(request)
    form = await read_form(request)
    try:
        found = await _found(request, app)
    except ClientNotFound:
        return _not_found(request, console, app, language)
    done = await act(
        request,
        console,
        form,
        actions.DISABLE_CLIENT if disabled else actions.ENABLE_CLIENT,
        found.client_id,
        language=language,
        show=functools.partial(_app_page, request, console, app, language=language),
        do=lambda runtime, actor, target: playbook.set_disabled(
            runtime, actor, target, disabled=disabled
        ),
    )
    if isinstance(done, Response):
        return done
    return redirect_to(
        app_path(done["client_id"]) + ("?done=disabled" if disabled else "?done=enabled")
    )


@router.post("/applications/{app}/disable")
@guarded
async def disable(request: Request, console: SignedIn, app: str) -> Response:
    return await _set_disabled(request, console, app, disabled=True)


@router.post("/applications/{app}/enable")
@guarded
async def enable(request: Request, console: SignedIn, app: str) -> Response:
    return await _set_disabled(request, console, app, disabled=False)

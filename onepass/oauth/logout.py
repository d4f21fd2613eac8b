"""RP-Initiated Logout 1.0: ``/logout`` (end_session_endpoint)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from onepass import api_docs, i18n
from onepass.accounts import csrf as csrf_mod
from onepass.accounts import service as accounts
from onepass.accounts.csrf import CSRF_TOKENS, form_page
from onepass.accounts.models import User
from onepass.clients import subjects
from onepass.clients.registry import CLIENTS, ClientRecord
from onepass.oauth import backchannel
from onepass.oauth.authorization import redirect_with
from onepass.oauth.authorize_routes import _read_form, error_page, session_cookie
from onepass.oauth.bearer import VERIFIER
from onepass.oauth_errors import InvalidTokenError
from onepass.pages import render
from onepass.runtime import Runtime
from onepass.services import runtime_of
from onepass.web import printable_name, query_params

router = APIRouter(
    tags=["oauth"],
    default_response_class=HTMLResponse,
    responses=api_docs.pages(303, 400, 413),
)

LOGOUT_PARAMS = ("id_token_hint", "client_id", "post_logout_redirect_uri", "state", "logout_hint")


@router.get("/logout", openapi_extra=api_docs.query(*api_docs.LOGOUT_REQUEST))
@router.post("/logout", openapi_extra=api_docs.form(*api_docs.LOGOUT_REQUEST))
async def logout(request: Request) -> Response:
    runtime = runtime_of(request)
    clients = CLIENTS.of(request)
    if request.method == "POST":
        form = await _read_form(request)
        if form is None:
            return error_page("Bad request", "The sign-out form was not sent as a form.")
        params = form
    else:
        params = query_params(request)
    if params.repeated:
        name = printable_name(min(params.repeated))
        return error_page("Bad request", f"The parameter {name} is repeated.")

    hint_claims = None
    if "id_token_hint" in params:
        try:
            hint_claims = VERIFIER.of(request).decode_id_token_hint(params["id_token_hint"])
        except InvalidTokenError as exc:
            return error_page("Sign-out link not valid", exc.description.capitalize() + ".")
    client_id = params.get("client_id") or (hint_claims or {}).get("aud")
    if hint_claims is not None and params.get("client_id") not in (None, hint_claims["aud"]):
        return error_page("Sign-out link not valid", "client_id does not match the id_token_hint.")

    redirect_uri = params.get("post_logout_redirect_uri")
    if redirect_uri is not None:
        client = await clients.get(client_id) if client_id and len(client_id) <= 64 else None
        if client is None or redirect_uri not in client.post_logout_redirect_uris:
            return error_page(
                "Sign-out link not valid",
                "The post_logout_redirect_uri is not registered for this application.",
            )

    current = None
    async with runtime.database.session(readonly=True) as session:
        current = await accounts.session_from_token(
            session,
            runtime.hasher,
            runtime.clock,
            request.cookies.get(session_cookie(runtime.settings)),
        )
    # Without proof that an RP of this user asked (a valid id_token_hint for the same
    # user), ask the user: a cross-site GET must not sign anyone out (§2, §6).
    confirmed = request.method == "POST" and CSRF_TOKENS.of(request).valid(
        request.cookies.get(csrf_mod.cookie_for(runtime.settings)), params.get("csrf_token")
    )
    # An ID token vouches for its RP only while that RP is registered.
    hint_client = await clients.get(hint_claims["aud"]) if hint_claims is not None else None
    trusted_hint = (
        hint_claims is not None
        and hint_client is not None
        and (current is None or await _names(runtime, hint_client, current[1], hint_claims["sub"]))
    )
    if current is not None and not (confirmed or trusted_hint):
        kept = {k: params[k] for k in LOGOUT_PARAMS if k in params}
        return form_page(
            request, "logout.html", {"done": False, "params": kept}, language=_language(request)
        )

    if current is not None:
        async with runtime.database.session() as session:
            # The RPs of the session are told (Back-Channel Logout) in the same commit.
            await backchannel.logout_session(
                session,
                runtime.clock,
                current[0],
                enforce=runtime.settings.enforce_canonical_resolution,
                reason=backchannel.RP_LOGOUT,
            )
            await accounts.revoke_login_session(session, runtime.clock, current[0].id)
    if redirect_uri is not None:
        response: Response = RedirectResponse(
            redirect_with(redirect_uri, {"state": params.get("state")}),
            status_code=303,
            headers={"cache-control": "no-store"},
        )
    else:
        response = render("logout.html", {"done": True}, language=_language(request))
    response.delete_cookie(
        session_cookie(runtime.settings),
        path="/",
        secure=runtime.settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )
    return response


async def _names(runtime: Runtime, client: ClientRecord, user: User, sub: str) -> bool:
    """Whether ``sub`` (an ID token's, of ``client``) is ``user``'s as ``client`` sees
    it (a pairwise client's sector's, ``clients.subjects``)."""
    if subjects.sector_of(client) is None:
        return user.sub == sub
    async with runtime.database.session(readonly=True) as session:
        return await subjects.user_of_subject(session, client, sub) == user.id


def _language(request: Request) -> str:
    return i18n.page_language(accept_language=request.headers.get("accept-language"))

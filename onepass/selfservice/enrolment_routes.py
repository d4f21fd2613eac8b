"""Two-step verification set up in the middle of a sign-in: an RP asked for it
(``acr_values=urn:1pass:acr:mfa``, or its ``require_second_factor``) and the person has
none. After their password, the sign-in shows the authenticator setup (``ENROLMENT``,
called by ``/login``), and beside it "Add a passkey instead" where the browser can; the
code entered (or the passkey created) turns it on (``playbook.users``, with the mail),
the session is made with both steps, the recovery codes are shown once, and
"Continue" makes the RP's request again (``/authorize``), now satisfied."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from onepass import api_docs, i18n
from onepass.accounts import csrf, passkeys
from onepass.accounts.models import User
from onepass.accounts.passkeys import PasskeyRefused
from onepass.accounts.second_factor import (
    SECOND_FACTOR,
    PendingInvalid,
    Step,
    factors_of,
    unseal_pending,
)
from onepass.clients.registry import ClientRecord
from onepass.i18n import N_
from onepass.oauth import par
from onepass.oauth.authorize import AuthorizationRequest
from onepass.oauth.authorize_routes import (
    error_page,
    form_and_request,
    page_language,
    passkey_rp,
    set_session_cookie,
)
from onepass.oauth.interaction import SEALER
from onepass.playbook.users import FactorExists
from onepass.selfservice.account import ACCOUNT, WrongCode
from onepass.selfservice.account_routes import PASSKEY_NOT_ADDED
from onepass.services import runtime_of
from onepass.web import Params, client_ip

router = APIRouter(
    tags=["self-service"],
    default_response_class=HTMLResponse,
    responses=api_docs.pages(400, 401, 403, 413),
)

ASKED = N_("%(client)s asks for two-step verification. Set it up to continue.")
WRONG = N_("That code is not right. Scan this new code and enter the code it shows.")


async def _user(request: Request, user_id: int) -> User:
    """The account setting up its first second factor; ``PendingInvalid`` if it is gone,
    disabled, or has a factor already (then the sign-in asks for it instead)."""
    runtime = runtime_of(request)
    async with runtime.database.session(readonly=True) as session:
        user = await session.get(User, user_id)
        if user is None or user.disabled_at is not None or user.deleted_at is not None:
            raise PendingInvalid("the account is gone")
        if (await factors_of(session, user)).any:
            raise PendingInvalid("two-step verification is already on: sign in again")
    return user


async def enrolment_page(
    request: Request,
    auth: AuthorizationRequest,
    client_name: str,
    pending: str,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """The authenticator setup, inside the sign-in (``authorize_routes.ENROLMENT``)."""
    runtime = runtime_of(request)
    language = page_language(request, auth)
    user = await _user(
        request,
        unseal_pending(runtime.box, pending, runtime.clock.timestamp(), step=Step.ENROL).user_id,
    )
    registration = ACCOUNT.of(request).start_passkey(passkey_rp(request), user, [])
    return csrf.form_page(
        request,
        "totp_setup.html",
        {
            "setup": ACCOUNT.of(request).start_totp(user),
            "action": "/login/enrol",
            "interaction": SEALER.of(request).seal(auth, runtime.clock.timestamp()),
            "pending": pending,
            "asked": i18n.translate(language, ASKED, client=client_name),
            "error": error,
            "registration": registration,
        },
        status,
        language=language,
        scripts=("passkey.js",) if registration else (),
    )


async def enrolment(
    request: Request, auth: AuthorizationRequest, client_name: str, pending: str
) -> Response:
    return await enrolment_page(request, auth, client_name, pending)


Posted = tuple[dict[str, str], AuthorizationRequest, ClientRecord, User, str]


async def _enrolment_post(request: Request) -> Posted | Response:
    """The posted enrolment form (CSRF, the sealed authorization request, its client)
    and the account of the pending sign-in it continues, or the page that says why not."""
    runtime = runtime_of(request)
    posted = await form_and_request(request, "sign-in")
    if isinstance(posted, Response):
        return posted
    form, interaction, client = posted
    auth = interaction.request
    try:
        pending = unseal_pending(
            runtime.box, form.get("pending", ""), runtime.clock.timestamp(), step=Step.ENROL
        )
        user = await _user(request, pending.user_id)
    except PendingInvalid as exc:
        return error_page("This form has expired", str(exc).capitalize() + ".")
    return form, auth, client, user, page_language(request, auth)


@router.post(
    "/login/enrol",
    openapi_extra=api_docs.form(
        "interaction",
        "csrf_token",
        "pending",
        "sealed",
        "code",
        required=("interaction", "csrf_token"),
    ),
)
async def enrol(request: Request) -> Response:
    """Turn two-step verification on with a code from the secret just scanned, and
    sign in with both steps."""
    posted = await _enrolment_post(request)
    if isinstance(posted, Response):
        return posted
    form, auth, client, user, language = posted
    pending_text, ip = form.get("pending", ""), client_ip(request)
    try:
        codes = await ACCOUNT.of(request).confirm_totp(
            user, form.get("sealed", ""), form.get("code", "")[:64], ip, language, first_only=True
        )
    except FactorExists as exc:
        return error_page("This form has expired", str(exc).capitalize() + ".")
    except WrongCode:
        message = i18n.translate(language, WRONG)
        return await enrolment_page(
            request, auth, client.client_name, pending_text, error=message, status=400
        )
    login = await SECOND_FACTOR.of(request).session_for(
        user.id, ip, request.headers.get("user-agent")
    )
    return await _signed_in_with_codes(request, auth, client, codes, login.token, language)


async def _continue_url(request: Request, auth: AuthorizationRequest, client: ClientRecord) -> str:
    """``/authorize`` making the RP's request again; for a client whose requests come
    only by PAR or only as signed request objects, pushed again here (for as long as a
    page's form lasts: the person may take a while to keep the codes): the request was
    verified when it came, and a pushed one is taken as verified."""
    query = auth.query(signed_in=True)
    runtime = runtime_of(request)
    settings = runtime.settings
    if not (
        par.required(client, settings.require_pushed_authorization_requests)
        or client.require_signed_request_object
    ):
        return "/authorize?" + urlencode(query)
    async with runtime.database.session() as session:
        request_uri = await par.push(
            session, runtime.hasher, runtime.clock, client, Params(query), settings.interaction_ttl
        )
    return "/authorize?" + urlencode({"client_id": client.client_id, "request_uri": request_uri})


async def _signed_in_with_codes(
    request: Request,
    auth: AuthorizationRequest,
    client: ClientRecord,
    codes: list[str],
    token: str,
    language: str,
) -> Response:
    """The recovery codes, once, with "Continue" to the RP's request; the session set."""
    continue_url = await _continue_url(request, auth, client)
    response = csrf.form_page(
        request,
        "recovery_codes.html",
        {
            "codes": codes,
            "continue_url": continue_url,
            "client_name": client.client_name,
        },
        language=language,
    )
    set_session_cookie(response, runtime_of(request).settings, token)
    return response


@router.post(
    "/login/enrol/passkey",
    openapi_extra=api_docs.form(
        "interaction",
        "csrf_token",
        "pending",
        "passkey_state",
        "credential",
        "name",
        required=("interaction", "csrf_token"),
    ),
)
async def enrol_passkey(request: Request) -> Response:
    """Turn two-step verification on with the passkey the browser just created, and
    sign in with both steps (``amr`` ``pwd``, ``hwk``/``swk``, ``mfa``)."""
    posted = await _enrolment_post(request)
    if isinstance(posted, Response):
        return posted
    form, auth, client, user, language = posted
    pending_text, ip = form.get("pending", ""), client_ip(request)
    try:
        codes = await ACCOUNT.of(request).add_passkey(
            passkey_rp(request),
            user,
            form.get("passkey_state", ""),
            form.get("credential", ""),
            form.get("name", ""),
            ip,
            language,
            first_only=True,
        )
    except FactorExists as exc:
        return error_page("This form has expired", str(exc).capitalize() + ".")
    except PasskeyRefused:
        message = i18n.translate(language, PASSKEY_NOT_ADDED)
        return await enrolment_page(
            request, auth, client.client_name, pending_text, error=message, status=400
        )
    async with runtime_of(request).database.session(readonly=True) as session:
        synced = any(key.backed_up for key in await passkeys.passkeys_of(session, user.id))
    login = await SECOND_FACTOR.of(request).session_for(
        user.id, ip, request.headers.get("user-agent"), ("pwd", "swk" if synced else "hwk", "mfa")
    )
    return await _signed_in_with_codes(request, auth, client, codes or [], login.token, language)

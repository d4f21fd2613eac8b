"""Authorization request validation (RFC 6749 §4.1.1, OIDC Core §3.1.2.1, RFC 7636).

Errors come in two kinds (RFC 6749 §4.1.2.1): until the client and its redirect URI
are known to be valid, an error is shown to the user (``AuthorizeFatal``) and never
redirected anywhere, so the endpoint is no open redirector; after that, errors go
back to the client's redirect URI with ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from onepass.accounts.second_factor import ACR_MFA
from onepass.clients import profiles
from onepass.clients.registry import ID_TOKEN_ALGS, ClientRecord
from onepass.clients.scopes import grant_scope, parse_scope
from onepass.oauth import pkce, response_modes
from onepass.oauth.dpop import is_thumbprint
from onepass.oauth.resource_indicators import check_requested
from onepass.oauth_errors import (
    InvalidRequestError,
    InvalidRequestObjectError,
    InvalidScopeError,
    InvalidTargetError,
    OAuthError,
    RequestUriNotSupportedError,
    UnauthorizedClientError,
    UnsupportedResponseTypeError,
)
from onepass.web import Params, printable_name

PROMPTS = frozenset({"none", "login", "consent"})
MAX_PARAM = 2048


class AuthorizeFatal(Exception):
    """Shown on an error page: there is no trustworthy place to redirect to."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class AuthorizeRedirectError(Exception):
    """An OAuth error to send back to the (validated) redirect URI."""

    def __init__(
        self,
        error: OAuthError,
        redirect_uri: str,
        state: str | None,
        response_mode: str = response_modes.DEFAULT,
    ) -> None:
        super().__init__(error.description)
        self.error = error
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


@dataclass(frozen=True)
class AuthorizationRequest:
    client_id: str
    redirect_uri: str
    scope: list[str]
    state: str | None = None
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    prompt: list[str] = field(default_factory=list)
    max_age: int | None = None
    login_hint: str | None = None
    acr_values: list[str] = field(default_factory=list)
    # The languages the RP asks its pages in (OIDC Core §3.1.2.1), most preferred first.
    ui_locales: list[str] = field(default_factory=list)
    # RFC 9449 §10: the thumbprint of the DPoP key the code is bound to.
    dpop_jkt: str | None = None
    # How the response goes back (``oauth.response_modes``): query, form_post, JARM...
    response_mode: str = response_modes.DEFAULT
    # RFC 8707: the resource server the access token is for.
    resource: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data["resource"] is None:
            # Left out when unused: a release without resource indicators can still read
            # the sealed request of one with them (a rolling upgrade's mixed servers).
            del data["resource"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AuthorizationRequest:
        return cls(**data)

    def query(self, *, signed_in: bool = False) -> dict[str, str]:
        """This request as the ``/authorize`` query that makes it again; ``signed_in``:
        the user just signed in for it, so ``prompt=login`` and ``max_age`` are done
        (the ID token's ``auth_time`` says when)."""
        prompt = [p for p in self.prompt if not (signed_in and p == "login")]
        values = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "scope": " ".join(self.scope),
            "state": self.state,
            "nonce": self.nonce,
            "code_challenge": self.code_challenge,
            "code_challenge_method": self.code_challenge_method,
            "prompt": " ".join(prompt) or None,
            "max_age": str(self.max_age) if self.max_age is not None and not signed_in else None,
            "login_hint": self.login_hint,
            "acr_values": " ".join(self.acr_values) or None,
            "ui_locales": " ".join(self.ui_locales) or None,
            "dpop_jkt": self.dpop_jkt,
            "response_mode": (
                self.response_mode if self.response_mode != response_modes.DEFAULT else None
            ),
            "resource": self.resource,
        }
        return {k: v for k, v in values.items() if v is not None}


def validate_client_and_redirect(params: Params, client: ClientRecord | None) -> str:
    """The redirect URI to use, or ``AuthorizeFatal``. Exact string match (RFC 9700 §4.1.3)."""
    if "client_id" not in params:
        raise AuthorizeFatal("The request has no client_id.")
    if client is None:
        raise AuthorizeFatal("The application that sent you here is not registered.")
    if "authorization_code" not in client.grant_types:
        raise AuthorizeFatal("This application may not sign users in.")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        raise AuthorizeFatal("The request has no redirect_uri.")
    fatal = sorted(params.repeated & {"client_id", "redirect_uri"})
    if fatal:
        raise AuthorizeFatal(f"The parameter {fatal[0]} is repeated.")
    if redirect_uri not in client.redirect_uris:
        raise AuthorizeFatal("The redirect_uri is not registered for this application.")
    return redirect_uri


def recheck_client_and_redirect(
    request: AuthorizationRequest, client: ClientRecord | None
) -> ClientRecord:
    """The client of a sealed request, when the login or consent form comes back.

    The registration may have changed since ``/authorize`` validated the request (a
    client deleted, a redirect URI removed): a code or an error must then go nowhere,
    so this is ``AuthorizeFatal`` too (RFC 6749 §4.1.2.1, RFC 9700 §4.1.3).
    """
    if client is None:
        raise AuthorizeFatal("The application that sent you here is no longer registered.")
    if "authorization_code" not in client.grant_types:
        raise AuthorizeFatal("This application may no longer sign users in.")
    if request.redirect_uri not in client.redirect_uris:
        raise AuthorizeFatal(
            "The address this application asked to return to is no longer registered for it."
        )
    return client


def validate_authorization_request(
    params: Params, client: ClientRecord | None, *, production: bool = False
) -> AuthorizationRequest:
    """The request ``params`` make (a request object's already taken out of it:
    ``oauth.request_object``), or ``AuthorizeFatal`` / ``AuthorizeRedirectError``."""
    redirect_uri = validate_client_and_redirect(params, client)
    assert client is not None
    state = params.get("state")
    # Errors go back in the mode asked for once it is a known one, else in the default.
    mode = requested_mode(params)

    def fail(error: OAuthError) -> AuthorizeRedirectError:
        return AuthorizeRedirectError(error, redirect_uri, state, mode)

    if state is not None and len(state) > MAX_PARAM:
        raise AuthorizeRedirectError(
            InvalidRequestError("state is too long"), redirect_uri, None, mode
        )
    if params.repeated:
        name = printable_name(min(params.repeated))
        raise fail(InvalidRequestError(f"parameter {name} is repeated"))
    for name, value in params.items():
        if len(value) > MAX_PARAM:
            raise fail(InvalidRequestError(f"parameter {name[:40]} is too long"))
    problems = profiles.registration_problems(
        client, production=production, id_token_algs_available=ID_TOKEN_ALGS
    )
    if problems:  # a registration edited by hand, or older than a rule of its profile
        raise fail(
            UnauthorizedClientError(
                "this client's registration does not meet its profile (fapi2): " + problems[0]
            )
        )
    if "request" in params:  # the route reads a request object first: one inside one
        raise fail(InvalidRequestObjectError("a request object cannot hold another"))
    if "request_uri" in params:
        raise fail(RequestUriNotSupportedError("request_uri is not supported"))
    response_type = params.get("response_type")
    if response_type is None:
        raise fail(InvalidRequestError("response_type is required"))
    if response_type != "code":
        raise fail(UnsupportedResponseTypeError("only response_type=code is supported"))
    if params.get("response_mode", mode) != mode:  # one 1pass does not have
        raise fail(
            InvalidRequestError(
                "unsupported response_mode; supported: " + ", ".join(response_modes.RESPONSE_MODES)
            )
        )
    if response_modes.delivery(mode) == response_modes.FORM_POST and (
        response_modes.form_action_source(redirect_uri) is None
    ):
        raise AuthorizeRedirectError(
            InvalidRequestError("response_mode form_post needs an http(s) redirect_uri"),
            redirect_uri,
            state,
        )

    try:
        scope = grant_scope(parse_scope(params.get("scope")), client.scopes, user_present=True)
    except InvalidScopeError as exc:
        raise fail(exc) from None
    if "offline_access" in scope and "refresh_token" not in client.grant_types:
        scope = [s for s in scope if s != "offline_access"]

    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise fail(InvalidRequestError("code_challenge_method without code_challenge"))
        if client.is_public:
            raise fail(InvalidRequestError("public clients must use PKCE (code_challenge, S256)"))
        if profiles.requires_pkce(client):
            raise fail(InvalidRequestError("this client's profile (fapi2) requires PKCE with S256"))
    else:
        if (method or "plain") != pkce.S256:
            raise fail(InvalidRequestError("code_challenge_method must be S256"))
        if not pkce.is_valid_challenge(challenge):
            raise fail(InvalidRequestError("code_challenge must be 43 base64url characters"))

    prompt = params.get("prompt", "").split()
    unknown = [p for p in prompt if p not in PROMPTS]
    if unknown:
        raise fail(InvalidRequestError(f"unsupported prompt value {unknown[0][:20]}"))
    if "none" in prompt and len(prompt) > 1:
        raise fail(InvalidRequestError("prompt=none cannot be combined with other values"))

    try:  # RFC 8707 §2: a resource the client may use, or invalid_target
        resource = check_requested(params.get("resource"), client)
    except InvalidTargetError as exc:
        raise fail(exc) from None

    dpop_jkt = params.get("dpop_jkt")
    if dpop_jkt is not None and not is_thumbprint(dpop_jkt):
        raise fail(InvalidRequestError("dpop_jkt must be a JWK SHA-256 thumbprint (43 base64url)"))

    max_age = None
    if "max_age" in params:
        raw = params["max_age"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 10:
            raise fail(InvalidRequestError("max_age must be a non-negative integer"))
        max_age = int(raw)

    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scope=scope,
        state=state,
        nonce=params.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=pkce.S256 if challenge else None,
        prompt=prompt,
        max_age=max_age,
        login_hint=params.get("login_hint"),
        ui_locales=params.get("ui_locales", "").split()[:10],
        acr_values=_acr_values(params.get("acr_values", "").split(), client),
        dpop_jkt=dpop_jkt,
        response_mode=mode,
        resource=resource,
    )


def requested_mode(params: Params) -> str:
    """The ``response_mode`` to answer ``params`` in, before or without validating them:
    the one asked for, or the default when it is missing, repeated or unknown."""
    if "response_mode" in params.repeated:
        return response_modes.DEFAULT
    return response_modes.lenient(params.get("response_mode"))


def _acr_values(asked: list[str], client: ClientRecord) -> list[str]:
    """What the RP asks for, plus two steps when its registration requires them
    (``require_second_factor``): the rest of the flow treats both alike."""
    if client.require_second_factor and ACR_MFA not in asked:
        return [*asked, ACR_MFA]
    return asked

"""Discovery (OpenID Connect Discovery 1.0 §4, RFC 8414) and the JWKS (RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from onepass import api_docs
from onepass.accounts.second_factor import ACR_MFA
from onepass.accounts.service import ACR_PASSWORD
from onepass.clients import auth as client_auth
from onepass.clients.assertions import ALGORITHMS as ASSERTION_ALGORITHMS
from onepass.clients.registry import TOKEN_EXCHANGE
from onepass.i18n import LANGUAGES
from onepass.oauth.dpop import ALGORITHMS as DPOP_ALGORITHMS
from onepass.oauth.request_object import ALGORITHMS as REQUEST_OBJECT_ALGORITHMS
from onepass.oauth.response_modes import RESPONSE_MODES
from onepass.services import Service
from onepass.settings import Settings

router = APIRouter()

# The discovery document, serialised once (app.py's lifespan).
DISCOVERY: Service[bytes] = Service("oauth.discovery")

NOT_MODIFIED = {"description": "`If-None-Match` matched the `ETag`: no body (RFC 9110 §15.4.5)"}


def discovery_document(settings: Settings) -> dict[str, Any]:
    """Advertise only what is implemented."""
    issuer = settings.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "revocation_endpoint": f"{issuer}/revoke",
        "introspection_endpoint": f"{issuer}/introspect",
        "end_session_endpoint": f"{issuer}/logout",
        # RFC 7591 / RFC 7592: Dynamic Client Registration (selfservice.registration_routes).
        "registration_endpoint": f"{issuer}/register",
        # RFC 9126: pushed authorization requests.
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "require_pushed_authorization_requests": settings.require_pushed_authorization_requests,
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "client_credentials",
            # RFC 8693 (oauth.grants.token_exchange): for clients with an exchange policy.
            TOKEN_EXCHANGE,
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        # RFC 8628 §4: the Device Authorization Grant.
        "device_authorization_endpoint": f"{issuer}/device_authorization",
        "response_types_supported": ["code"],
        # OAuth 2.0 Form Post Response Mode, and JARM (signed, never encrypted).
        "response_modes_supported": list(RESPONSE_MODES),
        "authorization_signing_alg_values_supported": list(settings.signing_algorithms),
        "token_endpoint_auth_methods_supported": list(client_auth.AUTH_METHODS),
        # private_key_jwt (RFC 7523): the algorithms a client assertion may be signed with.
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGORITHMS),
        "revocation_endpoint_auth_methods_supported": list(client_auth.AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(client_auth.AUTH_METHODS),
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "acr",
            "amr",
            "sid",
            "email",
            "email_verified",
            "name",
            "updated_at",
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        # OIDC Discovery §3: the languages of the pages (``ui_locales``).
        "ui_locales_supported": list(LANGUAGES),
        # acr_values=urn:1pass:acr:mfa asks for (and then requires) two-step verification.
        "acr_values_supported": [ACR_PASSWORD, ACR_MFA],
        "subject_types_supported": ["public", "pairwise"],  # OIDC Core §8, clients.subjects
        # The algorithms the key ring keeps an active key for (ONEPASS_SIGNING_ALGS: the
        # start creates them, and retires those of an algorithm taken out of it).
        "id_token_signing_alg_values_supported": list(settings.signing_algorithms),
        "userinfo_signing_alg_values_supported": [],
        # RFC 9101: signed request objects by value, at /authorize and /par (a client's
        # require_signed_request_object makes them its only way).
        "request_parameter_supported": True,
        "request_object_signing_alg_values_supported": list(REQUEST_OBJECT_ALGORITHMS),
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        "frontchannel_logout_supported": False,
        # OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens through the outbox
        # (oauth.backchannel), with the session's sid, which ID tokens carry too.
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "access_token_signing_alg_values_supported": [settings.access_token_alg],
        # RFC 9449 §5.1: DPoP proofs at /token, /par and /userinfo.
        "dpop_signing_alg_values_supported": list(DPOP_ALGORITHMS),
    }


# Discovery and the JWKS are answered by well_known.WellKnown before FastAPI sees them
# (app.OnePass), from prebuilt bytes with an ETag: these routes only put them in the
# OpenAPI document.
@router.get(
    "/.well-known/openid-configuration",
    include_in_schema=True,
    tags=["discovery"],
    responses={304: NOT_MODIFIED},
)
@router.get("/.well-known/oauth-authorization-server", include_in_schema=False)
async def openid_configuration() -> Response:
    """OpenID Connect Discovery 1.0 §4 (and RFC 8414): GET or HEAD, with a strong ETag;
    `If-None-Match` gives 304."""
    raise StarletteHTTPException(404)


# Requests to /token are answered by token_endpoint.TokenEndpoint before FastAPI sees
# them (app.OnePass): this route only puts the endpoint in the OpenAPI document.
@router.post(
    "/token",
    tags=["oauth"],
    summary="Token endpoint",
    description=(
        "RFC 6749 §3.2: `authorization_code` (with PKCE), `refresh_token` (rotated at each "
        "use) and `client_credentials`. Confidential clients authenticate with HTTP Basic "
        "(`client_secret_basic`) or `client_id` and `client_secret` in the form "
        "(`client_secret_post`); public clients send `client_id`. A `DPoP` header (RFC 9449) "
        "binds the tokens to the proof's key (`token_type: DPoP`)."
    ),
    response_model=api_docs.TokenResponse,
    responses=api_docs.oauth_errors(400, 401, 413, 503),
    openapi_extra=api_docs.form(
        *api_docs.TOKEN_GRANT_REQUEST,
        required=("grant_type",),
        choices={"grant_type": api_docs.GRANT_TYPES},
    ),
)
async def token_document() -> Response:
    raise StarletteHTTPException(404)


@router.get(
    "/.well-known/jwks.json",
    tags=["discovery"],
    responses={
        200: {"content": {"application/jwk-set+json": {"schema": {"type": "object"}}}},
        304: NOT_MODIFIED,
    },
)
async def jwks() -> Response:
    """The published signing keys: next, active and retired (not yet expired). GET or
    HEAD, with a strong ETag that changes when the keys do; `If-None-Match` gives 304."""
    raise StarletteHTTPException(404)

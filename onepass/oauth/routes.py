"""Discovery (OpenID Connect Discovery 1.0 §4, RFC 8414) and the JWKS (RFC 7517)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from onepass.oauth import client_auth
from onepass.settings import Settings

router = APIRouter()


def discovery_document(settings: Settings) -> dict[str, Any]:
    """Advertise only what is implemented."""
    issuer = settings.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/token",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": [
            client_auth.CLIENT_SECRET_BASIC,
            client_auth.CLIENT_SECRET_POST,
        ],
        # Required by Discovery; empty until the authorization endpoint exists.
        "response_types_supported": [],
        "subject_types_supported": ["public"],
        "access_token_signing_alg_values_supported": [settings.access_token_alg],
    }


@router.get("/.well-known/openid-configuration", include_in_schema=True, tags=["discovery"])
@router.get("/.well-known/oauth-authorization-server", include_in_schema=False)
async def openid_configuration(request: Request) -> Response:
    runtime = request.app.state.runtime
    body = request.app.state.discovery_body
    return Response(
        body,
        media_type="application/json",
        headers={"cache-control": f"public, max-age={runtime.settings.jwks_max_age}"},
    )


@router.get("/.well-known/jwks.json", tags=["discovery"])
async def jwks(request: Request) -> Response:
    """The published signing keys: next, active and retired (not yet expired)."""
    keyring = request.app.state.keyring
    max_age = request.app.state.runtime.settings.jwks_max_age
    return Response(
        keyring.jwks_body,
        media_type="application/jwk-set+json",
        headers={"cache-control": f"public, max-age={max_age}"},
    )

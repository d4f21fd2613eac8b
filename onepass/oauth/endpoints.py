"""Revocation (RFC 7009), introspection (RFC 7662) and pushed authorization requests
(RFC 9126, ``par``); UserInfo (OIDC Core §5.3) is ``userinfo_endpoint``, in front of
FastAPI (this module only documents it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select
from starlette.exceptions import HTTPException as StarletteHTTPException

from onepass import api_docs
from onepass.accounts.models import User
from onepass.clients import subjects
from onepass.clients.auth import CLIENT_AUTHENTICATOR
from onepass.clients.registry import ClientRecord
from onepass.identity.canonical import RESOLVER, merged_away
from onepass.oauth import par
from onepass.oauth.authorize import (
    AuthorizeFatal,
    AuthorizeRedirectError,
    validate_authorization_request,
)
from onepass.oauth.bearer import VERIFIER
from onepass.oauth.dpop import DPOP, ProofRefused, proof_header, request_error
from onepass.oauth.forms import is_form_content_type, parse_form
from onepass.oauth.models import RefreshToken
from onepass.oauth.request_object import REQUEST_OBJECTS
from onepass.oauth.revocation import revoke_access_token, revoke_family
from onepass.oauth_errors import InvalidRequestError, InvalidTokenError, UnsupportedTokenTypeError
from onepass.services import runtime_of
from onepass.web import Params, read_body

router = APIRouter(tags=["oauth"], responses=api_docs.CLIENT_AUTHENTICATED)

NO_STORE = {"cache-control": "no-store", "pragma": "no-cache"}
TOKEN_TYPE_HINTS = ("access_token", "refresh_token")


async def _form(request: Request) -> dict[str, str]:
    if not is_form_content_type(request.headers.get("content-type")):
        raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
    return parse_form(await read_body(request))  # bounded at the edge (onepass.edge)


async def _authenticated_client(request: Request, form: dict[str, str]) -> ClientRecord:
    authorization = request.headers.getlist("authorization")
    if len(authorization) > 1:
        raise InvalidRequestError("more than one Authorization header")
    return await CLIENT_AUTHENTICATOR.of(request).authenticate(
        authorization[0] if authorization else None, form
    )


async def _token_request(request: Request) -> tuple[dict[str, str], ClientRecord, str]:
    """RFC 7009 §2.1 / RFC 7662 §2.1: an authenticated client and the ``token`` it asks about."""
    form = await _form(request)
    client = await _authenticated_client(request, form)
    token = form.get("token")
    if token is None:
        raise InvalidRequestError("token is required")
    return form, client, token


# GET and POST /userinfo are answered by userinfo_endpoint.UserInfoEndpoint before
# FastAPI sees them (app.OnePass): this route only puts the endpoint in the OpenAPI
# document (and in the edge's tests, which enumerate the POST routes).
@router.get("/userinfo")
@router.post("/userinfo", openapi_extra=api_docs.form("access_token"))
async def userinfo() -> Response:
    """OIDC Core §5.3: the claims of the access token's scope. The token in the
    `Authorization: Bearer` header (RFC 6750 §2.1) or the form's `access_token` (§2.2);
    a DPoP-bound token in `Authorization: DPoP` with a `DPoP` proof (RFC 9449 §7.1)."""
    raise StarletteHTTPException(404)


@router.post(
    "/revoke",
    response_class=Response,  # RFC 7009 §2.2: 200 with an empty body
    responses={200: {"description": "revoked, or the token was not valid (§2.2)"}},
    openapi_extra=api_docs.form(*api_docs.TOKEN_REQUEST, required=("token",)),
)
async def revoke(request: Request) -> Response:
    """RFC 7009. Answers 200 whether or not the token was known or belonged to the
    caller (§2.2): a client learns nothing about tokens that are not its own."""
    runtime = runtime_of(request)
    form, client, token = await _token_request(request)
    hint = form.get("token_type_hint")
    if hint is not None and hint not in TOKEN_TYPE_HINTS:
        raise UnsupportedTokenTypeError(
            f"token_type_hint must be one of {', '.join(TOKEN_TYPE_HINTS)}"
        )
    async with runtime.database.session() as session:
        if token.count(".") == 2:
            try:
                claims = VERIFIER.of(request).decode(token)
            except InvalidTokenError:
                claims = None
            if claims is not None and claims.get("client_id") == client.client_id:
                await revoke_access_token(
                    session,
                    runtime.clock,
                    claims["jti"],
                    datetime.fromtimestamp(claims["exp"], UTC),
                    "revoked",
                )
        else:
            row = await session.scalar(
                select(RefreshToken).where(
                    RefreshToken.token_hash == runtime.hasher.hash(token[:512])
                )
            )
            if row is not None and row.oauth_application_id == client.id:
                await revoke_family(session, runtime.clock, row.family_id, "revoked")
    return Response(status_code=200, headers=NO_STORE)


@router.post(
    "/introspect", openapi_extra=api_docs.form(*api_docs.TOKEN_REQUEST, required=("token",))
)
async def introspect(request: Request) -> Response:
    """RFC 7662. Inactive for unknown, expired, revoked, or other clients' tokens."""
    runtime = runtime_of(request)
    resolver = RESOLVER.of(request)
    _, client, token = await _token_request(request)
    inactive = JSONResponse({"active": False}, headers=NO_STORE)
    async with runtime.database.session(readonly=True) as session:
        if token.count(".") == 2:
            try:
                claims = await VERIFIER.of(request).verify(session, token)
            except InvalidTokenError:
                return inactive
            if claims.get("client_id") != client.client_id:
                return inactive
            if subjects.sector_of(client) is None:
                user = await session.scalar(select(User).where(User.sub == claims["sub"]))
            else:  # a pairwise client's token names the user by its sector's sub
                user_id = await subjects.user_of_subject(session, client, claims["sub"])
                user = await session.get(User, user_id) if user_id is not None else None
            if user is not None and (
                user.disabled_at is not None
                or await merged_away(
                    session, resolver, runtime.settings.enforce_canonical_resolution, user
                )
            ):
                return inactive
            body: dict[str, Any] = {
                "active": True,
                # RFC 9449 §6.2: a DPoP-bound token says so, and which key it is bound to.
                "token_type": "DPoP" if "cnf" in claims else "Bearer",
                **{
                    k: claims[k]
                    for k in (
                        "iss",
                        "sub",
                        "aud",
                        "client_id",
                        "scope",
                        "iat",
                        "exp",
                        "jti",
                        "cnf",
                        "act",  # RFC 8693 §4.1: who acts for the subject
                    )
                    if k in claims
                },
            }
            return JSONResponse(body, headers=NO_STORE)
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == runtime.hasher.hash(token[:512]))
        )
        now = runtime.clock.now()
        if (
            row is None
            or row.oauth_application_id != client.id
            or row.revoked_at is not None
            or row.rotated_at is not None
            or min(row.expires_at, row.family_expires_at) <= now
        ):
            return inactive
        user = await session.get(User, row.user_id)
        if (
            user is None
            or user.disabled_at is not None
            or await merged_away(
                session, resolver, runtime.settings.enforce_canonical_resolution, user
            )
        ):
            return inactive
        sub = await subjects.existing_subject(session, client, user.id, user.sub)
        if sub is None:  # a token issued before the client became pairwise
            async with runtime.database.session() as writer:
                sub = await subjects.subject_for(writer, runtime.clock, client, user.id, user.sub)
        refresh: dict[str, Any] = {
            "active": True,
            "token_type": "refresh_token",
            "client_id": client.client_id,
            "sub": sub,
            "scope": row.scope,
            "iat": int(row.created_at.timestamp()),
            "exp": int(min(row.expires_at, row.family_expires_at).timestamp()),
            "iss": runtime.settings.issuer,
        }
        if row.dpop_jkt is not None:  # a public client's, bound to its DPoP key
            refresh["cnf"] = {"jkt": row.dpop_jkt}
        return JSONResponse(refresh, headers=NO_STORE)


# What authenticates the client at /par, not part of the authorization request.
CLIENT_AUTHENTICATION = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


@router.post(
    "/par",
    status_code=201,
    responses={201: {"description": "the request_uri to send the browser with, and its life"}},
    openapi_extra=api_docs.form(
        *api_docs.AUTHORIZATION_REQUEST,
        "client_secret",
        required=("redirect_uri", "response_type", "scope"),
    ),
)
async def pushed_authorization_request(request: Request) -> Response:
    """RFC 9126: the client pushes its authorization request (authenticated as at
    ``/token``), as parameters or as a signed request object (`request`, RFC 9101); it
    is checked as ``/authorize`` checks it, and its ``request_uri``
    comes back (201), for ``/authorize?client_id=…&request_uri=…``, once, within
    ``expires_in`` seconds. Errors are RFC 6749 §5.2 JSON, never redirects."""
    runtime = runtime_of(request)
    form = await _form(request)
    client = await _authenticated_client(request, form)
    params = Params({k: v for k, v in form.items() if k not in CLIENT_AUTHENTICATION})
    if params.get("client_id", client.client_id) != client.client_id:
        raise InvalidRequestError("client_id is not the authenticated client's")
    params["client_id"] = client.client_id
    if "request_uri" in params:
        raise InvalidRequestError("request_uri cannot be pushed (RFC 9126 §2.1)")
    if "request" in params:
        # RFC 9126 §3: a signed request object; its parameters are the request (RFC
        # 9101 §6.3), and they are what is stored.
        params = await REQUEST_OBJECTS.of(request).parameters(params["request"], client)
    elif client.require_signed_request_object:
        raise InvalidRequestError(
            "this client pushes its authorization requests as signed request objects "
            "(RFC 9101): send them in the request parameter"
        )
    proofs = [value.encode("latin-1") for value in request.headers.getlist("dpop")]
    if proofs:
        # RFC 9449 §10.1: a proof at /par binds the code to its key, as dpop_jkt would.
        dpop = DPOP.of(request)
        try:
            proof = dpop.check(
                proof_header(proofs) or "", method="POST", url=f"{runtime.settings.issuer}/par"
            )
            await dpop.take(proof)
        except ProofRefused as exc:
            raise request_error(exc, dpop) from None
        if params.get("dpop_jkt", proof.jkt) != proof.jkt:
            raise InvalidRequestError("dpop_jkt is not the thumbprint of the DPoP proof's key")
        params["dpop_jkt"] = proof.jkt
    try:
        validate_authorization_request(params, client, production=runtime.settings.is_production)
    except AuthorizeFatal as exc:
        raise InvalidRequestError(exc.description) from None
    except AuthorizeRedirectError as exc:
        raise exc.error from None
    ttl = runtime.settings.par_ttl
    async with runtime.database.session() as session:
        request_uri = await par.push(session, runtime.hasher, runtime.clock, client, params, ttl)
    nonce = DPOP.of(request).nonce_headers() if proofs else {}
    return JSONResponse(
        {"request_uri": request_uri, "expires_in": ttl},
        status_code=201,
        headers={**NO_STORE, **nonce},
    )

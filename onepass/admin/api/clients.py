"""``/api/v1/admin/clients``: the RPs' registrations. Reads need ``clients:read``;
update, rotate the secret, disable, enable and delete are step-up actions
(``clients:write``), each naming the application in its nonce. The changes are
``onepass.playbook.clients``'s, as `onepass clients …` makes them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from pydantic import BaseModel, Field

from onepass.admin.api.base import (
    MAX_TEXT,
    Body,
    Caller,
    ChangeBody,
    Text,
    _json,
    acting,
    answered,
    body_of,
    change,
    router,
    scoped,
)
from onepass.admin.errors import AdminError
from onepass.clients import registry
from onepass.clients.registry import ClientChanges
from onepass.durations import parse_duration
from onepass.playbook import actions
from onepass.playbook import clients as playbook

ClientsReader = Annotated[Caller, Depends(scoped("clients:read"))]
AppRef = Annotated[str, Path(description="the application: client_id or internal id")]
Strings = Annotated[list[Annotated[str, Field(max_length=MAX_TEXT)]], Field(max_length=100)]
MAX_SECRET_GRACE = int(registry.MAX_SECRET_GRACE.total_seconds())


# -- answers (documented in /openapi.json) ----------------------------------------------


class ClientOut(BaseModel):
    """An application as `onepass clients show --json` prints it; never a secret."""

    id: int
    client_id: str
    client_name: str
    client_id_issued_at: int
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    policy_uri: str | None = None
    tos_uri: str | None = None
    grant_types: list[str]
    response_types: list[str]
    scope: str
    token_endpoint_auth_method: str
    id_token_signed_response_alg: str
    first_party: bool
    require_second_factor: bool = Field(
        description="every sign-in to it takes two steps (as acr_values=urn:1pass:acr:mfa)"
    )
    require_pushed_authorization_requests: bool = Field(
        description="its authorization requests only by PAR (RFC 9126)"
    )
    require_signed_request_object: bool = Field(
        False, description="its authorization requests only as signed request objects (RFC 9101)"
    )
    dpop_bound_access_tokens: bool = Field(
        False, description="its access tokens only with a DPoP proof (RFC 9449)"
    )
    profile: str = Field("default", description="default, or fapi2 (FAPI 2.0 Security Profile)")
    jwks: dict[str, Any] | None = Field(
        None, description="private_key_jwt: the client's public JWK set, when inline"
    )
    jwks_uri: str | None = Field(None, description="private_key_jwt: where its JWK set is")
    webhook_url: str | None
    webhook_events: list[str]
    backchannel_logout_uri: str | None = Field(
        None, description="where logout tokens go (OpenID Connect Back-Channel Logout 1.0)"
    )
    backchannel_logout_session_required: bool = Field(
        False, description="every logout token names the session (sid)"
    )
    subject_type: str = Field("public", description="public or pairwise (OpenID Connect Core §8.1)")
    sector_identifier_uri: str | None = Field(
        None, description="pairwise: the JSON array of its redirect URIs; its host is the sector"
    )
    authorization_signed_response_alg: str = Field(
        "RS256", description="what its signed authorization responses (JARM) are signed with"
    )
    # RFC 8707 / RFC 8693
    allowed_resources: list[str] = Field(
        [], description="resource servers it may ask tokens for (RFC 8707)"
    )
    token_exchange_resources: list[str] = Field(
        [], description="resource servers it may exchange a user's token to (RFC 8693)"
    )
    disabled: bool
    disabled_at: datetime | None
    # Dynamic Client Registration (RFC 7591): how the client was registered.
    registered_dynamically: bool = Field(
        False, description="registered at /register (RFC 7591), not by an operator"
    )
    registration_source: str | None = Field(
        None, description="initial_access_token or open (open registration); null: an operator"
    )
    initial_access_token_id: int | None = Field(
        None, description="the initial access token it was registered with"
    )
    previous_secret_expires_at: datetime | None = Field(
        description="when the secret replaced by a rotation with a grace stops verifying"
    )
    created_at: datetime
    updated_at: datetime


class ClientList(BaseModel):
    clients: list[ClientOut]


class UpdatedClient(ClientOut):
    webhook_signing_key: dict[str, Any] | None = Field(
        None,
        description="the first webhook signing key, when this update gave the application "
        "its first webhook URL (its secret shown this once)",
    )


class RotatedSecret(BaseModel):
    client_id: str
    client_secret: str = Field(description="the new secret, shown this once")
    previous_secret_expires_at: datetime | None = Field(
        description="until when the old secret verifies too (null: it stopped at once)"
    )


class DeletedClient(BaseModel):
    id: int
    client_id: str
    deleted: bool


def _ok(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "description": "done"}}


# -- request bodies ---------------------------------------------------------------------


class UpdateClientBody(Body):
    """Fields left out stay as they are; lists given replace, except the add/remove
    pairs of URIs. ``webhook_url: ""`` removes the webhook URL, ``policy_uri: ""`` and
    ``tos_uri: ""`` the privacy policy and terms, ``backchannel_logout_uri: ""`` the
    back-channel logout URI."""

    client_name: Text = None
    add_redirect_uris: Strings = []
    remove_redirect_uris: Strings = []
    add_post_logout_redirect_uris: Strings = []
    remove_post_logout_redirect_uris: Strings = []
    policy_uri: Text = None
    tos_uri: Text = None
    grant_types: Strings | None = None
    scopes: Strings | None = None
    token_endpoint_auth_method: Text = None
    first_party: bool | None = None
    require_second_factor: bool | None = None
    require_pushed_authorization_requests: bool | None = None
    require_signed_request_object: bool | None = None
    id_token_signed_response_alg: Text = None
    profile: Text = Field(
        None,
        description="fapi2 (what the profile demands is set, or the update refused) or "
        "default (leaves the flags fapi2 set as they are)",
    )
    jwks: dict[str, Any] | None = None
    jwks_uri: Text = None
    dpop_bound_access_tokens: bool | None = None
    webhook_url: Text = None
    webhook_events: Strings | None = None
    backchannel_logout_uri: Text = None
    backchannel_logout_session_required: bool | None = None
    subject_type: Text = None
    sector_identifier_uri: Text = None
    authorization_signed_response_alg: Text = Field(
        None, description='JARM: RS256, PS256, ES256 or EdDSA ("" returns to the default)'
    )
    # RFC 8707 / RFC 8693: resource server identifiers
    add_resources: Strings = []
    remove_resources: Strings = []
    add_token_exchange_resources: Strings = []
    remove_token_exchange_resources: Strings = []
    action_request_nonce: Text = None

    def changes(self) -> ClientChanges:
        return ClientChanges(
            name=self.client_name,
            add_redirect_uris=tuple(self.add_redirect_uris),
            remove_redirect_uris=tuple(self.remove_redirect_uris),
            add_post_logout_redirect_uris=tuple(self.add_post_logout_redirect_uris),
            remove_post_logout_redirect_uris=tuple(self.remove_post_logout_redirect_uris),
            policy_uri=self.policy_uri,
            tos_uri=self.tos_uri,
            grant_types=None if self.grant_types is None else tuple(self.grant_types),
            scopes=None if self.scopes is None else tuple(self.scopes),
            token_endpoint_auth_method=self.token_endpoint_auth_method,
            first_party=self.first_party,
            require_second_factor=self.require_second_factor,
            require_pushed_authorization_requests=self.require_pushed_authorization_requests,
            require_signed_request_object=self.require_signed_request_object,
            id_token_signed_response_alg=self.id_token_signed_response_alg,
            profile=self.profile,
            jwks=self.jwks,
            jwks_uri=self.jwks_uri,
            dpop_bound_access_tokens=self.dpop_bound_access_tokens,
            webhook_url=self.webhook_url,
            webhook_events=None if self.webhook_events is None else tuple(self.webhook_events),
            backchannel_logout_uri=self.backchannel_logout_uri,
            backchannel_logout_session_required=self.backchannel_logout_session_required,
            subject_type=self.subject_type,
            sector_identifier_uri=self.sector_identifier_uri,
            authorization_signed_response_alg=self.authorization_signed_response_alg,
            add_resources=tuple(self.add_resources),
            remove_resources=tuple(self.remove_resources),
            add_token_exchange_resources=tuple(self.add_token_exchange_resources),
            remove_token_exchange_resources=tuple(self.remove_token_exchange_resources),
        )


class RotateSecretBody(Body):
    grace: Text = Field(
        None, description="how long the old secret verifies too: 24h, 30m, 0 (default), ≤ 30d"
    )
    action_request_nonce: Text = None


# -- reads ------------------------------------------------------------------------------


@router.get("/clients", name="clients", responses=_ok(ClientList))
async def list_clients(who: ClientsReader) -> Response:
    """Every application, oldest first."""
    async with who.runtime.database.session(readonly=True) as session:
        rows = [registry.describe_client(c) for c in await registry.list_clients(session)]
    return _json({"clients": rows})


@router.get("/clients/{app}", name="client", responses=_ok(ClientOut))
async def show_client(who: ClientsReader, app: AppRef) -> Response:
    """One application, by client_id or id."""
    with answered():
        async with who.runtime.database.session(readonly=True) as session:
            return _json(registry.describe_client(await registry.find_client(session, app)))


# -- changes (step-up) -----------------------------------------------------------------


@router.post(
    "/clients/{app}/update",
    name="update_client",
    openapi_extra=UpdateClientBody.openapi(),
    responses=_ok(UpdatedClient),
)
async def post_update(
    request: Request, who: Annotated[Caller, acting(actions.UPDATE_CLIENT)], app: AppRef
) -> Response:
    """Change a registration under the rules of its creation (step-up); the RP gets
    ``client.updated`` if it subscribed."""
    body = await body_of(request, UpdateClientBody)
    changes = body.changes()
    if changes == ClientChanges():
        raise AdminError("invalid_request", "nothing to change: give at least one field")
    return await change(
        who,
        actions.UPDATE_CLIENT,
        app,
        body.action_request_nonce,
        lambda who: playbook.update(who.runtime, who.actor, app, changes),
    )


@router.post(
    "/clients/{app}/rotate_secret",
    name="rotate_client_secret",
    openapi_extra=RotateSecretBody.openapi(),
    responses=_ok(RotatedSecret),
)
async def post_rotate_secret(
    request: Request, who: Annotated[Caller, acting(actions.ROTATE_CLIENT_SECRET)], app: AppRef
) -> Response:
    """A new client secret, in the answer this once (step-up); the old one verifies
    for ``grace`` too."""
    body = await body_of(request, RotateSecretBody)
    try:
        seconds = parse_duration(body.grace or "0")
    except ValueError as exc:
        raise AdminError("invalid_request", f'"grace": {exc}') from None
    if seconds > MAX_SECRET_GRACE:
        raise AdminError("invalid_request", '"grace" is at most 30d')
    grace = timedelta(seconds=seconds)
    return await change(
        who,
        actions.ROTATE_CLIENT_SECRET,
        app,
        body.action_request_nonce,
        lambda who: playbook.rotate_secret(who.runtime, who.actor, app, grace=grace),
    )


@router.post(
    "/clients/{app}/disable",
    name="disable_client",
    openapi_extra=ChangeBody.openapi(),
    responses=_ok(ClientOut),
)
async def post_disable(
    request: Request, who: Annotated[Caller, acting(actions.DISABLE_CLIENT)], app: AppRef
) -> Response:
    """Disable an application (step-up): invalid_client everywhere, its tokens refused,
    its webhooks held (pending) until it is enabled."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.DISABLE_CLIENT,
        app,
        body.action_request_nonce,
        lambda who: playbook.set_disabled(who.runtime, who.actor, app, disabled=True),
    )


@router.post(
    "/clients/{app}/enable",
    name="enable_client",
    openapi_extra=ChangeBody.openapi(),
    responses=_ok(ClientOut),
)
async def post_enable(
    request: Request, who: Annotated[Caller, acting(actions.ENABLE_CLIENT)], app: AppRef
) -> Response:
    """Enable a disabled application (step-up); its held webhooks are delivered."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.ENABLE_CLIENT,
        app,
        body.action_request_nonce,
        lambda who: playbook.set_disabled(who.runtime, who.actor, app, disabled=False),
    )


@router.post(
    "/clients/{app}/delete",
    name="delete_client",
    openapi_extra=ChangeBody.openapi(),
    responses=_ok(DeletedClient),
)
async def post_delete(
    request: Request, who: Annotated[Caller, acting(actions.DELETE_CLIENT)], app: AppRef
) -> Response:
    """Delete an application (step-up): its tokens are refused everywhere."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.DELETE_CLIENT,
        app,
        body.action_request_nonce,
        lambda who: playbook.delete(who.runtime, who.actor, app),
    )

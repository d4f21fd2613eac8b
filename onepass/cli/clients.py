from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import typer

from onepass.cli import registration as registration_cli
from onepass.cli.common import JsonOption, fail, print_json, print_table, run
from onepass.clients import registry as service
from onepass.clients.registry import ClientChanges
from onepass.durations import parse_duration
from onepass.operators.audit import Actor
from onepass.playbook import clients as playbook
from onepass.runtime import Runtime

app = typer.Typer(help="OAuth applications (relying parties).", no_args_is_help=True)
# Dynamic Client Registration (RFC 7591): who may register clients at /register.
app.add_typer(registration_cli.app, name="initial-token")

LIST_COLUMNS = (
    "id",
    "client_id",
    "client_name",
    "token_endpoint_auth_method",
    "grant_types",
    "disabled",
    "created_at",
)


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Display name of the application."),
    redirect_uri: list[str] = typer.Option(
        [], "--redirect-uri", help="Allowed redirect URI (repeatable)."
    ),
    post_logout_redirect_uri: list[str] = typer.Option(
        [], "--post-logout-redirect-uri", help="Allowed post-logout redirect URI (repeatable)."
    ),
    policy_uri: str | None = typer.Option(
        None, "--policy-uri", help="The application's privacy policy (linked from consent)."
    ),
    tos_uri: str | None = typer.Option(
        None, "--tos-uri", help="The application's terms of service (linked from consent)."
    ),
    grant_type: list[str] = typer.Option(
        [],
        "--grant-type",
        help="authorization_code, refresh_token, client_credentials or "
        "urn:ietf:params:oauth:grant-type:device_code (repeatable; default "
        "with --redirect-uri: authorization_code and refresh_token).",
    ),
    scope: list[str] = typer.Option(
        [], "--scope", help="Scope the client may request (repeatable)."
    ),
    public: bool = typer.Option(
        False, "--public", help="A public client (no secret; PKCE required)."
    ),
    auth_method: str | None = typer.Option(
        None,
        "--token-endpoint-auth-method",
        help="client_secret_basic (default), client_secret_post, private_key_jwt (with "
        "--jwks-file or --jwks-uri), or none.",
    ),
    id_token_alg: str | None = typer.Option(
        None,
        "--id-token-alg",
        help="How its ID tokens are signed: RS256 (default), PS256, ES256 or EdDSA, one of "
        "ONEPASS_SIGNING_ALGS (fapi2: ES256 by default, never RS256).",
    ),
    first_party: bool = typer.Option(False, "--first-party", help="Skip the consent screen."),
    require_second_factor: bool = typer.Option(
        False,
        "--require-second-factor",
        help="Every sign-in to it takes two steps (password and code or passkey, or a "
        "passkey), as if it always sent acr_values=urn:1pass:acr:mfa.",
    ),
    jwks_file: Path | None = typer.Option(
        None,
        "--jwks-file",
        help="private_key_jwt: a JSON file with the client's public JWK set.",
    ),
    jwks_uri: str | None = typer.Option(
        None, "--jwks-uri", help="private_key_jwt: where 1pass fetches the client's JWK set."
    ),
    require_par: bool = typer.Option(
        False,
        "--require-par",
        help="Its authorization requests only by PAR (RFC 9126): /authorize takes a "
        "request_uri from /par.",
    ),
    require_signed_request_object: bool = typer.Option(
        False,
        "--require-signed-request-object/--no-require-signed-request-object",
        help="Its authorization requests only as signed request objects (RFC 9101), by "
        "value at /authorize or pushed to /par; signed with its private_key_jwt keys.",
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="default, or fapi2 (FAPI 2.0 Security Profile: private_key_jwt, PAR, PKCE "
        "S256, DPoP-bound tokens, https redirect URIs, ES256/PS256/EdDSA ID tokens, "
        "60-second codes: set, or refused with what to give).",
    ),
    dpop_bound: bool = typer.Option(
        False,
        "--dpop-bound-access-tokens/--no-dpop-bound-access-tokens",
        help="Its tokens only with a DPoP proof (RFC 9449): a token request without one "
        "is refused.",
    ),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", help="Where webhooks are delivered."
    ),
    event: list[str] = typer.Option(
        [], "--event", help="Webhook event type to subscribe to (repeatable; none: every type)."
    ),
    webhook_scheme: str = typer.Option(
        "v1",
        "--webhook-scheme",
        help="Webhook signatures: v1 (HMAC-SHA256 secret) or v1a (Ed25519, the RP holds a public key).",
    ),
    backchannel_logout_uri: str | None = typer.Option(
        None,
        "--backchannel-logout-uri",
        help="Where 1pass POSTs a logout token when a session of a user of it ends "
        "(OpenID Connect Back-Channel Logout; https, the webhook URLs' rules).",
    ),
    backchannel_logout_session_required: bool = typer.Option(
        False,
        "--backchannel-logout-session-required",
        help="Every logout token names the session (sid): one per session it had.",
    ),
    subject_type: str = typer.Option(
        "public",
        "--subject-type",
        help="public (every RP sees the same sub) or pairwise (a sub of its own sector: "
        "OpenID Connect Core §8.1).",
    ),
    sector_identifier_uri: str | None = typer.Option(
        None,
        "--sector-identifier-uri",
        help="pairwise: an https URL serving a JSON array of the client's redirect URIs; "
        "its host is the sector (needed when the redirect URIs are on several hosts).",
    ),
    jarm_alg: str | None = typer.Option(
        None,
        "--authorization-signed-response-alg",
        help="How its signed authorization responses (JARM, response_mode=jwt...) are "
        "signed: RS256 (default), PS256, ES256 or EdDSA, one of ONEPASS_SIGNING_ALGS "
        "(fapi2: its ID token algorithm by default, never RS256).",
    ),
    # Resource Indicators (RFC 8707) and Token Exchange (RFC 8693).
    allow_resource: list[str] = typer.Option(
        [],
        "--allow-resource",
        help="A resource server (onepass resources create) it may ask tokens for (repeatable).",
    ),
    token_exchange_resource: list[str] = typer.Option(
        [],
        "--token-exchange-resource",
        help="A resource server it may exchange a user's access token to (RFC 8693; "
        "repeatable; none: exchange refused).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Register an application; its secret (and webhook signing key) is printed this once."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.create(
            runtime,
            Actor.cli(),
            webhook_scheme=webhook_scheme,
            name=name,
            redirect_uris=redirect_uri,
            post_logout_redirect_uris=post_logout_redirect_uri,
            policy_uri=policy_uri,
            tos_uri=tos_uri,
            grant_types=grant_type or None,
            scope=" ".join(scope) if scope else None,
            public=public,
            token_endpoint_auth_method=auth_method,
            id_token_signed_response_alg=id_token_alg,
            first_party=first_party,
            webhook_url=webhook_url,
            webhook_events=event,
            require_second_factor=require_second_factor,
            require_pushed_authorization_requests=require_par,
            jwks=read_jwks(jwks_file),
            jwks_uri=jwks_uri,
            require_signed_request_object=require_signed_request_object,
            profile=profile,
            backchannel_logout_uri=backchannel_logout_uri,
            backchannel_logout_session_required=backchannel_logout_session_required,
            dpop_bound_access_tokens=dpop_bound,
            subject_type=subject_type,
            sector_identifier_uri=sector_identifier_uri,
            authorization_signed_response_alg=jarm_alg,
            allowed_resources=allow_resource,
            token_exchange_resources=token_exchange_resource,
        )

    data = run(action)
    if as_json:
        print_json(data)
        return
    typer.echo(f"client_id:     {data['client_id']}")
    if "client_secret" in data:
        typer.echo(f"client_secret: {data['client_secret']}")
        typer.echo("The secret is shown this once; store it now.")
    if "webhook_signing_key" in data:
        key = data["webhook_signing_key"]
        typer.echo(f"webhook kid:   {key['kid']}")
        typer.echo(f"webhook key:   {key.get('secret') or key.get('public_key')}")
        typer.echo("The webhook signing secret is shown this once too.")


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List every application."""

    async def action(runtime: Runtime) -> list[dict[str, Any]]:
        async with runtime.database.session() as session:
            return [service.describe_client(c) for c in await service.list_clients(session)]

    rows = run(action)
    if as_json:
        print_json(rows)
    else:
        print_table(rows, LIST_COLUMNS, title="applications")


@app.command("show")
def show(app_id: str = typer.Argument(..., metavar="APP_ID"), as_json: bool = JsonOption) -> None:
    """Show one application (by client_id or id)."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            return service.describe_client(await service.find_client(session, app_id))

    data = run(action)
    if as_json:
        print_json(data)
    else:
        print_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"))


@app.command("update")
def update(
    app_id: str = typer.Argument(..., metavar="APP_ID"),
    name: str | None = typer.Option(None, "--name", help="New display name."),
    add_redirect_uri: list[str] = typer.Option(
        [], "--add-redirect-uri", help="Allow this redirect URI too (repeatable)."
    ),
    remove_redirect_uri: list[str] = typer.Option(
        [], "--remove-redirect-uri", help="Stop allowing this redirect URI (repeatable)."
    ),
    add_post_logout_redirect_uri: list[str] = typer.Option(
        [], "--add-post-logout-redirect-uri", help="Allow this post-logout redirect URI too."
    ),
    remove_post_logout_redirect_uri: list[str] = typer.Option(
        [], "--remove-post-logout-redirect-uri", help="Stop allowing this post-logout URI."
    ),
    policy_uri: str | None = typer.Option(
        None, "--policy-uri", help='The privacy policy linked from consent ("" removes it).'
    ),
    tos_uri: str | None = typer.Option(
        None, "--tos-uri", help='The terms of service linked from consent ("" removes it).'
    ),
    grant_type: list[str] = typer.Option(
        [], "--grant-type", help="Grant types (repeatable; replaces the current ones)."
    ),
    scope: list[str] = typer.Option(
        [], "--scope", help="Scopes the client may request (repeatable; replaces)."
    ),
    auth_method: str | None = typer.Option(
        None,
        "--token-endpoint-auth-method",
        help="client_secret_basic, client_secret_post or private_key_jwt (a confidential "
        "client stays one).",
    ),
    first_party: bool | None = typer.Option(
        None, "--first-party/--no-first-party", help="Skip the consent screen, or not."
    ),
    require_second_factor: bool | None = typer.Option(
        None,
        "--require-second-factor/--no-require-second-factor",
        help="Every sign-in to it takes two steps, or not.",
    ),
    jwks_file: Path | None = typer.Option(
        None,
        "--jwks-file",
        help="private_key_jwt: the client's public JWK set, replacing its keys.",
    ),
    jwks_uri: str | None = typer.Option(
        None, "--jwks-uri", help='private_key_jwt: where its JWK set is ("" removes it).'
    ),
    require_par: bool | None = typer.Option(
        None,
        "--require-par/--no-require-par",
        help="Its authorization requests only by PAR (RFC 9126), or not.",
    ),
    require_signed_request_object: bool | None = typer.Option(
        None,
        "--require-signed-request-object/--no-require-signed-request-object",
        help="Its authorization requests only as signed request objects (RFC 9101), or not.",
    ),
    id_token_alg: str | None = typer.Option(
        None,
        "--id-token-alg",
        help="Sign its ID tokens with RS256, PS256, ES256 or EdDSA (one of ONEPASS_SIGNING_ALGS).",
    ),
    profile: str | None = typer.Option(
        None,
        "--profile",
        help="fapi2 (FAPI 2.0 Security Profile: what it demands is set, or refused with "
        "what to change) or default (leaves PAR and DPoP on: turn them off yourself).",
    ),
    dpop_bound: bool | None = typer.Option(
        None,
        "--dpop-bound-access-tokens/--no-dpop-bound-access-tokens",
        help="Its tokens only with a DPoP proof (RFC 9449), or not.",
    ),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", help='Where webhooks are delivered ("" removes it).'
    ),
    event: list[str] = typer.Option(
        [], "--event", help="Webhook event types subscribed to (repeatable; replaces)."
    ),
    backchannel_logout_uri: str | None = typer.Option(
        None,
        "--backchannel-logout-uri",
        help="Where 1pass POSTs logout tokens (OpenID Connect Back-Channel Logout).",
    ),
    no_backchannel_logout_uri: bool = typer.Option(
        False, "--no-backchannel-logout-uri", help="Send it no logout token any more."
    ),
    backchannel_logout_session_required: bool | None = typer.Option(
        None,
        "--backchannel-logout-session-required/--no-backchannel-logout-session-required",
        help="Every logout token names the session (sid), or not.",
    ),
    subject_type: str | None = typer.Option(
        None,
        "--subject-type",
        help="public or pairwise (OpenID Connect Core §8.1): the sub its users have changes.",
    ),
    sector_identifier_uri: str | None = typer.Option(
        None,
        "--sector-identifier-uri",
        help='pairwise: an https URL serving a JSON array of its redirect URIs ("" removes it).',
    ),
    jarm_alg: str | None = typer.Option(
        None,
        "--authorization-signed-response-alg",
        help='Sign its JARM responses with RS256, PS256, ES256 or EdDSA ("" returns to '
        "the default).",
    ),
    # Resource Indicators (RFC 8707) and Token Exchange (RFC 8693).
    allow_resource: list[str] = typer.Option(
        [], "--allow-resource", help="Let it ask tokens for this resource server (repeatable)."
    ),
    remove_resource: list[str] = typer.Option(
        [], "--remove-resource", help="Stop letting it ask tokens for this resource (repeatable)."
    ),
    token_exchange_resource: list[str] = typer.Option(
        [],
        "--token-exchange-resource",
        help="Let it exchange a user's access token to this resource server (RFC 8693; "
        "repeatable).",
    ),
    remove_token_exchange_resource: list[str] = typer.Option(
        [],
        "--remove-token-exchange-resource",
        help="Stop letting it exchange to this resource (none left: exchange refused).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Change an application's registration; it keeps its client_id and secret."""
    if no_backchannel_logout_uri and backchannel_logout_uri is not None:
        fail("give --backchannel-logout-uri or --no-backchannel-logout-uri, not both", 2)
    changes = ClientChanges(
        name=name,
        add_redirect_uris=tuple(add_redirect_uri),
        remove_redirect_uris=tuple(remove_redirect_uri),
        add_post_logout_redirect_uris=tuple(add_post_logout_redirect_uri),
        remove_post_logout_redirect_uris=tuple(remove_post_logout_redirect_uri),
        policy_uri=policy_uri,
        tos_uri=tos_uri,
        grant_types=tuple(grant_type) if grant_type else None,
        scopes=tuple(scope) if scope else None,
        token_endpoint_auth_method=auth_method,
        first_party=first_party,
        webhook_url=webhook_url,
        webhook_events=tuple(event) if event else None,
        require_second_factor=require_second_factor,
        require_pushed_authorization_requests=require_par,
        jwks=read_jwks(jwks_file),
        jwks_uri=jwks_uri,
        id_token_signed_response_alg=id_token_alg,
        require_signed_request_object=require_signed_request_object,
        profile=profile,
        backchannel_logout_uri="" if no_backchannel_logout_uri else backchannel_logout_uri,
        backchannel_logout_session_required=backchannel_logout_session_required,
        dpop_bound_access_tokens=dpop_bound,
        subject_type=subject_type,
        sector_identifier_uri=sector_identifier_uri,
        authorization_signed_response_alg=jarm_alg,
        add_resources=tuple(allow_resource),
        remove_resources=tuple(remove_resource),
        add_token_exchange_resources=tuple(token_exchange_resource),
        remove_token_exchange_resources=tuple(remove_token_exchange_resource),
    )
    if changes == ClientChanges():
        fail("nothing to change: give at least one option (see --help)", 2)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.update(runtime, Actor.cli(), app_id, changes)

    data = run(action)
    if profile == "default":
        typer.echo(
            "Profile default: the flags fapi2 set stay as they are "
            f"(require_pushed_authorization_requests: "
            f"{data['require_pushed_authorization_requests']}, dpop_bound_access_tokens: "
            f"{data['dpop_bound_access_tokens']}); turn them off with --no-require-par and "
            "the DPoP option if the application no longer needs them.",
            err=True,
        )
    if as_json:
        print_json(data)
        return
    print_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"))


def read_jwks(path: Path | None) -> dict[str, Any] | None:
    """The JWK set in ``path`` (a one-line error if it cannot be read as JSON)."""
    if path is None:
        return None
    try:
        data = orjson.loads(path.read_bytes()[: 64 * 1024 + 1])
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
    except orjson.JSONDecodeError:
        fail(f'{path} is not JSON: give a JWK set, {{"keys": [...]}}', 2)
    if not isinstance(data, dict):
        fail(f'{path} is not a JWK set: {{"keys": [...]}}', 2)
    return data


@app.command("rotate-secret")
def rotate_secret(
    app_id: str = typer.Argument(..., metavar="APP_ID"),
    grace: str = typer.Option(
        "0",
        "--grace",
        help="How long the old secret keeps working too (e.g. 24h; at most 30d). "
        "Default 0: it stops at once, as after a leak.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Replace the client secret; the old one works for the grace, then on no server."""
    try:
        seconds = parse_duration(grace)
    except ValueError as exc:
        fail(f"--grace: {exc}", 2)
    if seconds > service.MAX_SECRET_GRACE.total_seconds():
        fail("--grace: at most 30d", 2)
    grace_period = timedelta(seconds=seconds)

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.rotate_secret(runtime, Actor.cli(), app_id, grace=grace_period)

    data = run(action)
    if as_json:
        print_json(data)
        return
    typer.echo(f"client_secret: {data['client_secret']}")
    if data["previous_secret_expires_at"] is not None:
        typer.echo(
            "The old secret keeps working until "
            f"{data['previous_secret_expires_at']:%Y-%m-%d %H:%M:%SZ}."
        )
    else:
        typer.echo("The old secret no longer works (every server within the client cache TTL).")


def _toggle(app_id: str, *, disabled: bool, as_json: bool) -> None:
    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.set_disabled(runtime, Actor.cli(), app_id, disabled=disabled)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"{data['client_id']}: {'disabled' if data['disabled'] else 'enabled'}")


@app.command("disable")
def disable(
    app_id: str = typer.Argument(..., metavar="APP_ID"), as_json: bool = JsonOption
) -> None:
    """Disable an application: it gets invalid_client everywhere, its tokens are refused,
    its webhooks wait until it is enabled."""
    _toggle(app_id, disabled=True, as_json=as_json)


@app.command("enable")
def enable(app_id: str = typer.Argument(..., metavar="APP_ID"), as_json: bool = JsonOption) -> None:
    """Enable a disabled application; its waiting webhooks are delivered."""
    _toggle(app_id, disabled=False, as_json=as_json)


@app.command("delete")
def delete(app_id: str = typer.Argument(..., metavar="APP_ID"), as_json: bool = JsonOption) -> None:
    """Delete an application; its tokens are refused on every server within seconds."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        return await playbook.delete(runtime, Actor.cli(), app_id)

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"deleted {data['client_id']}")

from __future__ import annotations

from typing import Any

import typer

from onepass.cli.common import JsonOption, print_json, print_table, run
from onepass.clients import registry as service
from onepass.clients.models import OAuthApplication
from onepass.runtime import Runtime
from onepass.webhooks import keys as webhook_keys

app = typer.Typer(help="OAuth applications (relying parties).", no_args_is_help=True)

LIST_COLUMNS = (
    "id",
    "client_id",
    "client_name",
    "token_endpoint_auth_method",
    "grant_types",
    "created_at",
)


def describe(client: OAuthApplication) -> dict[str, Any]:
    """RFC 7591 field names, plus our own ``id`` and webhook settings; never the secret hash."""
    return {
        "id": client.id,
        "client_id": client.client_id,
        "client_name": client.client_name,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "grant_types": client.grant_types,
        "response_types": client.response_types,
        "scope": client.scope,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "first_party": client.first_party,
        "webhook_url": client.webhook_url,
        "webhook_events": client.webhook_events,
        "created_at": client.created_at,
        "updated_at": client.updated_at,
    }


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Display name of the application."),
    redirect_uri: list[str] = typer.Option(
        [], "--redirect-uri", help="Allowed redirect URI (repeatable)."
    ),
    post_logout_redirect_uri: list[str] = typer.Option(
        [], "--post-logout-redirect-uri", help="Allowed post-logout redirect URI (repeatable)."
    ),
    grant_type: list[str] = typer.Option(
        [],
        "--grant-type",
        help="authorization_code, refresh_token or client_credentials (repeatable).",
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
        help="client_secret_basic (default), client_secret_post, or none.",
    ),
    id_token_alg: str = typer.Option("RS256", "--id-token-alg", help="RS256 or ES256."),
    first_party: bool = typer.Option(False, "--first-party", help="Skip the consent screen."),
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
    as_json: bool = JsonOption,
) -> None:
    """Register an application; its secret (and webhook signing key) is printed this once."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            new = await service.create_client(
                session,
                runtime.hasher,
                runtime.clock,
                name=name,
                redirect_uris=redirect_uri,
                post_logout_redirect_uris=post_logout_redirect_uri,
                grant_types=grant_type or None,
                scope=" ".join(scope) if scope else None,
                public=public,
                token_endpoint_auth_method=auth_method,
                id_token_signed_response_alg=id_token_alg,
                first_party=first_party,
                webhook_url=webhook_url,
                webhook_events=event,
                production=runtime.settings.is_production,
            )
            # In the same transaction: a refused webhook setting creates nothing.
            signing_key = await webhook_keys.setup_application(
                session,
                runtime.box,
                runtime.clock,
                new.application,
                scheme=webhook_scheme,
                production=runtime.settings.is_production,
                allow_private=runtime.settings.webhook_allow_private_targets,
            )
            data = describe(new.application)
        if new.client_secret is not None:
            data["client_secret"] = new.client_secret
            data["client_secret_expires_at"] = 0
        if signing_key is not None:
            data["webhook_signing_key"] = signing_key.as_json()
        return data

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
            return [describe(c) for c in await service.list_clients(session)]

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
            return describe(await service.find_client(session, app_id))

    data = run(action)
    if as_json:
        print_json(data)
    else:
        print_table([{"field": k, "value": v} for k, v in data.items()], ("field", "value"))


@app.command("rotate-secret")
def rotate_secret(
    app_id: str = typer.Argument(..., metavar="APP_ID"), as_json: bool = JsonOption
) -> None:
    """Replace the client secret; the old one stops working on every server within seconds."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            client, secret = await service.rotate_secret(
                session, runtime.hasher, runtime.clock, app_id
            )
            return {"client_id": client.client_id, "client_secret": secret}

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"client_secret: {data['client_secret']}")


@app.command("delete")
def delete(app_id: str = typer.Argument(..., metavar="APP_ID"), as_json: bool = JsonOption) -> None:
    """Delete an application; its tokens can no longer be obtained within seconds."""

    async def action(runtime: Runtime) -> dict[str, Any]:
        async with runtime.database.session() as session:
            client = await service.delete_client(session, app_id)
            return {"id": client.id, "client_id": client.client_id, "deleted": True}

    data = run(action)
    if as_json:
        print_json(data)
    else:
        typer.echo(f"deleted {data['client_id']}")

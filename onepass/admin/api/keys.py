"""``/api/v1/admin``: rotate or revoke (compromise) an RP's webhook key; rotate the JWKS."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import Request, Response
from pydantic import Field

from onepass.admin.api.base import (
    MAX_GRACE,
    Body,
    Caller,
    ChangeBody,
    Text,
    acting,
    body_of,
    change,
    router,
)
from onepass.admin.errors import AdminError
from onepass.durations import parse_duration
from onepass.playbook import actions, keys

# -- keys -----------------------------------------------------------------------------


class RotateWebhookKeyBody(Body):
    grace: Text = None
    scheme: Literal["v1", "v1a"] | None = None
    action_request_nonce: Text = None


class RotateSigningKeysBody(Body):
    force: bool = False
    # Only these algorithms' keys (RS256, PS256, ES256, EdDSA); none: every one of
    # ONEPASS_SIGNING_ALGS.
    algs: list[Annotated[str, Field(max_length=16)]] = Field(default_factory=list, max_length=4)
    action_request_nonce: Text = None


@router.post(
    "/applications/{app}/webhook_keys/rotate",
    name="rotate_webhook_key",
    openapi_extra=RotateWebhookKeyBody.openapi(),
)
async def post_rotate_webhook_key(
    request: Request, who: Annotated[Caller, acting(actions.ROTATE_WEBHOOK_KEY)], app: str
) -> Response:
    """A new webhook signing key; the current one keeps signing for ``grace`` (step-up).
    The new secret is in the answer, this once."""
    body = await body_of(request, RotateWebhookKeyBody)
    try:
        seconds = parse_duration(body.grace or "72h")
    except ValueError as exc:
        raise AdminError("invalid_request", f'"grace": {exc}') from None
    if seconds > MAX_GRACE:  # a timedelta, then a date, overflows past a few thousand years
        raise AdminError("invalid_request", '"grace" is at most 365d')
    grace = timedelta(seconds=seconds)
    scheme = body.scheme
    return await change(
        who,
        actions.ROTATE_WEBHOOK_KEY,
        app,
        body.action_request_nonce,
        lambda who: keys.rotate_webhook_key(
            who.runtime, who.actor, app, grace=grace, scheme=scheme
        ),
    )


@router.post(
    "/applications/{app}/webhook_keys/{kid}/compromise",
    name="compromise_webhook_key",
    openapi_extra=ChangeBody.openapi(),
)
async def post_compromise_webhook_key(
    request: Request,
    who: Annotated[Caller, acting(actions.COMPROMISE_WEBHOOK_KEY)],
    app: str,
    kid: str,
) -> Response:
    """Emergency: revoke a leaked webhook key, issue a new one, re-stamp undelivered
    entries, tell the RP (step-up). The new secret is in the answer, this once."""
    body = await body_of(request, ChangeBody)
    return await change(
        who,
        actions.COMPROMISE_WEBHOOK_KEY,
        f"{app}/{kid}",
        body.action_request_nonce,
        lambda who: keys.compromise_webhook_key(who.runtime, who.actor, app, kid),
    )


@router.post(
    "/signing_keys/rotate",
    name="rotate_signing_keys",
    openapi_extra=RotateSigningKeysBody.openapi(),
)
async def post_rotate_signing_keys(
    request: Request, who: Annotated[Caller, acting(actions.ROTATE_SIGNING_KEYS)]
) -> Response:
    """Rotate the JWKS signing keys (step-up); ``"force": true`` as `keys rotate --force`,
    ``"algs": ["PS256"]`` as `keys rotate --alg PS256`."""
    body = await body_of(request, RotateSigningKeysBody)
    force, algs = body.force, body.algs
    return await change(
        who,
        actions.ROTATE_SIGNING_KEYS,
        "jwks",
        body.action_request_nonce,
        lambda who: keys.rotate_signing_keys(who.runtime, who.actor, force=force, algs=algs),
    )

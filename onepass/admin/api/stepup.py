"""``/api/v1/admin``: who the token is, the actions that need a step-up, the step-up."""

from __future__ import annotations

from fastapi import Request, Response

from onepass.admin.api.base import (
    AnyCaller,
    Body,
    RequiredText,
    _json,
    body_of,
    check_scope,
    router,
)
from onepass.admin.errors import refusal
from onepass.playbook import actions
from onepass.refusals import Refusal

# -- who, what ------------------------------------------------------------------------


class StepUpBody(Body):
    action: RequiredText
    target: RequiredText
    totp_code: RequiredText


@router.get("/whoami")
async def whoami(who: AnyCaller) -> Response:
    """The token's administrator, scopes and expiry (any valid token)."""
    return _json(
        {
            "email": who.who.user.email,
            "scopes": who.who.token.scopes,
            "expires_at": who.who.token.expires_at,
            "totp_enrolled": who.who.user.totp_secret_encrypted is not None,
        }
    )


@router.get("/actions", name="actions")
async def list_actions(_who: AnyCaller) -> Response:
    """The actions that need a step-up, the scope each needs and what its target is."""
    return _json(
        [
            {"action": name, "scope": spec.scope, "target": spec.target}
            for name, spec in actions.ACTIONS.items()
        ]
    )


@router.post(
    "/step-up",
    name="step_up",
    openapi_extra=StepUpBody.openapi(),
)
async def post_step_up(request: Request, who: AnyCaller) -> Response:
    """A TOTP code for one action on one target → ``action_request_nonce``."""
    body = await body_of(request, StepUpBody)
    action, target, code = body.action, body.target, body.totp_code
    spec = actions.ACTIONS.get(action)
    if spec is not None:
        await check_scope(request, who, spec.scope)
    runtime = who.runtime
    canonical: str | None = None
    try:
        async with runtime.database.session() as session:
            canonical = await actions.canonical_target(session, action, target)
            nonce, expires_at = await actions.grant_step_up(
                session,
                runtime,
                who.actor,
                who.who.user.id,
                token_id=who.who.token.id,
                action=action,
                target=canonical,
                code=code,
            )
    except actions.UnknownAction as exc:
        raise refusal(exc) from None  # an unknown action: 400, not audited
    except Refusal as exc:
        error = refusal(exc)
        await who.refused(f"step_up:{action}", canonical or target[:300], error)
        raise error from None
    return _json(
        {
            "action_request_nonce": nonce,
            "action": action,
            "target": canonical,
            "expires_at": expires_at,
        }
    )

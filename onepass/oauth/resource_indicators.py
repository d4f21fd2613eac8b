"""Resource Indicators for OAuth 2.0 (RFC 8707).

A client names the protected resource it wants a token for with ``resource`` at
``/authorize`` (or ``/par``, or inside a signed request object) and at ``/token``. The
resource must be a registered resource server (``onepass.clients.resources``) that the
client is allowed (``allowed_resources``); anything else is ``invalid_target`` (§2).
1pass issues a token for one audience: a request names at most one resource.

The code and the refresh token remember the resource they were granted for; at
``/token`` a ``resource`` may only repeat it (§2.2: narrow, never widen). The access token
is then audience-restricted (``aud`` = the identifier), carries only the scopes the
resource defines (never the OpenID Connect ones), and has the resource's lifetime and
signing algorithm. Without ``resource`` nothing of this runs: ``aud`` is
``ONEPASS_AUDIENCE`` as it always was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from onepass.clients.registry import ClientRecord
from onepass.clients.resources import ResourceRecord, identifier_problem
from onepass.oauth_errors import InvalidTargetError

if TYPE_CHECKING:  # /authorize checks a resource without the grants' machinery
    from onepass.oauth.grants.base import TokenContext

NOT_ALLOWED = "this client may not ask tokens for the resource {!r}"


def check_requested(resource: str | None, client: ClientRecord) -> str | None:
    """The ``resource`` parameter if well formed and allowed for ``client`` (without
    reading the registry: the client's allowed resources are registered ones), or
    ``invalid_target``. Used where no database is at hand (``/authorize``)."""
    if resource is None:
        return None
    problem = identifier_problem(resource)
    if problem is not None:
        raise InvalidTargetError(problem)
    if resource not in client.allowed_resources:
        raise InvalidTargetError(NOT_ALLOWED.format(resource[:200]))
    return resource


async def resolve(
    ctx: TokenContext, client: ClientRecord, resource: str | None, *, allowed: frozenset[str]
) -> ResourceRecord | None:
    """The resource server ``resource`` names, if ``client`` may use it (``allowed``:
    its allowed resources, or its token exchange policy), or ``invalid_target``."""
    if resource is None:
        return None
    problem = identifier_problem(resource)
    if problem is not None:
        raise InvalidTargetError(problem)
    if resource not in allowed:
        raise InvalidTargetError(NOT_ALLOWED.format(resource[:200]))
    record = await ctx.resources.get(resource) if ctx.resources is not None else None
    if record is None:
        raise InvalidTargetError(f"no resource server {resource[:200]!r} is registered")
    return record

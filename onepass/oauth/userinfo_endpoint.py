"""The UserInfo endpoint (OIDC Core §5.3), as a bare ASGI application.

Every RP calls it after every login, so, like the token endpoint, it does not go
through FastAPI: the edge's checks (``edge.refused_at_edge``), the token from the header
or the form (RFC 6750 §2.1, §2.2), then ``oauth.userinfo``: the signature checked in
memory and one database read. Answers and refusals are those the FastAPI route gave.
"""

from __future__ import annotations

import orjson
import structlog

from onepass.edge import Protocol, refused_at_edge
from onepass.oauth.asgi import (
    Receive,
    Scope,
    Send,
    failure,
    method_not_allowed,
    read_body,
    respond,
    respond_error,
)
from onepass.oauth.forms import is_form_content_type, parse_form
from onepass.oauth.userinfo import UserInfo, bearer_token
from onepass.oauth_errors import (
    InvalidRequestError,
    OAuthError,
)

log = structlog.get_logger("onepass.oauth.userinfo")

METHODS = ("GET", "POST")


class UserInfoEndpoint:
    def __init__(self, userinfo: UserInfo, *, max_body: int) -> None:
        self.userinfo = userinfo
        self.max_body = max_body  # ONEPASS_MAX_FORM_BYTES, as the edge bounds every form

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one request; return the status sent (for the HTTP metrics)."""
        refused = refused_at_edge(scope, Protocol.OAUTH, self.max_body)
        if refused is not None:
            await refused(scope, receive, send)
            return refused.status_code
        if scope["method"] not in METHODS:
            return await method_not_allowed(send, b"GET, POST")
        try:
            token = await self._token(scope, receive)
            body = await self.userinfo.claims(token)
        except OAuthError as exc:
            return await respond_error(send, exc)
        except Exception as exc:
            return await respond_error(send, failure(exc, log, "userinfo"))
        await respond(send, 200, orjson.dumps(body))
        return 200

    async def _token(self, scope: Scope, receive: Receive) -> str:
        authorization: list[str] = []
        content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        form = None
        if scope["method"] == "POST" and content_type:
            if not is_form_content_type(content_type):
                raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
            form = parse_form(await read_body(receive, self.max_body))
        return bearer_token(authorization, form)

"""The UserInfo endpoint (OIDC Core §5.3), as a bare ASGI application.

Every RP calls it after every login, so, like the token endpoint, it does not go
through FastAPI: the edge's checks (``edge.refused_at_edge``), the token from the header
or the form (RFC 6750 §2.1, §2.2), then ``oauth.userinfo``: the signature checked in
memory and one database read. Answers and refusals are those the FastAPI route gave.

A DPoP-bound token comes with the ``DPoP`` scheme and a proof (RFC 9449 §7.1), checked
here against the URL discovery advertises; every ``invalid_token`` answer offers both
challenges, Bearer and DPoP (with the proof algorithms, §7.1).
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
from onepass.oauth.dpop import ALGS, DPoP, Proof, ProofRefused, proof_header, resource_error
from onepass.oauth.forms import is_form_content_type, parse_form
from onepass.oauth.userinfo import DPOP, UserInfo, access_token, dpop_refusal
from onepass.oauth_errors import (
    InvalidRequestError,
    InvalidTokenError,
    OAuthError,
)

log = structlog.get_logger("onepass.oauth.userinfo")

METHODS = ("GET", "POST")


class UserInfoEndpoint:
    def __init__(self, userinfo: UserInfo, dpop: DPoP, *, issuer: str, max_body: int) -> None:
        self.userinfo = userinfo
        self.dpop = dpop
        self.url = f"{issuer}/userinfo"  # a proof's htu: the URL discovery advertises
        self.max_body = max_body  # ONEPASS_MAX_FORM_BYTES, as the edge bounds every form

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one request; return the status sent (for the HTTP metrics)."""
        refused = refused_at_edge(scope, Protocol.OAUTH, self.max_body)
        if refused is not None:
            await refused(scope, receive, send)
            return refused.status_code
        if scope["method"] not in METHODS:
            return await method_not_allowed(send, b"GET, POST")
        proof: Proof | None = None
        try:
            token, proof = await self._token(scope, receive)
            body = await self.userinfo.claims(token, proof)
        except OAuthError as exc:
            challenge = exc.headers.get("www-authenticate", "")
            if isinstance(exc, InvalidTokenError) and challenge.startswith("Bearer "):
                # RFC 9449 §7.1: a DPoP request is answered with the DPoP challenge; any
                # other with both, as a resource that takes both schemes does.
                exc.headers["www-authenticate"] = (
                    dpop_refusal(exc.description).headers["www-authenticate"]
                    if proof is not None
                    else f"{challenge}, DPoP{ALGS[1:]}"
                )
            return await respond_error(send, exc)
        except Exception as exc:
            return await respond_error(send, failure(exc, log, "userinfo"))
        nonce = self.dpop.nonce_headers() if proof is not None else {}
        extra = [(name.encode(), value.encode()) for name, value in nonce.items()]
        await respond(send, 200, orjson.dumps(body), extra)
        return 200

    async def _token(self, scope: Scope, receive: Receive) -> tuple[str, Proof | None]:
        authorization: list[str] = []
        proofs: list[bytes] = []
        content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization.append(value.decode("latin-1"))
            elif name == b"dpop":
                proofs.append(value)
            elif name == b"content-type" and content_type is None:
                content_type = value.decode("latin-1")
        form = None
        if scope["method"] == "POST" and content_type:
            if not is_form_content_type(content_type):
                raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
            form = parse_form(await read_body(receive, self.max_body))
        scheme, token = access_token(authorization, form)
        if scheme != DPOP:
            return token, None
        try:
            proof = proof_header(proofs)
            if proof is None:
                raise ProofRefused("the DPoP scheme needs a DPoP proof header")
            return token, self.dpop.check(
                proof, method=scope["method"], url=self.url, access_token=token
            )
        except ProofRefused as exc:
            raise resource_error(exc, self.dpop) from None

"""The token endpoint (RFC 6749 §3.2), as a bare ASGI application.

This is the hottest path of the provider, so it does not go through FastAPI's
request machinery: it reads the raw ASGI headers and body, parses the form with
the standard library, finds the client in the per-process ``ClientCache`` and checks
the secret with one HMAC (``onepass.clients.auth``), and signs with a key already in
memory. No database round trip happens per request once the client is cached.

DPoP (RFC 9449 §5): a request with a ``DPoP`` header is checked by ``oauth.dpop`` once
the client is authenticated, and what it issues is bound to the proof's key (the
grants take its ``jkt``): ``token_type`` is then ``DPoP``. A request without one costs
nothing more than looking for the header, unless its client requires proofs
(``dpop_bound_access_tokens``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
import structlog

from onepass.clients.auth import ClientAuthenticator
from onepass.keys.keyring import NoActiveKey
from onepass.oauth.asgi import (
    PayloadTooLarge,
    Receive,
    Scope,
    Send,
    failure,
    read_body,
    respond,
    respond_error,
)
from onepass.oauth.dpop import DPoP, Proof, ProofRefused, proof_header, request_error
from onepass.oauth.forms import is_form_content_type, parse_form
from onepass.oauth.grants.base import Grant, TokenContext
from onepass.oauth_errors import (
    InvalidDPoPProofError,
    InvalidRequestError,
    OAuthError,
    TemporarilyUnavailableError,
    UnauthorizedClientError,
    UnsupportedGrantTypeError,
)

if TYPE_CHECKING:
    from onepass.instruments import TokenMetrics

log = structlog.get_logger("onepass.oauth.token")


class TokenEndpoint:
    def __init__(
        self,
        ctx: TokenContext,
        authenticator: ClientAuthenticator,
        grants: list[Grant],
        *,
        dpop: DPoP,
        max_body: int,
        metrics: TokenMetrics | None = None,
    ) -> None:
        self.ctx = ctx
        # DPoP proofs (RFC 9449), checked against the URL discovery advertises.
        self.dpop = dpop
        self.url = f"{ctx.settings.issuer}/token"
        # Tokens issued and refused, for GET /metrics (onepass.instruments).
        self.metrics = metrics
        # Client authentication (RFC 6749 §2.3.1), shared with /revoke, /introspect and
        # the webhook key endpoint: no database round trip once the client is cached.
        self.authenticator = authenticator
        self.grants = {grant.grant_type: grant for grant in grants}
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one request; return the status sent (for the HTTP metrics)."""
        try:
            body = await self.handle(scope, receive)
        except OAuthError as exc:
            if self.metrics is not None:
                self.metrics.error(exc.error)
            if self.dpop.require_nonce and "dpop-nonce" not in exc.headers:
                exc.headers.update(self.dpop.nonce_headers())
            return await respond_error(send, exc)
        except Exception as exc:
            error = failure(exc, log, "token")
            if self.metrics is not None:
                self.metrics.error(error.error)
            return await respond_error(send, error)
        if self.dpop.require_nonce:  # §8: a fresh nonce with every answer
            await respond(
                send, 200, orjson.dumps(body), [(b"dpop-nonce", self.dpop.nonce().encode())]
            )
        else:
            await respond(send, 200, orjson.dumps(body))
        return 200

    async def handle(self, scope: Scope, receive: Receive) -> dict[str, Any]:
        if scope["method"] != "POST":
            raise InvalidRequestError(
                "the token endpoint only accepts POST", status_code=405, headers={"allow": "POST"}
            )
        content_type = authorization = None
        declared_length = 0
        dpop: list[bytes] = []
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                if authorization is not None:
                    raise InvalidRequestError("more than one Authorization header")
                authorization = value.decode("latin-1")
            elif name == b"content-length":
                declared_length = int(value) if value.isdigit() else 0
            elif name == b"dpop":
                dpop.append(value)
        if declared_length > self.max_body:
            raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
        body = await read_body(receive, self.max_body)
        if not is_form_content_type(content_type):
            raise InvalidRequestError("the body must be application/x-www-form-urlencoded")
        form = parse_form(body)

        grant_type = form.get("grant_type")
        if grant_type is None:
            raise InvalidRequestError("grant_type is required")
        grant = self.grants.get(grant_type)
        if grant is None:
            raise UnsupportedGrantTypeError(f"grant_type {grant_type[:40]!r} is not supported")

        client = await self.authenticator.authenticate(authorization, form)
        if grant_type not in client.grant_types:
            raise UnauthorizedClientError(f"this client may not use the {grant_type} grant")
        jkt = None
        if dpop:
            jkt = (await self.proof(dpop)).jkt
        elif client.dpop_bound_access_tokens:
            raise InvalidDPoPProofError(
                "this client's access tokens are DPoP-bound: send a DPoP proof (RFC 9449)"
            )
        try:
            response = await grant.create_token_response(self.ctx, client, form, jkt=jkt)
        except NoActiveKey as exc:
            # The access token's key, or the ID token's of this client's
            # id_token_signed_response_alg (an algorithm taken out of ONEPASS_SIGNING_ALGS).
            log.error("token.no_active_key", client_id=client.client_id, detail=str(exc))
            raise TemporarilyUnavailableError(
                "no signing key is available; try again shortly"
            ) from None
        if self.metrics is not None:
            self.metrics.issued(grant_type)
        return response

    async def proof(self, values: list[bytes]) -> Proof:
        """The request's DPoP proof, checked and its ``jti`` spent (RFC 9449 §4.3)."""
        try:
            proof = self.dpop.check(proof_header(values) or "", method="POST", url=self.url)
            await self.dpop.take(proof)
        except ProofRefused as exc:
            raise request_error(exc, self.dpop) from None
        return proof

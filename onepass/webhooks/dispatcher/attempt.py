"""One delivery attempt: sign the entry, POST it, read at most a capped answer, and
classify the outcome (the failure taxonomy: ``TransportFailure.kind``, then
``retry.decide``). Never raises for the RP's faults.

The HTTP client is aiohttp with the resolver's connector (``resolver.py``): every
address it connects to is checked (``safety.py``), no proxy from the environment, no
cookies kept, no redirect followed.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime

import aiohttp
import structlog

from onepass import __version__
from onepass.clock import Clock
from onepass.keys.keyring import NoActiveKey
from onepass.settings import Settings
from onepass.webhooks import logout_tokens, outbox, resolver, safety, secevents, signing
from onepass.webhooks.dispatcher.logout import LogoutKeys
from onepass.webhooks.dispatcher.streams import Streams
from onepass.webhooks.dispatcher.targets import Target
from onepass.webhooks.errors import UnsafeWebhookTarget
from onepass.webhooks.events import EventType
from onepass.webhooks.retry import (
    Decision,
    Outcome,
    RetryPolicy,
    TransportFailure,
    decide,
    parse_retry_after,
)
from onepass.webhooks.store import Claimed

log = structlog.get_logger("onepass.webhooks.dispatcher")

USER_AGENT = f"1pass-webhooks/{__version__}"


@dataclass(slots=True)
class Result:
    entry: Claimed
    started_at: datetime
    finished_at: datetime
    duration_ms: int
    status: int | None
    failure: TransportFailure | None
    response_body: str | None
    kids: list[str]
    decision: Decision


def error_class(r: Result) -> str | None:
    """The attempt log's ``error_class``: the failure's kind, or ``http_status``."""
    if r.failure is not None:
        return r.failure.kind
    if r.status is not None and r.decision.outcome is not Outcome.DELIVERED:
        return "http_status"
    return None


LOGOUT = EventType.OIDC_BACKCHANNEL_LOGOUT.value
SSF_SET = EventType.SSF_SET.value


class _Failure(Exception):
    def __init__(self, kind: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.failure = TransportFailure(kind, message, retryable)


class Sender:
    """Delivers attempts over one aiohttp session (``open`` it first, ``close`` it after)."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock,
        policy: RetryPolicy,
        rng: random.Random,
        *,
        concurrency: int,
        logout_keys: LogoutKeys | None = None,
        streams: Streams | None = None,
    ) -> None:
        self.settings = settings
        self.logout_keys = logout_keys
        self.streams = streams
        self.clock = clock
        self.policy = policy
        self.rng = rng
        self.concurrency = concurrency
        self.timeout = settings.webhook_timeout
        self.max_response_bytes = settings.webhook_max_response_bytes
        self._http: aiohttp.ClientSession | None = None

    @property
    def is_open(self) -> bool:
        return self._http is not None

    def open(self) -> None:
        connector = resolver.connector(
            limit=self.concurrency, allow_private=self.settings.webhook_allow_private_targets
        )
        self._http = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout),
            cookie_jar=aiohttp.DummyCookieJar(),  # never keep an RP's cookies
            auto_decompress=False,
            trust_env=False,  # no proxy from the environment: connect where we checked
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _check_url(self, url: str, what: str = "webhook URL") -> None:
        safety.check_url(
            url,
            production=self.settings.is_production,
            allow_private=self.settings.webhook_allow_private_targets,
            what=what,
        )

    def _webhook(
        self, entry: Claimed, target: Target, signers: list[signing.Signer]
    ) -> tuple[str, bytes, dict[str, str], list[str]]:
        """A webhook: the JSON envelope, signed (Standard Webhooks)."""
        if not target.url:
            raise _Failure("no_webhook_url", "the application has no webhook URL", False)
        if not signers:
            raise _Failure(
                "no_signing_key",
                target.error
                or "the application has no valid webhook signing key (create one with "
                "`onepass webhooks keys rotate APP_ID`)",
                True,
            )
        self._check_url(target.url)
        body = outbox.envelope(entry.event_type, entry.created_at, entry.payload)
        headers = signing.signature_headers(
            entry.idempotency_key, int(self.clock.timestamp()), body, signers
        )
        headers["content-type"] = "application/json"
        return target.url, body, headers, [s.kid for s in signers]

    async def _logout(
        self, entry: Claimed, target: Target
    ) -> tuple[str, bytes, dict[str, str], list[str]]:
        """A back-channel logout (OpenID Connect Back-Channel Logout 1.0 §2.5): a logout
        token signed now, POSTed as a form; the JWT is its own signature."""
        uri = target.logout_uri
        if not uri:
            raise _Failure(
                "no_backchannel_logout_uri",
                "the application has no back-channel logout URI any more",
                False,
            )
        self._check_url(uri, logout_tokens.URI_NAME)
        alg = target.id_token_alg or "RS256"
        try:
            if self.logout_keys is None:
                raise NoActiveKey("this dispatcher has no key ring")
            signer = await self.logout_keys.signer(alg)
        except NoActiveKey as exc:
            raise _Failure(
                "no_logout_signing_key",
                f"cannot sign the logout token: {exc} (see `onepass keys list`)",
                True,
            ) from None
        token = logout_tokens.sign(
            signer,
            issuer=self.settings.issuer,
            client_id=target.client_id or entry.payload.get("client_id", ""),
            payload=entry.payload,
            now=int(self.clock.timestamp()),
        )
        headers = {"content-type": logout_tokens.CONTENT_TYPE}
        return uri, logout_tokens.request_body(token), headers, [signer.kid]

    async def _secevent(self, entry: Claimed) -> tuple[str, bytes, dict[str, str], list[str]]:
        """A Shared Signals push (RFC 8935 §2): the SET signed now with 1pass's key (the
        client's ID token algorithm), POSTed as ``application/secevent+jwt`` with the
        stream's Authorization header. The stream is read now: paused, it is retried
        later; disabled or gone, the entry is dead (disabled drops events: SSF §8.1.2)."""
        stream = await self.streams.get(entry.app_id) if self.streams is not None else None
        if stream is None:
            raise _Failure("no_ssf_stream", "the application has no SSF stream any more", False)
        if stream.delivery_method != secevents.PUSH or not stream.endpoint_url:
            raise _Failure(
                "ssf_not_push", "the application's SSF stream is not a push stream", False
            )
        if stream.status == "disabled":
            raise _Failure("ssf_stream_disabled", "the SSF stream is disabled", False)
        if stream.status == "paused":
            raise _Failure("ssf_stream_paused", "the SSF stream is paused", True)
        if stream.error is not None:
            raise _Failure("ssf_authorization", stream.error, True)
        self._check_url(stream.endpoint_url, secevents.URI_NAME)
        try:
            if self.logout_keys is None:
                raise NoActiveKey("this dispatcher has no key ring")
            signer = await self.logout_keys.signer(stream.id_token_alg or "RS256")
        except NoActiveKey as exc:
            raise _Failure(
                "no_set_signing_key",
                f"cannot sign the SET: {exc} (see `onepass keys list`)",
                True,
            ) from None
        token = secevents.sign(
            signer,
            issuer=self.settings.issuer,
            payload={**entry.payload, "client_id": stream.client_id},
            now=int(self.clock.timestamp()),
        )
        headers = {"content-type": secevents.CONTENT_TYPE, "accept": "application/json"}
        if stream.authorization:
            headers["authorization"] = stream.authorization
        return stream.endpoint_url, token.encode("ascii"), headers, [signer.kid]

    async def deliver(self, entry: Claimed, target: Target) -> Result:
        """Sign and POST one entry; classify the outcome. Never raises for the RP's faults."""
        assert self._http is not None
        started_at = self.clock.now()
        started = time.monotonic()
        attempt = entry.attempts + 1
        status: int | None = None
        failure: TransportFailure | None = None
        retry_after: float | None = None
        body_text: str | None = None
        signers = target.signers_at(started_at)
        sent_kids: list[str] = []
        logout = entry.event_type == LOGOUT
        ssf = entry.event_type == SSF_SET
        try:
            if logout:
                url, body, headers, kids = await self._logout(entry, target)
            elif ssf:
                url, body, headers, kids = await self._secevent(entry)
            else:
                url, body, headers, kids = self._webhook(entry, target, signers)
            headers["user-agent"] = USER_AGENT
            sent_kids = kids
            async with self._http.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = parse_retry_after(response.headers.get("Retry-After"), started_at)
                raw = await self._read_capped(response)
                body_text = raw.decode("utf-8", "replace") if raw else None
        except _Failure as exc:
            failure = exc.failure
        except UnsafeWebhookTarget as exc:
            failure = TransportFailure("unsafe_target", str(exc), False)
        except TimeoutError:
            failure = TransportFailure("timeout", f"no response within {self.timeout:g} s", True)
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, resolver.UnsafeAddressError):
                failure = TransportFailure("unsafe_target", str(exc.os_error), False)
            else:
                failure = TransportFailure(
                    "dns",
                    f"could not resolve {exc.host}: {exc.os_error.strerror or exc.os_error}",
                    True,
                )
        except aiohttp.ClientConnectorError as exc:
            failure = TransportFailure(
                "connection",
                f"could not connect to {exc.host}:{exc.port}: {exc.os_error.strerror or exc.os_error}",
                True,
            )
            if isinstance(exc.os_error, resolver.UnsafeAddressError):  # resolver.guarded_socket
                failure = TransportFailure("unsafe_target", str(exc.os_error), False)
        except aiohttp.InvalidURL as exc:
            what = (
                logout_tokens.URI_NAME if logout else secevents.URI_NAME if ssf else "webhook URL"
            )
            failure = TransportFailure("invalid_url", f"invalid {what}: {exc}", False)
        except aiohttp.ClientError as exc:
            failure = TransportFailure("connection", f"{type(exc).__name__}: {exc}"[:300], True)
        except OSError as exc:
            failure = TransportFailure("connection", f"{type(exc).__name__}: {exc}"[:300], True)
        except Exception as exc:  # a bug of ours must not lose the entry: retry, and say so
            log.exception("webhooks.attempt_failed_unexpectedly", entry_id=entry.id)
            failure = TransportFailure("internal", f"internal error: {type(exc).__name__}", True)
        duration_ms = int((time.monotonic() - started) * 1000)
        decision = decide(
            self.policy,
            attempt=attempt,
            status=status,
            failure=failure,
            retry_after=retry_after,
            rng=self.rng,
            success=logout_tokens.SUCCESS_STATUSES if logout else None,
        )
        if ssf and status == 400:
            # RFC 8935 §2.3: the receiver refused this SET and says why; the same SET
            # would be refused again, so it is dead at once (``webhooks retry`` or
            # ``replay-dlq`` once the cause is fixed).
            why = secevents.push_error(body_text)
            decision = Decision(
                Outcome.DEAD,
                None,
                f"HTTP 400: the receiver refused the SET"
                f"{f' ({why})' if why else ''} (RFC 8935 §2.3); not retried",
            )
        return Result(
            entry=entry,
            started_at=started_at,
            finished_at=self.clock.now(),
            duration_ms=duration_ms,
            status=status,
            failure=failure,
            response_body=body_text,
            kids=sent_kids,
            decision=decision,
        )

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        # Read at most max_response_bytes; a longer body is not read further (the
        # connection is then closed rather than reused).
        cap = self.max_response_bytes
        content = response.content
        chunks: list[bytes] = []
        size = 0
        while size < cap and not content.at_eof():
            chunk = await content.read(cap - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

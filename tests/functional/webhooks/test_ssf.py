"""OpenID Shared Signals Framework 1.0 transmitter, as an RP uses it: it registers a
stream with a client_credentials token (scope ``ssf.manage``), 1pass's real causes
(an operator ends sessions, disables, deletes, sets a password, a reset by mail, an
email change, a merge, a passkey) write SETs in their transaction, the dispatcher
pushes them to a real HTTP receiver (RFC 8935) or the RP polls them (RFC 8936), and
joserfc verifies each against the JWKS (``secevent+jwt``, iss, aud, events, sub_id).
Retried, dead-lettered and replayed like webhooks, with one ``jti``. SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from onepass.accounts import links
from onepass.accounts.models import LoginSession, User
from onepass.accounts.passwords import PasswordHasher
from onepass.app import OnePass
from onepass.identity.canonical import CanonicalResolver
from onepass.oauth.ssf import signals as ssf
from onepass.operators.audit import Actor
from onepass.playbook import merges, users
from onepass.playbook import webhooks as webhook_playbook
from onepass.runtime import Runtime
from onepass.selfservice.account import ACCOUNT
from onepass.selfservice.recovery import KIND, Recovery
from onepass.webhooks import outbox, secevents
from onepass.webhooks.models import WebhookOutboxEntry
from tests.conftest import ISSUER
from tests.factories import Client, UserInfo, make_rp, make_user
from tests.functional.webhooks.test_backchannel_logout import jwks_of, new_browser, sign_in
from tests.webhook_helpers import Delivery, Receiver, dispatch_once, drain, runtime_with, status

ACTOR = Actor("cli:test", "cli")
PAGE = Path(__file__).resolve().parents[3] / "docs" / "integrating.md"
SSF_SET = "ssf.set"
EVERY_EVENT = list(secevents.SUPPORTED)


# -- an RP's side ------------------------------------------------------------------------


@pytest.fixture
async def browsers(app: OnePass) -> AsyncIterator[list[httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []
    yield opened
    for browser in opened:
        await browser.aclose()


async def ssf_rp(runtime: Runtime, name: str = "ssf rp") -> Client:
    return await make_rp(
        runtime,
        name=name,
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scope="openid email offline_access ssf.manage api:read",
    )


async def manage_token(http: httpx.AsyncClient, client: Client, scope: str = "ssf.manage") -> str:
    answer = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client.client_id, client.client_secret or ""),
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def push_stream(
    http: httpx.AsyncClient,
    token: str,
    receiver: Receiver,
    path: str = "/ssf",
    events: list[str] | None = None,
    authorization: str | None = "Bearer receiver-secret",
) -> dict[str, Any]:
    delivery: dict[str, Any] = {"method": secevents.PUSH, "endpoint_url": receiver.url(path)}
    if authorization:
        delivery["authorization_header"] = authorization
    answer = await http.post(
        "/ssf/stream",
        json={"delivery": delivery, "events_requested": events or EVERY_EVENT},
        headers=bearer(token),
    )
    assert answer.status_code == 201, answer.text
    stream: dict[str, Any] = answer.json()
    return stream


def verify_set(token: str, jwks: dict[str, Any], client_id: str) -> dict[str, Any]:
    """What a receiver checks (SSF 1.0 §4, RFC 8417 §2), with joserfc."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "secevent+jwt"
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        jti={"essential": True},
        events={"essential": True},
    ).validate(decoded.claims)
    claims = dict(decoded.claims)
    assert "sub" not in claims and "exp" not in claims
    assert len(claims["events"]) == 1
    return claims


def documented_reader() -> Callable[..., dict[str, Any]]:
    """docs/integrating.md's ``read_set``, as written there."""
    section = PAGE.read_text().split("### Verifying a SET", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (our own page)
    reader: Callable[..., dict[str, Any]] = namespace["read_set"]
    return reader


def set_of(delivery: Delivery) -> str:
    """RFC 8935 §2: the body is the SET itself."""
    assert delivery.headers["Content-Type"] == "application/secevent+jwt"
    assert not any(h.lower().startswith("webhook-") for h in delivery.headers)
    return delivery.body.decode("ascii")


def subject(user: UserInfo) -> dict[str, str]:
    return {"format": "iss_sub", "iss": ISSUER, "sub": user.sub}


async def ssf_entries(runtime: Runtime, **filters: Any) -> list[WebhookOutboxEntry]:
    async with runtime.database.session() as session:
        return await outbox.list_entries(session, event_type=SSF_SET, **filters)


async def received(
    runtime: Runtime, receiver: Receiver, http: httpx.AsyncClient, client: Client, count: int
) -> list[dict[str, Any]]:
    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) >= count)
    assert len(receiver.deliveries) == count
    jwks = await jwks_of(http)
    return [verify_set(set_of(d), jwks, client.client_id) for d in receiver.deliveries]


# -- discovery ---------------------------------------------------------------------------


async def test_the_transmitter_metadata_names_its_endpoints_and_methods(
    http: httpx.AsyncClient,
) -> None:
    meta = (await http.get("/.well-known/ssf-configuration")).json()
    assert meta["issuer"] == ISSUER and meta["spec_version"] == "1_0"
    assert meta["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert meta["delivery_methods_supported"] == ["urn:ietf:rfc:8935", "urn:ietf:rfc:8936"]
    assert meta["configuration_endpoint"] == f"{ISSUER}/ssf/stream"
    assert meta["status_endpoint"] == f"{ISSUER}/ssf/status"
    assert meta["verification_endpoint"] == f"{ISSUER}/ssf/verify"
    assert meta["authorization_schemes"] == [{"spec_urn": "urn:ietf:rfc:6749"}]
    assert (await http.get(meta["jwks_uri"])).status_code == 200


# -- stream management -------------------------------------------------------------------


async def test_a_stream_is_created_read_updated_replaced_and_deleted(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    rp = await ssf_rp(runtime)
    token = await manage_token(http, rp)
    unknown = "https://example.com/not-an-event"
    stream = await push_stream(http, token, receiver, events=[secevents.SESSION_REVOKED, unknown])
    assert stream["iss"] == ISSUER and stream["aud"] == rp.client_id
    assert stream["delivery"] == {"method": secevents.PUSH, "endpoint_url": receiver.url("/ssf")}
    assert stream["events_requested"] == [secevents.SESSION_REVOKED, unknown]
    assert stream["events_delivered"] == [secevents.SESSION_REVOKED]  # requested ∩ supported
    assert set(stream["events_supported"]) == set(EVERY_EVENT)
    assert "receiver-secret" not in str(stream)  # the authorization header is write-only
    sid = stream["stream_id"]

    again = await push_stream_raw(http, token, {"delivery": {"method": secevents.POLL}})
    assert again.status_code == 409 and again.json()["error"] == "conflict"

    read = await http.get("/ssf/stream", params={"stream_id": sid}, headers=bearer(token))
    assert read.status_code == 200 and read.json() == stream
    assert (await http.get("/ssf/stream", headers=bearer(token))).json() == stream

    patched = await http.patch(
        "/ssf/stream",
        json={"stream_id": sid, "events_requested": [secevents.ACCOUNT_DISABLED]},
        headers=bearer(token),
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["events_delivered"] == [secevents.ACCOUNT_DISABLED]
    assert patched.json()["delivery"]["method"] == secevents.PUSH  # untouched

    replaced = await http.put(
        "/ssf/stream",
        json={"stream_id": sid, "delivery": {"method": secevents.POLL}, "description": "polled"},
        headers=bearer(token),
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["delivery"] == {"method": secevents.POLL, "endpoint_url": f"{ISSUER}/ssf/poll"}
    assert body["events_requested"] == [] and body["description"] == "polled"

    gone = await http.delete("/ssf/stream", params={"stream_id": sid}, headers=bearer(token))
    assert gone.status_code == 204
    missing = await http.get("/ssf/stream", params={"stream_id": sid}, headers=bearer(token))
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    created = await push_stream_raw(http, token, {"delivery": {"method": secevents.POLL}})
    assert created.status_code == 201  # one again, once the first is gone


async def push_stream_raw(
    http: httpx.AsyncClient, token: str, body: Any, method: str = "POST"
) -> httpx.Response:
    return await http.request(method, "/ssf/stream", json=body, headers=bearer(token))


async def test_status_pauses_holds_enables_releases_and_disabled_drops(
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    app: OnePass,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    token = await manage_token(http, rp)
    sid = (await push_stream(http, token, receiver))["stream_id"]

    async def set_status(value: str) -> httpx.Response:
        return await http.post(
            "/ssf/status",
            json={"stream_id": sid, "status": value, "reason": "maintenance"},
            headers=bearer(token),
        )

    paused = await set_status("paused")
    assert paused.json() == {"stream_id": sid, "status": "paused", "reason": "maintenance"}
    read = await http.get("/ssf/status", params={"stream_id": sid}, headers=bearer(token))
    assert read.json()["status"] == "paused"
    await users.revoke_sessions(runtime, ACTOR, user.email)
    assert await ssf_entries(runtime) == []  # held, not in the outbox
    await dispatch_once(runtime)
    assert receiver.deliveries == []

    assert (await set_status("enabled")).json()["status"] == "enabled"
    [claims] = await received(runtime, receiver, http, rp, 1)
    assert list(claims["events"]) == [secevents.SESSION_REVOKED]

    assert (await set_status("disabled")).status_code == 200
    await users.disable_user(runtime, ACTOR, user.email)
    assert len(await ssf_entries(runtime)) == 1  # dropped: nothing new
    assert (await set_status("enabled")).status_code == 200
    await dispatch_once(runtime)
    assert len(receiver.deliveries) == 1


async def test_verification_sends_a_verification_set_with_the_state(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    rp = await ssf_rp(runtime)
    token = await manage_token(http, rp)
    sid = (await push_stream(http, token, receiver, events=[secevents.SESSION_REVOKED]))[
        "stream_id"
    ]
    answer = await http.post(
        "/ssf/verify", json={"stream_id": sid, "state": "abc123"}, headers=bearer(token)
    )
    assert answer.status_code == 204
    [claims] = await received(runtime, receiver, http, rp, 1)
    assert claims["events"] == {secevents.VERIFICATION: {"state": "abc123"}}
    assert claims["sub_id"] == {"format": "opaque", "id": sid}
    assert receiver.deliveries[0].headers["Authorization"] == "Bearer receiver-secret"


async def test_every_bad_request_is_refused_in_ssf_terms(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    rp = await ssf_rp(runtime)
    other = await ssf_rp(runtime, "another rp")
    token = await manage_token(http, rp)

    nobody = await http.get("/ssf/stream")
    assert nobody.status_code == 401 and nobody.json()["error"] == "invalid_token"
    assert nobody.headers["www-authenticate"].startswith("Bearer")
    forged = await http.get("/ssf/stream", headers=bearer("a.b.c"))
    assert forged.status_code == 401
    basic = await http.get("/ssf/stream", headers={"authorization": "Basic eDp5"})
    assert basic.status_code == 401
    narrow = await manage_token(http, rp, scope="api:read")
    refused = await http.get("/ssf/stream", headers=bearer(narrow))
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    assert 'scope="ssf.manage"' in refused.headers["www-authenticate"]

    cases: list[tuple[Any, str]] = [
        ("not an object", "JSON object"),
        ({"delivery": "push"}, "delivery must be an object"),
        ({"delivery": {"method": "urn:example:email"}}, "delivery.method"),
        ({"delivery": {"method": secevents.PUSH}}, "endpoint_url"),
        ({"delivery": {"method": secevents.PUSH, "endpoint_url": "ftp://rp.example/x"}}, "http"),
        (
            {"delivery": {"method": secevents.PUSH, "endpoint_url": "https://u:p@rp.example/"}},
            "credentials",
        ),
        (
            {
                "delivery": {
                    "method": secevents.PUSH,
                    "endpoint_url": "https://rp.example/",
                    "authorization_header": "Bearer x\r\nX-Injected: 1",
                }
            },
            "authorization_header",
        ),
        (
            {"delivery": {"method": secevents.POLL, "authorization_header": "Bearer x"}},
            "push delivery only",
        ),
        ({"delivery": {"method": secevents.POLL, "endpoint_url": "https://x/"}}, "endpoint_url"),
        ({"events_requested": "all"}, "events_requested"),
        ({"events_requested": [1, 2]}, "events_requested"),
        ({"description": 12}, "description"),
    ]
    for body, words in cases:
        answer = await push_stream_raw(http, token, body)
        assert answer.status_code == 400, (body, answer.text)
        assert answer.json()["error"] == "invalid_request"
        assert words in answer.json()["error_description"], (body, answer.text)
    not_json = await http.post("/ssf/stream", content=b"{nope", headers=bearer(token))
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error_description"]

    sid = (await push_stream(http, token, receiver))["stream_id"]
    no_id = await push_stream_raw(http, token, {"description": "x"}, "PATCH")
    assert no_id.status_code == 400 and "stream_id" in no_id.json()["error_description"]
    wrong = await push_stream_raw(http, token, {"stream_id": "nope"}, "PATCH")
    assert wrong.status_code == 404
    bad_status = await http.post(
        "/ssf/status", json={"stream_id": sid, "status": "on"}, headers=bearer(token)
    )
    assert bad_status.status_code == 400 and "status must be" in bad_status.text
    assert (await http.get("/ssf/status", headers=bearer(token))).status_code == 400
    assert (await http.delete("/ssf/stream", headers=bearer(token))).status_code == 400
    for path in ("/ssf/verify", "/ssf/status"):
        no_stream = await http.post(path, json={"status": "paused"}, headers=bearer(token))
        assert no_stream.status_code == 400 and "stream_id" in no_stream.text
    for method in ("POST", "PATCH", "PUT"):
        huge = await http.request(
            method, "/ssf/stream", content=b"[" * 3_000_000, headers=bearer(token)
        )
        assert huge.status_code == 413 and huge.json()["error"] == "invalid_request", method
    verify_unknown = await http.post("/ssf/verify", json={"stream_id": "x"}, headers=bearer(token))
    assert verify_unknown.status_code == 404
    not_poll = await http.post("/ssf/poll", json={}, headers=bearer(token))
    assert not_poll.status_code == 404  # a push stream is not polled

    # Another client never sees nor changes this stream.
    theirs = await manage_token(http, other)
    for answer in (
        await http.get("/ssf/stream", params={"stream_id": sid}, headers=bearer(theirs)),
        await http.delete("/ssf/stream", params={"stream_id": sid}, headers=bearer(theirs)),
        await http.post(
            "/ssf/status", json={"stream_id": sid, "status": "disabled"}, headers=bearer(theirs)
        ),
    ):
        assert answer.status_code == 404, answer.text
    mine = await http.get("/ssf/status", params={"stream_id": sid}, headers=bearer(token))
    assert mine.json()["status"] == "enabled"


async def test_a_private_push_endpoint_is_refused_at_creation_and_at_delivery(
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    app: OnePass,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    token = await manage_token(http, rp)
    await push_stream(http, token, receiver)  # loopback allowed by these tests' settings
    await users.revoke_sessions(runtime, ACTOR, user.email)

    strict = await runtime_with(
        runtime.settings.model_copy(update={"webhook_allow_private_targets": False})
    )
    try:
        await dispatch_once(strict)
        [dead] = await ssf_entries(strict, status="dead")
        assert "SSF push endpoint URL" in (dead.last_error or "")
        assert receiver.deliveries == []
    finally:
        await strict.close()


# -- events, pushed ----------------------------------------------------------------------


async def test_each_cause_pushes_its_set_to_the_rps_that_know_the_user(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    stranger = await ssf_rp(runtime, "never met the user")
    token = await manage_token(http, rp)
    await push_stream(http, token, receiver, "/ssf")
    await push_stream(http, await manage_token(http, stranger), receiver, "/stranger")
    hasher = PasswordHasher(runtime.settings)
    recovery = Recovery(runtime, hasher)
    target = await make_user(runtime, email="target@example.com")

    async def reset_password(user: UserInfo) -> None:
        async with runtime.database.session() as session:
            row = await session.get(User, user.id)
            assert row is not None
            issued = await links.issue(
                session,
                runtime.hasher,
                runtime.clock,
                KIND,
                600,
                user_id=user.id,
                binding=recovery._binding(row),
                ip="192.0.2.1",
            )
        await recovery.complete_reset(issued.token, "lantern quietly orbits marble", "en")

    async def merge(user: UserInfo) -> None:
        resolver = CanonicalResolver(runtime.cache, 60)
        await merges.merge_by_reference(runtime, resolver, ACTOR, user.email, target.email)

    causes: list[tuple[str, Any, str, dict[str, Any]]] = [
        (
            "revoke",
            lambda u: users.revoke_sessions(runtime, ACTOR, u.email),
            secevents.SESSION_REVOKED,
            {"initiating_entity": "admin"},
        ),
        (
            "set",
            lambda u: users.set_password(runtime, ACTOR, u.email, "another long passphrase"),
            secevents.CREDENTIAL_CHANGE,
            {"credential_type": "password", "change_type": "update", "initiating_entity": "admin"},
        ),
        (
            "reset",
            reset_password,
            secevents.CREDENTIAL_CHANGE,
            {"credential_type": "password", "change_type": "update", "initiating_entity": "user"},
        ),
        (
            "email",
            lambda u: users.update_user(runtime, ACTOR, u.email, email=f"new-{u.email}"),
            secevents.IDENTIFIER_CHANGED,
            {},
        ),
        (
            "disable",
            lambda u: users.disable_user(runtime, ACTOR, u.email),
            secevents.ACCOUNT_DISABLED,
            {},
        ),
        (
            "delete",
            lambda u: users.delete_user(runtime, ACTOR, u.email),
            secevents.ACCOUNT_PURGED,
            {},
        ),
        ("merge", merge, secevents.IDENTITY_LINK_CREATED, {"target_sub_id": subject(target)}),
    ]
    jwks = await jwks_of(http)
    for n, (name, cause, event, members) in enumerate(causes):
        user = await make_user(runtime, email=f"{name}@example.com")
        await sign_in(new_browser(app, browsers), rp, user)
        await cause(user)
        await dispatch_once(runtime)
        await receiver.wait_for(lambda n=n: len(receiver.deliveries) == n + 1)
        delivery = receiver.deliveries[-1]
        assert delivery.path == "/ssf", name
        assert delivery.headers["Authorization"] == "Bearer receiver-secret"
        assert delivery.answered_status == 200
        claims = verify_set(set_of(delivery), jwks, rp.client_id)
        assert list(claims["events"]) == [event], name
        assert claims["sub_id"] == subject(user), name
        body = claims["events"][event]
        assert isinstance(body.pop("event_timestamp"), int), name
        assert body == members, name
        assert "new-value" not in body  # an email is not sent to an RP without its consent
    assert receiver.at("/stranger") == []
    assert all(e.delivered_at is not None for e in await ssf_entries(runtime))
    # The RP's code in docs/integrating.md accepts them as written.
    read_set = documented_reader()
    for delivery in receiver.deliveries:
        claims = read_set(set_of(delivery), jwks, ISSUER, rp.client_id)
        assert claims["sub_id"]["format"] == "iss_sub"
    with pytest.raises(ValueError, match="not a security event token"):
        read_set(await manage_token(http, rp), jwks, ISSUER, rp.client_id)


async def test_an_enabled_account_is_told_as_risc_account_enabled(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    await push_stream(
        http, await manage_token(http, rp), receiver, events=[secevents.ACCOUNT_ENABLED]
    )
    await users.disable_user(runtime, ACTOR, user.email)
    await users.enable_user(runtime, ACTOR, user.email)
    await users.enable_user(runtime, ACTOR, user.email)  # no change: nothing to tell
    [claims] = await received(runtime, receiver, http, rp, 1)
    assert list(claims["events"]) == [secevents.ACCOUNT_ENABLED]
    assert claims["sub_id"] == subject(user)


async def test_only_the_requested_events_are_sent(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    await push_stream(
        http, await manage_token(http, rp), receiver, events=[secevents.ACCOUNT_DISABLED]
    )
    await users.revoke_sessions(runtime, ACTOR, user.email)  # not requested
    await users.disable_user(runtime, ACTOR, user.email)
    [claims] = await received(runtime, receiver, http, rp, 1)
    assert list(claims["events"]) == [secevents.ACCOUNT_DISABLED]


async def test_a_failing_receiver_is_retried_dead_lettered_and_replayed_with_one_jti(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    await push_stream(http, await manage_token(http, rp), receiver)
    receiver.routes["/ssf"] = status(503)
    await users.disable_user(runtime, ACTOR, user.email)

    await drain(runtime)  # 3 attempts on the test schedule, then dead
    [dead] = await ssf_entries(runtime, status="dead")
    assert dead.attempts == 3 and dead.last_status_code == 503
    assert "client_secret" not in str(dead.payload) and "receiver-secret" not in str(dead.payload)

    receiver.routes["/ssf"] = status(202)  # RFC 8935 §2.2
    replayed = await webhook_playbook.replay_dlq(runtime, ACTOR, rp.client_id, event_type=SSF_SET)
    assert replayed["entry_ids"] == [dead.id]
    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) == 4)
    [done] = await ssf_entries(runtime, status="delivered")
    assert done.id == dead.id
    jwks = await jwks_of(http)
    every = [verify_set(set_of(d), jwks, rp.client_id) for d in receiver.deliveries]
    assert {c["jti"] for c in every} == {dead.payload["jti"]}
    assert [d.answered_status for d in receiver.deliveries] == [503, 503, 503, 202]


async def test_a_400_with_an_err_is_dead_at_once_and_says_why(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    await push_stream(http, await manage_token(http, rp), receiver)
    receiver.routes["/ssf"] = status(
        400, body=b'{"err": "invalid_audience", "description": "not for us"}'
    )
    await users.disable_user(runtime, ACTOR, user.email)
    await dispatch_once(runtime)
    [dead] = await ssf_entries(runtime, status="dead")
    assert dead.attempts == 1
    assert "invalid_audience: not for us" in (dead.last_error or "")
    assert "RFC 8935" in (dead.last_error or "")
    retried = await webhook_playbook.retry(runtime, ACTOR, dead.id)
    assert retried["id"] == dead.id


# -- events, polled ----------------------------------------------------------------------


async def test_a_poll_stream_returns_sets_until_they_are_acknowledged(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    token = await manage_token(http, rp)
    created = await push_stream_raw(
        http,
        token,
        {
            "delivery": {"method": secevents.POLL},
            "events_requested": [secevents.SESSION_REVOKED, secevents.ACCOUNT_DISABLED],
        },
    )
    assert created.status_code == 201
    await users.revoke_sessions(runtime, ACTOR, user.email)
    await users.disable_user(runtime, ACTOR, user.email)
    assert await ssf_entries(runtime) == []  # polled, never pushed
    jwks = await jwks_of(http)

    async def poll(body: dict[str, Any]) -> dict[str, Any]:
        answer = await http.post("/ssf/poll", json=body, headers=bearer(token))
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        result: dict[str, Any] = answer.json()
        return result

    first = await poll({"maxEvents": 1, "returnImmediately": True})
    assert first["moreAvailable"] is True
    [(jti, token_1)] = first["sets"].items()
    claims = verify_set(token_1, jwks, rp.client_id)
    assert claims["jti"] == jti and list(claims["events"]) == [secevents.SESSION_REVOKED]
    assert claims["sub_id"] == subject(user)

    again = await poll({})  # not acknowledged: returned again, same jti
    assert set(again["sets"]) == {jti, *again["sets"]} and len(again["sets"]) == 2
    assert again["moreAvailable"] is False
    [other] = [j for j in again["sets"] if j != jti]

    acked = await poll(
        {"ack": [jti], "setErrs": {other: {"err": "invalid_key", "description": "x"}}}
    )
    assert acked == {"sets": {}, "moreAvailable": False}
    assert (await poll({}))["sets"] == {}

    for bad in (
        {"maxEvents": -1},
        {"maxEvents": "3"},
        {"ack": "x"},
        {"returnImmediately": 1},
        {"setErrs": []},
    ):
        answer = await http.post("/ssf/poll", json=bad, headers=bearer(token))
        assert answer.status_code == 400, bad
        assert answer.json()["err"] == "invalid_request"
    assert (await http.post("/ssf/poll", json={})).status_code == 401


async def test_a_rolled_back_change_tells_no_one(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    await push_stream(http, await manage_token(http, rp), receiver)

    class Failed(Exception):
        pass

    with pytest.raises(Failed):
        async with runtime.database.session() as session:
            told = await ssf.tell(
                session, runtime.clock, runtime.settings, user.id, secevents.ACCOUNT_DISABLED
            )
            assert told == 1  # written in the transaction...
            raise Failed  # ...that never commits
    assert await ssf_entries(runtime) == []
    await dispatch_once(runtime)
    assert receiver.deliveries == []


async def test_an_authenticator_app_added_by_the_user_and_reset_by_an_operator_is_told(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    await push_stream(
        http, await manage_token(http, rp), receiver, events=[secevents.CREDENTIAL_CHANGE]
    )
    person = Actor(f"user:{user.sub}", "account", user_id=user.id)

    async def nothing(session: Any, user: Any) -> None:
        return None

    await users.enrol_totp(runtime, person, user.email, "JBSWY3DPEHPK3PXP", 1, also=nothing)
    await users.reset_second_factor(runtime, ACTOR, user.email)
    await users.reset_second_factor(runtime, ACTOR, user.email)  # none left: nothing to tell
    told = await received(runtime, receiver, http, rp, 2)
    bodies = [c["events"][secevents.CREDENTIAL_CHANGE] for c in told]
    changes = {(b["credential_type"], b["change_type"], b["initiating_entity"]) for b in bodies}
    assert changes == {("app", "create", "user"), ("app", "delete", "admin")}


async def test_signing_out_other_sessions_from_the_account_page_is_session_revoked(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await ssf_rp(runtime)
    user = await make_user(runtime)
    await sign_in(new_browser(app, browsers), rp, user)
    await sign_in(new_browser(app, browsers), rp, user)  # a second session
    await push_stream(
        http, await manage_token(http, rp), receiver, events=[secevents.SESSION_REVOKED]
    )
    async with runtime.database.session() as session:
        row = await session.get(User, user.id)
        current = await session.scalar(
            select(LoginSession).where(LoginSession.user_id == user.id).order_by(LoginSession.id)
        )
    assert row is not None and current is not None
    assert await app.services.get(ACCOUNT).sign_out_others(row, current) == 1
    [claims] = await received(runtime, receiver, http, rp, 1)
    assert claims["events"][secevents.SESSION_REVOKED]["initiating_entity"] == "user"
    assert claims["sub_id"] == subject(user)


async def test_a_pairwise_rp_is_told_about_the_user_by_its_own_sub(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    """OIDC Core §8.1 and SSF: the SET names the user as the ID token did for this RP."""
    rp = await make_rp(
        runtime,
        name="pairwise ssf rp",
        grant_types=["authorization_code", "refresh_token", "client_credentials"],
        scope="openid email offline_access ssf.manage api:read",
        subject_type="pairwise",
    )
    user = await make_user(runtime)
    tokens = await sign_in(new_browser(app, browsers), rp, user)
    id_sub = jwt.decode(
        tokens["id_token"], KeySet.import_key_set(await jwks_of(http)), algorithms=["RS256"]
    ).claims["sub"]
    assert id_sub != user.sub
    await push_stream(
        http, await manage_token(http, rp), receiver, events=[secevents.ACCOUNT_DISABLED]
    )
    await users.disable_user(runtime, ACTOR, user.email)
    [claims] = await received(runtime, receiver, http, rp, 1)
    assert claims["sub_id"] == {"format": "iss_sub", "iss": ISSUER, "sub": id_sub}

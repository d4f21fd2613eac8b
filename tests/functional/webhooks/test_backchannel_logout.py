"""OpenID Connect Back-Channel Logout 1.0 through the outbox, as an RP's endpoint (a real
HTTP server on 127.0.0.1) receives it: a form POST with a logout token that joserfc
verifies against 1pass's JWKS (typed ``logout+jwt``, the backchannel-logout event,
``sid`` and/or ``sub``, no ``nonce``, a short ``exp``); sent on RP-initiated logout and
enqueued by every other way sessions end; retried, dead-lettered, listed and replayed
like a webhook, with the same ``jti``. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import select

from onepass.accounts import links
from onepass.accounts.models import LoginSession, LoginSessionClient, User
from onepass.accounts.passwords import PasswordHasher
from onepass.app import OnePass
from onepass.clients import registry
from onepass.clients.registry import ClientChanges, InvalidClientSettings
from onepass.identity.canonical import CanonicalResolver
from onepass.oauth import backchannel
from onepass.operators.audit import Actor
from onepass.playbook import clients as client_playbook
from onepass.playbook import merges, users
from onepass.playbook import webhooks as webhook_playbook
from onepass.runtime import Runtime
from onepass.selfservice.recovery import KIND, Recovery
from onepass.settings import Environment, Settings
from onepass.webhooks import outbox
from onepass.webhooks.errors import UnsafeWebhookTarget
from onepass.webhooks.logout_tokens import BACKCHANNEL_LOGOUT_EVENT
from onepass.webhooks.models import WebhookOutboxEntry
from tests.conftest import ISSUER
from tests.factories import REDIRECT_URI, Client, UserInfo, make_rp, make_user
from tests.flow import VERIFIER, authorize_url, log_in_and_consent
from tests.webhook_helpers import (
    Delivery,
    Receiver,
    attempts,
    dispatch_once,
    drain,
    runtime_with,
    status,
)

ACTOR = Actor("cli:test", "cli")
LOGOUT = "oidc.backchannel_logout"
PAGE = Path(__file__).resolve().parents[3] / "docs" / "integrating.md"


def documented_reader() -> Callable[..., dict[str, Any]]:
    """docs/integrating.md's ``read_logout_token``, as written there."""
    section = PAGE.read_text().split("### Back-channel logout", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(compile(code, str(PAGE), "exec"), namespace)  # noqa: S102 (our own page)
    reader: Callable[..., dict[str, Any]] = namespace["read_logout_token"]
    return reader


# -- an RP's side ------------------------------------------------------------------------


def logout_token_of(delivery: Delivery) -> str:
    """What the RP's endpoint reads: a form with exactly one ``logout_token``."""
    assert delivery.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert not any(h.lower().startswith("webhook-") for h in delivery.headers)
    form = parse_qs(delivery.body.decode("ascii"), strict_parsing=True)
    assert list(form) == ["logout_token"] and len(form["logout_token"]) == 1
    return form["logout_token"][0]


def verify_logout_token(token: str, jwks: dict[str, Any], client_id: str) -> dict[str, Any]:
    """§2.6, as an RP checks it with joserfc: signed by a key of the JWKS, typed,
    the event, iss/aud/iat/exp/jti, a sub or a sid, never a nonce."""
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    assert decoded.header["typ"] == "logout+jwt"
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client_id},
        iat={"essential": True},
        exp={"essential": True},
        jti={"essential": True},
        events={"essential": True},
    ).validate(decoded.claims)
    claims = dict(decoded.claims)
    assert claims["events"] == {BACKCHANNEL_LOGOUT_EVENT: {}}
    assert "nonce" not in claims
    assert 0 < claims["exp"] - claims["iat"] <= 120
    assert claims.get("sub") or claims.get("sid")
    return claims


# -- a browser's side --------------------------------------------------------------------


@pytest.fixture
async def browsers(app: OnePass) -> AsyncIterator[list[httpx.AsyncClient]]:
    opened: list[httpx.AsyncClient] = []
    yield opened
    for browser in opened:
        await browser.aclose()


def new_browser(app: OnePass, opened: list[httpx.AsyncClient]) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)
    opened.append(browser)
    return browser


async def sign_in(
    browser: httpx.AsyncClient, client: Client, user: UserInfo, scope: str = "openid email"
) -> dict[str, Any]:
    """The user signs in to ``client`` in ``browser``; the RP redeems the code: its tokens."""
    callback = await log_in_and_consent(
        browser, authorize_url(client, scope=scope), user.email, user.password
    )
    code = parse_qs(urlsplit(callback).query)["code"][0]
    answer = await browser.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": VERIFIER,
        },
        auth=(client.client_id, client.client_secret or ""),
    )
    assert answer.status_code == 200, answer.text
    tokens: dict[str, Any] = answer.json()
    return tokens


async def logout_entries(runtime: Runtime, **filters: Any) -> list[WebhookOutboxEntry]:
    async with runtime.database.session() as session:
        return await outbox.list_entries(session, event_type=LOGOUT, **filters)


async def jwks_of(http: httpx.AsyncClient) -> dict[str, Any]:
    keys: dict[str, Any] = (await http.get("/.well-known/jwks.json")).json()
    return keys


async def rp_with_logout(runtime: Runtime, receiver: Receiver, path: str, **options: Any) -> Client:
    return await make_rp(
        runtime, backchannel_logout_uri=receiver.url(path), name=path.strip("/"), **options
    )


def id_token_claims(tokens: dict[str, Any], jwks: dict[str, Any]) -> dict[str, Any]:
    return dict(
        jwt.decode(
            tokens["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"]
        ).claims
    )


# -- the tests ---------------------------------------------------------------------------


async def test_logout_at_the_logout_endpoint_sends_each_rp_of_the_session_a_logout_token(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    user = await make_user(runtime)
    told = await rp_with_logout(runtime, receiver, "/bcl")
    also = await rp_with_logout(runtime, receiver, "/also", first_party=True)
    silent = await make_rp(runtime, name="no back-channel logout", first_party=True)
    await rp_with_logout(runtime, receiver, "/never-signed-in")
    browser = new_browser(app, browsers)
    tokens = await sign_in(browser, told, user)
    await sign_in(browser, also, user)  # the same session: no login asked
    await sign_in(browser, silent, user)
    jwks = await jwks_of(http)
    sid = id_token_claims(tokens, jwks)["sid"]
    assert sid

    out = await browser.get("/logout", params={"id_token_hint": tokens["id_token"]})
    assert out.status_code == 200, out.text[:300]
    [entry] = await logout_entries(runtime, app_id=told.id)
    assert entry.payload["sid"] == sid and entry.payload["reason"] == "rp_logout"
    assert entry.idempotency_key == f"oidc.backchannel_logout:sid:{sid}"
    assert len(await logout_entries(runtime)) == 2  # told and also; not silent nor other

    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) == 2)
    [delivery] = receiver.at("/bcl")
    claims = verify_logout_token(logout_token_of(delivery), jwks, told.client_id)
    assert claims["sid"] == sid and claims["sub"] == user.sub
    # The RP's code in docs/integrating.md accepts it as written.
    read = documented_reader()
    assert read(logout_token_of(delivery), jwks, ISSUER, told.client_id)["sid"] == sid
    with pytest.raises(Exception):  # noqa: B017 (joserfc's claim error, or ours)
        read(logout_token_of(delivery), jwks, ISSUER, also.client_id)
    assert claims["jti"] == entry.payload["jti"]
    [to_also] = receiver.at("/also")
    assert verify_logout_token(logout_token_of(to_also), jwks, also.client_id)["sid"] == sid
    assert receiver.at("/never-signed-in") == []
    done = (await logout_entries(runtime, app_id=told.id))[0]
    assert done.delivered_at is not None and done.attempts == 1
    # Signed in to once: one row per RP, however many codes.
    async with runtime.database.session() as session:
        rows = list(await session.scalars(select(LoginSessionClient)))
    assert {r.oauth_application_id for r in rows} == {told.id, also.id, silent.id}


async def test_every_other_way_sessions_end_enqueues_a_logout_for_the_rps_of_the_user(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    rp = await rp_with_logout(runtime, receiver, "/bcl")
    target = await make_user(runtime, email="target@example.com")
    hasher = PasswordHasher(runtime.settings)
    recovery = Recovery(runtime, hasher)

    async def revoke(user: UserInfo) -> None:
        await users.revoke_sessions(runtime, ACTOR, user.email)

    async def set_password(user: UserInfo) -> None:
        await users.set_password(runtime, ACTOR, user.email, "another long passphrase")

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

    async def disable(user: UserInfo) -> None:
        await users.disable_user(runtime, ACTOR, user.email)

    async def delete(user: UserInfo) -> None:
        await users.delete_user(runtime, ACTOR, user.email)

    async def merge(user: UserInfo) -> None:
        resolver = CanonicalResolver(runtime.cache, 60)
        await merges.merge_by_reference(runtime, resolver, ACTOR, user.email, target.email)

    triggers = {
        "sessions_revoked": revoke,
        "password_set": set_password,
        "password_reset": reset_password,
        "user_disabled": disable,
        "user_deleted": delete,
        "user_merged": merge,
    }
    for n, (reason, end) in enumerate(triggers.items()):
        user = await make_user(runtime, email=f"user{n}@example.com")
        await sign_in(new_browser(app, browsers), rp, user)
        await end(user)
        found = [e for e in await logout_entries(runtime) if e.payload["sub"] == user.sub]
        assert [e.payload["reason"] for e in found] == [reason], reason
        # A user-wide logout: the user, not one session (the RP does not require sid).
        assert found[0].payload["sid"] is None
        assert found[0].payload["client_id"] == rp.client_id

    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) == len(triggers))
    jwks = await jwks_of(http)
    subs = set()
    for delivery in receiver.at("/bcl"):
        claims = verify_logout_token(logout_token_of(delivery), jwks, rp.client_id)
        assert "sid" not in claims
        subs.add(claims["sub"])
    assert len(subs) == len(triggers)


async def test_a_failing_endpoint_is_retried_dead_lettered_listed_and_replayed_with_one_jti(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    user = await make_user(runtime)
    rp = await rp_with_logout(runtime, receiver, "/bcl")
    browser = new_browser(app, browsers)
    tokens = await sign_in(browser, rp, user)
    receiver.routes["/bcl"] = status(503)
    assert (await browser.get("/logout", params={"id_token_hint": tokens["id_token"]})).is_success

    await drain(runtime)  # 3 attempts on the test schedule, then dead
    [dead] = await logout_entries(runtime, status="dead")
    assert dead.attempts == 3 and dead.last_status_code == 503
    assert "gave up after 3 attempts" in (dead.last_error or "")
    async with runtime.database.session() as session:
        # What `onepass webhooks list --status dead --event-type oidc.backchannel_logout` lists.
        listed = await outbox.list_entries(session, status="dead", event_type=LOGOUT)
        assert [e.id for e in listed] == [dead.id]
        assert await outbox.list_entries(session, status="dead", event_type="test.ping") == []

    receiver.routes["/bcl"] = status(204)  # §2.8: 204 counts as 200
    replayed = await webhook_playbook.replay_dlq(runtime, ACTOR, rp.client_id, event_type=LOGOUT)
    assert replayed["entry_ids"] == [dead.id]
    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) == 4)
    [done] = await logout_entries(runtime, status="delivered")
    assert done.id == dead.id

    jwks = await jwks_of(http)
    every = [
        verify_logout_token(logout_token_of(d), jwks, rp.client_id) for d in receiver.at("/bcl")
    ]
    assert {c["jti"] for c in every} == {dead.payload["jti"]}  # one jti: the RP can dedupe
    assert [d.answered_status for d in receiver.deliveries] == [503, 503, 503, 204]


async def test_other_answers_than_200_or_204_are_failures(
    app: OnePass, runtime: Runtime, receiver: Receiver, browsers: list[httpx.AsyncClient]
) -> None:
    user = await make_user(runtime)
    accepted = await rp_with_logout(runtime, receiver, "/accepted", first_party=True)
    refused = await rp_with_logout(runtime, receiver, "/refused", first_party=True)
    receiver.routes["/accepted"] = status(202)
    receiver.routes["/refused"] = status(400)
    browser = new_browser(app, browsers)
    await sign_in(browser, accepted, user)
    await sign_in(browser, refused, user)
    await users.revoke_sessions(runtime, ACTOR, user.email)
    await dispatch_once(runtime)
    dead = {e.oauth_application_id: e for e in await logout_entries(runtime, status="dead")}
    assert set(dead) == {accepted.id, refused.id}
    assert "HTTP 202: a back-channel logout endpoint answers 200 or 204" in (
        dead[accepted.id].last_error or ""
    )
    assert dead[refused.id].last_status_code == 400


async def test_a_client_that_requires_the_session_gets_one_token_per_session_with_its_sid(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    user = await make_user(runtime)
    per_session = await rp_with_logout(
        runtime, receiver, "/sid", backchannel_logout_session_required=True
    )
    per_user = await rp_with_logout(runtime, receiver, "/sub", first_party=True)
    jwks = await jwks_of(http)
    sids = set()
    for _ in range(2):  # two browsers: two sessions
        browser = new_browser(app, browsers)
        sids.add(id_token_claims(await sign_in(browser, per_session, user), jwks)["sid"])
        await sign_in(browser, per_user, user)
    assert len(sids) == 2

    ended = await users.revoke_sessions(runtime, ACTOR, user.email)
    assert ended["sessions_ended"] == 2 and ended["logouts_enqueued"] == 3
    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) == 3)
    got = [
        verify_logout_token(logout_token_of(d), jwks, per_session.client_id)
        for d in receiver.at("/sid")
    ]
    assert {c["sid"] for c in got} == sids and {c["sub"] for c in got} == {user.sub}
    [whole] = receiver.at("/sub")
    claims = verify_logout_token(logout_token_of(whole), jwks, per_user.client_id)
    assert claims["sub"] == user.sub and "sid" not in claims


async def test_a_refresh_token_holder_is_told_and_the_same_logout_is_enqueued_once(
    app: OnePass, runtime: Runtime, receiver: Receiver, browsers: list[httpx.AsyncClient]
) -> None:
    user = await make_user(runtime)
    rp = await rp_with_logout(runtime, receiver, "/bcl")
    browser = new_browser(app, browsers)
    tokens = await sign_in(browser, rp, user, scope="openid offline_access")
    # Every ID token of the session names it, a refreshed one too.
    jwks = await jwks_of(browser)
    refreshed = await browser.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(rp.client_id, rp.client_secret or ""),
    )
    assert refreshed.status_code == 200, refreshed.text
    sid = id_token_claims(tokens, jwks)["sid"]
    assert sid and id_token_claims(refreshed.json(), jwks)["sid"] == sid
    tokens = refreshed.json()
    assert (await browser.get("/logout", params={"id_token_hint": tokens["id_token"]})).is_success
    assert len(await logout_entries(runtime)) == 1  # the session: sid

    # The session is over but the refresh token lives on (offline access): an operator
    # ending the user's sessions tells the RP again, about the user; twice, once.
    await users.revoke_sessions(runtime, ACTOR, user.email)
    await users.revoke_sessions(runtime, ACTOR, user.email)
    found = await logout_entries(runtime)
    assert [(e.payload["sid"] is None, e.payload["reason"]) for e in found] == [
        (False, "rp_logout"),
        (True, "sessions_revoked"),
    ]
    # Telling a session's end twice (two requests racing) enqueues it once.
    async with runtime.database.session() as session:
        login = await session.scalar(select(LoginSession).where(LoginSession.user_id == user.id))
        assert login is not None
        again = await backchannel.logout_session(
            session, runtime.clock, login, enforce=False, reason=backchannel.RP_LOGOUT
        )
    assert again == 0 and len(await logout_entries(runtime)) == 2


async def test_an_rp_without_a_logout_uri_and_no_session_gets_nothing(
    app: OnePass, runtime: Runtime, receiver: Receiver, browsers: list[httpx.AsyncClient]
) -> None:
    user = await make_user(runtime)
    plain = await make_rp(runtime, first_party=True)
    browser = new_browser(app, browsers)
    tokens = await sign_in(browser, plain, user)
    await rp_with_logout(runtime, receiver, "/bcl")  # registered, never signed in to
    assert (await browser.get("/logout", params={"id_token_hint": tokens["id_token"]})).is_success
    await users.disable_user(runtime, ACTOR, user.email)
    assert await logout_entries(runtime) == []


async def test_a_logout_uri_that_is_not_allowed_any_more_is_refused_at_delivery(
    app: OnePass,
    settings: Settings,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    user = await make_user(runtime)
    rp = await rp_with_logout(runtime, receiver, "/bcl")  # loopback: allowed here
    await sign_in(new_browser(app, browsers), rp, user)
    await users.revoke_sessions(runtime, ACTOR, user.email)
    strict = await runtime_with(
        settings.model_copy(update={"webhook_allow_private_targets": False})
    )
    try:
        await dispatch_once(strict)
    finally:
        await strict.close()
    assert receiver.deliveries == []
    [dead] = await logout_entries(runtime, status="dead")
    assert "back-channel logout URI host 127.0.0.1 is a loopback address" in (dead.last_error or "")
    [attempt] = await attempts(runtime, dead.id)
    assert attempt.error_class == "unsafe_target"


async def test_logout_uri_registration_is_checked_like_a_webhook_url(runtime: Runtime) -> None:
    strict = Runtime.build(
        runtime.settings.model_copy(update={"webhook_allow_private_targets": False}),
        runtime.clock,
    )
    try:
        for uri, message in (
            ("rp.example/bcl", "backchannel_logout_uri 'rp.example/bcl' must be an absolute"),
            ("https://rp.example/a b", "must not contain spaces or controls"),
            ("https://rp.example/bcl#frag", "must not contain a fragment"),
            ("https://user:pw@rp.example/bcl", "must not contain credentials"),
            ("https://10.0.0.7/bcl", "back-channel logout URI host 10.0.0.7 is a private address"),
            ("http://127.0.0.1:9/bcl", "back-channel logout URI host 127.0.0.1 is a loopback"),
            ("https://169.254.169.254/", "a cloud metadata service"),
        ):
            with pytest.raises(Exception, match=message) as refused:
                await client_playbook.create(
                    strict,
                    ACTOR,
                    name="rp",
                    redirect_uris=[REDIRECT_URI],
                    backchannel_logout_uri=uri,
                )
            assert refused.type.__name__ in ("InvalidClientSettings", "UnsafeWebhookTarget")
        with pytest.raises(InvalidClientSettings, match="needs a backchannel_logout_uri"):
            await client_playbook.create(
                strict,
                ACTOR,
                name="rp",
                redirect_uris=[REDIRECT_URI],
                backchannel_logout_session_required=True,
            )
        async with strict.database.session() as session:
            assert await registry.list_clients(session) == []  # nothing half-made
    finally:
        await strict.close()
    production = Runtime.build(
        runtime.settings.model_copy(
            update={"env": Environment.PRODUCTION, "issuer": "https://id.example.com"}
        ),
        runtime.clock,
    )
    try:
        with pytest.raises(InvalidClientSettings, match="must use https in production"):
            await client_playbook.create(
                production,
                ACTOR,
                name="rp",
                redirect_uris=[REDIRECT_URI],
                backchannel_logout_uri="http://rp.example/bcl",
            )
    finally:
        await production.close()


async def test_the_registration_is_shown_changed_and_removed(runtime: Runtime) -> None:
    created = await client_playbook.create(
        runtime,
        ACTOR,
        name="rp",
        redirect_uris=[REDIRECT_URI],
        backchannel_logout_uri="https://rp.example/bcl?tenant=1",
    )
    assert created["backchannel_logout_uri"] == "https://rp.example/bcl?tenant=1"
    assert created["backchannel_logout_session_required"] is False
    assert created["webhook_url"] is None and "webhook_signing_key" not in created
    client_id = created["client_id"]
    changed = await client_playbook.update(
        runtime, ACTOR, client_id, ClientChanges(backchannel_logout_session_required=True)
    )
    assert changed["backchannel_logout_session_required"] is True
    strict = Runtime.build(
        runtime.settings.model_copy(update={"webhook_allow_private_targets": False}),
        runtime.clock,
    )
    try:
        with pytest.raises(
            UnsafeWebhookTarget, match=r"back-channel logout URI host 192\.168\.1\.1 is a private"
        ):
            await client_playbook.update(
                strict,
                ACTOR,
                client_id,
                ClientChanges(backchannel_logout_uri="https://192.168.1.1/bcl"),
            )
    finally:
        await strict.close()
    removed = await client_playbook.update(
        runtime, ACTOR, client_id, ClientChanges(backchannel_logout_uri="")
    )
    assert removed["backchannel_logout_uri"] is None
    assert removed["backchannel_logout_session_required"] is False  # goes with its URI


async def test_an_operator_ending_one_session_tells_its_rps_with_its_sid(
    app: OnePass,
    http: httpx.AsyncClient,
    runtime: Runtime,
    receiver: Receiver,
    browsers: list[httpx.AsyncClient],
) -> None:
    user = await make_user(runtime)
    rp = await rp_with_logout(runtime, receiver, "/bcl")
    jwks = await jwks_of(http)
    first = id_token_claims(await sign_in(new_browser(app, browsers), rp, user), jwks)["sid"]
    second = id_token_claims(await sign_in(new_browser(app, browsers), rp, user), jwks)["sid"]

    with pytest.raises(users.SessionNotFound, match="no live session"):
        await users.revoke_sessions(runtime, ACTOR, user.email, session_ref="nope")
    ended = await users.revoke_sessions(runtime, ACTOR, user.email, session_ref=second)
    assert ended["sessions_ended"] == 1 and ended["logouts_enqueued"] == 1
    [entry] = await logout_entries(runtime)
    assert entry.payload["sid"] == second and entry.payload["reason"] == "session_revoked"
    async with runtime.database.session() as session:
        live = await session.scalars(
            select(LoginSession.sid).where(
                LoginSession.user_id == user.id, LoginSession.revoked_at.is_(None)
            )
        )
        assert list(live) == [first]
    await dispatch_once(runtime)
    await receiver.wait_for(lambda: len(receiver.deliveries) == 1)
    claims = verify_logout_token(logout_token_of(receiver.deliveries[0]), jwks, rp.client_id)
    assert claims["sid"] == second and claims["sub"] == user.sub

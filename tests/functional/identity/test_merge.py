"""The merge service, canonical resolution and its cache, ENFORCE_CANONICAL_RESOLUTION."""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from onepass.accounts.models import LoginSession
from onepass.app import OnePass, create_app
from onepass.identity.canonical import RESOLVER, CanonicalResolver, cache_key
from onepass.identity.models import IdentityLink
from onepass.identity.service import MergeError, merge, merge_users
from onepass.oauth import pkce
from onepass.oauth.models import RefreshToken
from onepass.oauth.revocation import revoke_merged_user
from onepass.runtime import Runtime
from onepass.webhooks.models import WebhookOutboxEntry
from tests.conftest import ISSUER, make_settings
from tests.factories import REDIRECT_URI, make_client, make_rp, make_user
from tests.flow import log_in_and_consent


async def do_merge(app_or_runtime, source: int, target: int):
    services = app_or_runtime.services if isinstance(app_or_runtime, OnePass) else None
    runtime = services.runtime if services else app_or_runtime
    resolver = services.get(RESOLVER) if services else CanonicalResolver(runtime.cache, 60)
    return await merge(
        runtime.database,
        resolver,
        runtime.clock,
        source_id=source,
        target_id=target,
        actor="test",
        revoke_tokens=revoke_merged_user,
    )


async def users(runtime: Runtime, n: int) -> list[int]:
    return [
        (await make_user(runtime, email=f"u{i}-{secrets.token_hex(3)}@example.com")).id
        for i in range(n)
    ]


async def test_merge_links_revokes_and_notifies_subscribed_rps(runtime: Runtime) -> None:
    subscribed = await make_client(
        runtime, webhook_url="http://127.0.0.1:9/hook", webhook_events=["identity.link.created"]
    )
    await make_client(runtime, webhook_url="http://127.0.0.1:9/other", webhook_events=["test.ping"])
    await make_client(runtime)  # no webhook at all
    a, b = await users(runtime, 2)
    result = await do_merge(runtime, a, b)
    assert result.enqueued == 1
    async with runtime.database.session() as session:
        link = await session.scalar(select(IdentityLink))
        assert (link.source_user_id, link.target_user_id, link.actor) == (a, b, "test")
        entries = list(await session.scalars(select(WebhookOutboxEntry)))
    assert [(e.oauth_application_id, e.event_type) for e in entries] == [
        (subscribed.id, "identity.link.created")
    ]
    assert entries[0].idempotency_key == f"identity.link.created:{link.id}:{subscribed.id}"
    assert set(entries[0].payload) == {
        "link_id",
        "source_sub",
        "target_sub",
        "created_at",
        "repointed",
    }
    assert entries[0].payload["repointed"] == []


async def test_merge_revokes_the_sources_sessions_and_refresh_tokens(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    source = await make_user(runtime, email="old@example.com")
    target = await make_user(runtime, email="new@example.com")
    client = await make_rp(runtime, first_party=True)
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid offline_access",
        "code_challenge": pkce.s256(verifier),
        "code_challenge_method": "S256",
    }
    callback = await log_in_and_consent(
        http, "/authorize?" + httpx.QueryParams(params).__str__(), source.email, source.password
    )
    code = parse_qs(urlsplit(callback).query)["code"][0]
    tokens = (
        await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier,
            },
            auth=(client.client_id, client.client_secret),
        )
    ).json()
    await do_merge(app, source.id, target.id)
    async with runtime.database.session() as session:
        live_sessions = await session.scalar(
            select(func.count())
            .select_from(LoginSession)
            .where(LoginSession.user_id == source.id, LoginSession.revoked_at.is_(None))
        )
        live_refresh = await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(RefreshToken.user_id == source.id, RefreshToken.revoked_at.is_(None))
        )
    assert live_sessions == 0 and live_refresh == 0
    refresh = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=(client.client_id, client.client_secret),
    )
    assert refresh.json()["error"] == "invalid_grant"


async def test_merge_refusals_name_the_problem(runtime: Runtime) -> None:
    a, b, c = await users(runtime, 3)
    with pytest.raises(MergeError, match="itself"):
        await do_merge(runtime, a, a)
    await do_merge(runtime, a, b)
    with pytest.raises(MergeError, match="already merged"):
        await do_merge(runtime, a, c)
    with pytest.raises(MergeError, match=f"merge into {b} instead"):
        await do_merge(runtime, c, a)
    with pytest.raises(MergeError, match="no user"):
        await do_merge(runtime, c, 999_999)


async def test_chains_stay_one_hop_and_resolve_to_the_last_target(runtime: Runtime) -> None:
    a, b, c, d = await users(runtime, 4)
    await do_merge(runtime, a, b)
    await do_merge(runtime, d, b)
    await do_merge(runtime, b, c)
    async with runtime.database.session() as session:
        links = {
            (link.source_user_id, link.target_user_id)
            for link in await session.scalars(select(IdentityLink))
        }
    assert links == {(a, c), (d, c), (b, c)}
    resolver = CanonicalResolver(runtime.cache, 60)
    async with runtime.database.session() as session:
        assert [await resolver.resolve(session, u) for u in (a, b, c, d)] == [c, c, c, c]


async def test_a_rolled_back_merge_leaves_no_link_and_no_webhook(runtime: Runtime) -> None:
    await make_client(runtime, webhook_url="http://127.0.0.1:9/hook")
    a, b = await users(runtime, 2)
    with pytest.raises(RuntimeError):
        async with runtime.database.session() as session:
            await merge_users(session, runtime.clock, source_id=a, target_id=b, actor="test")
            raise RuntimeError("the caller fails after the merge")
    async with runtime.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(IdentityLink)) == 0
        assert await session.scalar(select(func.count()).select_from(WebhookOutboxEntry)) == 0


async def test_merge_invalidates_exactly_the_stale_cache_keys(runtime: Runtime) -> None:
    a, b, c, other = await users(runtime, 4)
    resolver = CanonicalResolver(runtime.cache, 3600)
    await do_merge(runtime, a, b)
    async with runtime.database.session() as session:
        for u in (a, b, c, other):
            await resolver.resolve(session, u)  # warm
    assert await runtime.cache.get(cache_key(a)) == str(b)
    result = await merge(
        runtime.database,
        resolver,
        runtime.clock,
        source_id=b,
        target_id=c,
        actor="t",
        revoke_tokens=revoke_merged_user,
    )
    assert sorted(result.stale_user_ids) == sorted([a, b])
    # The stale keys now hold the new answer; unrelated keys are untouched.
    assert await runtime.cache.get(cache_key(a)) == str(c) and await runtime.cache.get(
        cache_key(b)
    ) == str(c)
    assert await runtime.cache.get(cache_key(other)) == str(other), "unrelated keys stay"
    async with runtime.database.session() as session:
        assert await resolver.resolve(session, a) == c


async def test_a_resolution_read_before_the_merge_cannot_put_the_old_answer_back(
    runtime: Runtime,
) -> None:
    """The race: a request misses the cache and reads "b is canonical" just before b's
    merge commits; its cache write lands after the merge's. NX keeps the new answer."""
    b, c = await users(runtime, 2)
    resolver = CanonicalResolver(runtime.cache, 3600)
    async with runtime.database.session() as session:
        from onepass.identity.canonical import canonical_user_id

        stale_answer = await canonical_user_id(session, b)  # read before the merge
    await merge(
        runtime.database,
        resolver,
        runtime.clock,
        source_id=b,
        target_id=c,
        actor="t",
        revoke_tokens=revoke_merged_user,
    )
    stored = await runtime.cache.set(
        cache_key(b), str(stale_answer), 3600, nx=True
    )  # the late write
    assert stored is False
    async with runtime.database.session() as session:
        assert await resolver.resolve(session, b) == c


async def test_repointed_links_are_listed_in_the_event(runtime: Runtime) -> None:
    await make_client(runtime, webhook_url="http://127.0.0.1:9/hook")
    a, b, c = await users(runtime, 3)
    first = await do_merge(runtime, a, b)
    await do_merge(runtime, b, c)
    async with runtime.database.session() as session:
        entries = list(
            await session.scalars(select(WebhookOutboxEntry).order_by(WebhookOutboxEntry.id))
        )
    assert entries[1].payload["repointed"] == [
        {"link_id": first.link.id, "source_sub": first.source.sub}
    ]


async def _token_for(http: httpx.AsyncClient, client, email: str, password: str) -> dict:
    verifier = secrets.token_urlsafe(48)
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email",
        "code_challenge": pkce.s256(verifier),
        "code_challenge_method": "S256",
        "prompt": "login",
    }
    callback = await log_in_and_consent(
        http, "/authorize?" + str(httpx.QueryParams(params)), email, password
    )
    code = parse_qs(urlsplit(callback).query)["code"][0]
    response = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(client.client_id, client.client_secret),
    )
    return response.json()


async def test_enforcement_on_resolves_login_tokens_and_userinfo_to_canonical_user(
    runtime: Runtime,
) -> None:
    settings = make_settings(
        runtime.settings.database_url, runtime.settings.redis_url, enforce_canonical_resolution=True
    )
    source = await make_user(runtime, email="old@example.com")
    target = await make_user(runtime, email="new@example.com")
    client = await make_rp(runtime, first_party=True)
    app = create_app(settings)
    async with (
        app.api.router.lifespan_context(app.api),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        before = await _token_for(http, client, source.email, source.password)
        # Warm the cache with the source's own resolution, then merge.
        assert (
            await http.get(
                "/userinfo", headers={"authorization": f"Bearer {before['access_token']}"}
            )
        ).json()["sub"] == source.sub
        await do_merge(app, source.id, target.id)
        # The merged user's next request already sees the canonical user.
        stale = await http.get(
            "/userinfo", headers={"authorization": f"Bearer {before['access_token']}"}
        )
        assert stale.status_code == 401
        introspected = await http.post(
            "/introspect",
            data={"token": before["access_token"]},
            auth=(client.client_id, client.client_secret),
        )
        assert introspected.json() == {"active": False}
        after = await _token_for(http, client, source.email, source.password)
        info = (
            await http.get(
                "/userinfo", headers={"authorization": f"Bearer {after['access_token']}"}
            )
        ).json()
        assert info["sub"] == target.sub and info["email"] == target.email
        active = (
            await http.post(
                "/introspect",
                data={"token": after["access_token"]},
                auth=(client.client_id, client.client_secret),
            )
        ).json()
        assert active["active"] is True and active["sub"] == target.sub


async def test_enforcement_off_keeps_the_legacy_sub(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    source = await make_user(runtime, email="old@example.com")
    target = await make_user(runtime, email="new@example.com")
    client = await make_rp(runtime, first_party=True)
    before = await _token_for(http, client, source.email, source.password)
    await do_merge(app, source.id, target.id)
    assert (
        await http.get("/userinfo", headers={"authorization": f"Bearer {before['access_token']}"})
    ).json()["sub"] == source.sub
    after = await _token_for(http, client, source.email, source.password)
    assert (
        await http.get("/userinfo", headers={"authorization": f"Bearer {after['access_token']}"})
    ).json()["sub"] == source.sub

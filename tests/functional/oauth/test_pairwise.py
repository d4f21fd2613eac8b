"""Pairwise subject identifiers (OpenID Connect Core 1.0 §8.1, §17.3): what each RP sees.

Every flow here is HTTP through the app on a real database; sector identifier documents
are served by a real local HTTP server, webhooks received by a real one and verified
with ``standardwebhooks``, tokens verified with joserfc.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import func, select

from onepass.app import OnePass
from onepass.clients import subjects
from onepass.clients.models import OAuthApplication, PairwiseSubject
from onepass.clients.registry import ClientChanges, find_client
from onepass.identity.canonical import RESOLVER
from onepass.oauth import pkce
from onepass.operators.audit import Actor
from onepass.playbook import clients as playbook
from onepass.playbook import merges
from onepass.refusals import Invalid
from onepass.runtime import Runtime
from onepass.settings import Settings
from tests.conftest import ISSUER, TEST_SECRET_KEY, make_settings
from tests.factories import UserInfo, make_user
from tests.flow import log_in_and_consent
from tests.oidc import verify_access_token
from tests.webhook_helpers import Receiver, drain, runtime_with, status

VERIFIER = "p" * 43
SCOPE = "openid email offline_access"


@pytest.fixture
def settings(database_url: str, redis_url: str | None) -> Settings:
    # The sector identifier documents and the webhook receiver listen on 127.0.0.1;
    # ENFORCE_CANONICAL_RESOLUTION on, so that tokens follow merges.
    return make_settings(
        database_url,
        redis_url,
        webhook_allow_private_targets=True,
        enforce_canonical_resolution=True,
    )


@pytest.fixture
async def server() -> AsyncIterator[Receiver]:
    receiver = await Receiver().start()
    yield receiver
    await receiver.stop()


def serve(server: Receiver, path: str, body: object, code: int = 200) -> str:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    server.routes[path] = status(code, body=raw, headers={"content-type": "application/json"})
    return server.url(path)


async def register(runtime: Runtime, **options: Any) -> dict[str, Any]:
    """A confidential RP with the code flow, registered as the CLI does (the playbook)."""
    options.setdefault("name", "rp")
    options.setdefault("scope", SCOPE)
    return await playbook.create(runtime, Actor.cli(), **options)


async def authorize(app: OnePass, rp: dict[str, Any], user: UserInfo) -> str:
    """A fresh browser signs ``user`` in for ``rp``; the code its callback carries."""
    redirect_uri = rp["redirect_uris"][0]
    query = urlencode(
        {
            "response_type": "code",
            "client_id": rp["client_id"],
            "redirect_uri": redirect_uri,
            "scope": SCOPE,
            "state": "s",
            "nonce": "n",
            "code_challenge": pkce.s256(VERIFIER),
            "code_challenge_method": "S256",
        }
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        callback = await log_in_and_consent(
            browser, f"/authorize?{query}", user.email, user.password
        )
    assert callback.startswith(redirect_uri + "?"), callback
    return parse_qs(urlsplit(callback).query)["code"][0]


async def redeem(http: httpx.AsyncClient, rp: dict[str, Any], code: str) -> dict[str, Any]:
    response = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": rp["redirect_uris"][0],
            "code_verifier": VERIFIER,
        },
        auth=(rp["client_id"], rp["client_secret"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def sign_in(
    app: OnePass, http: httpx.AsyncClient, rp: dict[str, Any], user: UserInfo
) -> dict[str, Any]:
    return await redeem(http, rp, await authorize(app, rp, user))


def id_token_sub(token: str, jwks: dict[str, Any], client_id: str) -> str:
    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["RS256", "ES256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        nonce={"essential": True, "value": "n"},
    ).validate(decoded.claims)
    sub: str = decoded.claims["sub"]
    return sub


async def subs_seen(
    http: httpx.AsyncClient, rp: dict[str, Any], tokens: dict[str, Any]
) -> dict[str, str]:
    """The sub ``rp`` is given everywhere it can be: ID token, access token, userinfo,
    introspection of both tokens, and the refresh grant's tokens."""
    jwks = (await http.get("/.well-known/jwks.json")).json()
    access = verify_access_token(tokens["access_token"], jwks, issuer=ISSUER, audience=ISSUER)
    bearer = {"authorization": f"Bearer {tokens['access_token']}"}
    userinfo = await http.get("/userinfo", headers=bearer)
    assert userinfo.status_code == 200, userinfo.text
    auth = (rp["client_id"], rp["client_secret"])
    introspected = (
        await http.post("/introspect", data={"token": tokens["access_token"]}, auth=auth)
    ).json()
    assert introspected["active"] is True, introspected
    refresh_introspected = (
        await http.post("/introspect", data={"token": tokens["refresh_token"]}, auth=auth)
    ).json()
    refreshed = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=auth,
    )
    assert refreshed.status_code == 200, refreshed.text
    again = refreshed.json()
    return {
        "id_token": id_token_sub(tokens["id_token"], jwks, rp["client_id"]),
        "access_token": access.claims["sub"],
        "userinfo": userinfo.json()["sub"],
        "introspection": introspected["sub"],
        "refresh_introspection": refresh_introspected["sub"],
        "refreshed_access_token": verify_access_token(
            again["access_token"], jwks, issuer=ISSUER, audience=ISSUER
        ).claims["sub"],
    }


def one_sub(seen: dict[str, str]) -> str:
    assert len(set(seen.values())) == 1, seen
    return next(iter(seen.values()))


async def test_pairwise_subs_per_sector_and_public_unchanged(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, server: Receiver
) -> None:
    user = await make_user(runtime)
    other = await make_user(runtime, email="grace@example.com")
    a1 = await register(
        runtime, subject_type="pairwise", redirect_uris=["https://a.example/cb"], name="a1"
    )
    a2 = await register(
        runtime, subject_type="pairwise", redirect_uris=["https://a.example/other"], name="a2"
    )
    b = await register(
        runtime, subject_type="pairwise", redirect_uris=["https://b.example/cb"], name="b"
    )
    # Redirect URIs on two hosts: the sector is the host of the sector identifier URI.
    uris = ["https://c1.example/cb", "https://c2.example/cb"]
    c = await register(
        runtime,
        subject_type="pairwise",
        redirect_uris=uris,
        sector_identifier_uri=serve(server, "/sector.json", uris),
        name="c",
    )
    public = await register(runtime, redirect_uris=["https://a.example/public"], name="p")
    assert (a1["subject_type"], public["subject_type"]) == ("pairwise", "public")
    assert c["sector_identifier_uri"] == server.url("/sector.json")

    seen = {
        name: one_sub(await subs_seen(http, rp, await sign_in(app, http, rp, user)))
        for name, rp in (("a1", a1), ("a2", a2), ("b", b), ("c", c), ("public", public))
    }
    assert seen["public"] == user.sub, "a public client sees the user's own sub"
    assert seen["a1"] == seen["a2"], "one sector, one sub"
    assert len({seen["a1"], seen["b"], seen["c"], user.sub}) == 4, seen
    for name in ("a1", "b", "c"):
        assert user.sub not in seen[name] and len(seen[name]) == 43, seen[name]
    # Stable: signing in again gives the same sub; another user has another one.
    assert one_sub(await subs_seen(http, a2, await sign_in(app, http, a2, user))) == seen["a1"]
    other_sub = one_sub(await subs_seen(http, a1, await sign_in(app, http, a1, other)))
    assert other_sub not in (seen["a1"], other.sub)

    # A token of sector a does not name the user to introspection by a client of b,
    # and b's own userinfo cannot be asked with a's sub.
    async with runtime.database.session() as session:
        b_app = await find_client(session, b["client_id"])
        assert await subjects.user_of_subject(session, b_app, seen["a1"]) is None
        a_app = await find_client(session, a1["client_id"])
        assert await subjects.user_of_subject(session, a_app, seen["a1"]) == user.id
        rows = await session.scalar(select(func.count()).select_from(PairwiseSubject))
    assert rows == 4, "one row per (sector, user): a.example (2 users), b.example, 127.0.0.1"

    # RP-initiated logout: the pairwise ID token names the signed-in user, so the
    # sign-out needs no confirmation; another sector's sub in a forged hint would not.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": b["client_id"],
                "redirect_uri": b["redirect_uris"][0],
                "scope": SCOPE,
                "nonce": "n",
                "code_challenge": pkce.s256(VERIFIER),
                "code_challenge_method": "S256",
            }
        )
        callback = await log_in_and_consent(
            browser, f"/authorize?{query}", user.email, user.password
        )
        tokens = await redeem(http, b, parse_qs(urlsplit(callback).query)["code"][0])
        out = await browser.get("/logout", params={"id_token_hint": tokens["id_token"]})
        assert out.status_code == 200 and 'name="csrf_token"' not in out.text, out.text[:300]


async def test_the_pairwise_sub_survives_a_new_secret_key(
    runtime: Runtime, settings: Settings
) -> None:
    """The sub is random and stored, not derived from ONEPASS_SECRET_KEY: a process with
    another key gives every RP the sub it had."""
    user = await make_user(runtime)
    rp = await register(runtime, subject_type="pairwise", redirect_uris=["https://a.example/cb"])
    async with runtime.database.session() as session:
        app = await find_client(session, rp["client_id"])
        before = await subjects.subject_for(session, runtime.clock, app, user.id, user.sub)
    assert settings.secret_key == TEST_SECRET_KEY
    # A process of another key (its signing keys would not decrypt: not started).
    rotated = Runtime.build(settings.model_copy(update={"secret_key": "another-" + "x" * 40}))
    try:
        async with rotated.database.session() as session:
            app = await find_client(session, rp["client_id"])
            after = await subjects.subject_for(session, rotated.clock, app, user.id, user.sub)
    finally:
        await rotated.close()
    assert after == before


async def test_merge_tells_each_rp_the_subs_it_knows_and_tokens_follow_per_sector(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, server: Receiver
) -> None:
    source = await make_user(runtime, email="source@example.com")
    target = await make_user(runtime, email="target@example.com")
    event = ["identity.link.created"]
    pairwise = await register(
        runtime,
        subject_type="pairwise",
        redirect_uris=["https://a.example/cb"],
        webhook_url=server.url("/pairwise"),
        webhook_events=event,
    )
    other_sector = await register(
        runtime,
        subject_type="pairwise",
        redirect_uris=["https://b.example/cb"],
        webhook_url=server.url("/other"),
        webhook_events=event,
    )
    public = await register(
        runtime,
        redirect_uris=["https://a.example/public"],
        webhook_url=server.url("/public"),
        webhook_events=event,
    )
    subs = {
        (who.email, name): one_sub(await subs_seen(http, rp, await sign_in(app, http, rp, who)))
        for who in (source, target)
        for name, rp in (("pairwise", pairwise), ("other", other_sector))
    }
    # A code the source was issued before the merge, redeemed after it.
    code = await authorize(app, pairwise, source)

    result = await merges.merge_by_reference(
        runtime, app.services.get(RESOLVER), Actor.cli(), str(source.id), str(target.id)
    )
    assert result["source_id"] == source.id
    await drain(runtime)
    for path, rp, expected in (
        ("/pairwise", pairwise, (subs[source.email, "pairwise"], subs[target.email, "pairwise"])),
        ("/other", other_sector, (subs[source.email, "other"], subs[target.email, "other"])),
        ("/public", public, (source.sub, target.sub)),
    ):
        (delivery,) = server.at(path)
        verified = delivery.verify(rp["webhook_signing_key"]["secret"])
        assert verified["type"] == "identity.link.created"
        data = verified["data"]
        assert (data["source_sub"], data["target_sub"]) == expected, path
        if rp is not public:
            assert source.sub not in delivery.body.decode() and target.sub not in str(
                delivery.headers
            )

    # Merges resolve per sector: the source's tokens now carry the target's sub.
    tokens = await redeem(http, pairwise, code)
    assert one_sub(await subs_seen(http, pairwise, tokens)) == subs[target.email, "pairwise"]
    tokens = await sign_in(app, http, other_sector, target)
    assert one_sub(await subs_seen(http, other_sector, tokens)) == subs[target.email, "other"]


async def test_backfill_sends_a_pairwise_rp_its_sectors_subs(
    app: OnePass, runtime: Runtime, server: Receiver
) -> None:
    from onepass.identity.backfill import backfill_links

    source = await make_user(runtime, email="s@example.com")
    target = await make_user(runtime, email="t@example.com")
    await merges.merge_by_reference(
        runtime, app.services.get(RESOLVER), Actor.cli(), str(source.id), str(target.id)
    )
    rp = await register(
        runtime,
        subject_type="pairwise",
        redirect_uris=["https://a.example/cb"],
        webhook_url=server.url("/late"),
        webhook_events=["identity.link.created"],
    )
    result = await backfill_links(runtime.database, runtime.clock, rp["id"])
    assert result.enqueued == 1
    await drain(runtime)
    (delivery,) = server.at("/late")
    data = delivery.verify(rp["webhook_signing_key"]["secret"])["data"]
    async with runtime.database.session() as session:
        app_row = await find_client(session, rp["client_id"])
        expected = [
            await subjects.subject_for(session, runtime.clock, app_row, u.id, u.sub)
            for u in (source, target)
        ]
    assert [data["source_sub"], data["target_sub"]] == expected
    assert source.sub not in expected and target.sub not in expected


async def test_user_and_consent_webhooks_carry_the_rps_sub(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, server: Receiver
) -> None:
    from onepass.playbook import users as user_playbook

    user = await make_user(runtime)
    rp = await register(
        runtime,
        subject_type="pairwise",
        redirect_uris=["https://a.example/cb"],
        webhook_url=server.url("/events"),
        webhook_events=["user.updated", "consent.revoked"],
    )
    sub = one_sub(await subs_seen(http, rp, await sign_in(app, http, rp, user)))
    await user_playbook.update_user(runtime, Actor.cli(), str(user.id), name="Ada L.")
    await user_playbook.revoke_consent(runtime, Actor.cli(), str(user.id), rp["client_id"])
    await drain(runtime)
    received = {
        d.verify(rp["webhook_signing_key"]["secret"])["type"]: d for d in server.at("/events")
    }
    assert set(received) == {"user.updated", "consent.revoked"}
    for delivery in received.values():
        assert delivery.json()["data"]["sub"] == sub
        assert user.sub not in delivery.body.decode() and user.sub not in delivery.webhook_id


# ------------------------------------------------------------------ registration rules


async def test_sector_identifier_documents_are_checked(runtime: Runtime, server: Receiver) -> None:
    uris = ["https://c1.example/cb", "https://c2.example/cb"]
    bad = {
        "/not-json": (b"<html>hello</html>", 200, "not JSON"),
        "/object": ({"redirect_uris": uris}, 200, "JSON array"),
        "/numbers": ([1, 2], 200, "JSON array"),
        "/missing": (uris[:1], 200, "does not list the redirect URI 'https://c2.example/cb'"),
        "/gone": (uris, 404, "HTTP 404"),
        "/huge": ([uris[0]] * 5000 + [uris[1]], 200, "larger than 64 KB"),
    }
    for path, (body, code, message) in bad.items():
        url = serve(server, path, body, code)
        with pytest.raises(Invalid, match=message):
            await register(
                runtime, subject_type="pairwise", redirect_uris=uris, sector_identifier_uri=url
            )
    refused = {
        # several hosts and no sector identifier URI (Registration §5)
        "several hosts": ({"redirect_uris": uris}, "several hosts"),
        "custom scheme": ({"redirect_uris": ["com.example.app:/cb"]}, "custom scheme"),
        "not https": (
            {"redirect_uris": uris, "sector_identifier_uri": "http://sector.example/s.json"},
            "must be an absolute https URL",
        ),
        "credentials": (
            {"redirect_uris": uris, "sector_identifier_uri": "https://u:p@sector.example/s"},
            "credentials",
        ),
        "unknown type": ({"redirect_uris": uris[:1], "subject_type": "secret"}, "subject_type"),
    }
    for name, (options, message) in refused.items():
        options.setdefault("subject_type", "pairwise")
        with pytest.raises(Invalid, match=message):
            await register(runtime, **options)
        assert name
    async with runtime.database.session() as session:
        registered = await session.scalar(select(func.count()).select_from(OAuthApplication))
    assert registered == 0, "a refusal registers nothing"


async def test_sector_identifier_document_is_checked_again_when_redirect_uris_change(
    runtime: Runtime, server: Receiver
) -> None:
    uris = ["https://c1.example/cb", "https://c2.example/cb"]
    url = serve(server, "/sector.json", uris)
    rp = await register(
        runtime, subject_type="pairwise", redirect_uris=uris, sector_identifier_uri=url
    )
    fetched = len(server.at("/sector.json"))
    with pytest.raises(Invalid, match=r"does not list the redirect URI 'https://c3\.example/cb'"):
        await playbook.update(
            runtime,
            Actor.cli(),
            rp["client_id"],
            ClientChanges(add_redirect_uris=("https://c3.example/cb",)),
        )
    assert len(server.at("/sector.json")) == fetched + 1
    serve(server, "/sector.json", [*uris, "https://c3.example/cb"])
    updated = await playbook.update(
        runtime,
        Actor.cli(),
        rp["client_id"],
        ClientChanges(add_redirect_uris=("https://c3.example/cb",)),
    )
    assert updated["redirect_uris"][-1] == "https://c3.example/cb"
    # Unrelated changes fetch nothing.
    await playbook.update(runtime, Actor.cli(), rp["client_id"], ClientChanges(name="renamed"))
    assert len(server.at("/sector.json")) == fetched + 2
    # Leaving the sector identifier URI with redirect URIs on several hosts is refused.
    with pytest.raises(Invalid, match="several hosts"):
        await playbook.update(
            runtime, Actor.cli(), rp["client_id"], ClientChanges(sector_identifier_uri="")
        )


async def test_a_sector_identifier_uri_on_a_private_address_is_not_fetched(
    database_url: str, redis_url: str | None, server: Receiver
) -> None:
    uris = ["https://c1.example/cb", "https://c2.example/cb"]
    url = serve(server, "/sector.json", uris)
    guarded = await runtime_with(make_settings(database_url, redis_url))
    try:
        with pytest.raises(Invalid, match="loopback"):
            await register(
                guarded, subject_type="pairwise", redirect_uris=uris, sector_identifier_uri=url
            )
    finally:
        await guarded.close()
    assert server.at("/sector.json") == []


async def test_discovery_and_admin_api_show_the_subject_type(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    config = (await http.get("/.well-known/openid-configuration")).json()
    assert config["subject_types_supported"] == ["public", "pairwise"]
    rp = await register(runtime, subject_type="pairwise", redirect_uris=["https://a.example/cb"])
    # Moving the redirect URIs to another host would move the sector: refused.
    with pytest.raises(Invalid, match=r"from sector a\.example to b\.example"):
        await playbook.update(
            runtime,
            Actor.cli(),
            rp["client_id"],
            ClientChanges(
                add_redirect_uris=("https://b.example/cb",),
                remove_redirect_uris=("https://a.example/cb",),
            ),
        )
    changed = await playbook.update(
        runtime, Actor.cli(), rp["client_id"], ClientChanges(subject_type="public")
    )
    assert changed["subject_type"] == "public" and changed["sector_identifier_uri"] is None


async def test_authlib_code_flow_for_a_pairwise_client(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Authlib's client as the RP, joserfc verifying the ID token: the pairwise sub is
    the one userinfo gives and stays across a refresh."""
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    user = await make_user(runtime)
    redirect_uri = "https://authlib.example/cb"
    rp = await register(runtime, subject_type="pairwise", redirect_uris=[redirect_uri])
    jwks = (await http.get("/.well-known/jwks.json")).json()
    async with AsyncOAuth2Client(
        rp["client_id"],
        rp["client_secret"],
        redirect_uri=redirect_uri,
        scope=SCOPE,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
        transport=httpx.ASGITransport(app=app),
        base_url=ISSUER,
    ) as client:
        url, _state = client.create_authorization_url(
            f"{ISSUER}/authorize", code_verifier=VERIFIER, nonce="n"
        )
        callback = await log_in_and_consent(http, url, user.email, user.password)
        token = await client.fetch_token(
            f"{ISSUER}/token", authorization_response=callback, code_verifier=VERIFIER
        )
        sub = id_token_sub(token["id_token"], jwks, rp["client_id"])
        assert sub != user.sub and user.sub not in sub
        assert (await client.get(f"{ISSUER}/userinfo")).json()["sub"] == sub
        refreshed = await client.refresh_token(
            f"{ISSUER}/token", refresh_token=token["refresh_token"]
        )
        decoded = jwt.decode(
            refreshed["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"]
        )
        assert decoded.claims["sub"] == sub and decoded.claims["aud"] == rp["client_id"]


async def test_tokens_of_a_client_that_changed_its_subject_type_are_refused(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """Changing the subject type changes every sub the RP sees: the tokens it holds name
    users by subs it no longer has, and are refused in the protocol's own format."""
    import asyncio

    user = await make_user(runtime)
    rp = await register(runtime, subject_type="pairwise", redirect_uris=["https://a.example/cb"])
    tokens = await sign_in(app, http, rp, user)
    await playbook.update(
        runtime, Actor.cli(), rp["client_id"], ClientChanges(subject_type="public")
    )
    await asyncio.sleep(runtime.settings.client_cache_ttl + 0.1)
    userinfo = await http.get(
        "/userinfo", headers={"authorization": f"Bearer {tokens['access_token']}"}
    )
    assert userinfo.status_code == 401
    assert userinfo.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in userinfo.headers["www-authenticate"]
    introspected = await http.post(
        "/introspect",
        data={"token": tokens["access_token"]},
        auth=(rp["client_id"], rp["client_secret"]),
    )
    # Introspection reports the token as it was issued (as a client_credentials token,
    # whose sub is no user): its sub is still the one the RP was given.
    assert introspected.status_code == 200
    assert introspected.json()["sub"] == id_token_sub(
        tokens["id_token"], (await http.get("/.well-known/jwks.json")).json(), rp["client_id"]
    )
    # A new sign-in gives the public sub.
    again = await sign_in(app, http, rp, user)
    assert one_sub(await subs_seen(http, rp, again)) == user.sub


async def test_logout_tokens_name_the_user_by_the_rps_sub(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime, server: Receiver
) -> None:
    """Back-channel logout tokens carry the sub of the RP's sector, for one session
    (RP-initiated logout with the pairwise id_token_hint) and for all of a user's."""
    from onepass.playbook import users as user_playbook
    from tests.functional.webhooks.test_backchannel_logout import (
        logout_token_of,
        verify_logout_token,
    )

    user = await make_user(runtime)
    rp = await register(
        runtime,
        subject_type="pairwise",
        redirect_uris=["https://a.example/cb"],
        backchannel_logout_uri=server.url("/bcl"),
    )
    jwks = (await http.get("/.well-known/jwks.json")).json()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as browser:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": rp["client_id"],
                "redirect_uri": rp["redirect_uris"][0],
                "scope": SCOPE,
                "nonce": "n",
                "code_challenge": pkce.s256(VERIFIER),
                "code_challenge_method": "S256",
            }
        )
        callback = await log_in_and_consent(
            browser, f"/authorize?{query}", user.email, user.password
        )
        tokens = await redeem(http, rp, parse_qs(urlsplit(callback).query)["code"][0])
        sub = id_token_sub(tokens["id_token"], jwks, rp["client_id"])
        out = await browser.get("/logout", params={"id_token_hint": tokens["id_token"]})
        assert out.status_code == 200 and 'name="csrf_token"' not in out.text
    await drain(runtime)
    (one,) = server.at("/bcl")
    claims = verify_logout_token(logout_token_of(one), jwks, rp["client_id"])
    assert claims["sub"] == sub and claims["sid"]

    await sign_in(app, http, rp, user)  # a live refresh token: its RP is told
    await user_playbook.revoke_sessions(runtime, Actor.cli(), str(user.id))
    await drain(runtime)
    (_, every) = server.at("/bcl")
    claims = verify_logout_token(logout_token_of(every), jwks, rp["client_id"])
    assert claims["sub"] == sub and user.sub not in every.body.decode()


async def test_concurrent_first_uses_agree_on_one_sub(runtime: Runtime) -> None:
    """Token requests racing to make a user's first sub of a sector all get the same
    one, by the grants' direct path and the ORM's alike."""
    import asyncio

    from onepass.clients.registry import ClientRecord

    user = await make_user(runtime)
    rp = await register(runtime, subject_type="pairwise", redirect_uris=["https://a.example/cb"])
    async with runtime.database.session() as session:
        record = ClientRecord.of(await find_client(session, rp["client_id"]))

    async def by_orm() -> str:
        async with runtime.database.session() as session:
            return await subjects.subject_for(session, runtime.clock, record, user.id, user.sub)

    direct = [
        subjects.direct_subject_for(runtime.direct, runtime.clock, record, user.id, user.sub)
        for _ in range(8)
    ]
    got = await asyncio.gather(*direct, *(by_orm() for _ in range(4)))
    assert len(set(got)) == 1 and got[0] != user.sub
    async with runtime.database.session() as session:
        assert await session.scalar(select(func.count()).select_from(PairwiseSubject)) == 1


async def test_dynamic_registration_checks_a_pairwise_clients_sector_like_the_cli(
    http: httpx.AsyncClient, runtime: Runtime, server: Receiver
) -> None:
    """RFC 7591 with OIDC Registration §5: the sector identifier document is fetched and
    must list every redirect URI; refusals are invalid_client_metadata."""
    from onepass.playbook import registration

    token = (await registration.create_initial_token(runtime, Actor.cli(), ttl=timedelta(hours=1), max_uses=None))["token"]  # fmt: skip
    uris = ["https://a.example/cb", "https://b.example/cb"]
    good = serve(server, "/sector.json", uris)
    partial = serve(server, "/partial.json", uris[:1])
    metadata = {
        "client_name": "pairwise app",
        "redirect_uris": uris,
        "grant_types": ["authorization_code"],
        "subject_type": "pairwise",
    }
    auth = {"authorization": f"Bearer {token}"}

    no_sector = await http.post("/register", json=metadata, headers=auth)
    assert no_sector.status_code == 400, no_sector.text
    assert no_sector.json()["error"] == "invalid_client_metadata"

    wrong = await http.post(
        "/register", json={**metadata, "sector_identifier_uri": partial}, headers=auth
    )
    assert wrong.status_code == 400, wrong.text
    assert wrong.json()["error"] == "invalid_client_metadata"
    assert "b.example" in wrong.json()["error_description"]

    made = await http.post(
        "/register", json={**metadata, "sector_identifier_uri": good}, headers=auth
    )
    assert made.status_code == 201, made.text
    assert made.json()["subject_type"] == "pairwise"
    assert made.json()["sector_identifier_uri"] == good

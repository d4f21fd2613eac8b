"""Merges racing in real parallel transactions: the result is always a forest of
one-hop links, every user resolves to exactly one canonical user, no link is lost."""

from __future__ import annotations

import asyncio
import random
import secrets

from sqlalchemy import select

from onepass.db import Database
from onepass.identity.canonical import CanonicalResolver
from onepass.identity.models import IdentityLink
from onepass.identity.service import MergeError, merge
from onepass.oauth.revocation import revoke_merged_user
from onepass.runtime import Runtime
from tests.factories import make_user


async def _users(runtime: Runtime, n: int) -> list[int]:
    return [
        (await make_user(runtime, email=f"c{i}-{secrets.token_hex(3)}@example.com")).id
        for i in range(n)
    ]


async def _attempt(
    database: Database, resolver: CanonicalResolver, runtime: Runtime, source: int, target: int
) -> bool:
    try:
        await merge(
            database,
            resolver,
            runtime.clock,
            source_id=source,
            target_id=target,
            actor="race",
            revoke_tokens=revoke_merged_user,
        )
    except MergeError:
        return False
    return True


async def _links(runtime: Runtime) -> dict[int, int]:
    async with runtime.database.session() as session:
        return {
            link.source_user_id: link.target_user_id
            for link in await session.scalars(select(IdentityLink))
        }


def assert_forest(links: dict[int, int], all_users: list[int]) -> None:
    for source, target in links.items():
        assert target not in links, f"link {source}->{target} is not one hop"
        assert source != target
    canonical = {u: links.get(u, u) for u in all_users}
    assert all(c not in links for c in canonical.values()), (
        "every user resolves to one canonical user"
    )


async def _race(runtime: Runtime, pairs: list[tuple[int, int]]) -> list[bool]:
    # A separate engine with room for every transaction at once: truly parallel.
    database = Database(runtime.settings.database_url, pool_size=max(10, len(pairs)))
    resolver = CanonicalResolver(runtime.cache, 60)
    try:
        return list(
            await asyncio.gather(*(_attempt(database, resolver, runtime, s, t) for s, t in pairs))
        )
    finally:
        await database.close()


async def test_a_to_b_racing_b_to_a_exactly_one_wins(runtime: Runtime) -> None:
    for _ in range(5):
        a, b = await _users(runtime, 2)
        outcome = await _race(runtime, [(a, b), (b, a)])
        assert outcome.count(True) == 1
    assert_forest(await _links(runtime), [])


async def test_a_to_b_racing_b_to_c_ends_one_hop(runtime: Runtime) -> None:
    for _ in range(5):
        a, b, c = await _users(runtime, 3)
        outcome = await _race(runtime, [(a, b), (b, c)])
        links = await _links(runtime)
        assert outcome[1] is True, "b into c never conflicts"
        if outcome[0]:
            assert links[a] == c, "a's link was repointed to c"
        assert links[b] == c
    assert_forest(await _links(runtime), [])


async def test_fifty_random_parallel_merges_over_twenty_users_keep_a_forest(
    runtime: Runtime,
) -> None:
    people = await _users(runtime, 20)
    rng = random.Random(1234)
    pairs = [tuple(rng.sample(people, 2)) for _ in range(50)]
    outcome = await _race(runtime, pairs)  # type: ignore[arg-type]
    links = await _links(runtime)
    assert len(links) == outcome.count(True), "no link lost, none invented"
    assert_forest(links, people)
    resolver = CanonicalResolver(runtime.cache, 60)
    async with runtime.database.session() as session:
        for person in people:
            assert await resolver.resolve(session, person) == links.get(person, person)

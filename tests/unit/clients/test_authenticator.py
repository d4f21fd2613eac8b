"""ClientAuthenticator's rules as plain calls: either secret method for a client that
holds a secret, the previous secret during a grace, and the same work (two keyed
hashes) for every failure, so timing says nothing about which clients exist, how they
authenticate or whether a rotation is under way."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from onepass.clients.auth import ClientAuthenticator
from onepass.clients.registry import ClientRecord
from onepass.clock import FrozenClock
from onepass.crypto import KeyedHasher
from onepass.oauth_errors import InvalidClientError

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class CountingHasher(KeyedHasher):
    """The real keyed hash, counting the HMACs it computes."""

    def __init__(self) -> None:
        super().__init__("unit-test-secret-key-" + "k" * 32)
        self.hashes = 0

    def hash(self, secret: str) -> str:
        self.hashes += 1
        return super().hash(secret)


class Clients:
    """The cache's ``get`` over a dict (what ``ClientCache`` answers)."""

    def __init__(self, *records: ClientRecord) -> None:
        self.records = {r.client_id: r for r in records}

    async def get(self, client_id: str) -> ClientRecord | None:
        return self.records.get(client_id)


def record(
    hasher: KeyedHasher,
    client_id: str,
    method: str = "client_secret_basic",
    secret: str | None = "current",
    previous: str | None = None,
    previous_until: datetime | None = None,
) -> ClientRecord:
    return ClientRecord(
        id=1,
        client_id=client_id,
        client_secret_hash=hasher.hash(secret) if secret else None,
        grant_types=frozenset({"client_credentials"}),
        scopes=frozenset(),
        token_endpoint_auth_method=method,
        redirect_uris=(),
        previous_secret_hash=hasher.hash(previous) if previous else None,
        previous_secret_expires=previous_until.timestamp() if previous_until else 0.0,
    )


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def setup() -> tuple[ClientAuthenticator, CountingHasher, FrozenClock]:
    hasher = CountingHasher()
    clock = FrozenClock(NOW)
    clients = Clients(
        record(hasher, "basic"),
        record(hasher, "post", method="client_secret_post"),
        record(hasher, "rolling", previous="old", previous_until=NOW + timedelta(hours=1)),
        record(hasher, "spa", method="none", secret=None),
    )
    return ClientAuthenticator(clients, hasher, clock), hasher, clock  # type: ignore[arg-type]


async def attempt(
    authenticator: ClientAuthenticator, hasher: CountingHasher, header: str | None, form: dict
) -> tuple[bool, int]:
    hasher.hashes = 0
    try:
        await authenticator.authenticate(header, form)
    except InvalidClientError:
        return False, hasher.hashes
    return True, hasher.hashes


@pytest.mark.parametrize("client_id", ["basic", "post"])
async def test_a_client_holding_a_secret_may_use_either_method(
    setup: tuple[ClientAuthenticator, CountingHasher, FrozenClock], client_id: str
) -> None:
    authenticator, hasher, _ = setup
    assert await attempt(authenticator, hasher, basic(client_id, "current"), {}) == (True, 1)
    form = {"client_id": client_id, "client_secret": "current"}
    assert await attempt(authenticator, hasher, None, form) == (True, 1)


async def test_every_failure_costs_two_hashes_and_the_previous_secret_only_in_its_grace(
    setup: tuple[ClientAuthenticator, CountingHasher, FrozenClock],
) -> None:
    authenticator, hasher, clock = setup
    failures = [
        (basic("nobody", "x"), {}),  # unknown client
        (basic("basic", "wrong"), {}),  # wrong secret
        (basic("rolling", "wrong"), {}),  # wrong secret, a previous one live
        (None, {"client_id": "basic"}),  # no secret for a confidential client
        (basic("spa", "x"), {}),  # a secret for a public client
    ]
    for header, form in failures:
        assert await attempt(authenticator, hasher, header, form) == (False, 2), (header, form)

    assert await attempt(authenticator, hasher, basic("rolling", "current"), {}) == (True, 1)
    assert await attempt(authenticator, hasher, basic("rolling", "old"), {}) == (True, 2)
    assert await attempt(authenticator, hasher, None, {"client_id": "spa"}) == (True, 1)

    clock.advance(timedelta(hours=1))  # the grace is over
    assert await attempt(authenticator, hasher, basic("rolling", "old"), {}) == (False, 2)
    assert await attempt(authenticator, hasher, basic("rolling", "current"), {}) == (True, 1)

"""DPoP proofs checked as plain functions (RFC 9449 §4.3): the URL comparison, the iat
window, the jti spent once, the stateless nonces of §8, keys and algorithms refused."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import pytest
from joserfc.jwk import RSAKey

from onepass.cache import MemoryCache
from onepass.clock import FrozenClock
from onepass.oauth.dpop import DPoP, ProofRefused, SpentProofs, is_thumbprint, normalized_url
from tests.dpop import TOKEN_URL, Holder

NOW = datetime.fromtimestamp(int(time.time()), UTC)


def dpop(
    clock: FrozenClock, *, nonce: bool = False, window: int = 60, shared: bool = False
) -> DPoP:
    """``shared``: spend jtis in a cache (as Redis is), else in the process's memory."""
    cache = MemoryCache(clock) if shared else None
    return DPoP(cache, clock, secret_key="k" * 40, window=window, require_nonce=nonce)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://id.example/token", "https://id.example/token"),
        ("HTTPS://ID.Example:443/token?x=1#frag", "https://id.example/token"),
        ("http://id.example:80/token", "http://id.example/token"),
        ("http://id.example:8080/token", "http://id.example:8080/token"),
        ("https://id.example", "https://id.example/"),
        ("https://id.example/a%2fb", "https://id.example/a%2Fb"),
        ("ftp://id.example/token", None),
        ("https://user:pw@id.example/token", None),
        ("https://[::1/token", None),
        ("not a url", None),
    ],
)
def test_htu_is_compared_after_rfc_3986_normalisation(given: str, expected: str | None) -> None:
    assert normalized_url(given) == expected


def test_a_thumbprint_is_43_base64url_characters() -> None:
    assert is_thumbprint(Holder().jkt)
    assert not is_thumbprint("short") and not is_thumbprint("+" * 43)


@pytest.mark.parametrize("shared", [False, True], ids=["memory", "cache"])
def test_a_proof_gives_its_keys_thumbprint_and_is_taken_once(shared: bool) -> None:
    clock = FrozenClock(NOW)
    checker, holder = dpop(clock, shared=shared), Holder()
    proof = holder.proof(iat=clock.timestamp())
    checked = checker.check(proof, method="POST", url=TOKEN_URL)
    assert checked.jkt == holder.jkt
    asyncio.run(_take_twice(checker, checked))


async def _take_twice(checker: DPoP, checked: object) -> None:
    await checker.take(checked)  # type: ignore[arg-type]
    with pytest.raises(ProofRefused, match="already used"):
        await checker.take(checked)  # type: ignore[arg-type]


@pytest.mark.parametrize("offset", [-61, 61, -3600])
def test_iat_outside_the_window_is_refused(offset: int) -> None:
    clock = FrozenClock(NOW)
    proof = Holder().proof(iat=clock.timestamp() + offset)
    with pytest.raises(ProofRefused, match="iat"):
        dpop(clock).check(proof, method="POST", url=TOKEN_URL)


@pytest.mark.parametrize("offset", [-60, 0, 59])
def test_iat_inside_the_window_is_accepted(offset: int) -> None:
    clock = FrozenClock(NOW)
    proof = Holder().proof(iat=clock.timestamp() + offset)
    dpop(clock).check(proof, method="POST", url=TOKEN_URL)


def test_nonces_live_one_to_two_windows_and_every_worker_shares_them() -> None:
    clock = FrozenClock(NOW)
    worker, other = dpop(clock, nonce=True), dpop(clock, nonce=True)
    holder = Holder()
    nonce = worker.nonce()

    def check(with_nonce: str | None) -> None:
        proof = holder.proof(iat=clock.timestamp(), nonce=with_nonce)
        other.check(proof, method="POST", url=TOKEN_URL)

    check(nonce)
    clock.advance(60)  # the next step: the previous one's nonce still works
    check(nonce)
    clock.advance(60)
    with pytest.raises(ProofRefused) as refused:
        check(nonce)
    assert refused.value.nonce
    with pytest.raises(ProofRefused) as missing:
        check(None)
    assert missing.value.nonce
    other_secret = DPoP(
        MemoryCache(clock), clock, secret_key="x" * 40, window=60, require_nonce=True
    )
    with pytest.raises(ProofRefused):
        check(other_secret.nonce())


def test_keys_that_do_not_fit_the_algorithm_are_refused() -> None:
    clock = FrozenClock(NOW)
    checker = dpop(clock)
    holder = Holder()
    small = RSAKey.generate_key(1024)
    rsa = Holder("PS256")
    proof = rsa.proof(
        iat=clock.timestamp(), header={"jwk": dict(small.as_dict(private=False))}, signer=small
    )
    with pytest.raises(ProofRefused, match="2048"):
        checker.check(proof, method="POST", url=TOKEN_URL)
    proof = holder.proof(iat=clock.timestamp(), header={"alg": "PS256"}, signer=rsa.key)
    with pytest.raises(ProofRefused, match="RSA key"):
        checker.check(proof, method="POST", url=TOKEN_URL)


@pytest.mark.parametrize(
    "access_token_claims",
    [{"ath": None}, {"ath": "x" * 43}],
    ids=["missing", "wrong"],
)
def test_a_resource_needs_the_access_tokens_hash(access_token_claims: dict[str, None]) -> None:
    clock = FrozenClock(NOW)
    proof = Holder().proof(
        "GET", "http://testserver/userinfo", access_token="t", iat=clock.timestamp(),
        claims=access_token_claims,
    )  # fmt: skip
    with pytest.raises(ProofRefused, match="ath"):
        dpop(clock).check(proof, method="GET", url="http://testserver/userinfo", access_token="t")


def test_spent_proofs_are_forgotten_once_out_of_the_window_and_stay_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = FrozenClock(NOW)
    spent = SpentProofs(clock)
    until = clock.timestamp() + 61
    assert spent.spend(b"a", until) and not spent.spend(b"a", until)
    clock.advance(62)
    assert spent.spend(b"b", clock.timestamp() + 61)
    assert len(spent._until) == 1, "the expired entry left from the front"
    monkeypatch.setattr(SpentProofs, "MAX", 3)
    for key in (b"c", b"d", b"e"):
        assert spent.spend(key, clock.timestamp() + 61)
    assert len(spent._until) == 3

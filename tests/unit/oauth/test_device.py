"""User codes of the Device Authorization Grant (RFC 8628 §6.1): drawn from twenty
consonants, shown XXXX-XXXX, and what a person types normalised before it is looked up."""

from __future__ import annotations

from onepass.oauth.device import (
    USER_CODE_ALPHABET,
    display_user_code,
    new_user_code,
    normalise_user_code,
)


def test_new_user_codes_are_eight_letters_of_the_alphabet_and_differ() -> None:
    codes = {new_user_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 8 and set(c) <= set(USER_CODE_ALPHABET) for c in codes)
    assert set(USER_CODE_ALPHABET).isdisjoint("AEIOUY0123456789")


def test_typed_codes_are_normalised_whatever_the_case_dashes_and_spaces() -> None:
    assert normalise_user_code("wdjb-mjht") == "WDJBMJHT"
    assert normalise_user_code(" WDJB MJHT ") == "WDJBMJHT"
    assert normalise_user_code("W-D-J-B-M-J-H-T") == "WDJBMJHT"
    assert display_user_code("WDJBMJHT") == "WDJB-MJHT"


def test_what_cannot_be_a_user_code_is_refused_before_any_lookup() -> None:
    for typed in (
        "",
        "WDJB-MJH",
        "WDJB-MJHTX",
        "WDJA-MJHT",
        "WDJB-MJH1",
        "ẀDJB-MJHT",
        "x" * 10_000,
    ):
        assert normalise_user_code(typed) is None, typed


async def test_pacing_without_redis_keeps_the_most_recently_polled_codes_only() -> None:
    from onepass.oauth.grants.device_code import Pacing

    pacing = Pacing(limit=3)
    for n in range(5):
        await pacing.set(f"code-{n}", f"5:{n}", ttl=600)
    await pacing.set("code-2", "10:9", ttl=600)  # polled again: now the most recent
    await pacing.set("code-5", "5:5", ttl=600)
    assert [await pacing.get(f"code-{n}") for n in range(6)] == [
        None,
        None,
        "10:9",
        None,
        "5:4",
        "5:5",
    ]
    await pacing.set("gone", "5:0", ttl=-1)
    assert await pacing.get("gone") is None

"""Discovery and the JWKS: prebuilt bytes with a strong ETag, 304 for a matching
If-None-Match (RFC 9110 §13.1.2), a new ETag and body once the keys rotate. SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from joserfc.jwk import KeySet

from onepass.app import OnePass
from onepass.keys.keyring import KEYRING
from onepass.operators.audit import Actor
from onepass.playbook.keys import rotate_signing_keys
from onepass.runtime import Runtime

DOCUMENTS = {
    "/.well-known/jwks.json": "application/jwk-set+json",
    "/.well-known/openid-configuration": "application/json",
    "/.well-known/oauth-authorization-server": "application/json",
}


@pytest.mark.parametrize("path", list(DOCUMENTS))
async def test_get_gives_the_document_with_a_strong_etag(
    app: OnePass, http: httpx.AsyncClient, path: str
) -> None:
    answer = await http.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == DOCUMENTS[path]
    max_age = app.services.runtime.settings.jwks_max_age
    assert answer.headers["cache-control"] == f"public, max-age={max_age}"
    etag = answer.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert int(answer.headers["content-length"]) == len(answer.content)
    if path.endswith("jwks.json"):
        assert answer.content == app.services.get(KEYRING).jwks_body
        KeySet.import_key_set(answer.json())  # a JWK set joserfc reads
    else:
        assert answer.json()["issuer"] == "http://testserver"
    # The same bytes, the same validator.
    assert (await http.get(path)).headers["etag"] == etag


@pytest.mark.parametrize("path", list(DOCUMENTS))
async def test_if_none_match_gives_304_without_a_body(http: httpx.AsyncClient, path: str) -> None:
    first = await http.get(path)
    etag = first.headers["etag"]
    matching = [
        etag,
        f"W/{etag}",  # weak comparison (RFC 9110 §8.8.3.2)
        f'"other", {etag}',
        f'W/"other" ,W/{etag} ',
        "*",
    ]
    for value in matching:
        answer = await http.get(path, headers={"if-none-match": value})
        assert answer.status_code == 304, value
        assert answer.content == b""
        assert answer.headers["etag"] == etag
        assert answer.headers["cache-control"] == first.headers["cache-control"]
    both = await http.get(path, headers=[("if-none-match", '"other"'), ("if-none-match", etag)])
    assert both.status_code == 304
    for value in ('"other"', etag.strip('"'), f'"{etag}"', "", "W/", '"', etag[:-2] + '"'):
        answer = await http.get(path, headers={"if-none-match": value})
        assert answer.status_code == 200, value
        assert answer.content == first.content
    head = await http.head(path)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["etag"] == etag
    assert head.headers["content-length"] == str(len(first.content))
    assert (await http.head(path, headers={"if-none-match": etag})).status_code == 304


@pytest.mark.parametrize("path", list(DOCUMENTS))
async def test_other_methods_and_bad_requests_are_refused(
    http: httpx.AsyncClient, path: str
) -> None:
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH"):
        answer = await http.request(method, path)
        assert answer.status_code == 405, method
        assert answer.headers["allow"] == "GET, HEAD"
        assert answer.json()["error"] == "method_not_allowed"
    control = await http.get(path + "?x=%00")
    assert control.status_code == 400 and control.json()["error"] == "invalid_request"
    big = await http.request(
        "GET", path, content=b"x" * 20000, headers={"content-type": "text/plain"}
    )
    assert big.status_code == 413 and big.json()["error"] == "invalid_request"


async def test_rotation_changes_the_jwks_etag_and_body(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    before = await http.get("/.well-known/jwks.json")
    old_etag = before.headers["etag"]
    old_kids = {key["kid"] for key in before.json()["keys"]}
    discovery = (await http.get("/.well-known/openid-configuration")).headers["etag"]

    rotations = await rotate_signing_keys(runtime, Actor.cli(), force=True)
    new_kids = {r["next_kid"] for r in rotations}
    assert new_kids and not new_kids & old_kids
    # Every process picks the rotation up within ONEPASS_KEY_REFRESH_INTERVAL.
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        after = await http.get("/.well-known/jwks.json", headers={"if-none-match": old_etag})
        if after.status_code == 200:
            break
        assert after.status_code == 304
        assert asyncio.get_running_loop().time() < deadline, "the JWKS never changed"
        await asyncio.sleep(0.05)
    assert after.headers["etag"] != old_etag
    assert new_kids <= {key["kid"] for key in after.json()["keys"]}
    assert after.content == app.services.get(KEYRING).jwks_body
    again = await http.get(
        "/.well-known/jwks.json", headers={"if-none-match": after.headers["etag"]}
    )
    assert again.status_code == 304
    # Discovery does not depend on the keys.
    assert (await http.get("/.well-known/openid-configuration")).headers["etag"] == discovery

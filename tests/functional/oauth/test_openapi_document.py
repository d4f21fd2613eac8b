"""What ``/openapi.json`` declares matches what the routes answer (found by
tests/e2e/test_openapi_fuzz.py)."""

from __future__ import annotations

import httpx

from onepass.app import OnePass
from tests.factories import make_rp


async def test_revoke_success_is_documented_as_an_empty_200(
    app: OnePass, http: httpx.AsyncClient
) -> None:
    rp = await make_rp(app.services.runtime)
    assert rp.client_secret is not None
    answer = await http.post(
        "/revoke", data={"token": "not-a-token"}, auth=(rp.client_id, rp.client_secret)
    )
    assert answer.status_code == 200
    assert answer.content == b""
    declared = (await http.get("/openapi.json")).json()["paths"]["/revoke"]["post"]["responses"]
    assert "content" not in declared["200"]
    assert {"400", "401", "413"} <= set(declared)


async def test_token_endpoint_is_in_the_document_with_its_grants_and_errors(
    http: httpx.AsyncClient,
) -> None:
    token = (await http.get("/openapi.json")).json()["paths"]["/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["properties"]["grant_type"]["enum"] == [
        "authorization_code",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code",
    ]
    assert {"200", "400", "401", "413", "503"} <= set(token["responses"])
    # The document describes the endpoint the bare ASGI handler serves, not a stub.
    answer = await http.post("/token", data={"grant_type": "client_credentials"})
    assert answer.status_code == 401 and answer.json()["error"] == "invalid_client"

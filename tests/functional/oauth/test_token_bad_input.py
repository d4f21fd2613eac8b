"""Every malformed request to the token endpoint gets an RFC 6749 §5.2 error, never a 500."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

import httpx
import pytest

from onepass.runtime import Runtime
from tests.factories import Client, make_client

FORM = "application/x-www-form-urlencoded"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@dataclass
class Case:
    """A request built from the test client; ``{id}`` and ``{secret}`` are filled in."""

    name: str
    status: int
    error: str
    method: str = "POST"
    body: bytes | str = b"grant_type=client_credentials"
    content_type: str | None = FORM
    auth: str | None = "basic"  # "basic", a literal header value, or None
    extra_headers: list[tuple[str, str]] = field(default_factory=list)


CASES = [
    Case("get_not_allowed", 405, "invalid_request", method="GET", body=b""),
    Case(
        "json_body",
        400,
        "invalid_request",
        body=b'{"grant_type":"client_credentials"}',
        content_type="application/json",
    ),
    Case("no_content_type", 400, "invalid_request", content_type=None),
    Case("multipart_body", 400, "invalid_request", content_type="multipart/form-data; boundary=x"),
    Case("missing_grant_type", 400, "invalid_request", body=b"scope=api%3Aread"),
    Case("empty_grant_type_is_omitted", 400, "invalid_request", body=b"grant_type="),
    Case(
        "repeated_grant_type",
        400,
        "invalid_request",
        body=b"grant_type=client_credentials&grant_type=client_credentials",
    ),
    Case(
        "repeated_scope",
        400,
        "invalid_request",
        body=b"grant_type=client_credentials&scope=a&scope=b",
    ),
    Case(
        "unsupported_grant_type",
        400,
        "unsupported_grant_type",
        body=b"grant_type=password&username=a&password=b",
    ),
    Case(
        "grant_not_registered",
        400,
        "unsupported_grant_type",
        body=b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer",
    ),
    Case(
        "oversized_body",
        413,
        "invalid_request",
        body=b"grant_type=client_credentials&scope=" + b"a" * 20_000,
    ),
    Case(
        "oversized_parameter",
        400,
        "invalid_request",
        body=b"grant_type=client_credentials&x=" + b"a" * 5000,
    ),
    Case(
        "too_many_parameters",
        400,
        "invalid_request",
        body=b"grant_type=client_credentials&" + b"&".join(b"p%d=1" % i for i in range(40)),
    ),
    Case(
        "invalid_utf8", 400, "invalid_request", body=b"grant_type=client_credentials&scope=%ff%fe"
    ),
    Case(
        "raw_invalid_utf8", 400, "invalid_request", body=b"grant_type=client_credentials&scope=\xff"
    ),
    Case("nul_in_value", 400, "invalid_request", body=b"grant_type=client_credentials&scope=a%00b"),
    Case("no_client_authentication", 401, "invalid_client", auth=None),
    Case("bearer_instead_of_basic", 401, "invalid_client", auth="Bearer abc"),
    Case("basic_not_base64", 401, "invalid_client", auth="Basic !!!not-base64!!!"),
    Case(
        "basic_without_colon",
        401,
        "invalid_client",
        auth="Basic " + base64.b64encode(b"justanid").decode(),
    ),
    Case("basic_empty", 401, "invalid_client", auth="Basic "),
    Case(
        "basic_not_utf8",
        401,
        "invalid_client",
        auth="Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
    ),
    Case("basic_oversized", 401, "invalid_client", auth="Basic " + "QUFB" * 1000),
    Case("basic_not_ascii", 401, "invalid_client", auth="Basic \u00e9"),
    Case("unknown_client", 401, "invalid_client", auth=basic("no-such-client", "secret")),
    Case(
        "client_id_with_odd_characters", 401, "invalid_client", auth=basic("a b/c\u00e9", "secret")
    ),
    Case("latin1_charset", 400, "invalid_request", content_type=FORM + "; charset=ISO-8859-1"),
    Case("wrong_secret", 401, "invalid_client", auth="wrong-secret"),
    Case("empty_secret", 401, "invalid_client", auth="empty-secret"),
    Case(
        "two_authorization_headers",
        400,
        "invalid_request",
        extra_headers=[("authorization", "Basic eDp5")],
    ),
    Case(
        "basic_and_post_secret",
        400,
        "invalid_request",
        body="grant_type=client_credentials&client_secret={secret}",
    ),
    Case(
        "body_client_id_differs",
        400,
        "invalid_request",
        body="grant_type=client_credentials&client_id=other",
    ),
    Case(
        # A Basic client may post its secret (as Keycloak allows), but not a wrong one.
        "wrong_secret_posted_by_basic_client",
        401,
        "invalid_client",
        auth=None,
        body="grant_type=client_credentials&client_id={id}&client_secret=wrong",
    ),
    Case(
        "scope_not_allowed", 400, "invalid_scope", body=b"grant_type=client_credentials&scope=admin"
    ),
    Case(
        "user_scope_without_user",
        400,
        "invalid_scope",
        body=b"grant_type=client_credentials&scope=openid",
    ),
    Case(
        "scope_with_bad_character",
        400,
        "invalid_scope",
        body=b"grant_type=client_credentials&scope=a%22b",
    ),
    Case(
        # RFC 8707 §2: a resource the client is not allowed (none is registered here).
        "resource_not_allowed",
        400,
        "invalid_target",
        body=b"grant_type=client_credentials&resource=https%3A%2F%2Fapi",
    ),
    Case(
        "resource_with_fragment",
        400,
        "invalid_target",
        body=b"grant_type=client_credentials&resource=https%3A%2F%2Fapi%23x",
    ),
    Case(
        "resource_relative",
        400,
        "invalid_target",
        body=b"grant_type=client_credentials&resource=%2Fapi",
    ),
    Case(
        "resource_repeated",
        400,
        "invalid_request",
        body=b"grant_type=client_credentials&resource=https%3A%2F%2Fa&resource=https%3A%2F%2Fb",
    ),
    Case(
        "audience_outside_token_exchange",
        400,
        "invalid_request",
        body=b"grant_type=client_credentials&audience=api",
    ),
]


def build(case: Case, client: Client) -> tuple[str, bytes, dict[str, str] | list[tuple[str, str]]]:
    body = case.body
    if isinstance(body, str):
        body = body.format(id=client.client_id, secret=client.client_secret).encode()
    headers: list[tuple[str, str]] = []
    if case.content_type:
        headers.append(("content-type", case.content_type))
    if case.auth and case.auth.startswith("Basic \u00e9"):
        # Raw non-ASCII bytes on the wire.
        return case.method, body, [*headers, ("authorization", case.auth.encode("utf-8"))]  # type: ignore[list-item]
    if case.auth == "basic":
        headers.append(("authorization", basic(client.client_id, client.client_secret or "")))
    elif case.auth == "wrong-secret":
        headers.append(("authorization", basic(client.client_id, "not-the-secret")))
    elif case.auth == "empty-secret":
        headers.append(("authorization", basic(client.client_id, "")))
    elif case.auth is not None:
        headers.append(("authorization", case.auth))
    headers.extend(case.extra_headers)
    return case.method, body, headers


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_token_bad_input_answers_oauth_error(
    case: Case, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime, scope="api:read")
    method, body, headers = build(case, client)
    response = await http.request(method, "/token", content=body, headers=headers)
    assert response.status_code == case.status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    payload = response.json()
    assert payload["error"] == case.error
    description = payload["error_description"]
    assert isinstance(description, str) and description
    # RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E only.
    assert all(0x20 <= ord(c) <= 0x7E and c not in '"\\' for c in description), description
    assert "Traceback" not in response.text
    if client.client_secret:
        assert client.client_secret not in response.text
    if case.status == 401:
        assert response.headers["www-authenticate"].startswith("Basic")


async def test_client_not_allowed_the_grant_is_unauthorized_client(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(
        runtime, grant_types=["authorization_code"], redirect_uris=["https://rp.example/cb"]
    )
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_public_client_cannot_authenticate_for_client_credentials(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(
        runtime,
        public=True,
        grant_types=["authorization_code"],
        redirect_uris=["https://rp.example/cb"],
    )
    response = await http.post(
        "/token", data={"grant_type": "client_credentials", "client_id": client.client_id}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_wrong_auth_method_does_not_reveal_that_the_client_exists(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    known = await http.post(
        "/token", data={"grant_type": "client_credentials", "client_id": client.client_id}
    )
    unknown = await http.post(
        "/token", data={"grant_type": "client_credentials", "client_id": "nonexistent"}
    )
    assert known.status_code == unknown.status_code == 401
    assert known.json() == unknown.json()


async def test_bad_requests_lose_nothing_and_good_ones_still_work(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    """After a burst of every bad input, the endpoint still serves the valid client."""
    client = await make_client(runtime, scope="api:read")
    for case in CASES:
        method, body, headers = build(case, client)
        await http.request(method, "/token", content=body, headers=headers)
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret),
    )
    assert response.status_code == 200

"""Property: whatever bytes arrive, the public endpoints answer 2xx-4xx, never 5xx."""

from __future__ import annotations

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from onepass.app import OnePass

FORM = "application/x-www-form-urlencoded"
NAMES = st.sampled_from(
    [
        "grant_type",
        "client_id",
        "client_secret",
        "code",
        "redirect_uri",
        "code_verifier",
        "refresh_token",
        "scope",
        "token",
        "token_type_hint",
        "state",
        "nonce",
        "response_type",
        "prompt",
        "max_age",
        "code_challenge",
        "code_challenge_method",
        "id_token_hint",
        "post_logout_redirect_uri",
        "csrf_token",
        "interaction",
        "email",
        "password",
        "decision",
    ]
)
VALUES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "client_credentials",
            "authorization_code",
            "refresh_token",
            "code",
            "S256",
            "none",
            "openid",
        ]
    ),
    st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
)
PAIRS = st.lists(st.tuples(NAMES, VALUES), max_size=8)
PATHS = st.sampled_from(
    ["/token", "/authorize", "/login", "/consent", "/logout", "/revoke", "/introspect", "/userinfo"]
)
HEADER_VALUES = st.one_of(
    st.none(), st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)
)


@given(
    path=PATHS,
    pairs=PAIRS,
    authorization=HEADER_VALUES,
    as_query=st.booleans(),
    raw=st.one_of(st.none(), st.binary(max_size=200)),
)
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_random_requests_never_get_a_server_error(
    app: OnePass,
    path: str,
    pairs: list,
    authorization: str | None,
    as_query: bool,
    raw: bytes | None,
) -> None:
    headers = {"content-type": FORM}
    if authorization is not None:
        headers["authorization"] = authorization
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        if as_query:
            response = await http.get(path, params=pairs, headers=headers)
        else:
            body = raw if raw is not None else str(httpx.QueryParams(pairs)).encode()
            response = await http.post(path, content=body, headers=headers)
    assert response.status_code < 500, (path, pairs, response.status_code, response.text[:300])
    assert "Traceback" not in response.text


ADMIN_PATHS = st.sampled_from(
    [
        "/api/v1/admin/step-up",
        "/api/v1/admin/webhook_outbox/1/retry",
        "/api/v1/admin/applications/1/replay_dlq",
        "/api/v1/admin/applications/x/webhook_keys/rotate",
        "/api/v1/admin/applications/1/webhook_keys/k/compromise",
        "/api/v1/admin/signing_keys/rotate",
        "/api/v1/admin/users/merge",
        "/api/v1/admin/cache/invalidate_canonical",
    ]
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
ADMIN_FIELDS = st.sampled_from(
    ["action_request_nonce", "totp_code", "action", "target", "since", "event_type",
     "dry_run", "grace", "scheme", "force", "source", "user", "all", "reason"]
)  # fmt: skip


@given(
    path=ADMIN_PATHS,
    body=st.dictionaries(ADMIN_FIELDS, JSON_VALUES, max_size=5),
    action=st.sampled_from(["webhook_outbox.retry", "users.merge", "signing_keys.rotate", "x"]),
)
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
async def test_random_admin_requests_never_get_a_server_error(
    app: OnePass, path: str, body: dict, action: str
) -> None:
    from tests.factories import make_admin

    runtime = app.services.runtime
    if not hasattr(app.state, "test_admin"):
        app.state.test_admin = await make_admin(runtime)
    token = app.state.test_admin.token
    if path.endswith("step-up"):
        body.setdefault("action", action)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as http:
        response = await http.post(path, json=body, headers={"authorization": f"Bearer {token}"})
    assert response.status_code < 500, (path, body, response.status_code, response.text[:300])
    assert response.status_code == 200 or response.json()["error"]

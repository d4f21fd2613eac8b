"""Shared Signals end to end: ``onepass serve`` (its embedded dispatcher) pushes a SET to
a real receiver, which fails until the operator replays the dead letter with
``onepass webhooks replay-dlq APP --event-type ssf.set``; the RP sees one ``jti`` on
every delivery and verifies the SET with joserfc against the served JWKS."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.e2e.server import Server, base_env, cli, cli_json
from tests.factories import REDIRECT_URI, Client
from tests.flow import authorize_url, log_in_and_consent
from tests.webhook_helpers import ThreadedReceiver, status

pytestmark = pytest.mark.e2e

ENV = {
    "ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS": "1",
    "ONEPASS_WEBHOOK_TIMEOUT": "2",
    "ONEPASS_WEBHOOK_RETRY_SCHEDULE": "50ms",
    "ONEPASS_WEBHOOK_POLL_INTERVAL": "0.1",
    "ONEPASS_LOG_LEVEL": "warning",
}
DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"


async def consent(base_url: str, client: Client, email: str, password: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as browser:
        callback = await log_in_and_consent(browser, authorize_url(client), email, password)
        assert callback.startswith(REDIRECT_URI)


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not met")


def test_a_dead_set_is_replayed_from_the_command_line_with_its_jti(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/ssf.db", **ENV)
    cli(env, "db", "upgrade")
    with ThreadedReceiver() as receiver, Server(env, log_path=tmp_path / "serve.log") as server:
        env = server.env
        created = cli_json(
            env, "clients", "create", "--name", "rp", "--redirect-uri", REDIRECT_URI,
            "--grant-type", "authorization_code", "--grant-type", "client_credentials",
            "--scope", "openid", "--scope", "email", "--scope", "ssf.manage",
        )  # fmt: skip
        client = Client(created["id"], created["client_id"], created["client_secret"])
        password = "correct horse battery"
        cli(
            env, "users", "create", "--email", "ada@example.com", "--password-stdin", stdin=password
        )
        asyncio.run(consent(server.url, client, "ada@example.com", password))

        token = httpx.post(
            f"{server.url}/token",
            data={"grant_type": "client_credentials", "scope": "ssf.manage"},
            auth=(client.client_id, client.client_secret or ""),
        ).json()["access_token"]
        receiver.routes["/ssf"] = status(503)
        stream = httpx.post(
            f"{server.url}/ssf/stream",
            json={
                "delivery": {"method": "urn:ietf:rfc:8935", "endpoint_url": receiver.url("/ssf")},
                "events_requested": [DISABLED],
            },
            headers={"authorization": f"Bearer {token}"},
        )
        assert stream.status_code == 201, stream.text

        cli(env, "users", "disable", "ada@example.com")
        [dead] = wait_for(
            lambda: cli_json(env, "webhooks", "list", "--status", "dead", "--event-type", "ssf.set")
        )
        assert dead["attempts"] == 2 and dead["last_status_code"] == 503

        receiver.routes["/ssf"] = status(202)
        replayed = cli_json(
            env, "webhooks", "replay-dlq", client.client_id, "--event-type", "ssf.set"
        )
        assert replayed["entry_ids"] == [dead["id"]]
        receiver.wait_until(lambda: len(receiver.deliveries) == 3)
        wait_for(
            lambda: cli_json(
                env, "webhooks", "list", "--status", "delivered", "--event-type", "ssf.set"
            )
        )
        jwks = httpx.get(f"{server.url}/.well-known/jwks.json").json()
        jtis = set()
        for delivery in receiver.deliveries:
            assert delivery.headers["Content-Type"] == "application/secevent+jwt"
            decoded = jwt.decode(
                delivery.body.decode(), KeySet.import_key_set(jwks), algorithms=["RS256"]
            )
            assert decoded.header["typ"] == "secevent+jwt"
            assert decoded.claims["aud"] == client.client_id
            assert decoded.claims["iss"] == server.url
            assert list(decoded.claims["events"]) == [DISABLED]
            assert decoded.claims["sub_id"]["format"] == "iss_sub"
            jtis.add(decoded.claims["jti"])
        assert jtis == {dead["payload"]["jti"]}

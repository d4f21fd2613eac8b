"""Pairwise clients from the command line: ``clients create|update --subject-type
pairwise [--sector-identifier-uri URI]``, the sector identifier document served by a
real local HTTP server, refusals on stderr with a non-zero exit."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.e2e.server import base_env, cli, cli_json

pytestmark = pytest.mark.e2e

URIS = ["https://c1.example/cb", "https://c2.example/cb"]


class Documents:
    """What the sector identifier URL answers, and how many times it was asked."""

    def __init__(self) -> None:
        self.body = json.dumps(URIS).encode()
        self.requests = 0


@pytest.fixture
def documents() -> Iterator[tuple[Documents, str]]:
    state = Documents()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests += 1
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/sector.json"
    finally:
        server.shutdown()
        server.server_close()


def test_pairwise_clients_from_the_cli(tmp_path: Path, documents: tuple[Documents, str]) -> None:
    state, url = documents
    env = base_env(f"sqlite:///{tmp_path}/pairwise.db", ONEPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS="1")
    cli(env, "db", "upgrade")
    plain = cli_json(env, "clients", "create", "--name", "plain", "--redirect-uri", URIS[0])
    assert (plain["subject_type"], plain["sector_identifier_uri"]) == ("public", None)

    refused = cli(
        env, "clients", "create", "--name", "two hosts", "--subject-type", "pairwise",
        "--redirect-uri", URIS[0], "--redirect-uri", URIS[1], check=False,
    )  # fmt: skip
    assert refused.returncode != 0 and "sector_identifier_uri" in refused.stderr
    assert "Traceback" not in refused.stderr

    created = cli_json(
        env, "clients", "create", "--name", "shop", "--subject-type", "pairwise",
        "--redirect-uri", URIS[0], "--redirect-uri", URIS[1], "--sector-identifier-uri", url,
    )  # fmt: skip
    assert (created["subject_type"], created["sector_identifier_uri"]) == ("pairwise", url)
    assert state.requests == 1
    client_id = created["client_id"]

    missing = cli(
        env, "clients", "update", client_id, "--add-redirect-uri", "https://c3.example/cb",
        check=False,
    )  # fmt: skip
    assert missing.returncode != 0
    assert "does not list the redirect URI 'https://c3.example/cb'" in missing.stderr
    assert cli_json(env, "clients", "show", client_id)["redirect_uris"] == URIS

    state.body = json.dumps([*URIS, "https://c3.example/cb"]).encode()
    updated = cli_json(
        env, "clients", "update", client_id, "--add-redirect-uri", "https://c3.example/cb"
    )
    assert updated["redirect_uris"][-1] == "https://c3.example/cb" and state.requests == 3

    state.body = b"<html>not a list</html>"
    bad = cli(
        env, "clients", "update", plain["client_id"], "--subject-type", "pairwise",
        "--sector-identifier-uri", url, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "not JSON" in bad.stderr
    assert cli_json(env, "clients", "show", plain["client_id"])["subject_type"] == "public"
    public_again = cli_json(
        env, "clients", "update", client_id, "--subject-type", "public",
        "--sector-identifier-uri", "",
    )  # fmt: skip
    assert public_again["subject_type"] == "public"

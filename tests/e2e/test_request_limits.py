"""A real ``onepass serve`` sent a ~300 MB body does not hold it: its memory stays put.

Chunked (no length at all) and with a lying Content-Length; to an OAuth endpoint with
no client authentication, to a page and to the admin API. What is asserted is the
server's resident memory (``VmRSS``), not how fast it answered.
"""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import Server, base_env, cli, cli_json

pytestmark = pytest.mark.e2e

TOTAL = 300 * 1024 * 1024
CHUNK = 256 * 1024
# The interpreter's own noise (allocator arenas, a few requests' buffers); holding the
# body would be hundreds of megabytes.
MAX_GROWTH = 32 * 1024 * 1024


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def send_large_body(
    port: int, path: str, content_type: str, *, chunked: bool, authorization: str = ""
) -> bytes:
    """Stream TOTAL bytes as fast as the server takes them; return what it answered."""
    framing = "Transfer-Encoding: chunked" if chunked else "Content-Length: 100"
    extra = f"Authorization: {authorization}\r\n" if authorization else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"{extra}{framing}\r\n\r\n"
    ).encode()
    data = b"x" * CHUNK
    piece = b"%x\r\n%s\r\n" % (len(data), data) if chunked else data
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head)
        sent = 0
        try:
            while sent < TOTAL:
                sock.sendall(piece)
                sent += CHUNK
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading: what we want
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        return answer


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "lying-content-length"])
def test_large_body_streamed_to_serve_does_not_grow_its_memory(
    tmp_path: Path, chunked: bool
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/onepass.db")
    # The admin API authenticates before it reads a body: an administrator's token, so
    # the body is read (and bounded) rather than refused unread with a 401.
    cli(env, "db", "upgrade")
    cli(env, "admin", "create", "--email", "ops@example.com", "--password", "correct horse battery")
    token = cli_json(
        env, "admin", "tokens", "create", "--email", "ops@example.com", "--scope", "audit:read"
    )["token"]
    with Server(env, log_path=tmp_path / "server.log") as server:
        assert server.process is not None
        for _ in range(3):  # warm: imports, templates, the first database connections
            httpx.post(f"{server.url}/revoke", data={"token": "x"})
            httpx.post(f"{server.url}/login", data={"email": "x"})
        before = rss(server.process.pid)
        for path, content_type, authorization in (
            ("/token", "application/x-www-form-urlencoded", ""),
            ("/revoke", "application/x-www-form-urlencoded", ""),
            ("/userinfo", "application/x-www-form-urlencoded", ""),
            ("/login", "application/x-www-form-urlencoded", ""),
            ("/api/v1/admin/step-up", "application/json", f"Bearer {token}"),
        ):
            answer = send_large_body(
                server.port, path, content_type, chunked=chunked, authorization=authorization
            )
            grown = rss(server.process.pid) - before
            assert grown < MAX_GROWTH, (path, grown // 2**20, answer[:200])
            if chunked:
                assert answer.startswith(b"HTTP/1.1 413 "), (path, answer[:200])
        # Without a token the admin API answers 401 and never reads the body.
        answer = send_large_body(
            server.port, "/api/v1/admin/step-up", "application/json", chunked=chunked
        )
        assert rss(server.process.pid) - before < MAX_GROWTH
        if chunked:
            assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
        assert httpx.get(f"{server.url}/up").status_code == 200

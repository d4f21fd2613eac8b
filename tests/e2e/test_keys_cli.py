"""``onepass keys rotate --alg`` and ``keys list --alg`` from the command line, with
ONEPASS_SIGNING_ALGS naming EdDSA; bad algorithms get one clear line, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import base_env, cli, cli_json

pytestmark = pytest.mark.e2e


def refused(env: dict[str, str], *args: str, code: int = 1) -> str:
    result = cli(env, *args, check=False)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    return result.stderr


def test_rotate_one_algorithm_and_refuse_unknown_ones(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/k.db", ONEPASS_SIGNING_ALGS="RS256,ES256,EdDSA")
    cli(env, "db", "upgrade")

    [rotation] = cli_json(env, "keys", "rotate", "--alg", "EdDSA", "--force")
    assert rotation["alg"] == "EdDSA" and rotation["retired_kid"] and rotation["next_kid"]

    listed = cli_json(env, "keys", "list", "--alg", "EdDSA")
    assert {row["kid"]: row["state"] for row in listed} == {
        rotation["retired_kid"]: "retired",
        rotation["activated_kid"]: "active",
        rotation["next_kid"]: "next",
    }
    assert {row["alg"] for row in listed} == {"EdDSA"}
    table = cli({**env, "COLUMNS": "200"}, "keys", "list", "--alg", "EdDSA").stdout
    assert rotation["activated_kid"] in table and "EdDSA" in table

    stderr = refused(env, "keys", "rotate", "--alg", "HS256", "--force")
    assert stderr.strip() == (
        "onepass: 'HS256' is not a signing algorithm of 1pass; it signs with "
        "RS256, PS256, ES256, EdDSA"
    )
    stderr = refused(env, "keys", "rotate", "--alg", "PS256", "--force")
    assert "keeps no PS256 keys: ONEPASS_SIGNING_ALGS is RS256,ES256,EdDSA" in stderr
    stderr = refused(
        env,
        "clients",
        "create",
        "--name",
        "RP",
        "--redirect-uri",
        "https://rp.example/cb",
        "--id-token-alg",
        "PS256",
    )
    assert "PS256 has no signing key on this server: ONEPASS_SIGNING_ALGS" in stderr

    bad = {**env, "ONEPASS_SIGNING_ALGS": "RS256,HS256"}
    stderr = refused(bad, "keys", "list", code=2)
    assert "ONEPASS_SIGNING_ALGS: " in stderr and "'HS256' is not an algorithm" in stderr

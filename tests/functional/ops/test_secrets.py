"""`onepass secrets rotate|status` on SQLite and PostgreSQL: every sealed secret re-sealed
in one transaction, stored hashes kept, and refusals that change nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from onepass.clients.models import OAuthApplication
from onepass.keys.models import SigningKey
from onepass.operators.audit import Actor
from onepass.operators.models import AuditLogEntry
from onepass.ops.releases import beat
from onepass.playbook import secrets
from onepass.release import current
from onepass.runtime import Runtime
from onepass.settings import Settings
from tests.factories import make_admin, make_client

NEW = "functional-new-secret-key-" + "n" * 32


async def rebuilt(settings: Settings, key: str, fallbacks: str | None = None) -> Runtime:
    runtime = Runtime.build(
        settings.model_copy(update={"secret_key": key, "secret_key_fallbacks": fallbacks})
    )
    await runtime.load_installation_secrets()
    return runtime


async def test_rotation_reseals_every_secret_and_keeps_hashes(
    runtime: Runtime, settings: Settings
) -> None:
    client = await make_client(runtime)
    await make_admin(runtime)  # a TOTP secret
    async with runtime.database.session() as session:
        stored_hash = await session.scalar(
            select(OAuthApplication.client_secret_hash).where(OAuthApplication.id == client.id)
        )
    assert client.client_secret is not None and stored_hash is not None

    result = await secrets.rotate(runtime, Actor.cli(), NEW)
    assert result["resealed"]["signing_keys"] >= 4
    assert result["resealed"]["totp_secrets"] == 1
    assert result["resealed"]["installation_secrets"] == 1

    after = await rebuilt(settings, NEW)
    try:
        status = await secrets.status(after)
        assert status["needs_fallbacks"] is False and status["undecryptable"] == 0
        assert status["tables"]["signing_keys"]["primary"] >= 4
        assert status["hashing_key"] == "stored"
        assert after.hasher.verify(client.client_secret, stored_hash)
        async with after.database.session() as session:
            (entry,) = (
                await session.scalars(
                    select(AuditLogEntry).where(AuditLogEntry.action == "secret_key.rotate")
                )
            ).all()
        assert entry.detail["fingerprint"] == result["fingerprint"]
        assert NEW not in str(entry.detail)
    finally:
        await after.close()


async def test_rotation_refuses_while_a_running_process_would_not_decrypt_the_result(
    runtime: Runtime,
) -> None:
    async with runtime.database.session() as session:
        await beat(
            session,
            name="api-1:42",
            kind="serve",
            release=current(),
            started=runtime.clock.now(),
            now=runtime.clock.now(),
            keys=runtime.box.fingerprints,  # the old key only
        )
    with pytest.raises(secrets.SecretKeyNotAccepted, match="serve api-1:42"):
        await secrets.rotate(runtime, Actor.cli(), NEW)
    status = await secrets.status(runtime)
    assert status["hashing_key"] == "derived from ONEPASS_SECRET_KEY", "nothing changed"


async def test_rotation_with_an_undecryptable_row_changes_nothing(runtime: Runtime) -> None:
    async with runtime.database.session() as session:
        kid = await session.scalar(select(SigningKey.kid).limit(1))
        other = await session.scalar(select(SigningKey.kid).where(SigningKey.kid != kid).limit(1))
        sealed_other = await session.scalar(
            select(SigningKey.private_key_encrypted).where(SigningKey.kid == other)
        )
        # Another row's ciphertext: bound to the other kid, so it does not decrypt here.
        await session.execute(
            update(SigningKey)
            .where(SigningKey.kid == kid)
            .values(private_key_encrypted=sealed_other)
        )
    with pytest.raises(secrets.UndecryptableSecret, match="nothing was changed") as refused:
        await secrets.rotate(runtime, Actor.cli(), NEW, force=True)
    assert NEW not in str(refused.value)
    status = await secrets.status(runtime)
    assert status["undecryptable"] == 1
    assert status["hashing_key"] == "derived from ONEPASS_SECRET_KEY"

"""The playbook's secret-key chapter: rotate ONEPASS_SECRET_KEY.

Private signing keys, webhook signing secrets, TOTP secrets and queued mail are sealed
at rest under ONEPASS_SECRET_KEY (``crypto.SecretBox``); client secrets and tokens are
stored as HMACs under a hashing key derived from it (``crypto.KeyedHasher``). A
rotation re-seals the first under the new key, in one transaction, and stores the
hashing key itself sealed under the new key (``db.installation``), since an HMAC
cannot be re-keyed: every stored hash keeps verifying.

The steps (docs/deploying.md, "Rotating ONEPASS_SECRET_KEY"): every process first
accepts the new key as a fallback; ``rotate`` re-seals (and refuses while a running
process would not decrypt the result, from the fingerprints it reports in
``process_heartbeats``); processes then switch to the new key with the old one as a
fallback; ``rotate`` without a new key re-seals what was written meanwhile; ``status``
says when nothing needs the old key, which can then be dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.accounts import totp
from onepass.accounts.models import User
from onepass.crypto import DecryptionError, SecretBox, fingerprint
from onepass.db import installation
from onepass.db.base import Base
from onepass.keys import service as signing_keys
from onepass.keys.models import SigningKey
from onepass.mail import outbox as mail_outbox
from onepass.mail.models import MailOutboxEntry
from onepass.operators import audit
from onepass.operators.audit import Actor
from onepass.ops.releases import live_processes
from onepass.playbook.actions import ROTATE_SECRET_KEY
from onepass.refusals import Conflict, Invalid
from onepass.runtime import Runtime
from onepass.settings import SECRET_KEY_MIN_LENGTH
from onepass.webhooks import keys as webhook_keys
from onepass.webhooks.models import WebhookSigningKey

SECRETS_LOCK = "secret-key-rotation"


@dataclass(frozen=True)
class Sealed:
    """A column holding secrets sealed with ``SecretBox`` and the context each is bound to."""

    label: str
    model: type[Base]
    column: str
    context: Callable[[Any], str]


SEALED = [
    Sealed(
        "signing_keys",
        SigningKey,
        "private_key_encrypted",
        lambda r: signing_keys.box_context(r.kid),
    ),
    Sealed(
        "webhook_signing_keys",
        WebhookSigningKey,
        "secret_encrypted",
        lambda r: webhook_keys.box_context(r.kid),
    ),
    Sealed("totp_secrets", User, "totp_secret_encrypted", lambda r: totp.box_context(r.id)),
    Sealed(
        "mail_outbox_entries",
        MailOutboxEntry,
        "body_encrypted",
        lambda r: mail_outbox.box_context(r.id),
    ),
    Sealed(
        "installation_secrets",
        installation.InstallationSecret,
        "sealed",
        lambda r: installation.context(r.name),
    ),
]


class SecretKeyNotAccepted(Conflict):
    pass


class UndecryptableSecret(Conflict):
    pass


async def _rows(session: AsyncSession, sealed: Sealed, *, lock: bool) -> list[Any]:
    column = getattr(sealed.model, sealed.column)
    query = select(sealed.model).where(column.is_not(None))
    if lock:
        query = query.with_for_update()
    return list((await session.scalars(query)).all())


async def status(runtime: Runtime) -> dict[str, Any]:
    """How many stored secrets each key seals: ``primary`` (ONEPASS_SECRET_KEY),
    ``fallback`` (only an ONEPASS_SECRET_KEY_FALLBACKS key opens them) and
    ``undecryptable``. Once ``fallback`` is 0 everywhere, the fallbacks can go."""
    box = runtime.box
    tables: dict[str, dict[str, int]] = {}
    async with runtime.database.session(readonly=True) as session:
        for sealed in SEALED:
            counts = {"primary": 0, "fallback": 0, "undecryptable": 0}
            for row in await _rows(session, sealed, lock=False):
                token, context = getattr(row, sealed.column), sealed.context(row)
                if box.under_primary(token, context):
                    counts["primary"] += 1
                    continue
                try:
                    box.decrypt(token, context)
                    counts["fallback"] += 1
                except DecryptionError:
                    counts["undecryptable"] += 1
            tables[sealed.label] = counts
        hashing = await session.get(installation.InstallationSecret, installation.HASH_PEPPER)
    return {
        "primary_fingerprint": box.fingerprints[0],
        "fallback_fingerprints": box.fingerprints[1:],
        "hashing_key": "stored" if hashing is not None else "derived from ONEPASS_SECRET_KEY",
        "tables": tables,
        "needs_fallbacks": any(c["fallback"] for c in tables.values()),
        "undecryptable": sum(c["undecryptable"] for c in tables.values()),
    }


async def rotate(
    runtime: Runtime, actor: Actor, new_key: str | None, *, force: bool = False
) -> dict[str, Any]:
    """Re-seal every stored secret under ``new_key`` (or, without one, under the current
    ONEPASS_SECRET_KEY: the last step, for what was sealed under the old key meanwhile),
    and keep the hashing key, sealed under it, in ``installation_secrets``."""
    if new_key is not None and len(new_key) < SECRET_KEY_MIN_LENGTH:
        raise Invalid(f"the new key must be at least {SECRET_KEY_MIN_LENGTH} characters")
    target = new_key if new_key is not None else (runtime.settings.secret_key or "")
    new_box = SecretBox(target)
    new_fp = fingerprint(target)
    now = runtime.clock.now()
    async with runtime.database.session(exclusive=SECRETS_LOCK) as session:
        if new_key is not None and not force:
            refusing = [
                p
                for p in await live_processes(session, now)
                if new_fp not in p.key_fingerprints.split(",")
            ]
            if refusing:
                names = ", ".join(f"{p.kind} {p.name}" for p in refusing[:10])
                raise SecretKeyNotAccepted(
                    f"{len(refusing)} running process(es) would not decrypt secrets sealed "
                    f"under the new key (fingerprint {new_fp}): {names}. Give every process "
                    "ONEPASS_SECRET_KEY_FALLBACKS=<the new key> and restart it first (or pass "
                    "--force if those processes are gone)"
                )
        stored = await session.get(
            installation.InstallationSecret, installation.HASH_PEPPER, with_for_update=True
        )
        if stored is None:
            session.add(
                installation.InstallationSecret(
                    name=installation.HASH_PEPPER,
                    sealed=new_box.encrypt(
                        runtime.hasher.pepper, installation.context(installation.HASH_PEPPER)
                    ),
                    updated_at=now,
                )
            )
        counts: dict[str, int] = {}
        for sealed in SEALED:
            n = 0
            for row in await _rows(session, sealed, lock=True):
                context, token = sealed.context(row), getattr(row, sealed.column)
                if new_box.under_primary(token, context):
                    continue  # sealed under the new key already (a second run)
                try:
                    plain = runtime.box.decrypt(token, context)
                except DecryptionError:
                    raise UndecryptableSecret(
                        f"a row of {sealed.label} ({context}) does not decrypt with "
                        "ONEPASS_SECRET_KEY or its fallbacks: nothing was changed"
                    ) from None
                setattr(row, sealed.column, new_box.encrypt(plain, context))
                if isinstance(row, installation.InstallationSecret):
                    row.updated_at = now
                n += 1
            counts[sealed.label] = n
        if stored is None:
            counts["installation_secrets"] += 1  # the hashing key, stored sealed now
        detail = {"fingerprint": new_fp, "resealed": counts, "forced": force}
        audit.add(session, runtime.clock, actor, ROTATE_SECRET_KEY, "secret_key", detail=detail)
    return {
        "fingerprint": new_fp,
        "resealed": counts,
        "next": (
            "set ONEPASS_SECRET_KEY=<the new key> and ONEPASS_SECRET_KEY_FALLBACKS=<the old key> "
            "on every process and restart them; then run `onepass secrets rotate` (no new key) "
            "and `onepass secrets status` until it says nothing needs the fallback"
            if new_key is not None
            else "run `onepass secrets status`: when it says nothing needs the fallbacks, "
            "remove ONEPASS_SECRET_KEY_FALLBACKS everywhere"
        ),
    }

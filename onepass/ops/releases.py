"""Which release each running process runs (``process_heartbeats``).

Every ``onepass serve`` worker and every ``onepass webhooks dispatch`` process writes
its row every ``HEARTBEAT_INTERVAL`` seconds and deletes it when it stops cleanly; a
process killed outright drops out of ``running`` once its row is ``STALE_AFTER`` old.
``onepass triage`` reads them (``ops.triage.database``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from onepass.clock import Clock
from onepass.db import Database
from onepass.ops.models import ProcessHeartbeat
from onepass.release import Release

HEARTBEAT_INTERVAL = 15.0
STALE_AFTER = timedelta(seconds=60)
BEAT_TIMEOUT = 5.0

log = structlog.get_logger("onepass.ops.releases")


def process_name() -> str:
    return f"{socket.gethostname()[:150]}:{os.getpid()}"


async def beat(
    session: AsyncSession,
    *,
    name: str,
    kind: str,
    release: Release,
    started: datetime,
    now: datetime,
    keys: Sequence[str] = (),
) -> None:
    """Record that process ``name`` runs ``release`` and decrypts with the secret keys
    of fingerprints ``keys``, as of ``now``."""
    fingerprints = ",".join(keys)[:200]
    updated = await session.execute(
        update(ProcessHeartbeat)
        .where(ProcessHeartbeat.name == name)
        .values(
            seen_at=now,
            version=release.version,
            commit=release.commit,
            revision=release.revision,
            key_fingerprints=fingerprints,
        )
    )
    if updated.rowcount:  # type: ignore[attr-defined]
        return
    host, _, pid = name.rpartition(":")
    session.add(
        ProcessHeartbeat(
            name=name,
            kind=kind,
            host=host,
            pid=int(pid) if pid.isdigit() else 0,
            version=release.version,
            commit=release.commit,
            revision=release.revision,
            key_fingerprints=fingerprints,
            started_at=started,
            seen_at=now,
        )
    )


async def forget(session: AsyncSession, name: str) -> None:
    await session.execute(delete(ProcessHeartbeat).where(ProcessHeartbeat.name == name))


async def run_heartbeat(
    database: Database,
    clock: Clock,
    release: Release,
    kind: str,
    stop: asyncio.Event,
    keys: Sequence[str] = (),
) -> None:
    """Beat until ``stop`` is set, then remove this process's row. A database that does
    not answer is logged and tried again at the next beat (never fatal)."""
    name, started = process_name(), clock.now()
    while not stop.is_set():
        try:
            async with asyncio.timeout(BEAT_TIMEOUT), database.session() as session:
                await beat(
                    session,
                    name=name,
                    kind=kind,
                    release=release,
                    started=started,
                    now=clock.now(),
                    keys=keys,
                )
        except Exception as exc:
            log.warning("releases.heartbeat_failed", error=type(exc).__name__)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), HEARTBEAT_INTERVAL)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(BEAT_TIMEOUT), database.session() as session:
            await forget(session, name)


@dataclass(frozen=True)
class RunningRelease:
    release: Release
    processes: list[ProcessHeartbeat]

    def describe(self) -> dict[str, object]:
        return {
            **self.release.describe(),
            "processes": len(self.processes),
            "hosts": sorted({p.host for p in self.processes}),
            "kinds": sorted({p.kind for p in self.processes}),
            "oldest_started_at": min(p.started_at for p in self.processes).isoformat(),
        }


async def live_processes(session: AsyncSession, now: datetime) -> list[ProcessHeartbeat]:
    """The processes seen within ``STALE_AFTER``."""
    rows = await session.scalars(
        select(ProcessHeartbeat).where(ProcessHeartbeat.seen_at > now - STALE_AFTER)
    )
    return list(rows.all())


async def running(session: AsyncSession, now: datetime) -> list[RunningRelease]:
    """The releases processes seen within ``STALE_AFTER`` run, most processes first."""
    rows = await live_processes(session, now)
    groups: dict[Release, list[ProcessHeartbeat]] = defaultdict(list)
    for row in rows:
        groups[Release(row.version, row.commit, row.revision)].append(row)
    return sorted(
        (RunningRelease(r, ps) for r, ps in groups.items()),
        key=lambda g: (-len(g.processes), g.release.label()),
    )

"""The public status page (``GET /status``, ``GET /status.json``).

It shows two things only: whether this server is healthy (the checks of ``/up``,
reduced to one word), and the open sev1 incidents with their public updates (the
playbook's external step is sev1 only). Nothing internal reaches it: no check names
or error messages, no hostnames, no operator names or private notes; when the
database does not answer, it says that incident details are unavailable.

One reading is reused for ``ONEPASS_STATUS_CACHE_TTL`` seconds (5): status pages are
read most during outages, when the database can least afford a query per visitor.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from onepass.i18n import N_
from onepass.keys.keyring import KeyRing
from onepass.ops.health import run_checks
from onepass.ops.incidents import public_incidents
from onepass.runtime import Runtime
from onepass.services import Service

OPERATIONAL = "operational"
DISRUPTED = "disrupted"
READ_TIMEOUT = 3.0


@dataclass
class _Cached:
    data: dict[str, Any]
    until: float


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def read_status(runtime: Runtime, keyring: KeyRing) -> dict[str, Any]:
    """The status document."""
    # Every algorithm of ONEPASS_SIGNING_ALGS (RS256 and the access token's among them):
    # a client registered with any of them fails at the token endpoint without its key.
    required: set[str] = set(runtime.settings.signing_algorithms)
    checks = await run_checks(runtime.database, keyring, required)
    healthy = all(check.ok for check in checks)
    incidents: list[dict[str, Any]] = []
    available = True
    try:
        async with (
            asyncio.timeout(READ_TIMEOUT),
            runtime.database.session(readonly=True) as session,
        ):
            for incident, updates in await public_incidents(session):
                incidents.append(
                    {
                        "id": incident.id,
                        "title": incident.title,
                        "status": "acknowledged" if incident.acknowledged_at else "open",
                        "started_at": _iso(incident.opened_at),
                        "updates": [
                            {"at": _iso(u.created_at), "message": u.message} for u in updates
                        ],
                    }
                )
    except Exception:  # the database is away: say so, and nothing more
        available = False
    if healthy and not incidents:
        status, summary = OPERATIONAL, N_("All systems operational.")
    elif incidents:
        status, summary = (
            DISRUPTED,
            N_("Signing in through 1pass is disrupted. We are working on it."),
        )
    else:
        status, summary = (
            DISRUPTED,
            N_("Signing in through 1pass may be failing. We are looking into it."),
        )
    return {
        "status": status,
        "summary": summary,
        "updated_at": _iso(runtime.clock.now()),
        "incidents": incidents,
        "incidents_available": available,
    }


class StatusPage:
    """The status document of one process, one reading reused for
    ``ONEPASS_STATUS_CACHE_TTL`` seconds (``STATUS_PAGE``)."""

    def __init__(self, runtime: Runtime, keyring: KeyRing) -> None:
        self.runtime = runtime
        self.keyring = keyring
        self._cached: _Cached | None = None

    async def read(self) -> dict[str, Any]:
        cached = self._cached
        now = time.monotonic()
        if cached is not None and cached.until > now:
            return cached.data
        data = await read_status(self.runtime, self.keyring)
        self._cached = _Cached(data, now + self.runtime.settings.status_cache_ttl)
        return data

    def forget(self) -> None:
        """The next ``read`` reads anew."""
        self._cached = None


STATUS_PAGE: Service[StatusPage] = Service("ops.status_page")

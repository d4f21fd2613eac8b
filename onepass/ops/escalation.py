"""The playbook's escalation, as a pure function of an incident's state and the time.

The playbook (escalation section):

| step     | who                                   |
| -------- | ------------------------------------- |
| 1st      | on-call engineer                      |
| 2nd      | project owner                         |
| external | status page (sev1 only)               |

"For a sev1, page the first line within 5 minutes, the second after 15 more minutes
without an answer. Tell RPs directly only when they are affected (for example the
issuer down for over 30 minutes)."

So, for a sev1 only:

- FIRST_LINE: the on-call engineer is paged as soon as ``incidents escalate`` sees the
  incident (cron runs it every minute, well within the 5 minutes), unless someone has
  already acknowledged it. The first line is who acknowledges; it is not paged only
  after 5 minutes without an answer, since nobody could answer before being paged.
- SECOND_LINE: 15 minutes after the first line was paged, if nobody acknowledged.
- EXTERNAL: the status page shows every open sev1 from the start (``GET /status``);
  once a sev1 has been open 30 minutes, the escalation tells the operators to notify
  the affected RPs directly, acknowledged or not (it is about the RPs' outage, not
  about who is working on it).

sev2 and sev3 incidents are not paged: they are answered within 1 hour and 24 hours
by whoever is on call, and neither appears on the status page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum


class Step(IntEnum):
    NONE = 0
    FIRST_LINE = 1
    SECOND_LINE = 2
    EXTERNAL = 3

    @property
    def target(self) -> str:
        return TARGETS[self]

    @property
    def slug(self) -> str:
        return self.name.lower()


TARGETS = {
    Step.NONE: "nobody",
    Step.FIRST_LINE: "the first line (on-call engineer)",
    Step.SECOND_LINE: "the second line (project owner)",
    Step.EXTERNAL: "the affected RPs, directly (the status page already shows the incident)",
}

FIRST_LINE_WITHIN = timedelta(minutes=5)
SECOND_LINE_AFTER = timedelta(minutes=15)
EXTERNAL_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class IncidentState:
    sev: int
    opened_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    taken: Mapping[Step, datetime]  # steps already taken, and when


@dataclass(frozen=True)
class Due:
    step: Step
    message: str
    late: bool = False  # later than the playbook allows (escalate was not running?)


def due_steps(state: IncidentState, now: datetime) -> list[Due]:
    """The steps to take now, in order; none once resolved, and none but for a sev1.

    A step is taken once: ``taken`` (from the incident's timeline) makes a second run
    at the same moment return nothing.
    """
    if state.sev != 1 or state.resolved_at is not None:
        return []
    due: list[Due] = []
    first = state.taken.get(Step.FIRST_LINE)
    acked = state.acknowledged_at is not None
    if first is None and not acked:
        waited = now - state.opened_at
        late = waited > FIRST_LINE_WITHIN
        message = "sev1 opened and not acknowledged: paging the first line (on-call engineer)"
        if late:
            message += (
                f"; {_minutes(waited)} after opening, later than the playbook's 5 minutes "
                "(is `onepass incidents escalate` running every minute?)"
            )
        due.append(Due(Step.FIRST_LINE, message, late))
        first = now
    if (
        Step.SECOND_LINE not in state.taken
        and first is not None
        and not acked
        and now >= first + SECOND_LINE_AFTER
    ):
        due.append(
            Due(
                Step.SECOND_LINE,
                f"sev1 not acknowledged {_minutes(now - first)} after paging the first line: "
                "paging the second line (project owner)",
            )
        )
    if Step.EXTERNAL not in state.taken and now >= state.opened_at + EXTERNAL_AFTER:
        due.append(
            Due(
                Step.EXTERNAL,
                f"sev1 open for {_minutes(now - state.opened_at)}: tell the affected RPs "
                "directly (the status page shows the incident since it was opened)",
            )
        )
    return due


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"

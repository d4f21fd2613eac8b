"""The playbook's escalation: first line at once, second after 15 minutes without an
answer, tell RPs directly after 30 minutes; sev1 only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from onepass.ops.escalation import IncidentState, Step, due_steps

OPENED = datetime(2026, 3, 1, 3, 0, tzinfo=UTC)


def state(**changes: object) -> IncidentState:
    values: dict[str, object] = {
        "sev": 1,
        "opened_at": OPENED,
        "acknowledged_at": None,
        "resolved_at": None,
        "taken": {},
    }
    values.update(changes)
    return IncidentState(**values)  # type: ignore[arg-type]


def steps(s: IncidentState, minutes: float) -> list[Step]:
    return [d.step for d in due_steps(s, OPENED + timedelta(minutes=minutes))]


def test_sev1_pages_the_first_line_at_once() -> None:
    due = due_steps(state(), OPENED)
    assert [d.step for d in due] == [Step.FIRST_LINE]
    assert not due[0].late
    assert "first line" in due[0].message


def test_sev2_and_sev3_are_never_paged() -> None:
    for sev in (2, 3):
        assert steps(state(sev=sev), 0) == []
        assert steps(state(sev=sev), 120) == []


def test_a_step_already_taken_is_not_taken_again() -> None:
    taken = {Step.FIRST_LINE: OPENED}
    assert steps(state(taken=taken), 1) == []
    assert steps(state(taken=taken), 14.9) == []


def test_second_line_15_minutes_after_the_first_line_without_an_answer() -> None:
    first = OPENED + timedelta(minutes=1)
    taken = {Step.FIRST_LINE: first}
    assert steps(state(taken=taken), 15.9) == []
    assert steps(state(taken=taken), 16) == [Step.SECOND_LINE]


def test_acknowledging_stops_the_second_line_but_not_the_external_notice() -> None:
    acked = state(acknowledged_at=OPENED + timedelta(minutes=3), taken={Step.FIRST_LINE: OPENED})
    assert steps(acked, 20) == []
    assert steps(acked, 30) == [Step.EXTERNAL]


def test_acknowledged_before_the_first_page_pages_nobody() -> None:
    assert steps(state(acknowledged_at=OPENED), 1) == []


def test_external_notice_after_30_minutes_open() -> None:
    taken = {Step.FIRST_LINE: OPENED, Step.SECOND_LINE: OPENED + timedelta(minutes=15)}
    assert steps(state(taken=taken), 29) == []
    due = due_steps(state(taken=taken), OPENED + timedelta(minutes=30))
    assert [d.step for d in due] == [Step.EXTERNAL]
    assert "tell the affected RPs" in due[0].message


def test_escalate_not_running_for_a_while_takes_the_steps_in_order_and_says_it_is_late() -> None:
    due = due_steps(state(), OPENED + timedelta(minutes=40))
    # The first line is paged now and gets its 15 minutes before the second line.
    assert [d.step for d in due] == [Step.FIRST_LINE, Step.EXTERNAL]
    assert due[0].late and "later than the playbook's 5 minutes" in due[0].message


def test_resolved_incidents_are_not_escalated() -> None:
    assert steps(state(resolved_at=OPENED + timedelta(minutes=2)), 60) == []

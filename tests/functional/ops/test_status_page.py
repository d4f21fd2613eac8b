"""GET /status and /status.json: health in one word and open sev1 incidents, nothing internal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import update

from onepass.app import OnePass
from onepass.ops import incidents
from onepass.ops.models import Incident
from onepass.ops.status import STATUS_PAGE
from onepass.runtime import Runtime
from tests.conftest import database_stopped


async def open_incident(runtime: Runtime, sev: int, title: str) -> int:
    async with runtime.database.session() as session:
        return (
            await incidents.open_incident(
                session, runtime.clock, sev=sev, title=title, actor="oncall-ada-lovelace"
            )
        ).id


async def test_status_is_operational_when_healthy_without_incidents(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/status.json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "operational"
    assert body["summary"] == "All systems operational."
    assert body["incidents"] == [] and body["incidents_available"] is True
    assert set(body) == {"status", "summary", "updated_at", "incidents", "incidents_available"}

    page = await http.get("/status")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "All systems operational." in page.text and "No open incident." in page.text
    assert "<script" not in page.text.lower()
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_status_shows_open_sev1_incidents_with_public_updates_only(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    sev1 = await open_incident(runtime, 1, "Sign-in failing for every application")
    await open_incident(runtime, 2, "Webhooks slow for some RPs")
    async with runtime.database.session() as session:
        await incidents.add_update(
            session,
            runtime.clock,
            sev1,
            message="pg-primary-7.internal OOM",
            actor="oncall-ada-lovelace",
        )
        await incidents.add_update(
            session, runtime.clock, sev1, message="A fix is being deployed.", public=True
        )
    body = (await http.get("/status.json")).json()
    assert body["status"] == "disrupted"
    assert [(i["id"], i["title"], i["status"]) for i in body["incidents"]] == [
        (sev1, "Sign-in failing for every application", "open")
    ]
    assert [u["message"] for u in body["incidents"][0]["updates"]] == ["A fix is being deployed."]
    page = (await http.get("/status")).text
    for shown in (
        "Sign-in failing for every application",
        "A fix is being deployed.",
        "Investigating",
    ):
        assert shown in page
    for hidden in ("pg-primary-7", "Webhooks slow", "ada-lovelace"):
        assert hidden not in page and hidden not in str(body)

    async with runtime.database.session() as session:
        await incidents.acknowledge(session, runtime.clock, sev1, actor="bob")
    assert (await http.get("/status.json")).json()["incidents"][0]["status"] == "acknowledged"
    assert "Being fixed" in (await http.get("/status")).text
    async with runtime.database.session() as session:
        await incidents.resolve(session, runtime.clock, sev1)
    assert (await http.get("/status.json")).json()["status"] == "operational"


async def test_status_when_the_database_is_down_says_so_and_leaks_nothing(
    app: OnePass, http: httpx.AsyncClient, runtime: Runtime
) -> None:
    database = app.services.runtime.database
    async with database_stopped(database):
        response = await http.get("/status.json")
        page = await http.get("/status")
    assert response.status_code == 200 and page.status_code == 200
    body = response.json()
    assert body["status"] == "disrupted" and body["incidents_available"] is False
    assert "may be failing" in body["summary"]
    assert "Incident details are temporarily unavailable." in page.text
    url = database.url
    for leaked in ("unreachable", "Error", "database", "127.0.0.1", "sqlite", url.split("/")[-1]):
        assert leaked not in response.text, leaked
        assert leaked not in page.text.replace("/status.json", ""), leaked


async def test_status_reading_is_reused_for_the_cache_ttl(
    http: httpx.AsyncClient, app: OnePass, runtime: Runtime
) -> None:
    app.services.runtime.settings = app.services.runtime.settings.model_copy(
        update={"status_cache_ttl": 60}
    )
    assert (await http.get("/status.json")).json()["status"] == "operational"
    await open_incident(runtime, 1, "Down")
    assert (await http.get("/status.json")).json()["status"] == "operational"  # cached
    app.services.get(STATUS_PAGE).forget()
    assert (await http.get("/status.json")).json()["status"] == "disrupted"


async def test_status_page_times_read_as_utc_minutes_and_ago_in_english_and_korean(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    sev1 = await open_incident(runtime, 1, "Sign-in failing")
    opened = datetime.now(UTC) - timedelta(minutes=12, seconds=20)
    async with runtime.database.session() as session:
        await session.execute(update(Incident).where(Incident.id == sev1).values(opened_at=opened))
    english = await http.get("/status", headers={"accept-language": "en-US,en;q=0.9"})
    assert english.headers["content-language"] == "en"
    assert f'Investigating since <time datetime="{opened:%Y-%m-%dT%H:%M}' in english.text
    assert f">{opened:%Y-%m-%d %H:%M} UTC (12 min ago)</time>" in english.text
    assert "UTC (just now)</time>" in english.text  # updated_at
    assert '<html lang="en">' in english.text

    korean = await http.get("/status", headers={"accept-language": "ko-KR,ko;q=0.9,en;q=0.8"})
    assert korean.headers["content-language"] == "ko"
    assert '<html lang="ko">' in korean.text
    assert "1pass 상태" in korean.text and "조사 시작:" in korean.text
    assert f">{opened:%Y-%m-%d %H:%M} UTC (12분 전)</time>" in korean.text
    assert "1pass를 통한 로그인에 장애가 있습니다." in korean.text
    assert "Sign-in failing" in korean.text  # the operator's words stay as written
    # The JSON document is for machines: the same in every language.
    assert (await http.get("/status.json", headers={"accept-language": "ko"})).json()[
        "summary"
    ] == "Signing in through 1pass is disrupted. We are working on it."

"""GET /metrics: Prometheus text with HTTP, token, webhook and outbox metrics; protection."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
from prometheus_client.parser import text_string_to_metric_families

from onepass.app import create_app
from onepass.runtime import Runtime
from onepass.settings import Environment, Settings
from tests.conftest import ISSUER
from tests.factories import make_client
from tests.webhook_helpers import Receiver, dispatch_once, enqueue, make_webhook_app, status


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def scrape(http: httpx.AsyncClient, **headers: str) -> dict:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return samples(response.text)


def value(metrics: dict, name: str, **labels: str) -> float:
    return metrics.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_tokens_issued_and_refused_are_counted_by_grant_type_and_error(
    http: httpx.AsyncClient, runtime: Runtime
) -> None:
    client = await make_client(runtime)
    before = await scrape(http)
    for _ in range(3):
        ok = await http.post(
            "/token",
            data={"grant_type": "client_credentials"},
            auth=(client.client_id, client.client_secret or ""),
        )
        assert ok.status_code == 200
    bad = await http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "wrong")
    )
    assert bad.status_code == 401
    odd = await http.post("/token", data={"grant_type": "password"}, auth=(client.client_id, "x"))
    assert odd.status_code == 400
    after = await scrape(http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("onepass_tokens_issued_total", grant_type="client_credentials") == 3
    assert delta("onepass_token_errors_total", error="invalid_client") == 1
    assert delta("onepass_token_errors_total", error="unsupported_grant_type") == 1
    assert delta("onepass_http_requests_total", route="/token", status="2xx") == 3
    assert delta("onepass_http_requests_total", route="/token", status="4xx") == 2
    assert delta("onepass_http_request_duration_seconds_count", route="/token") == 5
    assert delta("onepass_http_request_duration_seconds_bucket", route="/token", le="+Inf") == 5


async def test_http_requests_are_labelled_by_route_template_never_raw_paths(
    http: httpx.AsyncClient,
) -> None:
    before = await scrape(http)
    assert (await http.get("/up")).status_code == 200
    assert (await http.get("/no-such-page-0123456789")).status_code == 404
    response = await http.get("/metrics")
    after = samples(response.text)
    assert (
        value(after, "onepass_http_requests_total", route="/up", status="2xx")
        - value(before, "onepass_http_requests_total", route="/up", status="2xx")
        == 1
    )
    assert value(after, "onepass_http_requests_total", route="unmatched", status="4xx") >= 1
    assert "no-such-page" not in response.text


async def test_outbox_gauges_and_delivery_outcomes(
    http: httpx.AsyncClient, runtime: Runtime, receiver: Receiver
) -> None:
    receiver.routes["/gone"] = status(410)
    good = await make_webhook_app(runtime, receiver.url("/ok"), name="good")
    dead = await make_webhook_app(runtime, receiver.url("/gone"), name="dead")
    before = await scrape(http)
    assert value(before, "onepass_webhook_outbox_scrape_ok") == 1
    assert value(before, "onepass_webhook_outbox_pending") == 0
    for _ in range(2):
        await enqueue(runtime, good.id)
    await enqueue(runtime, dead.id)
    queued = await scrape(http)
    assert value(queued, "onepass_webhook_outbox_pending") == 3
    assert value(queued, "onepass_webhook_outbox_due") == 3
    assert value(queued, "onepass_webhook_outbox_oldest_due_age_seconds") >= 0
    stats = await dispatch_once(runtime)  # in this process: its counter is this registry's
    assert (stats.delivered, stats.dead) == (2, 1)
    after = await scrape(http)
    assert value(after, "onepass_webhook_outbox_pending") == 0
    assert value(after, "onepass_webhook_outbox_dead", client_id=dead.client_id) == 1
    assert value(after, "onepass_webhook_outbox_dead", client_id=good.client_id) == 0

    def delta(outcome: str) -> float:
        name = "onepass_webhook_deliveries_total"
        return value(after, name, outcome=outcome) - value(before, name, outcome=outcome)

    assert (delta("delivered"), delta("dead"), delta("retry")) == (2, 1, 0)


@contextlib.asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with application.api.router.lifespan_context(application.api):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
            yield client


async def test_metrics_with_a_token_require_it(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(update={"metrics_token": "scrape-me-" + "x" * 20})
    async with client_for(settings) as http:
        refused = await http.get("/metrics")
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
        assert refused.headers["www-authenticate"].startswith("Bearer")
        wrong = await http.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
        ok = await http.get("/metrics", headers={"authorization": "Bearer scrape-me-" + "x" * 20})
        assert ok.status_code == 200 and "onepass_http_requests_total" in ok.text


async def test_metrics_in_production_are_off_until_a_token_is_set(runtime: Runtime) -> None:
    settings = runtime.settings.model_copy(
        update={"env": Environment.PRODUCTION, "issuer": "https://id.example.com"}
    )
    async with client_for(settings) as http:
        response = await http.get("/metrics")
    assert response.status_code == 404
    assert "ONEPASS_METRICS_TOKEN" in response.json()["message"]


async def test_metrics_route_labels_stay_bounded_whatever_the_paths_and_methods(
    http: httpx.AsyncClient,
) -> None:
    marker = uuid.uuid4().hex
    for method, path in [
        ("GET", f"/{marker}"),
        ("GET", f"/static/{marker}.css"),
        ("GET", f"/admin/webhooks/{marker}"),
        ("DELETE", f"/api/v1/admin/webhook_outbox/{marker}"),
        ("GET", f"/webhooks/{marker}"),
        ("OPTIONS", f"/token/{marker}"),
        ("PUT", "/token"),
        ("GET", f"/up/{marker}"),
        ("GET", f"/%ff{marker}"),
    ]:
        await http.request(method, path)
    text = (await http.get("/metrics")).text
    assert marker not in text
    routes = {
        s.labels["route"]
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if "route" in s.labels
    }
    assert all(r == "unmatched" or r.startswith("/") for r in routes), routes

"""Metric labels stay bounded: route templates and status classes, never raw paths."""

from __future__ import annotations

from types import SimpleNamespace

from onepass.instruments import route_template, status_class
from onepass.ops.metrics import OutboxSnapshot, outbox_families


def test_status_class_groups_status_codes() -> None:
    assert [status_class(s) for s in (101, 200, 204, 302, 401, 404, 500, 503)] == [
        "1xx", "2xx", "2xx", "3xx", "4xx", "4xx", "5xx", "5xx",
    ]  # fmt: skip
    assert status_class(999) == "5xx"


def test_route_template_is_the_matched_route_never_the_raw_path() -> None:
    route = SimpleNamespace(path="/webhooks/{client_id}")
    assert route_template({"route": route, "path": "/webhooks/abc"}) == "/webhooks/{client_id}"
    assert route_template({"path": "/wp-admin.php"}) == "unmatched"


def test_outbox_families_when_the_database_did_not_answer_say_so_only() -> None:
    families = outbox_families(OutboxSnapshot(ok=False))
    assert [f.name for f in families] == ["onepass_webhook_outbox_scrape_ok"]
    assert families[0].samples[0].value == 0


def test_outbox_families_carry_dead_letters_per_rp() -> None:
    families = {
        f.name: f
        for f in outbox_families(
            OutboxSnapshot(ok=True, pending=7, due=3, oldest_due_age=42.0, dead={"rp1": 2})
        )
    }
    assert families["onepass_webhook_outbox_pending"].samples[0].value == 7
    assert families["onepass_webhook_outbox_due"].samples[0].value == 3
    assert families["onepass_webhook_outbox_oldest_due_age_seconds"].samples[0].value == 42.0
    dead = families["onepass_webhook_outbox_dead"].samples
    assert [(s.labels, s.value) for s in dead] == [({"client_id": "rp1"}, 2)]


def test_flushed_observations_equal_prometheus_observe() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from onepass.instruments import LATENCY_BUCKETS, HttpMetrics, _add_observations

    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", buckets=LATENCY_BUCKETS, registry=registry)
    batched = Histogram("batched_seconds", "b", buckets=LATENCY_BUCKETS, registry=registry)
    values = [0.0, 0.0004, 0.001, 0.0011, 0.05, 1.9, 2.0, 2.5, 9.99, 10.0, 42.0]
    local = HttpMetrics()
    for v in values:
        direct.observe(v)
        local.observe("/r", 200, v)
    [(count, total, buckets)] = local._pending.values()
    assert count == len(values)
    _add_observations(batched, buckets, total)

    def samples(name: str) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name.replace(name, ""), s.labels, s.value)
            for f in registry.collect()
            if f.name == name
            for s in f.samples
            if not s.name.endswith("_created")
        ]

    assert samples("batched_seconds") == samples("direct_seconds")

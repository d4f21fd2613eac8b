"""The operations commands as the on-call engineer runs them: triage against a real
`onepass serve` (up, then down), incidents and escalation from cron to a real webhook,
and /metrics across several workers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from onepass.ops.models import Incident
from tests.e2e.server import Server, base_env, cli, cli_json, free_port
from tests.webhook_helpers import ThreadedReceiver, status

pytestmark = pytest.mark.e2e

ENV = {"ONEPASS_LOG_LEVEL": "info", "COLUMNS": "250"}


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    with ThreadedReceiver() as server:
        yield server


def triage(env: dict[str, str], *args: str) -> tuple[int, dict, str]:
    result = cli(env, "triage", *args, "--json", check=False)
    return result.returncode, json.loads(result.stdout) if result.stdout else {}, result.stderr


def test_triage_against_a_running_server_then_a_stopped_one(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/ops.db", **ENV)
    with Server(env, log_path=tmp_path / "server.log") as server:
        code, report, stderr = triage(server.env)  # the base URL is ONEPASS_ISSUER
        assert code == 0, (report, stderr)
        assert report["severity"] == "ok" and report["reasons"] == []
        assert {c["name"] for c in report["checks"]} >= {"up", "jwks", "token_endpoint"}
        # The server's worker reported the release it runs; one release, so ok.
        (running,) = next(c for c in report["checks"] if c["name"] == "releases")["value"]
        assert running["processes"] == 1 and running["kinds"] == ["serve"]
        assert running["revision"] == httpx.get(f"{server.url}/livez").json()["release"]["revision"]
        human = cli(server.env, "triage", check=False)
        assert human.returncode == 0 and "severity: ok" in human.stdout
        page = httpx.get(f"{server.url}/status", timeout=5)
        assert page.status_code == 200 and "All systems operational." in page.text
    # The server is stopped: nothing answers at its URL.
    code, report, stderr = triage(server.env)
    assert code == 1, (report, stderr)
    assert report["severity"] == "sev1"
    assert report["reasons"][0].startswith(f"sev1: GET {server.url}/up gets no answer")
    assert "Traceback" not in stderr
    human = cli(server.env, "triage", check=False)
    assert human.returncode == 1 and "severity: sev1" in human.stdout


def test_triage_with_a_bad_base_url_or_no_database_says_so(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/missing.db", **ENV)
    bad = cli(env, "triage", "--base-url", "ftp://example.com", check=False)
    assert bad.returncode == 2
    assert bad.stderr.startswith("onepass: --base-url must be an http(s) URL")
    code, report, _ = triage(env, "--base-url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    database = next(c for c in report["checks"] if c["name"] == "database")
    assert database["ok"] is False and "no SQLite database at" in database["detail"]
    assert not (tmp_path / "missing.db").exists(), "triage must not create an empty database"


def test_incidents_and_escalation_from_the_command_line(
    tmp_path: Path, receiver: ThreadedReceiver
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/ops.db", **ENV)
    cli(env, "db", "upgrade")
    opened = cli_json(env, "incidents", "open", "--sev", "1", "--title", "Token endpoint 503")
    assert set(opened) == {c.name for c in Incident.__table__.columns}
    assert (opened["sev"], opened["status"], opened["escalation_level"]) == (1, "open", 0)
    incident = str(opened["id"])
    note = cli_json(
        env, "incidents", "update", incident, "--message", "looking at pg", "--actor", "ada"
    )
    assert (note["kind"], note["message"], note["public"]) == ("update", "looking at pg", False)

    paging = {**env, "ONEPASS_ESCALATION_WEBHOOK_URL": receiver.url("/page")}
    first = cli(paging, "incidents", "escalate", "--json")
    data = json.loads(first.stdout)
    assert [e["step"] for e in data["escalations"]] == ["first_line"]
    assert (data["notified"], data["notify_failed"]) == (1, 0)
    events = [json.loads(line) for line in first.stderr.splitlines() if line.startswith("{")]
    escalated = [e for e in events if e.get("event") == "incidents.escalated"]
    assert len(escalated) == 1
    assert (escalated[0]["incident_id"], escalated[0]["step"]) == (opened["id"], "first_line")
    assert [json.loads(d.body)["id"] for d in receiver.deliveries] == [
        f"incident-{incident}-first_line"
    ]
    # Cron runs it again a minute later: nothing new, nothing sent twice.
    again = json.loads(cli(paging, "incidents", "escalate", "--json").stdout)
    assert again["escalations"] == [] and again["notified"] == 0
    assert len(receiver.deliveries) == 1

    acked = cli_json(env, "incidents", "ack", incident, "--actor", "ada")
    assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "ada")
    shown = cli_json(env, "incidents", "show", incident)
    assert [u["kind"] for u in shown["updates"]] == [
        "opened",
        "update",
        "escalated",
        "acknowledged",
    ]
    assert shown["updates"][2]["notified_at"] is not None
    assert [i["id"] for i in cli_json(env, "incidents", "list", "--open")] == [opened["id"]]
    resolved = cli_json(env, "incidents", "resolve", incident, "--message", "restarted pg")
    assert resolved["status"] == "resolved" and resolved["resolved_at"] is not None
    assert cli_json(env, "incidents", "list", "--open") == []
    assert [i["status"] for i in cli_json(env, "incidents", "list")] == ["resolved"]
    table = cli(env, "incidents", "list")
    assert "Token endpoint 503" in table.stdout


def test_incident_commands_refuse_bad_input_clearly(
    tmp_path: Path, receiver: ThreadedReceiver
) -> None:
    env = base_env(f"sqlite:///{tmp_path}/ops.db", **ENV)
    cli(env, "db", "upgrade")
    missing = cli(env, "incidents", "ack", "999", check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "onepass: no incident with id 999 (`onepass incidents list`)"
    sev = cli(env, "incidents", "open", "--sev", "4", "--title", "x", check=False)
    assert sev.returncode == 2 and "Traceback" not in sev.stderr
    empty = cli(env, "incidents", "open", "--sev", "1", "--title", "  ", check=False)
    assert (empty.returncode, empty.stderr.strip()) == (1, "onepass: the title must not be empty")
    not_a_number = cli(env, "incidents", "resolve", "abc", check=False)
    assert not_a_number.returncode == 2 and "Traceback" not in not_a_number.stderr

    cli_json(env, "incidents", "open", "--sev", "1", "--title", "Down")
    receiver.routes["/page"] = status(503)
    failing = {**env, "ONEPASS_ESCALATION_WEBHOOK_URL": receiver.url("/page")}
    result = cli(failing, "incidents", "escalate", check=False)
    assert result.returncode == 1
    assert "onepass: escalation notices failed (retried by the next run): HTTP 503" in result.stderr
    bad_url = {**env, "ONEPASS_ESCALATION_WEBHOOK_URL": "not a url"}
    refused = cli(bad_url, "incidents", "escalate", check=False)
    assert refused.returncode == 2
    assert "ONEPASS_ESCALATION_WEBHOOK_URL" in refused.stderr and "Traceback" not in refused.stderr


def test_escalate_without_a_target_says_nobody_was_notified_and_exits_1(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/ops.db", **ENV)
    env.pop("ONEPASS_ESCALATION_WEBHOOK_URL", None)
    cli(env, "db", "upgrade")
    quiet = cli(env, "incidents", "escalate", check=False)
    assert (quiet.returncode, quiet.stdout.strip()) == (0, "nothing to escalate")
    cli_json(env, "incidents", "open", "--sev", "1", "--title", "Down")
    result = cli(env, "incidents", "escalate", check=False)
    assert result.returncode == 1
    assert "NOT SENT: no escalation target" in result.stdout
    assert (
        "onepass: nobody was notified: ONEPASS_ESCALATION_WEBHOOK_URL is not set" in result.stderr
    )
    # The step was recorded: the next run has nothing new to say.
    again = cli(env, "incidents", "escalate", "--json", check=False)
    assert again.returncode == 0
    data = json.loads(again.stdout)
    assert (data["target_configured"], data["nobody_notified"]) == (False, False)


def test_triage_shows_a_missing_escalation_target_as_a_warning(tmp_path: Path) -> None:
    env = base_env(f"sqlite:///{tmp_path}/ops.db", **ENV)
    env.pop("ONEPASS_ESCALATION_WEBHOOK_URL", None)
    cli(env, "db", "upgrade")
    _, report, _ = triage(env, "--base-url", f"http://127.0.0.1:{free_port()}")
    escalation = next(c for c in report["checks"] if c["name"] == "escalation")
    assert escalation["ok"] is False
    assert "ONEPASS_ESCALATION_WEBHOOK_URL is not set" in escalation["detail"]
    human = cli(env, "triage", "--base-url", f"http://127.0.0.1:{free_port()}", check=False)
    assert any("escalation" in line and "warn" in line for line in human.stdout.splitlines()), (
        human.stdout
    )
    configured = {**env, "ONEPASS_ESCALATION_WEBHOOK_URL": "https://pager.example.com/hook"}
    _, report, _ = triage(configured, "--base-url", f"http://127.0.0.1:{free_port()}")
    assert next(c for c in report["checks"] if c["name"] == "escalation")["ok"] is True


def test_metrics_add_up_every_worker_in_multiprocess_mode(tmp_path: Path) -> None:
    multiproc = tmp_path / "prometheus"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale")  # a previous run's file
    env = base_env(f"sqlite:///{tmp_path}/ops.db", **ENV, PROMETHEUS_MULTIPROC_DIR=str(multiproc))
    cli(env, "db", "upgrade")
    client = cli_json(env, "clients", "create", "--name", "m", "--grant-type", "client_credentials")
    with Server(env, workers=2, log_path=tmp_path / "server.log") as server:
        assert not (multiproc / "counter_999999.db").exists()
        for _ in range(20):  # a new connection each: the workers share them
            response = httpx.post(
                f"{server.url}/token",
                data={"grant_type": "client_credentials"},
                auth=(client["client_id"], client["client_secret"]),
                timeout=10,
            )
            assert response.status_code == 200

        def issued() -> dict[str, float]:
            text = httpx.get(f"{server.url}/metrics", timeout=10).text
            return {
                s.labels["grant_type"]: s.value
                for f in text_string_to_metric_families(text)
                for s in f.samples
                if s.name == "onepass_tokens_issued_total"
            }

        # Each worker adds its counts to the shared files every second (onepass.instruments).
        deadline = time.monotonic() + 10
        while issued() != {"client_credentials": 20.0}:
            assert time.monotonic() < deadline, issued()
            time.sleep(0.2)
        for _ in range(6):  # whichever worker answers the scrape, the sum of all
            assert issued() == {"client_credentials": 20.0}

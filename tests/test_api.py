"""Status for machines over real HTTP (``streamlit run serve.py`` on 127.0.0.1): the status
API and /metrics with API tokens of each role and without, scrapes from an allowed address,
revoked tokens refused and audited, and the health probes. No response ever holds a secret or
a Client ID (sentinel values)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.requests import Request
from starlette.responses import JSONResponse

from lib.services.accounts import api_tokens
from lib.services.guard import audit
from lib.services.guard.access import Permission, require
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import head_revision
from lib.store.vault import new_key
from lib.web.api import answer
from lib.web.headers import SECURITY_HEADERS
from lib.web.state import ServerState
from tests.fixtures.people import ADMIN
from tests.fixtures.server import ROOT, Server, start_server
from tests.fixtures.simulator import default_scenario

pytestmark = pytest.mark.slow
SCRAPER_ADDRESS = "127.0.0.2"  # Linux answers from any 127/8 address: a second machine, as far as we can tell
METRICS = {
    "switchboard_check",
    "switchboard_check_duration_seconds",
    "switchboard_product_up",
    "switchboard_last_success_timestamp_seconds",
    "switchboard_token_steps",
    "switchboard_products",
}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(default_scenario()) as started:
        yield started


@pytest.fixture(scope="module")
def server(sim: SimulatorServer) -> Iterator[Server]:
    """One server for the module (each start costs seconds): a tested connection with sentinel
    credentials, and a scraper's address on SWITCHBOARD_METRICS_ALLOW."""
    started = start_server({"SWITCHBOARD_METRICS_ALLOW": f"{SCRAPER_ADDRESS},10.9.0.0/16"}, sim.url)
    app = sim.scenario.apps[0]
    added = started.cli(
        "connections",
        "add",
        "--name",
        "Prod",
        "--client-id",
        app.client_id,
        "--secret-stdin",
        "--products",
        "cloud_storage,cc_chat,quality_management",
        "--storage-region",
        "uk",
        "--chat-region",
        "us",
        "--tenant-id",
        "tenant-us-1",
        "--environment",
        "production",
        "--qm-region",
        app.qm_region or "us-east",
        "--pbx",
        (app.pbx_names or ["pbx-1"])[0],
        stdin=app.client_secret + "\n",
    )
    assert added.returncode == 0, added.stderr
    assert started.cli("check", "Prod", "--product", "cloud_storage").returncode == 0
    assert started.cli("check", "Prod", "--product", "cc_chat").returncode == 0
    yield started
    started.stop()


def token_for(server: Server, name: str, role: str) -> str:
    made = server.cli("tokens", "create", "--name", name, "--role", role)
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audit_rows(server: Server) -> list[dict[str, object]]:
    return json.loads(server.cli("audit", "--json").stdout)


def assert_no_credential(server: Server, sim: SimulatorServer, *responses: httpx.Response) -> None:
    app = sim.scenario.apps[0]
    hint = json.loads(server.cli("connections", "list", "--json").stdout)[0]["client_id_hint"]
    for response in responses:
        for leak in (app.client_id, app.client_secret, hint, hint.encode("unicode_escape").decode()):
            assert leak not in response.text, (response.url, leak)


def test_the_status_api_answers_tokens_of_each_role_and_nobody_else(server: Server, sim: SimulatorServer) -> None:
    with server.client() as client:
        nobody = client.get("/api/v1/status")  # no users yet: a page would send us to /account/setup
        assert nobody.status_code == 401 and nobody.headers["www-authenticate"] == 'Bearer realm="Switchboard"'
        assert nobody.json() == {"error": "Send a valid Switchboard API token: Authorization: Bearer sbt_…"}
        basic = client.get("/api/v1/status", headers={"Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
        assert basic.status_code == 401
        forged = client.get("/api/v1/connections/Prod", headers=bearer("sbt_" + "A" * 43))
        assert forged.status_code == 401 and 'error="invalid_token"' in forged.headers["www-authenticate"]
        answers = []
        for role in ("viewer", "operator"):
            token = token_for(server, f"status-{role}", role)
            everything = client.get("/api/v1/status", headers=bearer(token))
            assert everything.status_code == 200 and everything.headers["cache-control"] == "no-store"
            [prod] = everything.json()["connections"]
            assert (prod["name"], prod["environment"]) == ("Prod", "production")
            assert {p["product"]: (p["status"], p["outcome"]) for p in prod["products"]} == {
                "cloud_storage": ("ok", "ok"),
                "cc_chat": ("ok", "ok"),
                "quality_management": ("never tested", "never_tested"),
            }  # ticked only, in catalogue order
            storage = prod["products"][0]
            assert storage["http_status"] == 200 and storage["latency_ms"] >= 0 and storage["checked_at"].endswith("Z")
            one = client.get("/api/v1/connections/prod", headers=bearer(token))
            assert (
                one.status_code == 200
                and [
                    {k: v for k, v in p.items() if k != "uptime"}  # one: with uptime
                    for p in one.json()["products"]
                ]
                == prod["products"]
            )
            missing = client.get("/api/v1/connections/Nope%2Fnot here", headers=bearer(token))
            assert missing.status_code == 404 and missing.json() == {"error": "No connection is named 'Nope/not here'."}
            for response in (everything, one, missing, nobody):
                for header, value in SECURITY_HEADERS.items():
                    assert response.headers.get(header) == value, header
            answers += [everything, one, missing]
        assert_no_credential(server, sim, nobody, forged, *answers)
    listed = {t["name"]: t for t in json.loads(server.cli("tokens", "list", "--json").stdout)}
    assert listed["status-viewer"]["last_used_at"] and listed["status-operator"]["last_used_at"]
    refused = [r for r in audit_rows(server) if r["action"] == "token.use"]
    assert [(r["actor"], r["target"], r["detail"], r["client_address"]) for r in refused] == [
        ("token:unknown", "GET /api/v1/connections/Prod", "unknown token", "127.0.0.1")
    ]


def test_metrics_for_a_token_or_an_allowed_address_parsed_as_prometheus_does(
    server: Server, sim: SimulatorServer
) -> None:
    token = token_for(server, "prometheus", "viewer")
    with server.client() as client:
        refused = client.get("/metrics")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        scraped = client.get("/metrics", headers=bearer(token))
        assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = {f.name: f for f in text_string_to_metric_families(scraped.text)}
        assert METRICS <= set(families) and families["switchboard_check"].type == "counter"
        assert families["switchboard_check_duration_seconds"].type == "histogram"
        up = {
            (s.labels["connection"], s.labels["product"]): s.value for s in families["switchboard_product_up"].samples
        }
        assert up == {("Prod", "cloud_storage"): 1, ("Prod", "cc_chat"): 1}
        checked = {(s.labels["product"], s.labels["outcome"]): s.value for s in families["switchboard_check"].samples}
        assert checked[("cloud_storage", "ok")] == 1 and checked[("cc_chat", "ok")] == 1
        assert [s.value for s in families["switchboard_token_steps"].samples if s.labels["outcome"] == "ok"] == [2]
        openmetrics = client.get("/metrics", headers={**bearer(token), "Accept": "application/openmetrics-text"})
        assert openmetrics.headers["content-type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")
        assert_no_credential(server, sim, scraped, openmetrics)
    with httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address=SCRAPER_ADDRESS)) as scraper:
        allowed = scraper.get("/metrics")
        assert allowed.status_code == 200 and "switchboard_product_up" in allowed.text
        assert scraper.get("/api/v1/status").status_code == 401  # the address opens /metrics only
        wrong = scraper.get("/metrics", headers=bearer("sbt_not-a-token"))
        assert wrong.status_code == 401  # a token sent is always checked
    with server.client() as client:  # a forwarded address is not believed from an untrusted proxy
        assert client.get("/metrics", headers={"X-Forwarded-For": "10.9.0.1"}).status_code == 401


def test_a_revoked_token_is_refused_at_once_and_audited(server: Server) -> None:
    token = token_for(server, "grafana", "viewer")
    with server.client() as client:
        assert client.get("/api/v1/status", headers=bearer(token)).status_code == 200
        assert server.cli("tokens", "revoke", "grafana").returncode == 0
        for path in ("/api/v1/status", "/metrics"):
            refused = client.get(path, headers=bearer(token))
            assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
    rows = [r for r in audit_rows(server) if r["actor"] == "token:grafana"]
    assert [(r["action"], r["result"], r["target"], r["detail"]) for r in rows] == [
        ("token.use", "refused", "GET /api/v1/status", "revoked token")
    ]  # then quiet for a minute
    assert token not in json.dumps(audit_rows(server)) and token not in server.log.read_text()


def stamp(database: Path, revision: str) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    conn.close()


def test_health_and_readiness_are_open_tiny_and_say_nothing_more(server: Server) -> None:
    database = Path(server.env["SWITCHBOARD_DATABASE_URL"].removeprefix("sqlite:///"))
    with server.client() as client:
        for path, body in (("/healthz", "ok"), ("/readyz", "ready")):
            response = client.get(path)
            assert (response.status_code, response.text, response.headers["cache-control"]) == (200, body, "no-store")
        stamp(database, "0005")  # as if another release had changed the schema
        try:
            stale = client.get("/readyz")
            assert (stale.status_code, stale.text) == (503, "not ready")
            assert client.get("/healthz").status_code == 200  # the process still answers
        finally:
            stamp(database, head_revision())
        assert client.get("/readyz").status_code == 200
    assert "Not ready for traffic: The database schema is at revision 0005" in server.log.read_text()


def test_a_wrong_keyring_is_not_ready_and_opens_no_status(tmp_path: Path, sim: SimulatorServer) -> None:
    """A server whose keyring does not match its data starts (to say why), but is not ready,
    and its API and metrics answer 503 without the reason."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "keyring.json"),
        "SWITCHBOARD_8X8_BASE_URL": sim.url,
    }
    env.pop("SWITCHBOARD_KEYS", None)
    for makes_a_store in (("db", "upgrade"), ("keys", "add")):  # a tokens command makes neither (issue 21, item 9)
        subprocess.run(
            [sys.executable, "-m", "lib", *makes_a_store], env=env, cwd=ROOT, capture_output=True, check=True
        )
    seeded = subprocess.run(
        [sys.executable, "-m", "lib", "tokens", "create", "--name", "prometheus", "--role", "viewer"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    token = seeded.stdout.strip()
    wrong = start_server(
        {
            "SWITCHBOARD_DATABASE_URL": env["SWITCHBOARD_DATABASE_URL"],
            "SWITCHBOARD_KEYS": f"k1:{base64.b64encode(new_key()).decode()}",
        },
        sim.url,
    )
    try:
        with wrong.client() as client:
            assert client.get("/healthz").status_code == 200
            ready = client.get("/readyz")
            assert (ready.status_code, ready.text) == (503, "not ready")
            for path in ("/api/v1/status", "/metrics"):
                closed = client.get(path, headers=bearer(token))
                assert closed.status_code == 503 and closed.json() == {
                    "error": "Switchboard is not ready; see the server's log."
                }
        assert "Not ready for traffic: Key 'k1' in the keyring is not the key" in wrong.log.read_text()
    finally:
        wrong.stop()


def test_a_role_that_may_not_is_answered_403_and_audited(runtime: Runtime) -> None:
    """Every token role reads status, so no route answers 403 today; an action a viewer may
    not do, asked through the same door, shows what one would get."""
    token = api_tokens.create(runtime.engine, "grafana", "viewer", actor=ADMIN).token.get_secret_value()
    request = Request(
        {
            "type": "http",
            "method": "POST",
            "path": "/api/v1/checks",
            "query_string": b"",
            "headers": [(b"authorization", f"Bearer {token}".encode())],
            "scheme": "http",
            "server": ("switchboard.test", 80),
            "client": ("10.0.0.7", 40000),
        }
    )
    state = ServerState(hooks=None, runtime=runtime)  # type: ignore[arg-type]
    response = answer(state, request, lambda me: JSONResponse(require(me, Permission.RUN_TESTS).name))
    assert response.status_code == 403 and response.headers["cache-control"] == "no-store"
    assert json.loads(response.body) == {
        "error": "Your role (viewer) may not run tests. Ask a Switchboard admin for the operator role if you need to."
    }
    [row] = [e for e in audit.events(runtime.engine, ADMIN) if e.action == "token.use"]
    assert (row.actor, row.client_address, row.target, row.result, row.detail) == (
        "token:grafana",
        "10.0.0.7",
        "POST /api/v1/checks",
        "refused",
        "role viewer may not run tests",
    )

"""The status API's verdict for HTTP monitors, over real HTTP (``streamlit run serve.py``) with
the simulator: ``ok`` and ``counts`` over every state a product can be in, ``?fail=503``, the
filters, and ``POST /api/v1/connections/{name}/test`` with tokens of each role (issue 25)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lib.simulator import SimulatorServer
from tests.fixtures.server import PASSWORD, Server, start_server
from tests.fixtures.simulator import default_scenario
from tests.fixtures.waiting import eventually
from tests.test_api import assert_no_credential, audit_rows, bearer, token_for
from tests.test_web import sign_in

pytestmark = pytest.mark.slow
COUNTS = ("ok", "failing", "never_tested", "not_ticked")
# Per connection: (ok, failing, never tested, not ticked), and what its ticked products are.
EXPECTED = {
    "Prod": (2, 0, 1, 2),  # two tested ok, one ticked never tested
    "Broken": (1, 1, 0, 3),  # 8x8 grants only storage: chat fails
    "Edited": (0, 0, 1, 4),
}  # tested ok, then a setting changed: counts as never tested


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(default_scenario()) as started:
        yield started


def cli_ok(server: Server, *args: str, stdin: str = "") -> None:
    done = server.cli(*args, stdin=stdin)
    assert done.returncode in (0, 1), done.stderr  # check: 1 when a product fails


@pytest.fixture(scope="module")
def server(sim: SimulatorServer) -> Iterator[Server]:
    """Three connections that between them hold every state: ok, failing, never tested, not
    ticked, and not tested since the settings changed."""
    started = start_server({}, sim.url)
    everything, _, storage_only = sim.scenario.apps
    common = (
        "--storage-region",
        "uk",
        "--chat-region",
        "us",
        "--tenant-id",
        "tenant-us-1",
        "--qm-region",
        "us-west",
        "--pbx",
        "pbx-us-1",
    )
    for name, app, environment, ticked in (
        ("Prod", everything, "production", "cloud_storage,cc_chat,quality_management"),
        ("Broken", storage_only, "Staging", "cloud_storage,cc_chat"),
        ("Edited", everything, "", "cloud_storage"),
    ):
        storage = ("--storage-region", "ap") if app is storage_only else ()
        cli_ok(
            started,
            "connections",
            "add",
            "--name",
            name,
            "--client-id",
            app.client_id,
            "--secret-stdin",
            "--products",
            ticked,
            "--environment",
            environment,
            *common,
            *storage,
            stdin=app.client_secret + "\n",
        )
    cli_ok(started, "check", "Prod", "--product", "cloud_storage")
    cli_ok(started, "check", "Prod", "--product", "cc_chat")
    cli_ok(started, "check", "Broken")
    cli_ok(started, "check", "Edited")
    cli_ok(started, "connections", "edit", "Edited", "--no-verify", "--storage-region", "us-east")
    yield started
    started.stop()


@pytest.fixture(scope="module")
def viewer(server: Server) -> str:
    return token_for(server, "monitor", "viewer")


@pytest.fixture(scope="module")
def operator(server: Server) -> str:
    return token_for(server, "deployer", "operator")


def counts(expected: tuple[int, ...]) -> dict[str, int]:
    return dict(zip(COUNTS, expected, strict=True))


def assert_clean(*responses: httpx.Response) -> None:
    """Every error is JSON with one message, never a traceback."""
    for response in responses:
        assert "Traceback" not in response.text and 'File "' not in response.text, response.text
        if response.status_code >= 400 and response.status_code != 503:
            assert set(response.json()) == {"error"}, response.text


def test_ok_and_counts_cover_every_state_for_all_and_for_one(server: Server, viewer: str) -> None:
    with server.client() as client:
        everything = client.get("/api/v1/status", headers=bearer(viewer))
        assert everything.status_code == 200
        body = everything.json()
        assert (body["ok"], body["counts"]) == (False, counts((3, 1, 2, 9)))
        found = {c["name"]: c for c in body["connections"]}
        assert list(found) == ["Broken", "Edited", "Prod"]
        for name, expected in EXPECTED.items():
            assert (found[name]["ok"], found[name]["counts"]) == (expected[1] == 0, counts(expected)), name
            one = client.get(f"/api/v1/connections/{name.lower()}", headers=bearer(viewer))
            assert one.status_code == 200
            alone = {k: v for k, v in one.json().items() if k != "generated_at"}
            assert all("uptime" in p for p in alone["products"])  # one connection: with its uptime
            alone["products"] = [{k: v for k, v in p.items() if k != "uptime"} for p in alone["products"]]
            assert alone == found[name]
        edited = found["Edited"]["products"]
        assert [(p["status"], p["outcome"]) for p in edited] == [("never tested", "settings_changed")]
        assert [p["status"] for p in found["Broken"]["products"]] == ["ok", "failing"]


def test_fail_503_only_when_asked_and_only_when_failing_with_the_same_body(server: Server, viewer: str) -> None:
    def without_time(response: httpx.Response) -> dict[str, object]:
        return {k: v for k, v in response.json().items() if k != "generated_at"}

    with server.client() as client:
        for path, failing, params in (
            ("/api/v1/status", True, {}),
            ("/api/v1/connections/Broken", True, {}),
            ("/api/v1/connections/Prod", False, {}),
            ("/api/v1/connections/Edited", False, {}),
            ("/api/v1/status", False, {"environment": "production"}),
        ):
            plain = client.get(path, params=params, headers=bearer(viewer))
            asked = client.get(path, params={**params, "fail": "503"}, headers=bearer(viewer))
            assert plain.status_code == 200, path
            assert asked.status_code == (503 if failing else 200), path
            assert without_time(asked) == without_time(plain) and asked.json()["ok"] is not failing
            assert asked.headers["cache-control"] == "no-store"
        bad = [
            client.get(path, params={"fail": value}, headers=bearer(viewer))
            for path in ("/api/v1/status", "/api/v1/connections/Prod")
            for value in ("", "500", "true", "503 ", "５０３")
        ]
        bad.append(client.get("/api/v1/status?fail=503&fail=503", headers=bearer(viewer)))
        for response in bad:
            assert response.status_code == 400 and response.json()["error"].startswith(
                "fail: the one allowed value is 503"
            )
        assert_clean(*bad)


def test_filters_by_environment_whatever_its_case_and_by_connection(server: Server, viewer: str) -> None:
    def names(**params: object) -> tuple[int, list[str], dict[str, int] | None]:
        with server.client() as client:
            response = client.get("/api/v1/status", params=params, headers=bearer(viewer))  # type: ignore[arg-type]
        assert_clean(response)
        body = response.json()
        return response.status_code, [c["name"] for c in body.get("connections", [])], body.get("counts")

    for asked in ("production", "PRODUCTION", " Production ", "pRoDuCtIoN"):
        assert names(environment=asked) == (200, ["Prod"], counts(EXPECTED["Prod"]))
    assert names(environment=["staging", "Production"])[1] == ["Broken", "Prod"]
    assert names(environment="")[1] == ["Edited"]  # "?environment=" alone: connections with none
    assert names(environment="none such") == (200, [], counts((0, 0, 0, 0)))
    assert names(connection="broken") == (200, ["Broken"], counts(EXPECTED["Broken"]))
    assert names(connection=["PROD", "edited"])[1] == ["Edited", "Prod"]
    assert names(connection="Prod", environment="staging")[1] == []  # both filters apply
    status, _, _ = names(connection="Prod,Broken")  # a comma is part of a name: repeat the parameter
    assert status == 404
    with server.client() as client:
        refused = {
            "unknown": client.get("/api/v1/status?enviroment=prod", headers=bearer(viewer)),
            "unknown on one": client.get("/api/v1/connections/Prod?environment=x", headers=bearer(viewer)),
            "too many": client.get(
                "/api/v1/status", params=[("connection", f"c{i}") for i in range(51)], headers=bearer(viewer)
            ),
            "too long": client.get("/api/v1/status", params={"connection": "x" * 81}, headers=bearer(viewer)),
            "missing": client.get("/api/v1/status", params={"connection": "Nope"}, headers=bearer(viewer)),
        }
    assert {k: r.status_code for k, r in refused.items()} == {
        "unknown": 400,
        "unknown on one": 400,
        "too many": 400,
        "too long": 400,
        "missing": 404,
    }
    assert refused["unknown"].json()["error"] == (
        "enviroment: this path takes no such query parameter; it takes environment, connection, fail."
    )
    assert refused["too many"].json()["error"].startswith("connection: give at most 50")
    assert refused["missing"].json() == {"error": "No connection is named 'Nope'."}
    assert_clean(*refused.values())


PARAMETER = st.sampled_from(["environment", "connection", "fail", "Environment", "", "x"]) | st.text(max_size=12)
VALUE = st.sampled_from(["production", "PRODUCTION", "Staging", "", "Prod", "503", ",", "%", "\x00"]) | st.text(
    st.characters(blacklist_categories=("Cs",)), max_size=90
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(PARAMETER, VALUE), max_size=6))
def test_no_query_string_makes_the_status_api_fail(server: Server, viewer: str, params: list[tuple[str, str]]) -> None:
    with server.client() as client:
        response = client.get("/api/v1/status", params=params, headers=bearer(viewer))
    assert response.status_code in (200, 400, 404, 503), response.text
    assert response.headers["content-type"] == "application/json"
    assert_clean(response)
    if response.status_code in (200, 503):
        assert set(response.json()["counts"]) == set(COUNTS)


def sim_stats(sim: SimulatorServer) -> dict[str, dict[str, int]]:
    return httpx.get(f"{sim.url}/_sim/stats").json()


def test_an_operator_token_tests_one_connection_audited_under_its_name(
    server: Server, sim: SimulatorServer, operator: str, viewer: str
) -> None:
    client_id = sim.scenario.apps[0].client_id
    before = sim_stats(sim)["token_requests"].get(client_id, 0)
    with server.client() as client:
        tested = client.post("/api/v1/connections/prod/test", headers=bearer(operator))
        assert tested.status_code == 200, tested.text
        read = client.get("/api/v1/connections/Prod", headers=bearer(viewer)).json()
        assert {k: v for k, v in tested.json().items() if k != "generated_at"} == {
            k: v for k, v in read.items() if k != "generated_at"
        }
        assert (read["ok"], read["counts"]) == (True, counts((3, 0, 0, 2)))  # quality management tested now
        failing = client.post("/api/v1/connections/Broken/test", params={"fail": "503"}, headers=bearer(operator))
        assert failing.status_code == 503 and failing.json()["ok"] is False
        refused = client.post("/api/v1/connections/Prod/test", headers=bearer(viewer))
        missing = client.post("/api/v1/connections/Nope/test", headers=bearer(operator))
        nobody = client.post("/api/v1/connections/Prod/test")
        wrong_method = client.put("/api/v1/connections/Prod/test", headers=bearer(operator))
    assert sim_stats(sim)["token_requests"][client_id] == before + 1  # the test asked 8x8 for a token
    assert refused.status_code == 403 and refused.json() == {
        "error": "Your role (viewer) may not run tests. Ask a Switchboard admin for the operator role if you need to."
    }
    assert missing.status_code == 404 and missing.json() == {"error": "No connection is named 'Nope'."}
    assert nobody.status_code == 401 and wrong_method.status_code == 405 and wrong_method.headers["allow"] == "POST"
    assert_clean(refused, missing, nobody)
    assert_no_credential(server, sim, tested, failing)
    rows = audit_rows(server)
    runs = [(r["target"], r["result"]) for r in rows if r["action"] == "check.run" and r["actor"] == "token:deployer"]
    assert sorted(runs) == [("Broken", "ok"), ("Prod", "ok")]  # a run that stored every result is ok
    assert [
        (r["actor"], r["detail"]) for r in rows if r["action"] == "token.use" and r["actor"] == "token:monitor"
    ] == [("token:monitor", "role viewer may not run tests")]


def test_a_second_test_of_the_same_connection_while_one_runs_is_409(
    server: Server, sim: SimulatorServer, operator: str
) -> None:
    knobs = httpx.put(f"{sim.url}/_sim/knobs", json={"latency_ms": 1500})
    assert knobs.status_code == 200, knobs.text
    first: list[httpx.Response] = []
    try:
        runner = threading.Thread(
            target=lambda: first.append(
                httpx.post(f"{server.url}/api/v1/connections/Edited/test", headers=bearer(operator), timeout=60)
            )
        )
        runner.start()
        eventually(lambda: sim_stats(sim)["in_flight"], what="the first test to be talking to 8x8")
        second = httpx.post(f"{server.url}/api/v1/connections/edited/test", headers=bearer(operator), timeout=60)
        other = httpx.post(f"{server.url}/api/v1/connections/Prod/test", headers=bearer(operator), timeout=60)
        runner.join(60)
    finally:
        httpx.put(f"{sim.url}/_sim/knobs", json={"latency_ms": 0})
    assert second.status_code == 409 and second.json() == {
        "error": "A test of 'Edited' is running already; ask again once it has answered."
    }
    assert other.status_code == 200  # another connection is not held up
    [done] = first
    assert done.status_code == 200 and done.json()["counts"] == counts((1, 0, 0, 4))


def test_a_signed_in_browser_cannot_start_a_test_with_its_cookie(server: Server) -> None:
    """API routes read bearer tokens only: a cookie session (what a cross-site form or fetch
    would carry along) is not a credential there, even an admin's with our own Origin."""
    server.add_user("root", "admin")
    before = len([r for r in audit_rows(server) if r["action"] == "check.run"])
    with server.client() as browser:
        signed_in = sign_in(browser, "root", PASSWORD)
        assert signed_in.status_code in (302, 303) and browser.cookies, signed_in.text[:300]
        attempt = browser.post("/api/v1/connections/Prod/test")
        assert attempt.status_code == 401 and attempt.headers["www-authenticate"] == 'Bearer realm="Switchboard"'
        assert browser.get("/api/v1/status").status_code == 401
    assert len([r for r in audit_rows(server) if r["action"] == "check.run"]) == before
    assert json.loads(attempt.text) == {"error": "Send a valid Switchboard API token: Authorization: Bearer sbt_…"}

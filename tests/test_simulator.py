"""The 8x8 simulator over real sockets: token endpoint, probes, faults, knobs, stats, scenarios."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.catalogue.products import PRODUCTS, STORAGE_REGIONS
from lib.kernel.errors import ConfigError
from lib.simulator import (
    SAMPLE_SCENARIO,
    App,
    Fault,
    Scenario,
    ScenarioError,
    SimulatorServer,
    load_scenario,
    serve,
)

# The fixtures are imported too, so this module works whether or not tests/conftest.py
# lists tests.fixtures.simulator in pytest_plugins.
from tests.fixtures.simulator import (
    default_scenario,
    fetch_token,
    probe,
    run_in_new_loop,
)
from tests.fixtures.waiting import eventually

GRANT = {"grant_type": "client_credentials"}


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


def everything(sim: SimulatorServer) -> App:
    return sim.scenario.apps[0]


def multi_tenant(sim: SimulatorServer) -> App:
    return sim.scenario.apps[1]


def storage_only(sim: SimulatorServer) -> App:
    return sim.scenario.apps[2]


def fault_string(response: httpx.Response) -> tuple[str, str]:
    fault = response.json()["fault"]
    return fault["faultstring"], fault["detail"]["errorcode"]


# --- Token endpoint ------------------------------------------------------------------------


def test_token_success_has_apigee_shape_with_string_numbers(simulator, client) -> None:
    app = everything(simulator)
    before = int(time.time() * 1000)
    response = client.post(f"{simulator.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=GRANT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert {k for k, v in body.items() if not isinstance(v, str)} == {"api_product_list_json"}
    assert body["token_type"] == "BearerToken"
    assert body["expires_in"] == "1799"
    assert before <= int(body["issued_at"]) <= int(time.time() * 1000)
    assert body["scope"] == ""
    assert body["status"] == "approved"
    assert body["refresh_token_expires_in"] == body["refresh_count"] == "0"
    assert body["client_id"] == "deprecated"
    assert body["organization_name"] == "8x8gateway"
    assert str(uuid.UUID(body["application_name"])) == body["application_name"]
    assert len(body["access_token"]) >= 20
    # Realtime and historical share one 8x8 product name: listed once.
    names = ["analytics realtime-api", "storage", "QM - API", "vcc"]
    assert body["api_product_list_json"] == names
    assert body["api_product_list"] == "[analytics realtime-api, storage, QM - API, vcc]"


def test_tokens_are_fresh_and_application_name_is_stable(simulator, client) -> None:
    app = everything(simulator)
    first, second = (
        client.post(f"{simulator.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=GRANT).json()
        for _ in range(2)
    )
    assert first["access_token"] != second["access_token"]
    assert first["application_name"] == second["application_name"] == app.application_name


def test_token_lists_only_the_apps_products(simulator, client) -> None:
    app = storage_only(simulator)
    body = client.post(f"{simulator.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=GRANT).json()
    assert body["api_product_list"] == "[storage]"
    assert body["api_product_list_json"] == ["storage"]


def test_unknown_client_id_is_401_invalid_client(simulator, client) -> None:
    response = client.post(f"{simulator.url}/oauth/v2/token", auth=("nobody", "x"), data=GRANT)
    assert response.status_code == 401
    assert response.json() == {"ErrorCode": "invalid_client", "Error": "ClientId is Invalid"}


def test_wrong_secret_is_401_invalid_credentials(simulator, client) -> None:
    app = everything(simulator)
    response = client.post(f"{simulator.url}/oauth/v2/token", auth=(app.client_id, app.client_secret + "x"), data=GRANT)
    assert response.status_code == 401
    assert response.json() == {"ErrorCode": "invalid_client", "Error": "Client credentials are invalid"}


@pytest.mark.parametrize(
    "authorization", [None, "Bearer abc", "Basic !!!not-base64!!!", "Basic " + base64.b64encode(b"no-colon").decode()]
)
def test_missing_or_bad_basic_header_is_401(simulator, client, authorization) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.post(f"{simulator.url}/oauth/v2/token", headers=headers, data=GRANT)
    assert response.status_code == 401
    assert response.json()["ErrorCode"] == "invalid_client"


@pytest.mark.parametrize("form", [{"grant_type": "password"}, {}])
def test_wrong_grant_type_is_400(simulator, client, form) -> None:
    app = everything(simulator)
    response = client.post(f"{simulator.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=form)
    assert response.status_code == 400
    grant = form.get("grant_type", "")
    assert response.json() == {"ErrorCode": "invalid_request", "Error": f"Unsupported grant type : {grant}"}


def test_token_endpoint_only_accepts_post(simulator, client) -> None:
    assert client.get(f"{simulator.url}/oauth/v2/token").status_code == 405


# --- Probes --------------------------------------------------------------------------------


def test_realtime_probe_lists_queues_with_paging_headers(simulator, client) -> None:
    app = everything(simulator)
    response = probe(client, simulator.url, "cc_realtime_analytics", app, fetch_token(client, simulator.url, app))
    assert response.status_code == 200
    assert response.json() == [{"id": "101", "name": "Sales"}]  # the probe asks for size=1
    assert response.headers["X-Page"] == "0"
    assert response.headers["X-Page-Size"] == "1"
    assert response.headers["X-Total-Pages"] == "4"
    assert response.headers["X-Total-Elements"] == "4"


def test_realtime_paging_limits(simulator, client) -> None:
    app = everything(simulator)
    url = f"{simulator.url}/analytics/cc/v5/realtime-metrics/queues"
    auth = {"Authorization": f"Bearer {fetch_token(client, simulator.url, app)}"}
    second = client.get(url, params={"page": 1, "size": 3}, headers=auth)
    assert second.status_code == 200 and [q["id"] for q in second.json()] == ["104"]
    assert client.get(url, headers=auth).headers["X-Page-Size"] == "100"
    too_big = client.get(url, params={"size": 1001}, headers=auth)
    assert too_big.status_code == 400
    assert too_big.json() == {"message": "Bad request: Field 'size' must be less than or equal to 1000"}
    past_end = client.get(url, params={"page": 4, "size": 1}, headers=auth)
    assert past_end.status_code == 400 and "4" in past_end.json()["message"]


def test_historical_probe_lists_report_types(simulator, client) -> None:
    app = everything(simulator)
    response = probe(client, simulator.url, "cc_historical_analytics", app, fetch_token(client, simulator.url, app))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=UTF-8"
    types = response.json()
    assert isinstance(types, list) and types
    assert all(set(t) == {"type", "groupBy", "metrics"} for t in types)
    assert "script-paths" in {t["type"] for t in types}


@pytest.mark.parametrize("region", STORAGE_REGIONS)
def test_storage_probe_answers_from_any_valid_region(simulator, client, region) -> None:
    app = everything(simulator)
    response = probe(
        client, simulator.url, "cloud_storage", app, fetch_token(client, simulator.url, app), storage_region=region
    )
    assert response.status_code == 200
    assert response.json() == ["us-east", "uk"]


def test_storage_probe_unknown_region_is_404(simulator, client) -> None:
    app = everything(simulator)
    response = probe(
        client, simulator.url, "cloud_storage", app, fetch_token(client, simulator.url, app), storage_region="mars"
    )
    assert response.status_code == 404


def test_qm_probe_counts_users(simulator, client) -> None:
    app = everything(simulator)
    response = probe(client, simulator.url, "quality_management", app, fetch_token(client, simulator.url, app))
    assert response.status_code == 200
    assert isinstance(response.json(), int) and response.json() >= 0


def test_qm_without_pbx_header_is_400(simulator, client) -> None:
    app = everything(simulator)
    response = probe(
        client, simulator.url, "quality_management", app, fetch_token(client, simulator.url, app), pbx=None
    )
    assert response.status_code == 400
    assert "pbx" in response.json()["message"]


def test_qm_unknown_pbx_is_403(simulator, client) -> None:
    app = everything(simulator)
    response = probe(
        client,
        simulator.url,
        "quality_management",
        app,
        fetch_token(client, simulator.url, app),
        pbx="someone-elses-pbx",
    )
    assert response.status_code == 403
    assert "someone-elses-pbx" in response.json()["errors"][0]


def test_chat_probe_lists_webhooks_with_page_object(simulator, client) -> None:
    app = everything(simulator)
    response = probe(client, simulator.url, "cc_chat", app, fetch_token(client, simulator.url, app))
    assert response.status_code == 200
    body = response.json()
    assert len(body["data"]) == 1 and set(body["data"][0]) >= {"id", "name", "uri"}
    assert body["page"] == {"pageSize": 1, "pageIndex": 0, "elementCount": 2, "pageCount": 2}


def test_chat_tenant_of_another_customer_is_403(simulator, client) -> None:
    app = everything(simulator)
    response = probe(
        client, simulator.url, "cc_chat", app, fetch_token(client, simulator.url, app), tenant_id="stranger"
    )
    assert response.status_code == 403
    assert response.json() == {
        "message": "The tenant does not belong to customer.",
        "errors": [f"Tenant stranger does not belong to customer {app.customer_id}."],
    }


@pytest.mark.parametrize(
    "key, setting, wrong",
    [
        ("cc_realtime_analytics", "analytics_region", "eu"),
        ("cc_realtime_analytics", "analytics_region", "ca"),
        ("cc_historical_analytics", "analytics_region", "au"),
        ("quality_management", "qm_region", "uk"),
        ("cc_chat", "chat_region", "ap"),
    ],
)
def test_probe_in_another_region_is_404(simulator, client, key, setting, wrong) -> None:
    app = everything(simulator)
    response = probe(client, simulator.url, key, app, fetch_token(client, simulator.url, app), **{setting: wrong})
    assert response.status_code == 404


def test_analytics_serves_the_apps_own_region_prefix(simulator, client) -> None:
    app = multi_tenant(simulator)  # an EU app: /eu/analytics/...
    token = fetch_token(client, simulator.url, app)
    for key in ("cc_realtime_analytics", "cc_historical_analytics"):
        assert probe(client, simulator.url, key, app, token).status_code == 200
        assert probe(client, simulator.url, key, app, token, analytics_region="us").status_code == 404


@pytest.mark.parametrize("key", ["cc_realtime_analytics", "cc_historical_analytics"])
def test_multi_tenant_analytics_needs_a_valid_x_tenant_info(simulator, client, key) -> None:
    app = multi_tenant(simulator)
    token = fetch_token(client, simulator.url, app)
    missing = probe(client, simulator.url, key, app, token, tenant_id=None)
    assert missing.status_code == 400
    assert missing.json() == {"message": "Bad request: X-Tenant-Info header is missing."}
    wrong = probe(client, simulator.url, key, app, token, tenant_id="tenant-us-1")
    assert wrong.status_code == 400
    assert wrong.json() == {"message": "Bad request: Invalid value for X-Tenant-Info header."}
    assert probe(client, simulator.url, key, app, token, tenant_id="tenant-eu-2").status_code == 200


def test_single_tenant_analytics_does_not_need_x_tenant_info(simulator, client) -> None:
    app = everything(simulator)
    response = probe(
        client, simulator.url, "cc_realtime_analytics", app, fetch_token(client, simulator.url, app), tenant_id=None
    )
    assert response.status_code == 200


@pytest.mark.parametrize("key", [k for k in PRODUCTS if k != "cloud_storage"])
def test_product_not_on_the_app_is_401_no_apiproduct_match(simulator, client, key) -> None:
    app = storage_only(simulator)
    response = probe(
        client,
        simulator.url,
        key,
        app,
        fetch_token(client, simulator.url, app),
        tenant_id="tenant-us-1",
        pbx="pbx-us-1",
    )
    assert response.status_code == 401
    assert fault_string(response) == (
        "Invalid API call as no apiproduct match found",
        "keymanagement.service.InvalidAPICallAsNoApiProductMatchFound",
    )


@pytest.mark.parametrize("token", [None, "made-up-token"])
@pytest.mark.parametrize("key", list(PRODUCTS))
def test_missing_or_unknown_token_is_401_invalid_access_token(simulator, client, key, token) -> None:
    response = probe(client, simulator.url, key, everything(simulator), token)
    assert response.status_code == 401
    assert fault_string(response) == ("Invalid Access Token", "keymanagement.service.invalid_access_token")


def test_expired_token_is_401_access_token_expired(simulator_factory, client) -> None:
    sim = simulator_factory(default_scenario(token_lifetime_s=1))
    app = everything(sim)
    token_body = client.post(f"{sim.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=GRANT).json()
    assert token_body["expires_in"] == "1"
    token = token_body["access_token"]
    assert probe(client, sim.url, "cloud_storage", app, token).status_code == 200
    moved_on = sim.state.clock() + 1  # the token's one second has passed, to the tick
    sim.state.clock = lambda: moved_on
    response = probe(client, sim.url, "cloud_storage", app, token)
    assert response.status_code == 401
    faultstring, errorcode = fault_string(response)
    assert "Access Token expired" in faultstring
    assert errorcode == "keymanagement.service.access_token_expired"


def test_unknown_path_is_404(simulator, client) -> None:
    assert client.get(f"{simulator.url}/analytics/v1/realtime").status_code == 404
    assert client.get(f"{simulator.url}/storage/us-west/v1/regions").status_code == 404


# --- Faults --------------------------------------------------------------------------------


def add_fault(client: httpx.Client, sim: SimulatorServer, **fault: object) -> httpx.Response:
    return client.post(f"{sim.url}/_sim/faults", json=fault)


def test_fault_5xx_has_problem_body(simulator, client) -> None:
    app = everything(simulator)
    token = fetch_token(client, simulator.url, app)
    assert add_fault(client, simulator, route="cloud_storage", status=503).status_code == 201
    response = probe(client, simulator.url, "cloud_storage", app, token)
    assert response.status_code == 503
    body = response.json()
    assert set(body) == {"message", "errors", "referenceId"} and body["errors"] == []
    assert "retry-after" not in response.headers


def test_fault_times_fails_only_the_first_calls_with_retry_after(simulator, client) -> None:
    app = everything(simulator)
    token = fetch_token(client, simulator.url, app)
    add_fault(client, simulator, route="cc_chat", status=429, retry_after="3", times=2)
    answers = [probe(client, simulator.url, "cc_chat", app, token) for _ in range(3)]
    assert [r.status_code for r in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "3"
    assert "fault" in answers[0].json()
    assert client.get(f"{simulator.url}/_sim/faults").json() == {"faults": []}


def test_fault_retry_after_may_be_an_http_date(simulator, client) -> None:
    app = everything(simulator)
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    add_fault(client, simulator, route="token", status=503, retry_after=when)
    response = client.post(f"{simulator.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=GRANT)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == when


def test_fault_for_one_client_leaves_others_alone(simulator, client) -> None:
    target, other = everything(simulator), multi_tenant(simulator)
    add_fault(client, simulator, route="token", client_id=target.client_id, status=500)
    hit = client.post(f"{simulator.url}/oauth/v2/token", auth=(target.client_id, target.client_secret), data=GRANT)
    assert hit.status_code == 500
    assert fetch_token(client, simulator.url, other)


@pytest.mark.parametrize("kind, content_type", [("html", "text/html"), ("json", "application/json")])
def test_malformed_fault_answers_2xx_with_the_wrong_body(simulator, client, kind, content_type) -> None:
    app = everything(simulator)
    token = fetch_token(client, simulator.url, app)
    add_fault(client, simulator, route="quality_management", malformed=kind)
    response = probe(client, simulator.url, "quality_management", app, token)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)
    if kind == "json":
        assert response.json() == {"unexpected": True}
    else:
        assert response.text.lstrip().startswith("<html")


def test_delay_fault_makes_a_client_time_out(simulator, client) -> None:
    app = everything(simulator)
    token = fetch_token(client, simulator.url, app)
    add_fault(client, simulator, route="cc_realtime_analytics", delay_ms=1500, times=1)
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout), httpx.Client(timeout=0.2) as impatient:
        probe(impatient, simulator.url, "cc_realtime_analytics", app, token)
    assert time.monotonic() - started < 1.0
    # times=1 is spent: the next call answers at once.
    assert probe(client, simulator.url, "cc_realtime_analytics", app, token).status_code == 200


def test_scenario_faults_apply_from_the_start(simulator_factory, client) -> None:
    sim = simulator_factory(default_scenario(faults=[Fault(route="token", status=502, times=1)]))
    app = everything(sim)
    first = client.post(f"{sim.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=GRANT)
    assert first.status_code == 502
    assert fetch_token(client, sim.url, app)


def test_delete_faults_clears_them(simulator, client) -> None:
    app = everything(simulator)
    add_fault(client, simulator, route="token", status=500)
    assert client.delete(f"{simulator.url}/_sim/faults").json() == {"faults": []}
    assert fetch_token(client, simulator.url, app)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"route": "nope", "status": 500}, "route"),
        ({"route": "token", "status": 700}, "status"),
        ({"route": "token", "status": 500, "times": 0}, "times"),
        ({"route": "token", "status": 500, "retry_after": "soon"}, "retry_after"),
        ({"route": "token", "status": 500, "colour": "red"}, "colour"),
        ({"route": "token"}, "status"),
    ],
)
def test_bad_fault_is_refused_naming_the_field(simulator, client, body, field) -> None:
    response = add_fault(client, simulator, **body)
    assert response.status_code == 400
    assert field in response.json()["error"]
    assert client.get(f"{simulator.url}/_sim/faults").json() == {"faults": []}


def test_fault_times_property(simulator, client) -> None:
    """For any N and number of calls, exactly min(N, calls) calls fail, and they come first."""
    app = everything(simulator)
    token = fetch_token(client, simulator.url, app)

    @settings(max_examples=15, deadline=None)
    @given(times=st.integers(1, 4), calls=st.integers(0, 6))
    def check(times: int, calls: int) -> None:
        client.delete(f"{simulator.url}/_sim/faults")
        add_fault(client, simulator, route="cloud_storage", status=500, times=times)
        statuses = [probe(client, simulator.url, "cloud_storage", app, token).status_code for _ in range(calls)]
        failed = min(times, calls)
        assert statuses == [500] * failed + [200] * (calls - failed)

    check()


# --- Stats and knobs -----------------------------------------------------------------------


def test_stats_count_requests_per_route_and_tokens_per_client(simulator, client) -> None:
    app, other = everything(simulator), storage_only(simulator)
    token = fetch_token(client, simulator.url, app)
    fetch_token(client, simulator.url, app)
    fetch_token(client, simulator.url, other)
    for key in PRODUCTS:
        probe(client, simulator.url, key, app, token)
    probe(client, simulator.url, "cc_chat", app, token)
    stats = client.get(f"{simulator.url}/_sim/stats").json()
    assert stats["requests"] == {
        "token": 3,
        "cc_realtime_analytics": 1,
        "cc_historical_analytics": 1,
        "cloud_storage": 1,
        "quality_management": 1,
        "cc_chat": 2,
        "unmatched": 0,
    }
    assert stats["token_requests"] == {app.client_id: 2, other.client_id: 1}
    assert stats["in_flight"] == 0

    reset = client.post(f"{simulator.url}/_sim/reset").json()
    assert set(reset["requests"].values()) == {0}
    assert reset["token_requests"] == {} and reset["max_in_flight"] == 0


def test_stats_record_max_in_flight_overall_and_per_client(simulator, client) -> None:
    app, other = everything(simulator), storage_only(simulator)
    tokens = {a.client_id: fetch_token(client, simulator.url, a) for a in (app, other)}
    client.put(f"{simulator.url}/_sim/knobs", json={"latency_ms": 400})
    client.post(f"{simulator.url}/_sim/reset")

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as aclient:
            calls = [
                aclient.get(
                    f"{simulator.url}/storage/uk/v3/regions", headers={"Authorization": f"Bearer {tokens[a.client_id]}"}
                )
                for a in [app] * 6 + [other] * 3
            ]
            return [r.status_code for r in await asyncio.gather(*calls)]

    assert run_in_new_loop(burst()) == [200] * 9
    stats = client.get(f"{simulator.url}/_sim/stats").json()
    assert stats["max_in_flight"] == 9
    assert stats["max_in_flight_by_client"] == {app.client_id: 6, other.client_id: 3}


def test_knobs_change_latency_and_token_lifetime_at_runtime(simulator, client) -> None:
    app = everything(simulator)
    knobs = client.put(f"{simulator.url}/_sim/knobs", json={"latency_ms": 300, "token_lifetime_s": 42})
    assert knobs.json() == {"latency_ms": 300, "token_lifetime_s": 42}
    started = time.monotonic()
    body = client.post(f"{simulator.url}/oauth/v2/token", auth=(app.client_id, app.client_secret), data=GRANT).json()
    assert time.monotonic() - started >= 0.3
    assert body["expires_in"] == "42"
    client.put(f"{simulator.url}/_sim/knobs", json={"latency_ms": 0})
    assert client.get(f"{simulator.url}/_sim/knobs").json() == {"latency_ms": 0, "token_lifetime_s": 42}


@pytest.mark.parametrize("body", [{"latency_ms": -1}, {"latency_ms": "50"}, {"speed": 1}, [1]])
def test_bad_knobs_are_refused(simulator, client, body) -> None:
    response = client.put(f"{simulator.url}/_sim/knobs", json=body)
    assert response.status_code == 400 and response.json()["error"]
    assert client.get(f"{simulator.url}/_sim/knobs").json()["latency_ms"] == 0


def test_control_api_refuses_a_body_that_is_not_json(simulator, client) -> None:
    response = client.post(f"{simulator.url}/_sim/faults", content=b"{oops")
    assert response.status_code == 400 and "not JSON" in response.json()["error"]


async def _raw_get(host: str, port: int, path: str, token: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection and send one request; the caller reads the answer later."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
    )
    await writer.drain()
    return reader, writer


def test_many_concurrent_connections_with_latency(simulator_factory, client) -> None:
    """The benchmark's load: 1000 requests on their own connections at once, 50 ms latency.

    Plain asyncio sockets keep the client cheap, so this measures the server: requests must
    overlap by the hundreds, and the burst must take far less than 1000 x 50 ms.
    """
    sim = simulator_factory(default_scenario(latency_ms=50))
    token = fetch_token(client, sim.url, everything(sim))

    async def burst() -> tuple[list[bytes], float]:
        started = time.monotonic()
        streams = await asyncio.gather(
            *(_raw_get("127.0.0.1", sim.port, "/storage/uk/v3/regions", token) for _ in range(1000))
        )
        answers = await asyncio.gather(*(reader.read() for reader, _ in streams))
        for _, writer in streams:
            writer.close()
            await writer.wait_closed()
        return [a.split(b"\r\n", 1)[0] for a in answers], time.monotonic() - started

    status_lines, elapsed = run_in_new_loop(burst())
    assert status_lines == [b"HTTP/1.1 200 OK"] * 1000
    assert elapsed < 5
    stats = sim.state.stats()
    assert stats["requests"]["cloud_storage"] == 1000
    assert stats["max_in_flight"] >= 200


# --- The server ----------------------------------------------------------------------------


def test_servers_start_and_stop_cleanly_many_times() -> None:
    threads_before = threading.active_count()
    for _ in range(5):
        with SimulatorServer(default_scenario()) as sim:
            port = sim.port
            assert httpx.get(f"{sim.url}/_sim/stats").status_code == 200
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    assert threading.active_count() == threads_before


def test_stop_does_not_wait_for_a_long_delay(simulator_factory) -> None:
    sim = simulator_factory(default_scenario(faults=[Fault(route="token", delay_ms=60_000)]))
    app = everything(sim)
    answers: list[int] = []

    def call() -> None:
        answers.append(
            httpx.post(
                f"{sim.url}/oauth/v2/token", data=GRANT, timeout=30, auth=(app.client_id, app.client_secret)
            ).status_code
        )

    caller = threading.Thread(target=call)
    caller.start()
    eventually(lambda: sim.state.stats()["in_flight"], what="the token request to reach the simulator")
    started = time.monotonic()
    sim.stop()
    assert time.monotonic() - started < 1.5  # the delay is cut short, not cancelled
    caller.join(5)
    assert answers == [200]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])
def test_non_loopback_hosts_are_refused(host) -> None:
    with pytest.raises(ConfigError, match="loopback"):
        SimulatorServer(default_scenario(), host=host)
    with pytest.raises(ConfigError, match="loopback"):
        serve(host=host, port=0)


def test_ipv6_loopback_works(simulator_factory) -> None:
    try:
        sim = SimulatorServer(default_scenario(), host="::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert sim.url.startswith("http://[::1]:")
        assert httpx.get(f"{sim.url}/_sim/stats").status_code == 200
    finally:
        sim.stop()


# --- Scenarios -----------------------------------------------------------------------------


def test_sample_scenario_loads() -> None:
    scenario = load_scenario(SAMPLE_SCENARIO)
    assert 3 <= len(scenario.apps) <= 4
    assert scenario.faults


def test_scenario_from_dict_fills_defaults() -> None:
    scenario = Scenario.from_dict({"apps": [{"client_id": "a", "client_secret": "s"}]})
    app = scenario.apps[0]
    assert scenario.token_lifetime_s == 1799 and scenario.latency_ms == 0
    assert app.products == () and app.analytics_region == "us"
    assert uuid.UUID(app.application_name)


def _app(**fields: object) -> dict[str, object]:
    return {"client_id": "a", "client_secret": "s", **fields}


@pytest.mark.parametrize(
    "data, field",
    [
        ([], "scenario"),
        ({"apps": {}}, "apps"),
        ({"apps": [_app(products=["cc_realtime_analytics", "chat"])]}, "apps[0].products[1]"),
        ({"apps": [_app(), _app(client_id="b", analytics_region="emea")]}, "apps[1].analytics_region"),
        ({"apps": [_app(storage_regions=["us-west", "eu"])]}, "apps[0].storage_regions[1]"),
        ({"apps": [_app(storage_regions="uk")]}, "apps[0].storage_regions"),
        ({"apps": [_app(qm_region="us")]}, "apps[0].qm_region"),
        ({"apps": [_app(chat_region="uk")]}, "apps[0].chat_region"),
        ({"apps": [_app(tenants=["t1", "t1"])]}, "apps[0].tenants[1]"),
        ({"apps": [_app(pbx_names=[""])]}, "apps[0].pbx_names[0]"),
        ({"apps": [{"client_id": "a"}]}, "apps[0].client_secret"),
        ({"apps": [_app(client_id="a:b")]}, "apps[0].client_id"),
        ({"apps": [_app(), _app()]}, "apps[1].client_id"),
        ({"apps": [_app(region="eu")]}, "region"),
        ({"_by_client_id": {}}, "_by_client_id"),  # the index is made, never given
        ({"latency_ms": -5}, "latency_ms"),
        ({"token_lifetime_s": "1799"}, "token_lifetime_s"),
        ({"faults": [{"route": "token", "status": 500}, {"route": "cc_chat", "delay_ms": -1}]}, "faults[1].delay_ms"),
        ({"faults": [{"route": "token", "malformed": "xml"}]}, "faults[0].malformed"),
        ({"faults": [{"route": "token", "status": 503, "malformed": "html"}]}, "faults[0].status"),
    ],
)
def test_scenario_errors_name_the_field(data, field) -> None:
    with pytest.raises(ScenarioError) as caught:
        Scenario.from_dict(data)
    assert caught.value.field == field or field in str(caught.value)
    assert str(caught.value).startswith(caught.value.field)


def test_scenario_finds_apps_by_client_id_and_refuses_one_listed_twice() -> None:
    apps = [App(client_id=f"app-{i}", client_secret="s") for i in range(3)]
    scenario = Scenario(apps=apps)
    assert [scenario.app(a.client_id) for a in apps] == apps
    assert scenario.app("app-3") is None
    with pytest.raises(ScenarioError, match=r"apps\[3\]\.client_id: 'app-1' is used twice"):
        Scenario(apps=[*apps, apps[1]])


def test_app_dataclass_validates_on_construction() -> None:
    with pytest.raises(ScenarioError, match="products\\[0\\]"):
        App(client_id="a", client_secret="s", products=["storage"])


def test_load_scenario_reports_the_file_and_position(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"apps": [\n  {"client_id": "a",}\n]}')
    with pytest.raises(ScenarioError, match=r"broken\.json: not valid JSON \(line 2"):
        load_scenario(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"apps": [_app(products=["nope"])]}))
    with pytest.raises(ScenarioError, match=r"wrong\.json: apps\[0\]\.products\[0\]: 'nope'"):
        load_scenario(wrong)
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.json")

"""The simulator's answers checked against 8x8's own OpenAPI files (openapi-core).

Each test sends a real request to a running simulator and validates the response (and, for
successes, the request the catalogue's probe made) against the matching operation of 8x8's
spec. Where a spec is silent or contradicts ``reference/8x8-api.md`` the reference wins, the
spec is patched in memory at one JSON pointer, and the comment there says why.

The specs are read from ``SWITCHBOARD_8X8_OPENAPI_DIR`` (default: the shared reference
folder). Missing specs skip these tests locally and fail them under ``CI=true``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from lib.catalogue.products import ANALYTICS_REGIONS, STORAGE_REGIONS
from lib.simulator import App, Fault, Scenario, SimulatorServer

# Imported, not only registered in conftest, so this module works on its own.
from tests.fixtures.simulator import (
    ALL_PRODUCTS,
    default_scenario,
    fetch_token,
    probe,
)

# 8x8's realtime spec still uses allowEmptyValue, which openapi-core flags as deprecated.
pytestmark = pytest.mark.filterwarnings("ignore:Use of allowEmptyValue:DeprecationWarning")

# shared/ sits beside the checkout, here and in CI.
SPEC_DIR = Path(
    os.environ.get(
        "SWITCHBOARD_8X8_OPENAPI_DIR", Path(__file__).resolve().parents[2] / "shared" / "reference" / "8x8-openapi"
    )
)
REALTIME = "8x8_analytics_for_contact_center_real-time_metrics_api.json"
HISTORICAL = "8x8_analytics_for_contact_center_historical_metrics_api.json"
QM = "quality_management_and_speech_analytics_api.json"
CHAT = "8x8_contact_center_chat_api_v2.json"
# Every spec's servers are absolute https://api.8x8.com/... URLs, and the simulator serves
# 8x8's paths unchanged, so a request is shown to openapi-core on 8x8's origin.
SPEC_ORIGIN = "https://api.8x8.com"

# GET /storage/{region}/v3/regions is not in the CSS spec (v3.1.6); 8x8-api.md §4 documents
# it from the guides: a JSON array of region names, e.g. ["us-east","uk"].
REGIONS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"type": "string", "enum": list(STORAGE_REGIONS)},
    "uniqueItems": True,
}


def _load(name: str, *patches: tuple[str, Any]) -> OpenAPI:
    """Load a spec, replacing the value at each ``(json_pointer, value)`` first."""
    path = SPEC_DIR / name
    if not path.is_file():
        message = f"8x8's OpenAPI file {path} is missing (set SWITCHBOARD_8X8_OPENAPI_DIR)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    spec = json.loads(path.read_text(encoding="utf-8"))
    for pointer, value in patches:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
        node = spec
        for part in parents:
            node = node[part]
        assert last in node, f"{name}: nothing to patch at {pointer}"
        node[last] = copy.deepcopy(value)
    # openapi-core only parses the media types it knows as JSON; the Chat spec declares its
    # error bodies as application/problem+json.
    problem_json = {"application/problem+json": lambda value, **_: json.loads(value)}
    return OpenAPI.from_dict(spec, config=Config(extra_media_type_deserializers=problem_json))


class _SpecRequest:
    """An httpx request in openapi-core's Request protocol, moved to 8x8's origin."""

    def __init__(self, request: httpx.Request) -> None:
        self.host_url = SPEC_ORIGIN
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class _SpecResponse:
    """An httpx response in openapi-core's Response protocol."""

    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        # Passed as sent, not lowercased: the historical spec's media type key is the literal
        # "application/json;charset=UTF-8", which openapi-core matches exactly.
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(list(response.headers.items()))
        self.data = response.content


def assert_conforms(spec: OpenAPI, response: httpx.Response, *, status: int, check_request: bool = True) -> None:
    assert response.status_code == status, response.text
    request = _SpecRequest(response.request)
    if check_request:
        spec.validate_request(request)
    spec.validate_response(request, _SpecResponse(response))


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as c:
        yield c


@pytest.fixture
def regional(simulator_factory) -> SimulatorServer:
    """One app per analytics region, so every server entry of the analytics specs is used."""
    return simulator_factory(
        Scenario(
            apps=[
                App(
                    client_id=f"app-{region}",
                    client_secret=f"secret-{region}",
                    products=ALL_PRODUCTS,
                    tenants=[f"tenant-{region}"],
                    analytics_region=region,
                )
                for region in ANALYTICS_REGIONS
            ]
        )
    )


# --- Analytics -----------------------------------------------------------------------------


@pytest.mark.parametrize("region", ANALYTICS_REGIONS)
def test_realtime_queues_match_the_spec(regional, client, region) -> None:
    # The spec declares the 200 body of GET /queues as one SingleQueueResponse object, but
    # 8x8's guide (8x8-api.md §2) and its examples return an array of them: wrap it.
    spec = _load(
        REALTIME,
        (
            "/paths/~1queues/get/responses/200/content/application~1json/schema",
            {"type": "array", "items": {"$ref": "#/components/schemas/SingleQueueResponse"}},
        ),
    )
    app = regional.scenario.app(f"app-{region}")
    assert app is not None
    response = probe(client, regional.url, "cc_realtime_analytics", app, fetch_token(client, regional.url, app))
    assert_conforms(spec, response, status=200)


@pytest.mark.parametrize("region", ANALYTICS_REGIONS)
def test_historical_report_types_match_the_spec(regional, client, region) -> None:
    spec = _load(HISTORICAL)
    app = regional.scenario.app(f"app-{region}")
    assert app is not None
    response = probe(client, regional.url, "cc_historical_analytics", app, fetch_token(client, regional.url, app))
    assert_conforms(spec, response, status=200)


# --- Cloud Storage and Quality Management --------------------------------------------------


@pytest.mark.parametrize("region", STORAGE_REGIONS)
def test_storage_regions_match_the_reference(simulator, client, region) -> None:
    app = simulator.scenario.apps[0]
    response = probe(
        client, simulator.url, "cloud_storage", app, fetch_token(client, simulator.url, app), storage_region=region
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    jsonschema.validate(response.json(), REGIONS_SCHEMA)


def test_qm_user_count_matches_the_spec(simulator, client) -> None:
    # The spec's schema says the count is a string ("10") while its example is the number 10
    # (8x8-api.md §5 marks this uncertain). The simulator answers a bare number, as the
    # example does, so the schema is narrowed to a non-negative integer.
    spec = _load(
        QM,
        (
            "/paths/~1users~1count/get/responses/200/content/application~1json/schema",
            {"type": "integer", "minimum": 0},
        ),
    )
    app = simulator.scenario.apps[0]
    response = probe(client, simulator.url, "quality_management", app, fetch_token(client, simulator.url, app))
    assert_conforms(spec, response, status=200)


# --- Chat ----------------------------------------------------------------------------------


def _chat_spec() -> OpenAPI:
    # The spec types the token's api_product_list as an array (example ["vcc"]); 8x8's OAuth
    # guide (8x8-api.md §1) shows a string that looks like a list, "[storage, vcc]". The
    # array form is api_product_list_json.
    return _load(
        CHAT,
        ("/components/schemas/AuthResponse/properties/api_product_list", {"type": "string", "pattern": r"^\[.*\]$"}),
    )


def test_chat_webhooks_match_the_spec(simulator, client) -> None:
    app = simulator.scenario.apps[0]
    response = probe(client, simulator.url, "cc_chat", app, fetch_token(client, simulator.url, app))
    assert_conforms(_chat_spec(), response, status=200)


def test_chat_wrong_tenant_403_matches_the_spec(simulator, client) -> None:
    app = simulator.scenario.apps[0]
    response = probe(
        client, simulator.url, "cc_chat", app, fetch_token(client, simulator.url, app), tenant_id="not-ours"
    )
    assert_conforms(_chat_spec(), response, status=403)


@pytest.mark.parametrize("token", [None, "made-up-token"])
def test_chat_401_matches_the_spec(simulator, client, token) -> None:
    response = probe(client, simulator.url, "cc_chat", simulator.scenario.apps[0], token)
    # A request without a token breaks the spec's security requirement on purpose.
    assert_conforms(_chat_spec(), response, status=401, check_request=False)


def test_chat_product_not_enabled_401_matches_the_spec(simulator, client) -> None:
    app = simulator.scenario.apps[2]  # storage only
    response = probe(
        client, simulator.url, "cc_chat", app, fetch_token(client, simulator.url, app), tenant_id="tenant-us-1"
    )
    assert_conforms(_chat_spec(), response, status=401)


def test_chat_5xx_fault_matches_the_spec(simulator_factory, client) -> None:
    sim = simulator_factory(default_scenario(faults=[Fault(route="cc_chat", status=500)]))
    app = sim.scenario.apps[0]
    response = probe(client, sim.url, "cc_chat", app, fetch_token(client, sim.url, app))
    assert_conforms(_chat_spec(), response, status=500)


# --- Token (declared only in the Chat spec) ------------------------------------------------


def _token(
    client: httpx.Client, url: str, auth: tuple[str, str], grant_type: str = "client_credentials"
) -> httpx.Response:
    return client.post(f"{url}/oauth/v2/token", auth=auth, data={"grant_type": grant_type})


def test_token_success_matches_the_spec(simulator, client) -> None:
    app = simulator.scenario.apps[0]
    response = _token(client, simulator.url, (app.client_id, app.client_secret))
    assert_conforms(_chat_spec(), response, status=200)
    # Beyond the spec: the array form of the product list that 8x8's guide documents.
    assert response.json()["api_product_list_json"] == ["analytics realtime-api", "storage", "QM - API", "vcc"]


@pytest.mark.parametrize("credentials", [("nobody", "x"), None])
def test_token_401_matches_the_spec(simulator, client, credentials) -> None:
    app = simulator.scenario.apps[0]
    auth = credentials or (app.client_id, app.client_secret + "-wrong")
    assert_conforms(_chat_spec(), _token(client, simulator.url, auth), status=401)


def test_token_bad_grant_400_matches_the_spec(simulator, client) -> None:
    app = simulator.scenario.apps[0]
    response = _token(client, simulator.url, (app.client_id, app.client_secret), "password")
    # The request breaks the spec's grant_type enum on purpose.
    assert_conforms(_chat_spec(), response, status=400, check_request=False)

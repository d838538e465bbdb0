"""The 8x8 client against the simulator over real sockets: outcomes, retries, tokens, TLS; over
each transport (SWITCHBOARD_8X8_TRANSPORT) for the tests that go through the network."""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from lib.catalogue.outcomes import OUTCOMES, Actor
from lib.catalogue.products import PRODUCT_KEYS
from lib.eightbyeight.models import Credentials, ProbeResult, Target
from lib.eightbyeight.prober import Prober, ProberClosed
from lib.eightbyeight.retry import CEILING, RetryPolicy, parse_retry_after
from lib.kernel.redaction import install
from lib.services.runtime import Runtime
from lib.simulator import Scenario, SimulatorServer
from tests.fixtures.prober import (
    ProberFactory,
    RecordingSleep,
    control,
    credentials_of,
    over_each_transport,
    target_for,
)
from tests.fixtures.simulator import SimulatorFactory, default_scenario
from tests.fixtures.waiting import eventually

pytest_generate_tests = over_each_transport


def run(prober: Prober, target: Target) -> dict[str, ProbeResult]:
    results: dict[str, ProbeResult] = {}
    prober.check([target], lambda _t, r: results.__setitem__(r.product, r))
    return results


def requests(server: SimulatorServer, route: str) -> int:
    return control(server, "GET", "stats")["requests"][route]


def fault(server: SimulatorServer, **spec: object) -> None:
    control(server, "POST", "faults", spec)


@pytest.fixture
def apps(simulator: SimulatorServer):  # type: ignore[no-untyped-def]
    everything, multi_tenant, storage_only = simulator.scenario.apps
    return everything, multi_tenant, storage_only


# --- every outcome from a situation a real admin could meet --------------------------------


def test_ok_for_all_five_products(simulator: SimulatorServer, apps, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    results = run(prober_factory(simulator.url), target_for(apps[0]))
    assert {k: r.outcome for k, r in results.items()} == {"token": "ok", **dict.fromkeys(PRODUCT_KEYS, "ok")}
    assert results["token"].granted == frozenset(PRODUCT_KEYS)
    assert results["cloud_storage"].detail == "Regions holding data: us-east, uk."
    assert all(r.http_status == 200 and r.duration_ms >= 0 for r in results.values())


def test_wrong_secret_is_bad_credentials_for_every_product(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    target = target_for(apps[0])
    target = Target(Credentials(None, apps[0].client_id, SecretStr("not-the-secret")), target.settings)
    results = run(prober_factory(simulator.url), target)
    assert {r.outcome for r in results.values()} == {"bad_credentials"}
    assert results["token"].http_status == 401
    assert "8x8 refused the Client ID and Client Secret" in results["cc_chat"].detail
    assert OUTCOMES["bad_credentials"].actor is Actor.ADMIN
    assert requests(simulator, "cc_chat") == 0  # no product is called without a token


def test_unknown_client_id_is_bad_credentials(simulator: SimulatorServer, prober_factory: ProberFactory) -> None:
    result = prober_factory(simulator.url).ask_token(Credentials(None, "made-up-client-id", SecretStr("x" * 20)))
    assert result.outcome == "bad_credentials" and result.granted is None
    assert "made-up-client-id" not in result.detail


def test_product_not_on_the_app_is_product_not_enabled(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    storage_only = apps[2]
    results = run(
        prober_factory(simulator.url),
        target_for(storage_only, ("cloud_storage", "cc_realtime_analytics"), analytics_region="us"),
    )
    assert results["cloud_storage"].outcome == "ok"
    realtime = results["cc_realtime_analytics"]
    assert realtime.outcome == "product_not_enabled" and realtime.http_status == 401
    assert "the app's token lists: storage" in realtime.detail
    assert "no apiproduct match" in realtime.detail
    assert requests(simulator, "token") == 1  # a fresh token's 401 is judged without a refresh


def test_chat_tenant_of_another_customer_is_forbidden(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cc_chat",), tenant_id="someone-else"))["cc_chat"]
    assert result.outcome == "forbidden" and result.http_status == 403
    assert "does not belong to customer" in result.detail


def test_missing_settings_are_not_called(simulator: SimulatorServer, apps, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    results = run(
        prober_factory(simulator.url), target_for(apps[0], ("quality_management", "cc_chat"), pbx=None, tenant_id=None)
    )
    assert results["quality_management"].outcome == "missing_config"
    assert "set the PBX name" in results["quality_management"].detail
    assert "Contact Center tenant ID" in results["cc_chat"].detail
    assert requests(simulator, "quality_management") == requests(simulator, "cc_chat") == 0


def test_a_stored_value_no_url_may_carry_is_never_sent(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    """A tenant ID of '..' (saved before validation refused it) would make the chat probe
    GET /vcc/us/chat/v2/web-hooks: another endpoint than the one meant."""
    results = run(
        prober_factory(simulator.url), target_for(apps[0], ("cc_chat", "quality_management"), tenant_id="..", pbx=".")
    )
    assert results["cc_chat"].outcome == results["quality_management"].outcome == "missing_config"
    assert requests(simulator, "cc_chat") == requests(simulator, "quality_management") == 0


def test_multi_tenant_analytics_without_tenant_is_missing_config(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    result = run(prober_factory(simulator.url), target_for(apps[1], ("cc_realtime_analytics",), tenant_id=None))[
        "cc_realtime_analytics"
    ]
    assert result.outcome == "missing_config" and result.http_status == 400
    assert "several tenants" in result.detail and "X-Tenant-Info header is missing" in result.detail


def test_wrong_analytics_region_is_not_found(simulator: SimulatorServer, apps, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    result = run(
        prober_factory(simulator.url), target_for(apps[1], ("cc_historical_analytics",), analytics_region="au")
    )["cc_historical_analytics"]
    assert result.outcome == "not_found" and result.http_status == 404
    assert "/au/analytics/cc/v8/historical-metrics/report-types" in result.detail
    assert "Analytics region 'au'" in result.detail


def test_server_errors_after_retries_are_vendor_error(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
    sleeps: RecordingSleep,
) -> None:
    fault(simulator, route="cloud_storage", status=503)
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cloud_storage",)))["cloud_storage"]
    assert result.outcome == "vendor_error" and result.http_status == 503
    assert requests(simulator, "cloud_storage") == 3  # 1 + 2 retries
    assert len(sleeps.calls) == 2 and OUTCOMES["vendor_error"].actor is Actor.VENDOR


def test_persistent_429_is_rate_limited(simulator: SimulatorServer, apps, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    fault(simulator, route="cc_chat", status=429)
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cc_chat",)))["cc_chat"]
    assert result.outcome == "rate_limited" and requests(simulator, "cc_chat") == 3


def test_slow_answer_is_timeout(simulator: SimulatorServer, apps, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    fault(simulator, route="quality_management", delay_ms=3000)
    prober = prober_factory(simulator.url, timeout=httpx.Timeout(5.0, read=0.3))
    result = run(prober, target_for(apps[0], ("quality_management",)))["quality_management"]
    assert result.outcome == "timeout" and "did not answer in time" in result.detail
    assert requests(simulator, "quality_management") == 1  # a read timeout is not retried


def test_total_deadline_per_check(simulator: SimulatorServer, apps, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    fault(simulator, route="cc_chat", delay_ms=3000)
    prober = prober_factory(simulator.url, deadline_s=0.3)
    result = run(prober, target_for(apps[0], ("cc_chat",)))["cc_chat"]
    assert result.outcome == "timeout" and "longer than 0.3 s" in result.detail


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_nothing_listening_is_network_error(prober_factory: ProberFactory, sleeps: RecordingSleep) -> None:
    prober = prober_factory(f"http://127.0.0.1:{_closed_port()}")
    result = prober.ask_token(Credentials(None, "some-client-id", SecretStr("some-secret")))
    assert result.outcome == "network_error" and "3 attempts" in result.detail
    assert len(sleeps.calls) == 2  # connect errors are retried with back-off
    assert OUTCOMES["network_error"].actor is Actor.NETWORK


def test_body_that_is_not_the_products_is_unexpected_response(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    fault(simulator, route="cc_realtime_analytics", malformed="html")
    fault(simulator, route="quality_management", malformed="json")
    results = run(prober_factory(simulator.url), target_for(apps[0], ("cc_realtime_analytics", "quality_management")))
    assert results["cc_realtime_analytics"].outcome == "unexpected_response"
    assert "not a JSON array" in results["cc_realtime_analytics"].detail
    assert results["quality_management"].outcome == "unexpected_response"
    assert requests(simulator, "cc_realtime_analytics") == 1  # malformed 2xx is not retried


# --- retries ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_client_errors_are_never_retried(
    simulator: SimulatorServer,
    apps,
    prober_factory: ProberFactory,  # type: ignore[no-untyped-def]
    sleeps: RecordingSleep,
    status: int,
) -> None:
    fault(simulator, route="cloud_storage", status=status)
    run(prober_factory(simulator.url), target_for(apps[0], ("cloud_storage",)))
    # A fresh token's 401 is conclusive, so even 401 is sent once.
    assert requests(simulator, "cloud_storage") == 1 and sleeps.calls == []


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retryable_statuses_recover(
    simulator: SimulatorServer,
    apps,
    prober_factory: ProberFactory,  # type: ignore[no-untyped-def]
    status: int,
) -> None:
    fault(simulator, route="cloud_storage", status=status, times=2)
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cloud_storage",)))["cloud_storage"]
    assert result.outcome == "ok" and requests(simulator, "cloud_storage") == 3


def test_retry_after_seconds_is_honoured(
    simulator: SimulatorServer,
    apps,
    prober_factory: ProberFactory,  # type: ignore[no-untyped-def]
    sleeps: RecordingSleep,
) -> None:
    fault(simulator, route="cc_chat", status=429, retry_after="7", times=1)
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cc_chat",)))["cc_chat"]
    assert result.outcome == "ok" and sleeps.calls == [7.0]


def test_retry_after_http_date_is_honoured(
    simulator: SimulatorServer,
    apps,
    prober_factory: ProberFactory,  # type: ignore[no-untyped-def]
    sleeps: RecordingSleep,
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=12), usegmt=True)
    fault(simulator, route="cc_chat", status=503, retry_after=when, times=1)
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cc_chat",)))["cc_chat"]
    assert result.outcome == "ok" and len(sleeps.calls) == 1 and 9 <= sleeps.calls[0] <= 12


def test_retry_after_above_the_cap_is_reported_at_once(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
    sleeps: RecordingSleep,
) -> None:
    fault(simulator, route="cc_chat", status=429, retry_after="3600")
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cc_chat",)))["cc_chat"]
    assert result.outcome == "rate_limited" and "asked to wait 3600 s" in result.detail
    assert requests(simulator, "cc_chat") == 1 and sleeps.calls == []


def test_rate_limited_results_carry_the_wait_8x8_asked_for(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    """The schedule pushes the next check back by it (lib.services.checking.schedule.next_due)."""
    fault(simulator, route="cc_chat", status=429, retry_after="3600")
    fault(simulator, route="cloud_storage", status=429)
    results = run(
        prober_factory(simulator.url), target_for(apps[0], ("cc_chat", "cloud_storage", "cc_realtime_analytics"))
    )
    assert results["cc_chat"].retry_after_s == 3600.0
    assert results["cloud_storage"].outcome == "rate_limited" and results["cloud_storage"].retry_after_s is None
    assert results["cc_realtime_analytics"].ok and results["cc_realtime_analytics"].retry_after_s is None


def test_a_rate_limited_token_passes_its_wait_to_every_product(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    fault(simulator, route="token", status=429, retry_after="600")
    results = run(prober_factory(simulator.url), target_for(apps[0], ("cc_chat", "cloud_storage")))
    assert {key: (r.outcome, r.retry_after_s) for key, r in results.items()} == {
        "token": ("rate_limited", 600.0),
        "cc_chat": ("rate_limited", 600.0),
        "cloud_storage": ("rate_limited", 600.0),
    }


def test_backoff_is_capped_exponential_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=0.25)
    for attempt, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (5, 8.0), (9, 8.0)]:
        delays = [policy.backoff(attempt) for _ in range(300)]
        assert all(nominal * 0.75 <= d <= nominal for d in delays)
        assert max(delays) - min(delays) > 0  # jitter really varies


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("0", 0.0),
        ("15", 15.0),
        (" 3 ", 3.0),
        ("0007", 7.0),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("²", None),  # a digit to str.isdigit, not to int()
        ("86400", CEILING),
        ("86401", CEILING),
        ("300000000000", CEILING),  # an epoch in milliseconds
        ("9" * 5000, CEILING),  # more digits than int() converts
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # a date in the past
        ("Fri, 31 Dec 9999 23:59:59 GMT", CEILING),
        ("Fri, 31 Dec 9999 23:59:59 -2359", CEILING),
        ("Mon, 01 Jan 0001 00:00:00 +2359", 0.0),
        ("Wed, 21 Oct 99999 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.from_regex(r"\s*[0-9]{1,40}\s*", fullmatch=True),
        st.datetimes(timezones=st.timezones()).map(lambda when: format_datetime(when)),
        st.datetimes().map(lambda when: when.strftime("%a, %d %b %Y %H:%M:%S GMT")),
    )
)
def test_any_retry_after_is_none_or_a_wait_within_the_ceiling(header: str) -> None:
    """Issue 21, item 4 (where it is parsed): no header value makes a wait that a date
    calculation downstream cannot take, and none raises."""
    wait = parse_retry_after(header)
    assert wait is None or (isinstance(wait, float) and 0.0 <= wait <= CEILING)


def test_a_retry_after_of_an_epoch_in_milliseconds_is_read_as_the_ceiling(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    """The issue's reproduction: the result carries a wait the schedule can add to a date."""
    fault(simulator, route="cloud_storage", status=429, retry_after="300000000000")
    result = run(prober_factory(simulator.url), target_for(apps[0], ("cloud_storage",)))["cloud_storage"]
    assert result.outcome == "rate_limited" and result.retry_after_s == CEILING == 86_400.0
    assert "asked to wait 1 d or longer" in result.detail
    assert datetime.now(UTC) + timedelta(seconds=result.retry_after_s) > datetime.now(UTC)


# --- tokens ---------------------------------------------------------------------------


def test_every_check_asks_for_one_token_per_connection(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    """Its probes share it; a later check (the same Prober, the token still valid at 8x8) asks
    again, and so does every connection of a run, also two with the same app."""
    control(simulator, "PUT", "knobs", {"latency_ms": 20})
    prober = prober_factory(simulator.url)
    everything, multi_tenant, _ = apps
    targets = [
        target_for(everything),
        target_for(everything, ("cloud_storage",)),
        target_for(multi_tenant, ("cc_historical_analytics", "cc_chat")),
    ]
    results: list[ProbeResult] = []
    for run_number in (1, 2):
        results.clear()
        prober.check(targets, lambda _t, r: results.append(r))
        assert sorted(r.product for r in results) == sorted(["token"] * 3 + [p for t in targets for p in t.products])
        assert all(r.ok for r in results)
        assert control(simulator, "GET", "stats")["token_requests"] == {
            everything.client_id: 2 * run_number,
            multi_tenant.client_id: run_number,
        }


def test_a_refused_token_request_wins_over_the_token_of_the_check_before(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    """Issue 21, item 1: the token route refuses the app after a good check; the next check
    says so for the token and every product, and calls no product with the earlier token."""
    prober, app = prober_factory(simulator.url), apps[0]
    assert {r.outcome for r in run(prober, target_for(app)).values()} == {"ok"}
    fault(simulator, route="token", client_id=app.client_id, status=401)
    product_calls = sum(requests(simulator, key) for key in PRODUCT_KEYS)
    results = run(prober, target_for(app))
    assert {key: r.outcome for key, r in results.items()} == dict.fromkeys(("token", *PRODUCT_KEYS), "bad_credentials")
    assert results["token"].http_status == 401 and results["token"].granted is None
    assert sum(requests(simulator, key) for key in PRODUCT_KEYS) == product_calls


def test_a_token_8x8_says_is_already_expired_is_not_used(
    simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    """Its products would all answer 401, which reads as "not enabled" (the admin's to fix)."""
    server = simulator_factory(default_scenario(token_lifetime_s=0))
    results = run(prober_factory(server.url), target_for(server.scenario.apps[0], ("cloud_storage",)))
    assert {key: r.outcome for key, r in results.items()} == dict.fromkeys(
        ("token", "cloud_storage"), "unexpected_response"
    )
    assert results["token"].detail == "The token answer says the token has already expired."
    assert requests(server, "cloud_storage") == 0


def test_asking_for_a_token_never_uses_one_of_a_check(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    prober, app = prober_factory(simulator.url), apps[0]
    run(prober, target_for(app))
    fault(simulator, route="token", client_id=app.client_id, status=401)
    assert prober.ask_token(credentials_of(app)).outcome == "bad_credentials"
    assert control(simulator, "GET", "stats")["token_requests"] == {app.client_id: 2}


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture
def untrusted_https_server() -> Iterator[tuple[str, list[bytes]]]:
    """A TLS server whose certificate no public CA signed; records any bytes it receives."""
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    listener = socket.create_server(("127.0.0.1", 0))
    received: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            try:
                with context.wrap_socket(conn, server_side=True) as tls:
                    received.append(tls.recv(4096))
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}", received
    stop.set()
    thread.join()
    listener.close()


def test_untrusted_certificate_is_tls_error_and_not_retried(
    untrusted_https_server,
    prober_factory: ProberFactory,  # type: ignore[no-untyped-def]
    sleeps: RecordingSleep,
) -> None:
    url, received = untrusted_https_server
    result = prober_factory(url).ask_token(Credentials(None, "tls-client-id", SecretStr("tls-secret-value")))
    assert result.outcome == "tls_error" and "could not be verified" in result.detail
    assert sleeps.calls == [] and received == []  # no retry, and nothing was sent


# --- secrets never reach the logs ---------------------------------------------------------


def test_debug_logs_of_a_full_run_hold_no_secret(
    simulator: SimulatorServer,
    apps,
    prober_factory: ProberFactory,  # type: ignore[no-untyped-def]
    caplog: pytest.LogCaptureFixture,
) -> None:
    install(caplog.handler)
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "switchboard", "asyncio"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    prober = prober_factory(simulator.url)
    everything = apps[0]
    assert prober.ask_token(credentials_of(everything)).ok
    fault(simulator, route="cc_chat", status=503, times=1)
    run(prober, target_for(everything))
    run(prober, Target(Credentials(None, everything.client_id, SecretStr(everything.client_secret + "x")), {}))
    tokens = simulator.state.issued_tokens()  # every token the simulator issued
    basic = base64.b64encode(f"{everything.client_id}:{everything.client_secret}".encode()).decode()
    text = caplog.text + "".join(repr(vars(r)) for r in caplog.records)
    assert "HTTP Request" in text or "connect" in text.lower()  # httpx/httpcore did log
    for needle in (everything.client_id, everything.client_secret, basic, *tokens):
        assert needle not in text


def test_details_hold_no_secret(simulator: SimulatorServer, apps, prober_factory: ProberFactory) -> None:  # type: ignore[no-untyped-def]
    fault(simulator, route="cc_chat", status=500)
    results = run(prober_factory(simulator.url), target_for(apps[0]))
    tokens = simulator.state.issued_tokens()
    for result in results.values():
        for needle in (apps[0].client_id, apps[0].client_secret, *tokens):
            assert needle not in result.detail


def test_scenario_with_everything_denied_still_classifies(
    simulator_factory: SimulatorFactory, prober_factory: ProberFactory
) -> None:
    from lib.simulator import App

    app = App(client_id="nothing-granted-app", client_secret="nothing-granted-secret", products=())
    server = simulator_factory(Scenario(apps=[app]))
    results = run(prober_factory(server.url), target_for(app, ("cloud_storage",), storage_region="uk"))
    assert results["token"].granted == frozenset()
    assert results["cloud_storage"].outcome == "product_not_enabled"


# --- Closing: nobody is left waiting ----------------------------------------------------------


def test_closing_the_prober_mid_run_wakes_the_caller(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    """What an anonymous clear_cache once did to the console's shared Prober: the run used to
    hang for good; now it ends at once with ProberClosed, keeping what had arrived."""
    prober = prober_factory(simulator.url)
    control(simulator, "PUT", "knobs", {"latency_ms": 3000})
    seen: list[ProbeResult] = []
    outcome: dict[str, BaseException] = {}

    def check() -> None:
        try:
            prober.check([target_for(apps[0])], lambda _t, r: seen.append(r))
        except BaseException as exc:  # noqa: BLE001 - what the caller gets is the point
            outcome["error"] = exc

    caller = threading.Thread(target=check)
    caller.start()
    eventually(lambda: control(simulator, "GET", "stats")["in_flight"], what="the run to be talking to 8x8")
    started = time.monotonic()
    prober.close()
    caller.join(10)
    assert not caller.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome.get("error"), ProberClosed), outcome
    with pytest.raises(ProberClosed):  # and a closed Prober runs nothing more
        run(prober, target_for(apps[0]))
    with pytest.raises(ProberClosed):
        prober.ask_token(credentials_of(apps[0]))


def test_a_check_fed_with_more_runs_every_refill_beside_what_still_runs(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    """The worker's pipelined batches: more is asked for while the first batch still runs
    (one slow target), refills start at once and finish before it, every result comes once."""
    prober = prober_factory(simulator.url)
    prober.low_water = 3
    control(simulator, "PUT", "knobs", {"latency_ms": 100})
    fault(simulator, route="cc_chat", delay_ms=2500)
    slow = target_for(apps[0], ("cc_chat",))
    first = [slow, *(target_for(apps[0], ("cloud_storage",)) for _ in range(3))]
    refills = [[target_for(apps[0], ("cloud_storage",)) for _ in range(3)] for _ in range(3)]
    feed = iter(refills)
    results: list[tuple[Target, ProbeResult]] = []
    asked_after: list[list[str]] = []  # the products that had come, at each ask

    def more() -> list[Target]:
        asked_after.append([r.product for _, r in results])
        return next(feed, [])

    prober.check(first, lambda t, r: results.append((t, r)), more=more)
    products = [(id(t), r.product) for t, r in results if r.product != "token"]
    assert sorted(products) == sorted({(id(t), p) for t in first + [t for r in refills for t in r] for p in t.products})
    assert len(asked_after) == 4  # three refills and the empty answer; never twice for one refill
    assert all(r.outcome == "ok" for _, r in results)
    chat_came = next(i for i, (t, r) in enumerate(results) if t is slow and r.product == "cc_chat")
    assert chat_came == len(results) - 1  # the slow target of the first batch finished last...
    # ...and more was asked for while it ran: once fewer than low_water (3) of the first four were open
    assert asked_after[0].count("cloud_storage") == 2 and "cc_chat" not in asked_after[0]


def test_closing_the_prober_during_a_fed_check_wakes_the_caller(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    prober = prober_factory(simulator.url)
    control(simulator, "PUT", "knobs", {"latency_ms": 3000})
    asked: list[int] = []
    outcome: dict[str, BaseException] = {}

    def more() -> list[Target]:  # work without end: only closing ends the check
        asked.append(1)
        return [target_for(apps[0], ("cloud_storage",))]

    def check() -> None:
        try:
            prober.check([target_for(apps[0])], lambda _t, _r: None, more=more)
        except BaseException as exc:  # noqa: BLE001 - what the caller gets is the point
            outcome["error"] = exc

    caller = threading.Thread(target=check)
    caller.start()
    # refills were handed over and asked again (few targets are open)
    eventually(lambda: len(asked) >= 3, what="a third request for more work")
    started = time.monotonic()
    prober.close()
    caller.join(10)
    assert not caller.is_alive() and time.monotonic() - started < 5
    assert isinstance(outcome.get("error"), ProberClosed), outcome


def test_waiting_for_results_has_a_deadline(
    simulator: SimulatorServer,
    apps,  # type: ignore[no-untyped-def]
    prober_factory: ProberFactory,
) -> None:
    prober = prober_factory(simulator.url)
    prober.quiet_limit_s = 0.5
    control(simulator, "PUT", "knobs", {"latency_ms": 3000})
    started = time.monotonic()
    with pytest.raises(ProberClosed, match="no result came for 0.5 s"):
        run(prober, target_for(apps[0]))
    assert time.monotonic() - started < 3


def test_the_console_never_hands_out_a_closed_prober(console_env: Runtime) -> None:
    from lib.ui.context import prober

    first = prober()
    assert prober() is first
    first.close()
    second = prober()
    assert second is not first and not second.closed

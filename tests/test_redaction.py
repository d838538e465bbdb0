"""The log redaction filter (checklist 15)."""

from __future__ import annotations

import base64
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from lib.kernel.redaction import (
    MASK,
    RedactingFilter,
    SecretRegistry,
    configure_logging,
    install,
    registry,
)
from lib.services import connections
from lib.services.connections import linking
from lib.services.guard import audit
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import ProberFactory
from tests.fixtures.storage import Sentinels
from tests.test_checks import form_for

log = logging.getLogger("switchboard.test")


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture, sentinels: Sentinels) -> pytest.LogCaptureFixture:
    install(caplog.handler)
    registry.add_credentials(sentinels.client_id, sentinels.client_secret)
    caplog.set_level(logging.DEBUG)
    return caplog


def _all_text(caplog: pytest.LogCaptureFixture) -> str:
    return caplog.text + "".join(repr(vars(r)) for r in caplog.records)


def _secret_forms(s: Sentinels) -> list[str]:
    return [s.client_id, s.client_secret, base64.b64encode(f"{s.client_id}:{s.client_secret}".encode()).decode()]


def test_message_and_args_are_masked(captured: pytest.LogCaptureFixture, sentinels: Sentinels) -> None:
    log.info("secret is %s", sentinels.client_secret)
    log.info(f"id is {sentinels.client_id}")
    basic = base64.b64encode(f"{sentinels.client_id}:{sentinels.client_secret}".encode()).decode()
    log.debug("header Authorization: Basic %s", basic)
    text = _all_text(captured)
    assert text.count(MASK) >= 3
    assert not any(form in text for form in _secret_forms(sentinels))


def test_extra_fields_are_masked(captured: pytest.LogCaptureFixture, sentinels: Sentinels) -> None:
    log.warning("request failed", extra={"detail": f"x {sentinels.client_secret} y", "access_token": "tok-abc-123"})
    record = captured.records[-1]
    assert record.detail == f"x {MASK} y" and record.access_token == MASK
    assert sentinels.client_secret not in _all_text(captured)


def test_chained_exceptions_are_masked(captured: pytest.LogCaptureFixture, sentinels: Sentinels) -> None:
    try:
        try:
            raise ValueError(f"inner {sentinels.client_secret}")
        except ValueError as inner:
            raise RuntimeError(f"outer {sentinels.client_id}") from inner
    except RuntimeError:
        log.exception("it broke")
    text = _all_text(captured)
    assert "inner ***" in text and "outer ***" in text
    assert not any(form in text for form in _secret_forms(sentinels))


def test_tokens_registered_later_are_masked(captured: pytest.LogCaptureFixture) -> None:
    registry.add("eyJ-an-access-token-value")
    log.info("got token eyJ-an-access-token-value")
    assert "eyJ-an-access-token-value" not in captured.text


def test_very_short_values_are_not_masked_everywhere() -> None:
    registry.add("ab")
    assert registry.mask("tab and cab") == "tab and cab"


def test_configure_logging_quiets_the_http_libraries_and_filters_root() -> None:
    """httpx, httpcore and aiohttp log full URLs and, at DEBUG, headers: WARNING at most,
    whatever the root's level. aiohttp's own loggers (aiohttp.client, .access, ...) are named
    in aiohttp.log."""
    from aiohttp import log as aiohttp_log

    configure_logging(logging.DEBUG)
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING
    aiohttp_loggers = [value for value in vars(aiohttp_log).values() if isinstance(value, logging.Logger)]
    assert {logger.name for logger in aiohttp_loggers} >= {"aiohttp.client", "aiohttp.internal", "aiohttp.access"}
    assert {logger.name: logger.getEffectiveLevel() for logger in aiohttp_loggers} == {
        logger.name: logging.WARNING for logger in aiohttp_loggers
    }
    assert all(any(isinstance(f, RedactingFilter) for f in h.filters) for h in logging.getLogger().handlers)


def test_streamlit_and_uvicorn_loggers_are_masked_too(sentinels: Sentinels, capfd: pytest.CaptureFixture[str]) -> None:
    """Both give their loggers handlers of their own, which no filter on ours ever sees."""
    from streamlit.logger import get_logger

    configure_logging()
    registry.add_credentials(sentinels.client_id, sentinels.client_secret)
    get_logger("streamlit.web.server.test").warning("deferred file failed: %s", sentinels.client_secret)
    uvicorn_error = logging.getLogger("uvicorn.error")
    handler = logging.StreamHandler()  # as uvicorn's own logging config gives it
    uvicorn_error.addHandler(handler)
    try:
        uvicorn_error.error("exception in ASGI app: %s", sentinels.client_id)
    finally:
        uvicorn_error.removeHandler(handler)
    err = capfd.readouterr().err
    assert "deferred file failed: ***" in err and "exception in ASGI app: ***" in err
    assert sentinels.client_secret not in err and sentinels.client_id not in err


def test_the_registry_keeps_only_the_most_recent_values() -> None:
    small = SecretRegistry(limit=3)
    small.add("value-one", "value-two", "value-three")
    small.add("value-one")  # used again: now the most recent
    small.add("value-four")
    assert len(small) == 3
    assert small.mask("value-one value-two value-three value-four") == "*** value-two *** ***"


def test_refused_candidates_never_join_the_registry(
    runtime: Runtime, simulator: SimulatorServer, prober_factory: ProberFactory
) -> None:
    """A refused Client ID such as "Trade" would otherwise mask that word in later audit rows."""
    app = simulator.scenario.apps[0]
    candidate = form_for(app, "Trade", client_id="Trade", client_secret=SecretStr("Trade-secret-typo"))
    with pytest.raises(linking.TokenRefused) as refused:
        linking.save(runtime, prober_factory(simulator.url), candidate, actor=ADMIN)
    assert "Trade-secret-typo" not in str(refused.value)
    assert registry.mask("Trade Trade-secret-typo") == "Trade Trade-secret-typo"
    connections.create(runtime.engine, runtime.vault, form_for(app, "Trade desk"), actor=ADMIN)
    assert [e.target for e in audit.events(runtime.engine, ADMIN) if e.action == "connection.create"] == ["Trade desk"]
    assert registry.mask(app.client_secret) == MASK  # what was saved is masked


def test_a_fleet_larger_than_the_old_cap_keeps_every_credential_and_token_masked(
    captured: pytest.LogCaptureFixture,
) -> None:
    """Issue 24: 4,096 values held about 1,000 connections' credentials and tokens; the
    registry is sized to the fleet now. 6,000 connections: 18,000 credential values and a token
    each, the earliest registered still masked."""
    held_before = len(registry)  # the sentinels'
    fleet = [(f"fleet-client-{i:05d}", f"fleet-secret-{i:05d}-{'x' * 8}") for i in range(6_000)]
    for client_id, secret in fleet:
        registry.add_credentials(client_id, secret)
    tokens = [f"token-of-run-{i:05d}-abcdefgh" for i in range(6_000)]
    registry.add(*tokens)
    assert len(registry) == held_before + 6_000 * 4
    first_id, first_secret = fleet[0]
    log.error(
        "8x8 refused %s / %s with %s and %s",
        first_id,
        first_secret,
        tokens[0],
        base64.b64encode(f"{first_id}:{first_secret}".encode()).decode(),
    )
    assert captured.records[-1].getMessage() == "8x8 refused *** / *** with *** and ***"
    registry.add_credentials(*fleet[-1])  # registering known values again adds nothing
    assert len(registry) == held_before + 6_000 * 4


def test_log_records_mask_credentials_by_their_shape_registered_or_not(captured: pytest.LogCaptureFixture) -> None:
    log.warning("request: Authorization: Basic dW5rbm93bjpzZWNyZXQ= then Bearer unknown.token-123")
    log.warning('answer {"access_token": "unregistered-token-9", "client_secret":"s3cr3t"} and ?token=abc&page=1')
    text = _all_text(captured)
    for value in ("dW5rbm93bjpzZWNyZXQ=", "unknown.token-123", "unregistered-token-9", "s3cr3t", "abc&"):
        assert value not in text
    assert "Basic ***" in text and "Bearer ***" in text and '"access_token": "***"' in text and "&page=1" in text
    # Only log records: stored texts (audit rows, check details) keep words such as a token's name.
    assert registry.mask("API token: grafana") == "API token: grafana"


_VALUE = st.text(
    alphabet=st.characters(blacklist_characters="*", blacklist_categories=("Cs",)), min_size=4, max_size=24
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_VALUE, min_size=1, max_size=30), st.lists(st.text(max_size=8), max_size=31), st.data())
def test_no_registered_value_survives_masking_wherever_it_is_in_a_text(
    values: list[str], fillers: list[str], data: st.DataObject
) -> None:
    """The class: values overlapping, containing one another or sharing beginnings, between any
    text, never come out of :meth:`SecretRegistry.mask`."""
    masking = SecretRegistry(limit=len(values))
    masking.add(*values)
    chosen = data.draw(st.lists(st.sampled_from(values), max_size=10))
    text = "".join(f"{filler}{value}" for filler, value in zip(fillers, chosen, strict=False)) + "".join(fillers)
    masked = masking.mask(text)
    assert not [value for value in values if value in masked]

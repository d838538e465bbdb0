"""The log redaction filter (checklist 15)."""

from __future__ import annotations

import base64
import logging

import pytest
from pydantic import SecretStr

from lib import audit, connections, linking
from lib.redaction import (
    MASK,
    RedactingFilter,
    SecretRegistry,
    configure_logging,
    install,
    registry,
)
from lib.runtime import Runtime
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


def test_configure_logging_quiets_httpx_and_filters_root() -> None:
    configure_logging(logging.DEBUG)
    assert logging.getLogger("httpx").level == logging.WARNING
    assert logging.getLogger("httpcore").level == logging.WARNING
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


def test_refused_candidates_never_join_the_registry(runtime: Runtime, simulator: SimulatorServer,
                                                    prober_factory: ProberFactory) -> None:
    """A refused Client ID such as "Trade" would otherwise mask that word in later audit rows."""
    app = simulator.scenario.apps[0]
    candidate = form_for(app, "Trade", client_id="Trade", client_secret=SecretStr("Trade-secret-typo"))
    with pytest.raises(linking.TokenRefused) as refused:
        linking.save(runtime, prober_factory(simulator.url), candidate, actor=ADMIN)
    assert "Trade-secret-typo" not in str(refused.value)
    assert registry.mask("Trade Trade-secret-typo") == "Trade Trade-secret-typo"
    connections.create(runtime.engine, runtime.vault, form_for(app, "Trade desk"), actor=ADMIN)
    assert [e.target for e in audit.events(runtime.engine, ADMIN) if e.action == "connection.create"] == [
        "Trade desk"]
    assert registry.mask(app.client_secret) == MASK  # what was saved is masked

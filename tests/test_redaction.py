"""The log redaction filter (checklist 15)."""

from __future__ import annotations

import base64
import logging

import pytest

from lib.redaction import MASK, RedactingFilter, configure_logging, install, registry
from tests.fixtures.storage import Sentinels

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

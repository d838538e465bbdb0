"""The status API's answers, built from lib.services.history.status on a real database: only the products that
count, explained as the console explains them, and nothing that is not on the allow-list.
Over HTTP: tests/test_api.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from lib.kernel.errors import NotFoundError
from lib.services.accounts import api_tokens
from lib.services.checking import checks
from lib.services.history.status import CheckRecord
from lib.services.reporting import machine_status, metrics
from lib.store.db import write_session
from lib.store.models import utcnow
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN
from tests.fixtures.storage import Sentinels
from tests.test_metrics import add, store

FIELDS = {
    "product",
    "product_name",
    "status",
    "outcome",
    "label",
    "cause",
    "who_must_act",
    "fix",
    "checked_at",
    "latency_ms",
    "http_status",
}  # and, for one connection, "uptime"


def test_each_connection_lists_the_products_that_count_with_their_explanation(engine: Engine, vault: Vault) -> None:
    alpha = add(engine, vault, "alpha", ("cloud_storage", "cc_chat", "quality_management"))
    add(engine, vault, "Beta", ())  # none ticked: all five count
    at = utcnow() - timedelta(minutes=3)
    store(engine, alpha, "cloud_storage", "not_found", ms=812, at=at)
    store(engine, alpha, "cc_realtime_analytics", "ok")  # not ticked: left out
    with write_session(engine) as session:  # 8x8's token grants no chat: failing before any test
        checks.store(session, [], {alpha.id: frozenset({"cloud_storage", "quality_management"})}, "test")
    answer = machine_status.everything(engine, actor=ADMIN)
    assert answer["generated_at"].endswith("Z")
    [first, second] = answer["connections"]
    assert (first["name"], first["environment"], second["name"]) == ("alpha", "", "Beta")
    assert [p["product"] for p in first["products"]] == ["cloud_storage", "quality_management", "cc_chat"]
    assert len(second["products"]) == 5
    storage, qm, chat = first["products"]
    assert set(storage) == FIELDS
    assert storage == {
        "product": "cloud_storage",
        "product_name": "Cloud Storage Service",
        "status": "failing",
        "outcome": "not_found",
        "label": "Not found",
        "cause": "8x8 has no such resource at this address, usually because the region is wrong.",
        "who_must_act": "Switchboard admin",
        "fix": "Check the region (and tenant ID) of this product in the connection.",
        "checked_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "latency_ms": 812,
        "http_status": 200,
    }
    assert (qm["status"], qm["outcome"], qm["label"], qm["checked_at"], qm["latency_ms"], qm["who_must_act"]) == (
        "never tested",
        "never_tested",
        "Never tested",
        None,
        None,
        None,
    )
    assert (chat["status"], chat["outcome"], chat["who_must_act"], chat["checked_at"]) == (
        "failing",
        "product_not_enabled",
        "8x8 admin (Admin Console)",
        None,
    )
    alone = machine_status.one(engine, "ALPHA", actor=ADMIN)["products"]  # names ignore case
    assert alone[0]["uptime"] == {"24h": 0.0, "7d": 0.0, "30d": 0.0, "90d": 0.0}
    assert [{k: v for k, v in p.items() if k != "uptime"} for p in alone] == first["products"]
    with pytest.raises(NotFoundError, match="No connection is named 'gamma'"):
        machine_status.one(engine, "gamma", actor=ADMIN)


def test_no_secret_client_id_or_8x8_words_are_in_an_answer(engine: Engine, vault: Vault, sentinels: Sentinels) -> None:
    view = add(engine, vault, "Alpha", (), sentinels.client_id, sentinels.client_secret)
    with write_session(engine) as session:
        checks.store(
            session,
            [
                CheckRecord(
                    view.id,
                    "",
                    product,
                    "forbidden",
                    403,
                    20,
                    f"8x8 said DETAILSENTINEL about {sentinels.client_id}",
                    utcnow(),
                    "r",
                )
                for product in ("cloud_storage", "cc_chat")
            ],
            {},
            "test",
        )
    dumped = json.dumps(
        [machine_status.everything(engine, actor=ADMIN), machine_status.one(engine, "alpha", actor=ADMIN)]
    )
    for leak in (
        sentinels.client_id,
        sentinels.client_secret,
        view.client_id_hint,
        "DETAILSENTINEL",
        view.client_id_hint.replace("…", "\\u2026"),
    ):
        assert leak not in dumped, leak


def test_tokens_of_each_role_and_allowed_scrapers_may_read_it(engine: Engine, vault: Vault) -> None:
    add(engine, vault, "Alpha", ())
    for role in api_tokens.ROLES:
        token = api_tokens.create(engine, f"reader-{role}", role, actor=ADMIN).token.get_secret_value()
        me = api_tokens.authenticate(engine, token, address="10.0.0.1", target="GET /api/v1/status")
        assert machine_status.everything(engine, actor=me)["connections"][0]["name"] == "Alpha"
    scraper = metrics.scraper("10.0.0.1", ("10.0.0.0/8",))
    assert scraper is not None and machine_status.one(engine, "alpha", actor=scraper)["name"] == "Alpha"

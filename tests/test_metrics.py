"""/metrics as Prometheus reads it: prometheus_client's own parser over the exposition made
from a real database (SQLite file and PostgreSQL). Over HTTP: tests/test_api.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from pydantic import SecretStr
from sqlalchemy import Engine

from lib.catalogue.outcomes import OutcomeKey
from lib.catalogue.products import PRODUCT_KEYS, TOKEN
from lib.services import connections
from lib.services.alerts import channels
from lib.services.alerts.outbox import DELIVERED, FAILED, HELD, PENDING, SUMMARISED
from lib.services.checking import checks
from lib.services.connections import ConnectionInput, ConnectionView
from lib.services.guard.access import Principal, Role, SignInEnded
from lib.services.history.status import CheckRecord
from lib.services.reporting import metrics
from lib.store.db import write_session
from lib.store.models import Connection, WorkerHeartbeat, utcnow
from lib.store.vault import Vault
from tests.fixtures.alerts import WEBHOOK_SECRET
from tests.fixtures.notify import LOCAL
from tests.fixtures.people import ADMIN
from tests.fixtures.storage import Sentinels

SCRAPER = metrics.scraper("127.0.0.1", ("127.0.0.1",))


def add(
    engine: Engine,
    vault: Vault,
    name: str,
    ticked: tuple[str, ...],
    client_id: str = "client-0001",
    secret: str = "secret-value-1234",
) -> ConnectionView:
    return connections.create(
        engine,
        vault,
        ConnectionInput(
            name=name,
            client_id=client_id,
            client_secret=SecretStr(secret),
            expected_products=ticked,
            storage_region="uk",
            chat_region="us",
            tenant_id="t-1",
            analytics_region="us",
            qm_region="uk",
            pbx="pbx-1",
        ),
        actor=ADMIN,
    )


def store(
    engine: Engine,
    view: ConnectionView,
    product: str,
    outcome: str,
    *,
    ms: int = 40,
    at: datetime | None = None,
    detail: str = "",
) -> None:
    with write_session(engine) as session:
        checks.store(
            session, [CheckRecord(view.id, "", product, outcome, 200, ms, detail, at or utcnow(), "r")], {}, "test"
        )


def scrape(engine: Engine, *, per_connection: bool = True) -> dict[str, list[Sample]]:
    assert SCRAPER is not None
    body, content_type = metrics.exposition(engine, per_connection=per_connection, actor=SCRAPER)
    assert content_type.startswith("text/plain; version=0.0.4")
    return {family.name: family.samples for family in text_string_to_metric_families(body.decode())}


def values(samples: list[Sample], suffix: str = "") -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in samples if s.name.endswith(suffix)}


def test_counts_and_durations_come_from_every_stored_check(engine: Engine, vault: Vault) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage",))
    for ms, outcome in ((40, "ok"), (300, "ok"), (12_000, "timeout"), (45_000, "timeout")):
        store(engine, view, "cloud_storage", outcome, ms=ms)
    store(engine, view, TOKEN, "ok")
    store(engine, view, TOKEN, "bad_credentials")
    found = scrape(engine)
    counts = values(found["switchboard_check"])
    assert len(counts) == len(PRODUCT_KEYS) * len(OutcomeKey)  # every series exists from the start, at 0
    assert counts[(("outcome", "ok"), ("product", "cloud_storage"))] == 2
    assert counts[(("outcome", "timeout"), ("product", "cloud_storage"))] == 2
    assert sum(counts.values()) == 4  # token steps are counted apart
    tokens = values(found["switchboard_token_steps"])
    assert tokens[(("outcome", "ok"),)] == 1 and tokens[(("outcome", "bad_credentials"),)] == 1
    assert sum(tokens.values()) == 2
    histogram = found["switchboard_check_duration_seconds"]
    buckets = {
        s.labels["le"]: s.value
        for s in histogram
        if s.name.endswith("_bucket") and s.labels["product"] == "cloud_storage"
    }
    assert (buckets["0.05"], buckets["0.5"], buckets["10.0"], buckets["30.0"], buckets["+Inf"]) == (1, 2, 2, 3, 4)
    assert values(histogram, "_sum")[(("product", "cloud_storage"),)] == pytest.approx(57.34)
    assert values(histogram, "_count")[(("product", "cc_chat"),)] == 0


def test_up_and_last_success_cover_the_products_that_count(engine: Engine, vault: Vault) -> None:
    alpha = add(engine, vault, "Alpha", ("cloud_storage", "cc_chat", "quality_management"))
    beta = add(engine, vault, "Beta", ("cloud_storage",))
    earlier = utcnow() - timedelta(hours=2)
    store(engine, alpha, "cloud_storage", "ok", at=earlier)
    store(engine, alpha, "cloud_storage", "vendor_error")  # failing now; the last success stays
    store(engine, alpha, "cc_chat", "ok")
    store(engine, alpha, "cc_realtime_analytics", "ok")  # not ticked: information only
    store(engine, beta, "cloud_storage", "ok", at=earlier + timedelta(minutes=30))
    found = scrape(engine)
    up = values(found["switchboard_product_up"])
    assert up == {
        (("connection", "Alpha"), ("product", "cloud_storage")): 0,
        (("connection", "Alpha"), ("product", "cc_chat")): 1,
        (("connection", "Beta"), ("product", "cloud_storage")): 1,
    }  # never tested QM: left out
    success = values(found["switchboard_last_success_timestamp_seconds"])
    assert success[(("connection", "Alpha"), ("product", "cloud_storage"))] == pytest.approx(earlier.timestamp())
    assert success[(("connection", "Beta"), ("product", "cloud_storage"))] == pytest.approx(
        (earlier + timedelta(minutes=30)).timestamp()
    )
    assert set(success) == set(up)  # the same three: each has answered ok once
    tally = values(found["switchboard_products"])
    assert tally[(("product", "cloud_storage"), ("status", "ok"))] == 1
    assert tally[(("product", "cloud_storage"), ("status", "failing"))] == 1
    assert tally[(("product", "quality_management"), ("status", "never_tested"))] == 1
    assert tally[(("product", "cc_realtime_analytics"), ("status", "ok"))] == 0  # not ticked: not counted

    folded = scrape(engine, per_connection=False)
    assert values(folded["switchboard_product_up"]) == {
        (("product", "cloud_storage"),): 0,
        (("product", "cc_chat"),): 1,
    }
    oldest = values(folded["switchboard_last_success_timestamp_seconds"])
    assert oldest[(("product", "cloud_storage"),)] == pytest.approx(earlier.timestamp())
    assert all("connection" not in s.labels for family in folded.values() for s in family)


def test_the_heartbeat_is_the_newest_tick_of_any_worker(engine: Engine) -> None:
    assert "switchboard_worker_heartbeat_timestamp_seconds" not in scrape(engine)  # no worker ticked yet
    ticked = utcnow() - timedelta(seconds=30)
    with write_session(engine) as session:
        for worker, at in (("a", ticked - timedelta(minutes=5)), ("b", ticked)):
            session.add(
                WorkerHeartbeat(
                    worker_id=worker, host="h", pid=1, tick_s=30, started_at=at, last_tick_at=at, last_seen_at=at
                )
            )
    [sample] = scrape(engine)["switchboard_worker_heartbeat_timestamp_seconds"]
    assert sample.labels == {} and sample.value == pytest.approx(ticked.timestamp())


def test_only_live_workers_whose_latest_tick_failed_count_as_failing(engine: Engine) -> None:
    """A worker restarted after failing ticks leaves its old row for a day: it is not failing."""
    now = utcnow()
    with write_session(engine) as session:
        for worker, seen in (("gone", now - timedelta(hours=2)), ("live", now)):
            session.add(
                WorkerHeartbeat(
                    worker_id=worker,
                    host="h",
                    pid=1,
                    tick_s=30,
                    started_at=seen,
                    last_tick_at=seen,
                    last_seen_at=seen,
                    last_ok_tick_at=seen - timedelta(hours=1),
                    last_failed_tick_at=seen,
                    last_failure="checks: OperationalError.",
                )
            )
    [failing] = scrape(engine)["switchboard_workers_failing"]
    assert failing.value == 1
    with write_session(engine) as session:
        session.get(WorkerHeartbeat, "live").last_ok_tick_at = utcnow()  # type: ignore[union-attr]
    [failing] = scrape(engine)["switchboard_workers_failing"]
    assert failing.value == 0


def test_secret_ages_and_the_alert_outbox_are_exported(engine: Engine, vault: Vault) -> None:
    """What deploy/prometheus/'s SwitchboardSecretAging, ...DeliveryFailing and ...Stuck read."""
    assert set(metrics.OUTBOX_STATUSES) == {PENDING, DELIVERED, FAILED, HELD, SUMMARISED}
    older, newer = add(engine, vault, "Older", ()), add(engine, vault, "Newer", (), client_id="client-0002")
    with write_session(engine) as session:
        session.get(Connection, older.id).secret_set_at = utcnow() - timedelta(days=200)  # type: ignore[union-attr]
    found = scrape(engine)
    ages = values(found["switchboard_secret_set_timestamp_seconds"])
    assert ages[(("connection", "Older"),)] < ages[(("connection", "Newer"),)]
    [oldest] = found["switchboard_secret_oldest_set_timestamp_seconds"]
    assert oldest.value == ages[(("connection", "Older"),)]
    assert "switchboard_secret_set_timestamp_seconds" not in scrape(engine, per_connection=False)
    assert values(found["switchboard_alert_events"]) == {(("status", s),): 0 for s in metrics.OUTBOX_STATUSES}
    assert "switchboard_alert_oldest_pending_timestamp_seconds" not in found  # nothing waits
    channels.add(
        engine,
        vault,
        "Ops",
        "webhook",
        SecretStr("http://127.0.0.1:9/hook"),
        actor=ADMIN,
        allow=LOCAL,
        secret=SecretStr(WEBHOOK_SECRET),
    )
    queued = utcnow()
    for _ in range(2):  # a product failing twice in a row queues a check.failed for the channel
        store(engine, newer, "cc_chat", "timeout")
    found = scrape(engine)
    assert values(found["switchboard_alert_events"])[(("status", PENDING),)] == 1
    [waiting] = found["switchboard_alert_oldest_pending_timestamp_seconds"]
    assert queued.timestamp() <= waiting.value <= utcnow().timestamp()


def test_no_label_or_value_holds_a_credential_an_error_text_or_a_url(
    engine: Engine, vault: Vault, sentinels: Sentinels
) -> None:
    view = add(engine, vault, "Alpha", ("cloud_storage",), sentinels.client_id, sentinels.client_secret)
    store(engine, view, "cloud_storage", "not_found", detail="GET https://api.8x8.com/storage/uk said DETAILSENTINEL")
    body, _ = metrics.exposition(engine, per_connection=True, actor=SCRAPER)  # type: ignore[arg-type]
    text_ = body.decode()
    for leak in (sentinels.client_id, sentinels.client_secret, view.client_id_hint, "DETAILSENTINEL", "https://"):
        assert leak not in text_, leak
    labels = {name for family in scrape(engine).values() for s in family for name in s.labels}
    assert labels == {"product", "outcome", "connection", "status", "le", "window"}


def test_an_allowed_address_scrapes_as_a_viewer_and_nothing_else_does(engine: Engine) -> None:
    allowed = ("10.0.0.5", "192.168.10.0/24", "2001:db8::/32")
    for address in ("10.0.0.5", "192.168.10.77", "::ffff:192.168.10.9", "2001:db8::1"):
        me = metrics.scraper(address, allowed)
        assert me is not None and me.role is Role.VIEWER and me.name.startswith("scraper:"), address
    for address in ("10.0.0.6", "192.168.11.1", "127.0.0.1", "", None, "testclient", "10.0.0.5 "):
        assert metrics.scraper(address, allowed) is None, address
    with pytest.raises(SignInEnded):  # a principal with no standing to show reads nothing
        metrics.exposition(engine, per_connection=True, actor=Principal("x", Role.ADMIN, via="token"))
    assert metrics.scraper("10.0.0.5", allowed).as_of_now().role is Role.VIEWER  # type: ignore[union-attr]

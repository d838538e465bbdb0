"""The status read model: one row per connection and product, built from two queries."""

from __future__ import annotations

from pydantic import SecretStr
from sqlalchemy import Engine

from lib import checks, connections, status
from lib.catalogue.products import PRODUCT_KEYS
from lib.connections import ConnectionInput
from lib.status import NEVER_TESTED, CheckRecord
from lib.store.db import write_session
from lib.store.models import utcnow
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN


def _add(engine: Engine, vault: Vault, name: str, products: tuple[str, ...]) -> connections.ConnectionView:
    return connections.create(engine, vault, ConnectionInput(
        name=name, client_id=f"client-{name}-0001", client_secret=SecretStr("secret-value-1234"),
        expected_products=products, storage_region="uk", chat_region="us", tenant_id="t-1"), actor=ADMIN)


def test_the_table_has_every_product_of_every_connection_in_order(engine: Engine, vault: Vault) -> None:
    _add(engine, vault, "b-untouched", ())
    two_ticked = _add(engine, vault, "a-storage-and-chat", ("cloud_storage", "cc_chat"))
    with write_session(engine) as session:
        checks.store(session, [CheckRecord(two_ticked.id, "", "cloud_storage", "timeout", None, 30000, "slow",
                                           utcnow(), "r1")],
                     {two_ticked.id: frozenset({"cloud_storage"})}, "test")
    table = status.table(engine)
    assert list(table.columns) == [*status.COLUMNS, *status.DETAIL_COLUMNS]
    assert list(table["connection"]) == ["a-storage-and-chat"] * 5 + ["b-untouched"] * 5  # by name
    assert list(table["product"]) == list(PRODUCT_KEYS) * 2
    ticked = table[table["connection"] == "a-storage-and-chat"].set_index("product")
    assert list(ticked["expected"]) == list(ticked["in_scope"]) == [p in ("cloud_storage", "cc_chat")
                                                                    for p in PRODUCT_KEYS]
    assert list(ticked["granted"]) == [p == "cloud_storage" for p in PRODUCT_KEYS]
    assert ticked.loc["cloud_storage", "outcome"] == "timeout" and ticked.loc["cloud_storage", "duration_ms"] == 30000
    assert ticked.loc["cc_chat", "outcome"] == NEVER_TESTED and ticked.loc["cc_chat", "detail"] == ""
    untouched = table[table["connection"] == "b-untouched"]
    assert untouched["in_scope"].all() and not untouched["expected"].any()  # none ticked: a test covers all five
    assert untouched["granted"].isna().all()  # 8x8 was never asked
    assert str(untouched["checked_at"].dtype).startswith("datetime64") and untouched["checked_at"].isna().all()
    assert status.relevant(table).sum() == 7  # two ticked + five in scope for the untouched one
    light = status.table(engine, details=False)
    assert list(light.columns) == list(status.COLUMNS) and len(light) == 10

"""Whether a server should get traffic (``/readyz``): the database answers at the schema this
code needs and the keyring still matches it. Over HTTP: tests/test_api.py."""

from __future__ import annotations

import time

from sqlalchemy import text, update

from lib.kernel.config import load_settings
from lib.services.runtime import Runtime, not_ready
from lib.store.db import PG_CONNECT_TIMEOUT_S, make_engine, write_session
from lib.store.keyring import canary_binding
from lib.store.models import KeyCheck
from lib.store.vault import Keyring, Vault, new_key
from tests.fixtures.receiver import unanswered


def test_a_runtime_that_opened_is_ready(runtime: Runtime) -> None:
    assert not_ready(runtime) is None


def test_a_schema_changed_under_it_is_not_ready(runtime: Runtime) -> None:
    with write_session(runtime.engine) as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0005'"))
    assert "schema is at revision 0005" in (not_ready(runtime) or "")


def test_a_keyring_that_no_longer_matches_is_not_ready(runtime: Runtime) -> None:
    other = Vault(Keyring(active="k1", keys={"k1": new_key()}))
    with write_session(runtime.engine) as session:  # the data now belongs to another key k1
        session.execute(update(KeyCheck).values(canary=other.encrypt("canary", canary_binding("k1"))))
    assert "Key 'k1' in the keyring is not the key this database was encrypted with" in (not_ready(runtime) or "")


def test_a_database_that_cannot_be_reached_is_not_ready(runtime: Runtime) -> None:
    gone = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")  # nothing listens
    reason = not_ready(Runtime(runtime.settings, gone, runtime.vault))
    gone.dispose()
    assert reason is not None and reason.startswith("The database cannot be reached")


def test_a_database_host_that_drops_packets_is_not_ready_within_the_connect_timeout(vault: Vault) -> None:
    """Without a connect timeout libpq waits for the OS, about two minutes on Linux."""
    with unanswered("127.0.0.2") as port:
        url = f"postgresql+psycopg://nobody@127.0.0.2:{port}/none"
        silent = make_engine(url)
        started = time.monotonic()
        reason = not_ready(Runtime(load_settings({"SWITCHBOARD_DATABASE_URL": url}), silent, vault))
        waited = time.monotonic() - started
        silent.dispose()
    assert reason is not None and reason.startswith("The database cannot be reached")
    assert PG_CONNECT_TIMEOUT_S <= waited < PG_CONNECT_TIMEOUT_S * 3, waited

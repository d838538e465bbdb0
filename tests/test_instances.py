"""Several instances starting together on one database take turns: migrations and key rotation
under a PostgreSQL advisory lock, the keyring's canaries in one serialized transaction."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, event

from lib.services import connections
from lib.services.connections import ConnectionInput, keys
from lib.store import db, keyring
from lib.store.vault import Keyring, Vault, new_key
from tests.fixtures.people import ADMIN
from tests.fixtures.waiting import eventually, waiting_for_locks

pytestmark = pytest.mark.postgres


def together(work: Callable[[], Any], n: int = 2) -> list[Any]:
    """Run ``work`` in ``n`` threads released at the same moment; raises the first error."""
    start = threading.Barrier(n)

    def run() -> Any:
        start.wait()
        return work()

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(run) for _ in range(n)]
        return [future.result(120) for future in futures]


def test_two_instances_migrating_an_empty_database_together_both_succeed(postgres_url: str) -> None:
    engines = [db.make_engine(postgres_url) for _ in range(2)]
    try:
        together(lambda: db.upgrade(engines.pop()))
        engine = db.make_engine(postgres_url)
        assert db.current_revision(engine) == db.head_revision()
        engine.dispose()
    finally:
        for engine in engines:
            engine.dispose()


def test_exclusive_blocks_run_one_at_a_time_across_connections(postgres_url: str) -> None:
    engine = db.make_engine(postgres_url)
    inside: list[int] = []
    overlaps: list[int] = []

    def hold() -> None:
        """Hold the block until the threads yet to enter it wait for its lock."""
        with db.exclusive(engine, "test"):
            inside.append(1)
            overlaps.append(len(inside))
            still_out = 3 - len(overlaps)
            eventually(
                lambda: waiting_for_locks(engine, "advisory") == still_out,
                what=f"the threads yet to enter ({still_out}) to wait for the lock",
            )
            inside.pop()

    try:
        together(hold, 3)
    finally:
        engine.dispose()
    assert overlaps == [1, 1, 1]


def _add(engine: Engine, vault: Vault, n: int) -> None:
    for i in range(n):
        connections.create(
            engine,
            vault,
            ConnectionInput(name=f"c{i}", client_id=f"client{i}", client_secret=SecretStr(f"secret-{i}")),
            actor=ADMIN,
        )


def test_two_rotations_started_together_take_turns(postgres_url: str, vault: Vault) -> None:
    engine = db.make_engine(postgres_url)
    try:
        db.upgrade(engine)
        keyring.check_keyring(engine, vault)
        _add(engine, vault, 30)
        k2 = Vault(Keyring("k2", {**vault.keyring.keys, "k2": new_key()}))
        keyring.check_keyring(engine, k2)
        reports = together(lambda: keys.rotate(engine, k2, actor=ADMIN, batch=5))
        # The second waited for the first, then found nothing left: no row done twice.
        assert sorted(r.rotated for r in reports) == [0, 30] and [r.retried for r in reports] == [0, 0]
    finally:
        engine.dispose()


def test_two_instances_starting_with_a_new_key_write_its_canary_once(postgres_url: str, vault: Vault) -> None:
    engine = db.make_engine(postgres_url)
    try:
        db.upgrade(engine)
        keyring.check_keyring(engine, vault)
        k2 = Vault(Keyring("k2", {**vault.keyring.keys, "k2": new_key()}))
        instances = [db.make_engine(postgres_url) for _ in range(4)]
        statements: Counter[int] = Counter()  # per instance, those about the canaries
        for number, instance in enumerate(instances):  # no canary is written before every instance writes
            event.listen(instance, "before_cursor_execute", _canaries_written_once_all_write(number, statements))
        starting = list(instances)
        together(lambda: keyring.check_keyring(starting.pop(), k2), 4)
        keyring.check_keyring(engine, k2)  # and the canary written is k2's own
    finally:
        engine.dispose()
        for instance in instances:
            instance.dispose()


def _canaries_written_once_all_write(number: int, statements: Counter[int]) -> Callable[..., None]:
    """A listener for instance ``number`` of four: it counts the instance's statements about the
    canaries (the read at the start, then, in the write transaction, the keyring's lock and the
    read again) and holds a canary INSERT until every instance is in its write transaction.
    Taking turns, the others now wait for the lock; without it, each would read "no canary"
    and write one of its own."""

    def listen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM crypto_key_check" in statement or "pg_advisory_xact_lock" in statement:
            statements[number] += 1
        elif statement.startswith("INSERT INTO crypto_key_check"):
            eventually(
                lambda: len([n for n in statements.values() if n >= 2]) == 4,
                what="every instance to begin its write transaction",
            )

    return listen

"""Persistence on a real SQLite file and a real PostgreSQL (checklist 1, 31-35)."""

from __future__ import annotations

import base64
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlmodel import select

from lib.kernel.errors import CredentialUnreadable, DatabaseNotReady
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import ConnectionInput
from lib.services.history import status
from lib.services.history.status import CheckRecord
from lib.store import db
from lib.store.db import read_session, write_session
from lib.store.keyring import check_keyring
from lib.store.models import AuditEvent, CurrentStatus
from lib.store.vault import Keyring, Vault, new_key
from tests.fixtures.people import ADMIN
from tests.fixtures.storage import Sentinels


def encoded_forms(value: str) -> dict[str, bytes]:
    raw = value.encode()
    return {
        "raw": raw,
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "utf16le": value.encode("utf-16-le"),
        "utf16be": value.encode("utf-16-be"),
    }


def leaks(blob: bytes, s: Sentinels) -> list[str]:
    found = []
    for label, value in (("client_id", s.client_id), ("secret", s.client_secret)):
        found += [f"{label}/{form}" for form, enc in encoded_forms(value).items() if enc in blob]
    basic = base64.b64encode(f"{s.client_id}:{s.client_secret}".encode())
    if basic in blob:
        found.append("basic-header")
    return found


def test_sqlite_connection_pragmas(sqlite_engine: Engine) -> None:
    with sqlite_engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 2  # FULL
        assert pragma("busy_timeout") >= 5000
        assert pragma("foreign_keys") == 1
        assert pragma("secure_delete") == 1


def test_no_plaintext_in_sqlite_files_or_dump(
    sqlite_engine: Engine, vault: Vault, sentinels: Sentinels, sqlite_url: str
) -> None:
    view = connections.create(sqlite_engine, vault, sentinels.form(), actor=ADMIN)
    # Edit and delete leave old pages behind unless secure_delete zeroes them.
    connections.update(
        sqlite_engine,
        vault,
        view.id,
        connections.input_from_view(view, client_secret=SecretStr(sentinels.client_secret + "2")),
        expected_version=1,
        actor=ADMIN,
    )
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    assert Path(f"{path}-wal") in files  # WAL is in use, so it must be scanned too
    for file in files:
        assert leaks(file.read_bytes(), sentinels) == [], file
    raw = sqlite3.connect(path)
    dump = "\n".join(raw.iterdump()).encode()
    raw.close()
    assert leaks(dump, sentinels) == []
    assert b"v1.k1." in dump


@pytest.mark.postgres
def test_no_plaintext_in_postgres_dump(postgres_url: str, vault: Vault, sentinels: Sentinels) -> None:
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    check_keyring(engine, vault)
    connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM connection")).all()
    dump = repr(rows).encode()
    engine.dispose()
    assert b"v1.k1." in dump and leaks(dump, sentinels) == []


def test_eight_threads_fifty_writes_each(engine: Engine, vault: Vault) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def writer(worker: int) -> None:
        barrier.wait()
        for n in range(50):
            try:
                connections.create(
                    engine,
                    vault,
                    ConnectionInput(
                        name=f"w{worker}-{n}",
                        client_id=f"client{worker}x{n}",
                        client_secret=SecretStr(f"secret-{worker}-{n}"),
                    ),
                    actor=ADMIN,
                )
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [str(e) for e in errors] == []
    assert connections.count(engine) == 400


def test_update_of_one_row_by_two_editors_conflicts(engine: Engine, vault: Vault, sentinels: Sentinels) -> None:
    from lib.kernel.errors import ConflictError

    view = connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    connections.update(
        engine,
        vault,
        view.id,
        connections.input_from_view(view, environment="one"),
        expected_version=view.version,
        actor=ADMIN,
    )
    with pytest.raises(ConflictError, match="Somebody else changed this connection"):
        connections.update(
            engine,
            vault,
            view.id,
            connections.input_from_view(view, environment="two"),
            expected_version=view.version,
            actor=ADMIN,
        )
    assert connections.get(engine, view.id).environment == "one"


def test_backup_while_writers_run(sqlite_engine: Engine, vault: Vault, tmp_path: Path) -> None:
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            connections.create(
                sqlite_engine,
                vault,
                ConnectionInput(name=f"bg-{n}", client_id=f"bgclient{n}", client_secret=SecretStr(f"bg-secret-{n}")),
                actor=ADMIN,
            )
            n += 1

    for n in range(20):
        connections.create(
            sqlite_engine,
            vault,
            ConnectionInput(name=f"pre-{n}", client_id=f"preclient{n}", client_secret=SecretStr(f"pre-secret-{n}")),
            actor=ADMIN,
        )
    thread = threading.Thread(target=writer)
    thread.start()
    try:
        target = db.backup(sqlite_engine, tmp_path / "backup.db")
    finally:
        stop.set()
        thread.join()
    raw = sqlite3.connect(target)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    restored = db.make_engine(f"sqlite:///{target}")
    check_keyring(restored, vault)  # the right key reads the backup
    views = connections.list_connections(restored)
    assert len(views) >= 20
    for view in views:
        creds = connections.load_credentials(restored, vault, view.id)
        assert creds.client_secret.get_secret_value().endswith(view.name.split("-", 1)[1])
    wrong = Vault(Keyring("k1", {"k1": new_key()}))
    with pytest.raises(CredentialUnreadable):
        connections.load_credentials(restored, wrong, views[0].id)
    restored.dispose()


def test_migrations_upgrade_empty_and_report_no_drift(database_url: str) -> None:
    engine = db.make_engine(database_url)
    assert db.current_revision(engine) is None
    with pytest.raises(DatabaseNotReady, match="switchboard db upgrade"):
        db.require_head(engine)
    db.upgrade(engine)
    db.upgrade(engine)  # idempotent
    assert db.current_revision(engine) == db.head_revision()
    command.check(db._alembic_config(engine))  # raises on model/migration drift
    db.require_head(engine)
    engine.dispose()


def test_the_head_read_from_the_files_is_alembics(database_url: str) -> None:
    """Start-up reads the head from migrations/versions/ without importing Alembic."""
    from alembic.script import ScriptDirectory

    assert db.head_revision() == ScriptDirectory(str(db.MIGRATIONS_DIR)).get_current_head()


def test_postgres_is_never_upgraded_implicitly(database_url: str) -> None:
    engine = db.make_engine(database_url)
    with pytest.raises(DatabaseNotReady, match="holds no Switchboard tables"):
        db.prepare(engine)  # an empty database is set up only by a first start, never by a command
    if db.is_sqlite(engine):
        db.prepare(engine, create=True)  # the embedded database upgrades itself on the server's start
        assert db.current_revision(engine) == db.head_revision()
    else:
        with pytest.raises(DatabaseNotReady, match="switchboard db upgrade"):
            db.prepare(engine, create=True)
    engine.dispose()


def test_deleting_a_connection_deletes_its_history(engine: Engine, vault: Vault, sentinels: Sentinels) -> None:
    from sqlmodel import select

    from lib.store.db import read_session, write_session
    from lib.store.models import Check, utcnow

    view = connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    with write_session(engine) as session:
        session.add(Check(connection_id=view.id, product="token", started_at=utcnow(), outcome="ok"))
    with write_session(engine) as session:
        checks.store(session, [_record(view.id, "cloud_storage", "ok")], {}, "test")
    connections.delete(engine, view.id, actor=ADMIN)
    with read_session(engine) as session:
        assert session.exec(select(Check)).all() == []
        assert session.exec(select(CurrentStatus)).all() == []  # the current status goes with it


def _record(connection_id: uuid.UUID, product: str, outcome: str, minutes_ago: int = 0) -> CheckRecord:
    from datetime import timedelta

    from lib.store.models import utcnow

    return CheckRecord(
        connection_id, "x", product, outcome, 200, 40, outcome, utcnow() - timedelta(minutes=minutes_ago), "run"
    )


def test_the_current_status_keeps_the_newest_check_of_each_product(
    engine: Engine, vault: Vault, sentinels: Sentinels
) -> None:
    from lib.store.db import write_session

    view = connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    with write_session(engine) as session:  # two in one batch: the later one wins
        checks.store(
            session,
            [
                _record(view.id, "cloud_storage", "timeout", 9),
                _record(view.id, "cloud_storage", "vendor_error", 8),
                _record(view.id, "cc_chat", "ok", 8),
            ],
            {view.id: frozenset({"cc_chat"})},
            "t",
        )
    with write_session(engine) as session:  # a later batch replaces one product only
        checks.store(session, [_record(view.id, "cloud_storage", "ok", 1)], {}, "t")
    current = {r.product: r.outcome for r in status.latest_status(engine)}
    assert current == {"cloud_storage": "ok", "cc_chat": "ok"}
    assert [r.outcome for r in status.history(engine, view.id)] == ["ok", "ok", "vendor_error", "timeout"]
    assert connections.get(engine, view.id).granted_products == ("cc_chat",)


def test_upgrading_fills_the_current_status_from_the_history(
    database_url: str, vault: Vault, sentinels: Sentinels
) -> None:
    from lib.store.models import utcnow

    engine = db.make_engine(database_url)
    command.upgrade(db._alembic_config(engine), "0005")  # the release before the current status
    check_keyring(engine, vault)
    row_id = connections_before_audit(engine, vault, sentinels)
    with engine.begin() as conn:
        for number, (product, outcome) in enumerate(
            [("cloud_storage", "timeout"), ("cc_chat", "ok"), ("cloud_storage", "ok")]
        ):
            conn.execute(
                text(
                    "INSERT INTO check_result (connection_id, product, started_at, duration_ms, outcome, detail, "
                    "triggered_by) VALUES (:c, :p, :at, :n, :o, '', 'x')"
                ),
                {
                    "c": row_id.hex if engine.dialect.name == "sqlite" else row_id,
                    "p": product,
                    "o": outcome,
                    "n": number,
                    "at": utcnow(),
                },
            )
    db.upgrade(engine)
    assert {(r.product, r.outcome, r.duration_ms) for r in status.latest_status(engine)} == {
        ("cc_chat", "ok", 1),
        ("cloud_storage", "ok", 2),
    }
    engine.dispose()


def test_backup_refuses_to_overwrite(sqlite_engine: Engine, tmp_path: Path) -> None:
    from lib.kernel.errors import SwitchboardError

    (tmp_path / "exists.db").write_bytes(b"")
    with pytest.raises(SwitchboardError, match="already exists"):
        db.backup(sqlite_engine, tmp_path / "exists.db")


def test_ids_are_uuids(engine: Engine, vault: Vault, sentinels: Sentinels) -> None:
    view = connections.create(engine, vault, sentinels.form(), actor=ADMIN)
    assert isinstance(view.id, uuid.UUID)


def test_upgrade_from_the_previous_release_keeps_the_data(
    database_url: str, vault: Vault, sentinels: Sentinels
) -> None:
    engine = db.make_engine(database_url)
    command.upgrade(db._alembic_config(engine), "0001")  # the schema of the first release
    check_keyring(engine, vault)
    with engine.begin() as conn:  # a row as that release wrote it
        assert "audit_event" not in conn.dialect.get_table_names(conn)
    view = connections_before_audit(engine, vault, sentinels)
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert connections.load_credentials(engine, vault, view).client_secret.get_secret_value() == sentinels.client_secret
    engine.dispose()


def connections_before_audit(engine: Engine, vault: Vault, sentinels: Sentinels) -> uuid.UUID:
    """Insert a connection with the 0001 columns only (the service would also write audit rows)."""
    from lib.store.keyring import credential_binding
    from lib.store.models import utcnow

    row_id, now = uuid.uuid4(), utcnow()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO connection (id, name, name_key, environment, client_id_enc, client_secret_enc, "
                "client_id_hint, secret_set_at, expected_products, created_at, created_by, updated_at, updated_by, "
                "version) VALUES (:id, 'Old', 'old', '', :cid, :sec, '…', :now, '[]', :now, 'x', :now, 'x', 1)"
            ),
            {
                "id": row_id.hex if engine.dialect.name == "sqlite" else row_id,
                "cid": vault.encrypt(sentinels.client_id, credential_binding(row_id, "client_id_enc")),
                "sec": vault.encrypt(sentinels.client_secret, credential_binding(row_id, "client_secret_enc")),
                "now": now,
            },
        )
    return row_id


def test_an_instant_given_in_another_zone_reads_back_as_the_same_instant(engine: Engine) -> None:
    """SQLite drops the offset of what it stores; every instant goes in as UTC."""
    at = datetime(2026, 12, 1, 21, 30, tzinfo=timezone(timedelta(hours=2)))
    with write_session(engine) as session:
        session.add(AuditEvent(at=at, actor="a", action="test", target="t", result="ok", detail=""))
    with read_session(engine) as session:
        stored = session.exec(select(AuditEvent)).one()
    assert stored.at == at and stored.at.utcoffset() == timedelta(0)

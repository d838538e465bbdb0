"""The schedule: slots, jitter, push-back after rate limiting, intervals, pauses and who may
change them (real database), and `switchboard schedule` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from lib.catalogue.products import PRODUCT_KEYS
from lib.kernel.errors import ValidationError
from lib.kernel.words import lasted, parse_span, span
from lib.services import connections
from lib.services.checking import schedule
from lib.services.connections import ConnectionInput, ConnectionView
from lib.services.guard import audit
from lib.services.guard.access import NotAllowed, Role
from lib.store.db import read_session
from lib.store.models import DueCheck
from lib.store.vault import Vault
from tests.fixtures.people import ADMIN, web
from tests.test_cli import new_install

ROOT = Path(__file__).resolve().parent.parent
EVERY = timedelta(minutes=15)
NOW = datetime(2026, 12, 1, 10, 7, 31, tzinfo=UTC)


# --- slots ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1m", timedelta(minutes=1)),
        ("15m", EVERY),
        ("1h", timedelta(hours=1)),
        ("90M", timedelta(minutes=90)),
        (" 7d ", timedelta(days=7)),
    ],
)
def test_intervals_as_people_write_them(text: str, expected: timedelta) -> None:
    assert schedule.parse_every(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30s", "at most every 1 min and at least every 7 d, not every 30 s"),
        ("8d", "not every 8 d"),
        ("0m", "not every 0 s"),
        ("soon", "'soon' is not an interval: write a whole number and a unit, e.g. 30s, 5m, 1h or 7d"),
        ("15", "'15' is not an interval"),
    ],
)
def test_intervals_out_of_bounds_are_refused_with_the_fix(text: str, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        schedule.parse_every(text)
    assert info.value.errors[0].field == "every" and message in info.value.errors[0].message


def test_spans_read_back_in_the_largest_unit() -> None:
    assert [span(parse_span(t)) for t in ("30s", "90s", "60m", "90m", "24h", "36h")] == [  # type: ignore[arg-type]
        "30 s",
        "90 s",
        "1 h",
        "90 min",
        "1 d",
        "36 h",
    ]


def test_how_long_something_lasted_reads_in_its_two_largest_units() -> None:
    """Recoveries say how long a product was down (alerts' "works again after ...")."""
    assert [lasted(timedelta(seconds=n)) for n in (-5, 0, 45, 60, 3_725, 86_400, 90_061, 86_400 * 400)] == [
        "0 s",
        "0 s",
        "45 s",
        "1 min",
        "1 h 2 min",
        "1 d",
        "1 d 1 h",
        "400 d",
    ]


@given(st.integers(0, 10**9))
def test_any_duration_reads_as_at_most_two_units(seconds: int) -> None:
    words = lasted(timedelta(seconds=seconds)).split()
    assert 2 <= len(words) <= 4 and words[1] in ("s", "min", "h", "d")


@given(st.text(max_size=30))
def test_any_text_is_an_interval_or_refused_never_an_error(text: str) -> None:
    """ "²s" passed str.isdigit and "99999999999d" overflowed timedelta: both raised."""
    try:
        schedule.parse_every(text)
    except ValidationError as refused:
        assert refused.errors[0].field == "every"


@pytest.mark.parametrize("text", ["²s", "99999999999d", "١٥m"])
def test_odd_digits_and_huge_numbers_are_not_intervals(text: str) -> None:
    assert parse_span(text) is None


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [
        (None, timedelta(0)),
        (-5, timedelta(0)),
        (float("nan"), timedelta(0)),
        (float("inf"), schedule.LONGEST_WAIT),
        (3e11, schedule.LONGEST_WAIT),
        (90, timedelta(seconds=90)),
    ],
)
def test_a_retry_after_is_a_wait_of_at_most_a_day(retry_after: float | None, wait: timedelta) -> None:
    assert schedule.asked_wait(retry_after) == wait
    now = datetime.now(UTC)
    due = schedule.next_due(now, EVERY, timedelta(0), "rate_limited", retry_after)  # never OverflowError
    assert now + wait <= due <= now + wait + EVERY / 4 + 2 * EVERY  # the slot after the next one at most


def test_jitter_is_the_same_on_every_instance_within_the_interval_and_spreads_a_fleet() -> None:
    ids = [uuid.uuid4() for _ in range(2000)]
    offsets = [schedule.offset(i, EVERY) for i in ids]
    assert offsets == [schedule.offset(uuid.UUID(str(i)), EVERY) for i in ids]  # derived from the id alone
    assert all(timedelta(0) <= o < EVERY for o in offsets)
    tenths = Counter(int(o / EVERY * 10) for o in offsets)
    assert sorted(tenths) == list(range(10)) and min(tenths.values()) > 120  # ~200 each: not one burst


@pytest.mark.parametrize("after", [NOW, NOW + timedelta(seconds=1), datetime(2027, 3, 4, 23, 59, 59, tzinfo=UTC)])
def test_the_next_slot_is_on_the_connections_grid_and_strictly_later(after: datetime) -> None:
    shift = schedule.offset(uuid.uuid4(), EVERY)
    slot = schedule.next_slot(after, EVERY, shift)
    assert after < slot <= after + EVERY
    assert (slot - datetime(1970, 1, 1, tzinfo=UTC) - shift) % EVERY == timedelta(0)
    assert schedule.next_slot(slot, EVERY, shift) == slot + EVERY  # at a slot: the one after it


@pytest.mark.parametrize("outcome", ["ok", "vendor_error", "timeout", "bad_credentials", "network_error"])
def test_ok_or_failing_a_product_is_due_again_in_the_next_slot_never_sooner(outcome: str) -> None:
    shift = timedelta(minutes=4)
    assert schedule.next_due(NOW, EVERY, shift, outcome) == schedule.next_slot(NOW, EVERY, shift)


def test_a_check_that_ran_late_is_not_followed_by_another_moments_later() -> None:
    shift = timedelta(minutes=4)
    slot = schedule.next_slot(NOW, EVERY, shift)
    for late in (timedelta(seconds=10), timedelta(minutes=3)):  # caught up just before the next slot
        assert schedule.next_due(slot - late, EVERY, shift, "ok") == slot + EVERY
    assert schedule.next_due(slot - EVERY / 2, EVERY, shift, "ok") == slot


def test_rate_limited_skips_a_slot_and_waits_at_least_what_retry_after_asked() -> None:
    shift = timedelta(minutes=4)
    first = schedule.next_slot(NOW, EVERY, shift)
    assert schedule.next_due(NOW, EVERY, shift, "rate_limited") == first + EVERY
    assert schedule.next_due(NOW, EVERY, shift, "rate_limited", retry_after_s=60) == first + EVERY
    long_wait = schedule.next_due(NOW, EVERY, shift, "rate_limited", retry_after_s=3 * 3600)
    assert NOW + timedelta(hours=3) < long_wait <= NOW + timedelta(hours=3) + EVERY
    assert long_wait == schedule.next_slot(NOW + timedelta(hours=3), EVERY, shift)


# --- settings in the database -----------------------------------------------------------------


EVERY_SETTING = {
    "analytics_region": "us",
    "storage_region": "uk",
    "qm_region": "uk",
    "chat_region": "us",
    "tenant_id": "t-1",
    "pbx": "pbx-1",
}  # what any ticked product needs


def _add(engine: Engine, vault: Vault, name: str, products: tuple[str, ...] = ()) -> ConnectionView:
    return connections.create(
        engine,
        vault,
        ConnectionInput(
            name=name,
            client_id=f"client-{name}",
            client_secret=SecretStr(f"secret-{name}-0123456789"),
            expected_products=products,
            **EVERY_SETTING,
        ),
        actor=ADMIN,
    )


def _due(engine: Engine) -> dict[tuple[uuid.UUID, str], datetime]:
    with read_session(engine) as session:
        return {(r.connection_id, r.product): r.due_at for r in session.exec(select(DueCheck)).all()}


def test_due_rows_follow_the_ticked_products(engine: Engine, vault: Vault) -> None:
    storage = _add(engine, vault, "Storage", ("cloud_storage",))
    everything = _add(engine, vault, "Everything")  # none ticked: all five are tested
    schedule.sync(engine, connections.list_connections(engine))
    assert sorted(p for c, p in _due(engine) if c == storage.id) == ["cloud_storage"]
    assert sorted(p for c, p in _due(engine) if c == everything.id) == sorted(PRODUCT_KEYS)
    first = _due(engine)[(storage.id, "cloud_storage")]
    assert datetime.now(UTC) < first <= datetime.now(UTC) + EVERY  # its first slot, not all at once now
    connections.update(
        engine,
        vault,
        storage.id,
        connections.input_from_view(storage, expected_products=("cc_chat", "cloud_storage")),
        actor=ADMIN,
        expected_version=storage.version,
    )
    schedule.sync(engine, connections.list_connections(engine))
    due = {p: at for (c, p), at in _due(engine).items() if c == storage.id}
    assert sorted(due) == ["cc_chat", "cloud_storage"]
    # Ticking a product changes what is tested: the connection's products are due at once, the
    # new one too; the other connection keeps its slots.
    now = datetime.now(UTC)
    assert all(at <= now for at in due.values()) and first > now
    assert all(at > now for (c, _), at in _due(engine).items() if c == everything.id)


def test_changing_the_interval_moves_what_is_due_to_the_new_grid(engine: Engine, vault: Vault) -> None:
    one, two = _add(engine, vault, "One"), _add(engine, vault, "Two")
    schedule.sync(engine, connections.list_connections(engine))
    schedule.set_every(engine, timedelta(hours=6), actor=ADMIN)
    schedule.set_every(engine, timedelta(minutes=5), actor=ADMIN, connection=two)
    now = datetime.now(UTC)
    for (connection_id, _), due in _due(engine).items():
        every = timedelta(hours=6) if connection_id == one.id else timedelta(minutes=5)
        assert now < due <= now + every
        assert due == schedule.next_slot(due - timedelta(microseconds=1), every, schedule.offset(connection_id, every))
    plans = {p.name: p for p in schedule.overview(engine, ADMIN).connections}
    assert (plans["One"].every, plans["One"].own_every) == (timedelta(hours=6), False)
    assert (plans["Two"].every, plans["Two"].own_every) == (timedelta(minutes=5), True)
    schedule.set_every(engine, None, actor=ADMIN, connection=two)  # back to the default
    assert schedule.overview(engine, ADMIN, [two.id]).connections[0].every == timedelta(hours=6)


def test_pause_and_resume_for_one_connection_or_all(engine: Engine, vault: Vault) -> None:
    one, _ = _add(engine, vault, "One"), _add(engine, vault, "Two")
    schedule.set_paused(engine, True, actor=ADMIN, connection=one)
    assert {p.name: p.paused for p in schedule.overview(engine, ADMIN).connections} == {"One": True, "Two": False}
    schedule.set_paused(engine, True, actor=ADMIN)
    view = schedule.overview(engine, ADMIN)
    assert view.paused and all(p.paused for p in view.connections)
    schedule.set_paused(engine, False, actor=ADMIN)
    schedule.set_paused(engine, False, actor=ADMIN, connection=one)
    assert not any(p.paused for p in schedule.overview(engine, ADMIN).connections)


def test_changes_are_audited_and_need_the_admin_role(engine: Engine, vault: Vault) -> None:
    one = _add(engine, vault, "One")
    operator = web(engine, "olga", Role.OPERATOR)
    for change in (
        lambda: schedule.set_every(engine, timedelta(hours=1), actor=operator),
        lambda: schedule.set_paused(engine, True, actor=operator, connection=one),
    ):
        with pytest.raises(NotAllowed, match="may not add, change or delete connections"):
            change()
    assert schedule.overview(engine, operator).every == schedule.DEFAULT_EVERY  # reading is fine
    schedule.set_every(engine, timedelta(hours=1), actor=ADMIN)
    schedule.set_every(engine, timedelta(minutes=5), actor=ADMIN, connection=one)
    schedule.set_paused(engine, True, actor=ADMIN, connection=one)
    schedule.set_paused(engine, False, actor=ADMIN)
    rows = [
        (e.actor, e.action, e.target, e.result, e.detail)
        for e in audit.events(engine, ADMIN)
        if e.action.startswith("schedule.")
    ]
    assert rows == [
        (ADMIN.name, "schedule.set", "all connections", "ok", "every 1 h"),
        (ADMIN.name, "schedule.set", "One", "ok", "every 5 min"),
        (ADMIN.name, "schedule.pause", "One", "ok", ""),
        (ADMIN.name, "schedule.resume", "all connections", "ok", ""),
    ]


def test_an_interval_out_of_bounds_is_refused_and_nothing_changes(engine: Engine) -> None:
    with pytest.raises(ValidationError, match="not every 30 s"):
        schedule.set_every(engine, timedelta(seconds=30), actor=ADMIN)
    assert schedule.overview(engine, ADMIN).every == schedule.DEFAULT_EVERY
    assert not [e for e in audit.events(engine, ADMIN) if e.action == "schedule.set"]


# --- switchboard schedule -------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
        "SWITCHBOARD_8X8_BASE_URL": "http://127.0.0.1:9",
    }
    env.pop("SWITCHBOARD_KEYS", None)
    new_install(env)

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lib", *args],
            check=False,
            input=stdin,
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )

    return run


def test_schedule_command_sets_pauses_resumes_and_shows(cli) -> None:  # type: ignore[no-untyped-def]
    added = cli(
        "connections",
        "add",
        "--name",
        "Prod",
        "--client-id",
        "prod-client",
        "--secret-stdin",
        "--no-verify",
        stdin="prod-secret-0123456789\n",
    )
    assert added.returncode == 0, added.stderr
    shown = cli("schedule", "show")
    assert shown.returncode == 0, shown.stderr
    assert "Every 15 min by default." in shown.stdout and "No worker is running" in shown.stdout
    assert cli("schedule", "set", "--every", "1h").stdout.strip() == (
        "Connections without an interval of their own: checked every 1 h."
    )
    assert (
        cli("schedule", "set", "--every", "5m", "--connection", "prod").stdout.strip() == "Prod: checked every 5 min."
    )
    assert cli("schedule", "pause", "--connection", "Prod").stdout.strip() == "Scheduled checks paused for Prod."
    shown = cli("schedule", "show").stdout
    assert "Every 1 h by default." in shown
    assert [line.split()[:3] for line in shown.splitlines() if line.startswith("Prod")] == [["Prod", "5", "min"]]
    assert "paused" in next(line for line in shown.splitlines() if line.startswith("Prod"))
    assert cli("schedule", "pause").stdout.strip() == "Scheduled checks paused for all connections."
    assert "PAUSED for all connections" in cli("schedule", "show").stdout
    assert cli("schedule", "resume").returncode == 0
    assert cli("schedule", "resume", "--connection", "Prod").returncode == 0
    assert cli("schedule", "set", "--every", "default", "--connection", "Prod").stdout.strip() == (
        "Prod: follows the default interval again."
    )
    audited = cli("audit", "--json")  # newest first
    assert [e["action"] for e in json.loads(audited.stdout) if e["action"].startswith("schedule")][::-1] == [
        "schedule.set",
        "schedule.set",
        "schedule.pause",
        "schedule.pause",
        "schedule.resume",
        "schedule.resume",
        "schedule.set",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("set", "--every", "30s"), "at most every 1 min"),
        (("set", "--every", "often"), "'often' is not an interval"),
        (("set", "--every", "default"), "is not an interval"),  # 'default' needs --connection
        (("pause", "--connection", "Nope"), "Nope"),
        (("set",), "Missing option '--every'"),
    ],
)
def test_schedule_usage_errors_exit_2_and_say_the_fix(cli, args: tuple[str, ...], message: str) -> None:  # type: ignore[no-untyped-def]
    done = cli("schedule", *args)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert message in done.stderr

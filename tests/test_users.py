"""Local accounts: argon2id hashes, the password policy, roles, throttled sign-in without
user enumeration, an audit row for every change and attempt, and people changing their own
password (which they must, first, when someone else chose it)."""

from __future__ import annotations

import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlalchemy import Engine, text
from sqlmodel import select

from lib.kernel.errors import NotFoundError, ValidationError
from lib.services.accounts import first_run, sessions, users
from lib.services.guard import audit
from lib.services.guard.access import PasswordChangeRequired, Principal, Role
from lib.services.reporting import export
from lib.store import db
from lib.store.db import read_session, write_session
from lib.store.models import User, utcnow
from lib.ui.users_view import table
from tests.fixtures.people import ADMIN, admin

GOOD = SecretStr("cobalt lantern orchard 42")


def test_hash_is_argon2id_and_never_the_password(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann@example.com", GOOD, "admin", actor=ADMIN)
    with read_session(sqlite_engine) as session:
        stored = session.exec(select(User)).one().password_hash
    assert stored is not None and stored.startswith("$argon2id$") and GOOD.get_secret_value() not in stored
    params = dict(p.split("=") for p in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2  # ASVS 5.0 appendix C minimums


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short", "at least 12 characters"),
        ("qwerty123456", "commonly used passwords"),
        ("password1234!", "commonly used passwords"),
        ("ann@example.com-rocks", "must not contain the user name"),
        ("x" * 257, "at most 256"),
    ],
)
def test_password_policy(password: str, message: str) -> None:
    assert any(message in p for p in users.password_problems(password, "ann@example.com"))


def test_good_passwords_need_no_composition_rules() -> None:
    assert users.password_problems("cobalt lantern orchard 42", "ann") == []
    assert users.password_problems("tout simplement très long", "ann") == []


def test_bad_input_names_the_field_and_saves_nothing(sqlite_engine: Engine) -> None:
    with pytest.raises(ValidationError) as info:
        users.add(sqlite_engine, "bad name", SecretStr("short"), "root", actor=ADMIN)
    assert {e.field for e in info.value.errors} == {"username", "role", "password"}
    assert users.count(sqlite_engine) == 0 and audit.events(sqlite_engine, ADMIN) == []


def test_roles_and_the_last_admin(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "admin", actor=ADMIN)
    users.add(sqlite_engine, "bob", GOOD, "viewer", actor=ADMIN)
    with pytest.raises(ValidationError, match="last admin"):
        users.set_role(sqlite_engine, "ann", "viewer", actor=ADMIN)
    with pytest.raises(ValidationError, match="last admin"):
        users.remove(sqlite_engine, "ann", actor=ADMIN)
    users.set_role(sqlite_engine, "bob", "admin", actor=ADMIN)
    users.remove(sqlite_engine, "ann", actor=ADMIN)
    assert [(u.username, u.role) for u in users.list_users(sqlite_engine)] == [("bob", users.Role.ADMIN)]
    with pytest.raises(NotFoundError):
        users.remove(sqlite_engine, "ann", actor=ADMIN)
    assert [e.action for e in audit.events(sqlite_engine, ADMIN)] == [
        "user.add",
        "user.add",
        "user.set_role",
        "user.remove",
    ]


def test_sign_in_checks_the_password_and_leaves_the_audit_row_to_the_session(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "Ann", GOOD, "operator", actor=ADMIN)
    view = users.authenticate(sqlite_engine, "ann", GOOD, address="10.0.0.1")
    assert view.username == "Ann" and view.role is users.Role.OPERATOR
    # The "sign_in ok" row is written when the session starts (tests/test_audit.py).
    assert [e.action for e in audit.events(sqlite_engine, ADMIN)] == ["user.add"]


def test_no_user_enumeration_same_message_and_similar_time(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "viewer", actor=ADMIN)
    timings: dict[str, list[float]] = {"ann": [], "ghost": []}
    messages = set()
    for round_ in range(3):
        for name, taken in timings.items():
            start = time.perf_counter()
            with pytest.raises(users.SignInFailed) as info:
                users.authenticate(
                    sqlite_engine,
                    name,
                    SecretStr(f"wrong password {round_}"),
                    address=f"192.0.2.{round_}{name == 'ghost'}",
                )
            taken.append(time.perf_counter() - start)
            messages.add(str(info.value))
    assert messages == {users.GENERIC_FAILURE}
    known, unknown = statistics.median(timings["ann"]), statistics.median(timings["ghost"])
    assert 0.5 < known / unknown < 2.0  # both pay one argon2 verification


def test_throttling_survives_new_sessions_and_grows(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "admin", actor=ADMIN)
    now = utcnow()
    for n in range(users.FAILURES_ALLOWED):
        with pytest.raises(users.SignInFailed):
            users.authenticate(sqlite_engine, "ann", SecretStr(f"nope-nope-{n}"), address="a", now=now)
    # A new tab, a new session, even the right password: the account waits, from this address.
    with pytest.raises(users.Throttled) as info:
        users.authenticate(sqlite_engine, "ann", GOOD, address="a", now=now)
    assert 0 < info.value.retry_after <= 1.0
    later = now + timedelta(seconds=2)
    with pytest.raises(users.SignInFailed):
        users.authenticate(sqlite_engine, "ann", SecretStr("nope-again-1"), address="a", now=later)
    assert users.wait_required(sqlite_engine, "ann", "a", now=later) > 1.0  # doubled
    after_window = now + users.WINDOW + timedelta(seconds=5)
    assert users.authenticate(sqlite_engine, "ann", GOOD, address="a", now=after_window).username == "ann"


def test_one_addresss_wrong_guesses_do_not_lock_the_account_for_another(sqlite_engine: Engine) -> None:
    """Issue 21, item 13: 429 with Retry-After for the right password from another address."""
    users.add(sqlite_engine, "ann", GOOD, "admin", actor=ADMIN)
    now = utcnow()
    for n in range(users.FAILURES_ALLOWED + 4):  # the attacker waits out each back-off
        at = now + timedelta(seconds=2**n)
        with pytest.raises(users.SignInFailed):
            users.authenticate(sqlite_engine, "ann", SecretStr(f"guess {n}"), address="203.0.113.66", now=at)
    with pytest.raises(users.Throttled):
        users.authenticate(sqlite_engine, "ann", GOOD, address="203.0.113.66", now=at)
    assert users.wait_required(sqlite_engine, "ann", "203.0.113.66", now=at) > 8
    assert users.wait_required(sqlite_engine, "ann", "198.51.100.7", now=at) == 0.0
    assert users.authenticate(sqlite_engine, "ann", GOOD, address="198.51.100.7", now=at).username == "ann"


def test_an_ipv6_subscriber_is_one_address_to_the_throttle(sqlite_engine: Engine) -> None:
    """A /64 holds any number of addresses for one subscriber: a new one per guess must not
    slip past the per-address limits (and reach the account's ceiling, locking its owner out)."""
    users.add(sqlite_engine, "ann", GOOD, "admin", actor=ADMIN)
    now = utcnow()
    for n in range(users.FAILURES_ALLOWED):
        users.claim_attempt(sqlite_engine, "ann", f"2001:db8:1:2::{n + 1:x}", "sign_in", now)
    assert users.wait_required(sqlite_engine, "ann", "2001:db8:1:2:ffff::9", now=now) > 0  # same /64
    assert users.wait_required(sqlite_engine, "ann", "2001:db8:1:3::1", now=now) == 0.0  # the next /64
    assert users.address_scope("::ffff:198.51.100.7") == "198.51.100.7"
    assert users.address_scope("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64"


def test_the_accounts_own_ceiling_stops_guesses_from_many_addresses(sqlite_engine: Engine) -> None:
    """Each address stays under its own limits; the account's ceiling, far above them, stops
    the sum (for everybody, the owner too: that is what a ceiling is for)."""
    users.add(sqlite_engine, "ann", GOOD, "admin", actor=ADMIN)
    now = utcnow()
    for n in range(users.ACCOUNT_FAILURES_ALLOWED - 1):  # counted as failed until settled
        users.claim_attempt(sqlite_engine, "ann", f"10.9.{n // 200}.{n % 200}", "sign_in", now)
    assert users.authenticate(sqlite_engine, "ann", GOOD, address="198.51.100.7", now=now).username == "ann"
    users.claim_attempt(sqlite_engine, "ann", "10.9.9.9", "sign_in", now)
    with pytest.raises(users.Throttled):
        users.authenticate(sqlite_engine, "ann", GOOD, address="198.51.100.8", now=now)
    assert users.ACCOUNT_FAILURES_ALLOWED >= 10 * users.FAILURES_ALLOWED
    later = now + users.WINDOW + timedelta(seconds=1)
    assert users.authenticate(sqlite_engine, "ann", GOOD, address="198.51.100.8", now=later).username == "ann"


def test_throttling_by_address_covers_unknown_accounts(sqlite_engine: Engine) -> None:
    """One password tried on many names from one address."""
    now = utcnow()
    for n in range(users.ADDRESS_FAILURES_ALLOWED):
        users.claim_attempt(sqlite_engine, f"guess{n}", "203.0.113.9", "sign_in", now)
    with pytest.raises(users.Throttled):
        users.authenticate(sqlite_engine, "another", SecretStr("whatever-123"), address="203.0.113.9", now=now)
    assert users.wait_required(sqlite_engine, "another", "203.0.113.10", now=now) == 0.0


def test_hash_is_upgraded_when_parameters_change(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "admin", actor=ADMIN)
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(GOOD.get_secret_value())
    with write_session(sqlite_engine) as session:
        session.exec(select(User)).one().password_hash = weak
    users.authenticate(sqlite_engine, "ann", GOOD, address="x")
    with read_session(sqlite_engine) as session:
        assert session.exec(select(User)).one().password_hash != weak


def test_reset_password(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "admin", actor=ADMIN)
    with pytest.raises(ValidationError, match="commonly used"):
        users.reset_password(sqlite_engine, "ann", SecretStr("qwerty123456"), actor=ADMIN)
    users.reset_password(sqlite_engine, "ann", SecretStr("another quite long phrase"), actor=ADMIN)
    with pytest.raises(users.SignInFailed):
        users.authenticate(sqlite_engine, "ann", GOOD, address="x")
    assert users.authenticate(sqlite_engine, "ann", SecretStr("another quite long phrase"), address="y")


def test_cli_users(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PYTHONPATH": str(root),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json"),
    }

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "lib", *args], input=stdin, env=env, capture_output=True, check=False, text=True
        )

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return cli("users", *args, stdin=stdin)

    # The users commands make no database or keyring of their own (issue 21, item 9).
    assert cli("db", "upgrade").returncode == 0 and cli("keys", "add").returncode == 0
    assert (
        run("add", "ann", "--role", "admin", "--password-stdin", stdin=GOOD.get_secret_value() + "\n").returncode == 0
    )
    weak = run("add", "bob", "--role", "viewer", "--password-stdin", stdin="qwerty123456\n")
    assert weak.returncode == 1 and "error: Password: This password is on a list" in weak.stderr
    assert run("add", "bob", "--role", "viewer").returncode == 2  # no tty, no --password-stdin
    assert run("add", "cy", "--role", "viewer", "--password-stdin", stdin="plenty long phrase here\n").returncode == 0
    assert run("set-role", "cy", "operator").returncode == 0
    last = run("remove", "ann")
    assert last.returncode == 1 and "last admin" in last.stderr
    listed = json.loads(run("list", "--json").stdout)
    assert [(u["username"], u["role"]) for u in listed] == [("ann", "admin"), ("cy", "operator")]
    assert "argon2" not in run("list", "--json").stdout
    assert run("reset-password", "cy", "--password-stdin", stdin="yet another long phrase\n").returncode == 0
    assert (
        run(
            "add", "dee", "--role", "admin", "--own-password", "--password-stdin", stdin="my very own long phrase\n"
        ).returncode
        == 0
    )
    must = {u["username"]: u["must_change_password"] for u in json.loads(run("list", "--json").stdout)}
    assert must == {"ann": True, "cy": True, "dee": False}  # only dee chose her own


def test_concurrent_attempts_are_counted_before_any_is_checked(engine: Engine) -> None:
    """Each attempt is recorded (as failed until proven otherwise) in a serialized transaction
    before its secret is checked, so a burst cannot all slip under the limit. Threads claim
    at once, on SQLite and on PostgreSQL."""
    claimed: list[int] = []
    throttled: list[float] = []

    def claim(_n: int) -> None:
        try:
            claimed.append(users.claim_attempt(engine, "ann", "198.51.100.1", "sign_in"))
        except users.Throttled as exc:
            throttled.append(exc.retry_after)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(claim, range(30)))
    assert len(claimed) == users.FAILURES_ALLOWED and len(throttled) == 30 - users.FAILURES_ALLOWED
    noted = [e for e in audit.events(engine, ADMIN) if e.detail == users.THROTTLED]
    assert len(noted) == 1  # one row for the window, not one per refused attempt


def test_a_settled_success_does_not_count_as_a_failure(sqlite_engine: Engine) -> None:
    for _ in range(users.FAILURES_ALLOWED):
        attempt = users.claim_attempt(sqlite_engine, "ann", "a", "sign_in")
        with write_session(sqlite_engine) as session:
            users.settle_attempt(session, attempt, ok=True, key="ann", address="a", action="sign_in")
    assert users.wait_required(sqlite_engine, "ann", "a") == 0.0


def test_verifications_beyond_the_cap_are_busy_at_once(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "viewer", actor=ADMIN)
    held = [users.verifying.acquire(blocking=False) for _ in range(users.VERIFICATIONS_AT_ONCE)]
    try:
        assert all(held)
        started = time.perf_counter()
        with pytest.raises(users.Busy) as busy:
            users.authenticate(sqlite_engine, "ann", GOOD, address="x")
        assert time.perf_counter() - started < 0.05 and busy.value.retry_after >= 1
    finally:
        for _ in held:
            users.verifying.release()
    assert users.authenticate(sqlite_engine, "ann", GOOD, address="x").username == "ann"


# --- people's own passwords, and the change an admin's choice demands ----------------------

NEW = SecretStr("a password of my very own 7")
LIMITS = sessions.Limits(idle=timedelta(minutes=30), lifetime=timedelta(hours=12))


def session_of(engine: Engine, name: str, address: str = "10.0.0.5") -> sessions.Key:
    """A new local sign-in of ``name``; its session's key."""
    key = sessions.Key.of(sessions.new_token())
    view = users.get(engine, name)
    sessions.start(engine, key, Principal(view.username, view.role, address, "local"))
    return key


def test_a_password_someone_else_chose_must_be_changed_and_ones_own_need_not(sqlite_engine: Engine) -> None:
    code = first_run.issue(sqlite_engine)
    assert code is not None
    first_run.redeem(sqlite_engine, SecretStr(code), "root", GOOD, address="10.0.0.1")
    users.add(sqlite_engine, "ann", GOOD, "viewer", actor=ADMIN)
    users.add(sqlite_engine, "cleo", GOOD, "admin", actor=ADMIN, own_password=True)  # `users add --own-password`
    must = lambda name: users.get(sqlite_engine, name).must_change_password
    assert (must("root"), must("ann"), must("cleo")) == (False, True, False)
    users.reset_password(sqlite_engine, "cleo", SecretStr("reset by the shell 12"), actor=ADMIN)
    assert must("cleo")
    users.reset_password(sqlite_engine, "cleo", SecretStr("reset by herself 12"), actor=admin("cleo"))
    assert not must("cleo")  # an admin resetting their own password chose it


def test_changing_ones_own_password(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "keeper", GOOD, "admin", actor=ADMIN)
    users.add(sqlite_engine, "Ann", GOOD, "operator", actor=ADMIN)
    here, elsewhere, keepers = (
        session_of(sqlite_engine, "Ann"),
        session_of(sqlite_engine, "ann"),
        session_of(sqlite_engine, "keeper"),
    )
    with pytest.raises(PasswordChangeRequired):
        sessions.principal(sqlite_engine, here, LIMITS)  # nothing but the change opens
    kept = Principal("Ann", Role.OPERATOR, via="local", session=sessions.Bound(sqlite_engine, here, LIMITS))
    with pytest.raises(PasswordChangeRequired):  # nor for a principal made before, whatever the pages did
        export.export(sqlite_engine, "csv", actor=kept)
    before = users.get(sqlite_engine, "ann")
    change = lambda current, new: users.change_password(
        sqlite_engine, "Ann", current, new, address="10.0.0.5", keep=here
    )

    with pytest.raises(ValidationError, match="^Current password: This is not your current password"):
        change(SecretStr("not my password at all"), NEW)
    with pytest.raises(ValidationError, match="^New password: This password is on a list"):
        change(GOOD, SecretStr("password1234"))
    with pytest.raises(ValidationError, match="^New password: Choose a password other than the one you have now"):
        change(GOOD, GOOD)
    assert users.get(sqlite_engine, "ann") == before  # nothing changed yet
    refused = [
        (e.actor, e.client_address, e.action, e.target, e.result, e.detail)
        for e in audit.events(sqlite_engine, ADMIN)
        if e.result == audit.REFUSED
    ]
    # The wrong current password is a failed attempt of the person signed in; a refused new
    # password is no attempt at all (its policy is no secret).
    assert refused == [("ann", "10.0.0.5", "user.password_change", "ann", "refused", "wrong current password")]

    token = change(GOOD, NEW)
    after = users.get(sqlite_engine, "ann")
    assert not after.must_change_password and after.password_changed_at > before.password_changed_at  # type: ignore[operator]
    assert users.authenticate(sqlite_engine, "ann", NEW, address="10.0.0.6").username == "Ann"
    with pytest.raises(users.SignInFailed):
        users.authenticate(sqlite_engine, "ann", GOOD, address="10.0.0.7")
    assert sessions.resume(sqlite_engine, elsewhere, LIMITS) is None  # the other sessions end
    assert sessions.resume(sqlite_engine, here, LIMITS) is None  # and so does this one's old token
    renewed = sessions.Key.of(token)  # this browser goes on under a new one, which opens everything
    assert renewed != here
    me = sessions.principal(sqlite_engine, renewed, LIMITS)
    assert me is not None and me.name == "Ann" and export.export(sqlite_engine, "csv", actor=me)
    assert sessions.resume(sqlite_engine, keepers, LIMITS) is not None  # nobody else's
    changed = [
        (e.actor, e.client_address, e.target, e.detail)
        for e in audit.events(sqlite_engine, ADMIN)
        if e.action == "user.password_change" and e.result == audit.OK
    ]
    assert changed == [("Ann", "10.0.0.5", "Ann", "every session ended; this browser's renewed")]
    stored = json.dumps([e.model_dump() for e in audit.events(sqlite_engine, ADMIN)], default=str)
    assert NEW.get_secret_value() not in stored and GOOD.get_secret_value() not in stored


def test_wrong_current_passwords_are_throttled_like_sign_ins(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "viewer", actor=ADMIN)
    here = session_of(sqlite_engine, "ann")
    now = utcnow()
    for n in range(users.FAILURES_ALLOWED):
        with pytest.raises(ValidationError, match="^Current password"):
            users.change_password(
                sqlite_engine, "ann", SecretStr(f"guess number {n}"), NEW, address="10.0.0.5", keep=here, now=now
            )
    for _ in range(2):
        with pytest.raises(users.Throttled):  # even the right one waits now
            users.change_password(sqlite_engine, "ann", GOOD, NEW, address="10.0.0.5", keep=here, now=now)
    with pytest.raises(users.Throttled):  # and so does a sign-in of the account from that address
        users.authenticate(sqlite_engine, "ann", GOOD, address="10.0.0.5", now=now)
    assert users.get(sqlite_engine, "ann").must_change_password
    noted = [e.action for e in audit.events(sqlite_engine, ADMIN) if e.detail == users.THROTTLED]
    assert noted == ["user.password_change", "sign_in"]  # one row per window and action, not per attempt
    assert users.authenticate(sqlite_engine, "ann", GOOD, address="192.0.2.1", now=now)  # not from elsewhere


def test_a_sign_in_is_remembered_on_the_account(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "Ann", GOOD, "viewer", actor=ADMIN, own_password=True)
    assert users.get(sqlite_engine, "ann").last_sign_in_at is None
    at = utcnow() - timedelta(minutes=3)
    sessions.start(
        sqlite_engine, sessions.Key.of(sessions.new_token()), Principal("Ann", Role.VIEWER, via="local"), now=at
    )
    assert users.get(sqlite_engine, "ann").last_sign_in_at == at
    # An OIDC identity has no account here; its sign-in touches none.
    sessions.start(sqlite_engine, sessions.Key.of("oidc:x"), Principal("ann", Role.VIEWER, via="oidc"))
    assert users.get(sqlite_engine, "ann").last_sign_in_at == at


def test_the_users_table_shows_the_last_sign_in_in_utc_or_never(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "ann", GOOD, "viewer", actor=ADMIN)
    users.add(sqlite_engine, "bob", GOOD, "viewer", actor=ADMIN, own_password=True)
    evening = datetime(2026, 12, 1, 19, 5, 59, tzinfo=UTC)
    sessions.start(
        sqlite_engine, sessions.Key.of(sessions.new_token()), Principal("bob", Role.VIEWER, via="local"), now=evening
    )
    frame = table(users.list_users(sqlite_engine)).set_index("User")
    assert frame.loc["ann", "Last sign-in"] == "Never" and frame.loc["bob", "Last sign-in"] == "2026-12-01 19:05 UTC"
    assert frame.loc["ann", "Password changed"].endswith(" UTC (set by an admin, not yet changed)")
    assert frame.loc["bob", "Password changed"].endswith(" UTC")
    assert "None" not in frame.to_string() and "NaT" not in frame.to_string()


def test_existing_accounts_upgrade_without_a_forced_change(database_url: str) -> None:
    engine = db.make_engine(database_url)
    command.upgrade(db._alembic_config(engine), "0006")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO app_user (username, username_key, role, password_hash, created_at) "
                "VALUES ('old', 'old', 'admin', 'x', :now)"
            ),
            {"now": utcnow()},
        )
    db.upgrade(engine)
    view = users.get(engine, "old")
    assert view.must_change_password is False and view.last_sign_in_at is None
    engine.dispose()

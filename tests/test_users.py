"""Local accounts: argon2id hashes, the password policy, roles, throttled sign-in without
user enumeration, and an audit row for every change and attempt."""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import select

from lib import audit, users
from lib.errors import NotFoundError, ValidationError
from lib.store.db import read_session, write_session
from lib.store.models import User, utcnow
from tests.fixtures.people import ADMIN

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
    assert [e.action for e in audit.events(sqlite_engine, ADMIN)] == ["user.add", "user.add", "user.set_role", "user.remove"]


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
        for name in timings:
            start = time.perf_counter()
            with pytest.raises(users.SignInFailed) as info:
                users.authenticate(sqlite_engine, name, SecretStr(f"wrong password {round_}"),
                                   address=f"192.0.2.{round_}{name == 'ghost'}")
            timings[name].append(time.perf_counter() - start)
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
    # A new tab, a new session, even the right password: the account must wait.
    with pytest.raises(users.Throttled) as info:
        users.authenticate(sqlite_engine, "ann", GOOD, address="b", now=now)
    assert 0 < info.value.retry_after <= 1.0
    later = now + timedelta(seconds=2)
    with pytest.raises(users.SignInFailed):
        users.authenticate(sqlite_engine, "ann", SecretStr("nope-again-1"), address="b", now=later)
    assert users.wait_required(sqlite_engine, "ann", "c", now=later) > 1.0  # doubled
    after_window = now + users.WINDOW + timedelta(seconds=5)
    assert users.authenticate(sqlite_engine, "ann", GOOD, address="c", now=after_window).username == "ann"


def test_throttling_by_address_covers_unknown_accounts(sqlite_engine: Engine) -> None:
    now = utcnow()
    for n in range(users.FAILURES_ALLOWED):
        with pytest.raises(users.SignInFailed):
            users.authenticate(sqlite_engine, f"guess{n}", SecretStr("whatever-123"), address="203.0.113.9", now=now)
    with pytest.raises(users.Throttled):
        users.authenticate(sqlite_engine, "another", SecretStr("whatever-123"), address="203.0.113.9", now=now)


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
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root),
           "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",
           "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "conf" / "keyring.json")}

    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "lib", "users", *args], input=stdin, env=env,
                              capture_output=True, text=True)

    assert run("add", "ann", "--role", "admin", "--password-stdin", stdin=GOOD.get_secret_value() + "\n").returncode == 0
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

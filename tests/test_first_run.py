"""The first admin: a one-time setup code only while no user exists; single-use, expiring,
stored as a hash; the account and the spent code are saved together or not at all."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from lib.kernel.errors import ValidationError
from lib.services.accounts import first_run, users
from lib.store.models import utcnow
from tests.fixtures.people import ADMIN

PASSWORD = SecretStr("cobalt lantern orchard 42")


def redeem(engine: Engine, code: str, name: str = "root", password: SecretStr = PASSWORD, **kw: object):
    return first_run.redeem(engine, SecretStr(code), name, password, address="10.0.0.1", **kw)  # type: ignore[arg-type]


def test_code_is_random_hashed_and_single_use(sqlite_engine: Engine) -> None:
    code = first_run.issue(sqlite_engine)
    assert code is not None and len(code) == 19 and code.count("-") == 3
    with sqlite_engine.connect() as conn:
        assert code not in str(conn.execute(text("select * from setup_code")).all())
    admin = redeem(sqlite_engine, code)
    assert admin.name == "root" and admin.role == "admin"
    assert users.get(sqlite_engine, "root").role == "admin"
    with pytest.raises(ValidationError, match="^Setup code: Switchboard has been set up already"):
        redeem(sqlite_engine, code, "second")
    assert first_run.issue(sqlite_engine) is None  # users exist: no more codes


def test_a_refused_password_spends_nothing(sqlite_engine: Engine) -> None:
    code = first_run.issue(sqlite_engine)
    assert code
    with pytest.raises(ValidationError, match="^Password: Use at least 12 characters"):
        redeem(sqlite_engine, code, password=SecretStr("short"))
    assert users.count(sqlite_engine) == 0
    redeem(sqlite_engine, code)  # still valid


def test_codes_expire_and_a_new_one_retires_the_old(sqlite_engine: Engine) -> None:
    old = first_run.issue(sqlite_engine)
    new = first_run.issue(sqlite_engine)  # a restart prints a fresh code
    assert old and new and old != new
    with pytest.raises(ValidationError, match=first_run.CODE_SPENT):
        redeem(sqlite_engine, old)
    with pytest.raises(ValidationError, match=first_run.CODE_SPENT):
        redeem(sqlite_engine, new, now=utcnow() + first_run.CODE_LIFETIME + timedelta(seconds=1))
    redeem(sqlite_engine, new)


def test_a_typo_in_the_code_is_not_told_to_restart_the_server(sqlite_engine: Engine) -> None:
    code = first_run.issue(sqlite_engine)
    assert code
    typo = ("B" if code[0] != "B" else "C") + code[1:]
    with pytest.raises(ValidationError) as info:
        redeem(sqlite_engine, typo)
    assert [(e.field, e.label) for e in info.value.errors] == [("setup_code", "Setup code")]
    assert "type it again" in str(info.value) and "restart" not in str(info.value).lower()
    redeem(sqlite_engine, code.lower().replace("-", ""))  # case and dashes do not matter


def test_wrong_codes_are_throttled(sqlite_engine: Engine) -> None:
    code = first_run.issue(sqlite_engine)
    assert code
    for _ in range(users.FAILURES_ALLOWED):
        with pytest.raises(ValidationError):
            redeem(sqlite_engine, "AAAA-AAAA-AAAA-AAAA")
    with pytest.raises(users.Throttled):
        redeem(sqlite_engine, code)


def test_no_code_once_the_shell_made_an_admin(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "root", PASSWORD, "admin", actor=ADMIN)
    assert first_run.issue(sqlite_engine) is None and not first_run.needs_setup(sqlite_engine)

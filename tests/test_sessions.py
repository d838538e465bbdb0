"""Server-side sessions: idle and absolute limits, sign-out for every tab, and the account
changes that end sessions. The database holds only a hash of each token."""

from __future__ import annotations

from datetime import timedelta

from pydantic import SecretStr
from sqlalchemy import Engine, text

from lib.services.accounts import sessions, users
from lib.services.accounts.sessions import Limits
from lib.services.guard.access import Principal, Role
from lib.store import db
from lib.store.models import utcnow
from tests.fixtures.people import ADMIN

LIMITS = Limits(idle=timedelta(minutes=30), lifetime=timedelta(hours=12))
ANN = Principal("ann", Role.OPERATOR, "10.0.0.5", "local")


def signed_in(engine: Engine, who: Principal = ANN) -> sessions.Key:
    """A new sign-in of ``who`` (their account is made if missing); its session's key."""
    if not any(u.username == who.name for u in users.list_users(engine)):
        users.add(engine, who.name, SecretStr("cobalt lantern orchard 42"), who.role.value, actor=ADMIN)
    key = sessions.Key.of(sessions.new_token())
    sessions.start(engine, key, who)
    return key


def test_a_live_session_resumes_in_any_tab_and_the_token_is_stored_hashed(sqlite_engine: Engine) -> None:
    token = sessions.new_token()
    users.add(sqlite_engine, "ann", SecretStr("cobalt lantern orchard 42"), "operator", actor=ADMIN)
    sessions.start(sqlite_engine, sessions.Key.of(token), ANN)
    for _tab in range(3):  # a reload or a new tab sends the same cookie
        live = sessions.resume(sqlite_engine, sessions.Key.of(token), LIMITS)
        assert live is not None and live.subject == "ann" and live.via == "local" and live.role is Role.OPERATOR
    with sqlite_engine.connect() as conn:
        stored = conn.execute(text("select token_hash from web_session")).scalar_one()
    assert token not in stored and len(stored) == 64
    assert sessions.resume(sqlite_engine, sessions.Key.of(token + "x"), LIMITS) is None
    assert sessions.resume(sqlite_engine, None, LIMITS) is None


def test_idle_timeout_ends_the_session(sqlite_engine: Engine) -> None:
    token = signed_in(sqlite_engine)
    start = utcnow()
    assert sessions.resume(sqlite_engine, token, LIMITS, now=start + timedelta(minutes=29)) is not None
    # Activity at minute 29 moved the idle clock: minute 58 is 29 minutes idle.
    assert sessions.resume(sqlite_engine, token, LIMITS, now=start + timedelta(minutes=58)) is not None
    assert sessions.resume(sqlite_engine, token, LIMITS, now=start + timedelta(minutes=89)) is None
    # Once ended, it stays ended.
    assert sessions.resume(sqlite_engine, token, LIMITS, now=start + timedelta(minutes=90)) is None


def test_absolute_lifetime_ends_even_an_active_session(sqlite_engine: Engine) -> None:
    token = signed_in(sqlite_engine)
    start = utcnow()
    for minute in range(20, 12 * 60, 20):
        assert sessions.resume(sqlite_engine, token, LIMITS, now=start + timedelta(minutes=minute)) is not None
    assert sessions.resume(sqlite_engine, token, LIMITS, now=start + timedelta(hours=12, minutes=1)) is None


def test_sign_out_ends_it_everywhere_once(sqlite_engine: Engine) -> None:
    token = signed_in(sqlite_engine)
    other = signed_in(sqlite_engine)  # another browser of the same person
    assert sessions.end(sqlite_engine, token, ANN) is True
    assert sessions.resume(sqlite_engine, token, LIMITS) is None
    assert sessions.end(sqlite_engine, token, ANN) is False
    assert sessions.resume(sqlite_engine, other, LIMITS) is not None


def test_password_reset_and_removal_end_every_session_of_the_account(sqlite_engine: Engine) -> None:
    users.add(sqlite_engine, "keeper", SecretStr("cobalt lantern orchard 42"), "admin", actor=ADMIN)
    first, second = signed_in(sqlite_engine), signed_in(sqlite_engine)
    keeper = signed_in(sqlite_engine, Principal("keeper", Role.ADMIN, via="local"))
    users.reset_password(sqlite_engine, "ann", SecretStr("a whole new passphrase 3"), actor=ADMIN)
    assert sessions.resume(sqlite_engine, first, LIMITS) is None
    assert sessions.resume(sqlite_engine, second, LIMITS) is None
    assert sessions.resume(sqlite_engine, keeper, LIMITS) is not None
    third = signed_in(sqlite_engine)
    users.remove(sqlite_engine, "ann", actor=ADMIN)
    assert sessions.resume(sqlite_engine, third, LIMITS) is None


def test_reauthentication_is_recorded_on_the_session(sqlite_engine: Engine) -> None:
    token = signed_in(sqlite_engine)
    assert sessions.resume(sqlite_engine, token, LIMITS).reauthenticated_at is None  # type: ignore[union-attr]
    sessions.mark_reauthenticated(sqlite_engine, token, ANN)
    live = sessions.resume(sqlite_engine, token, LIMITS)
    assert live is not None and live.reauthenticated_at is not None


def test_oidc_keys_differ_per_sign_in_and_match_across_tabs() -> None:
    claims = {"iss": "https://idp", "sub": "42", "iat": 1000, "nonce": "n1", "email": "a@example.com"}
    assert sessions.oidc_key(claims) == sessions.oidc_key(dict(claims))
    assert sessions.oidc_key(claims) != sessions.oidc_key({**claims, "iat": 2000})


def test_a_renewed_session_is_the_same_sign_in_under_a_new_token(sqlite_engine: Engine) -> None:
    """Issue 21, item 11: what a password change does to the browser that made it."""
    old = signed_in(sqlite_engine)
    sessions.mark_reauthenticated(sqlite_engine, old, ANN)
    proven = sessions.resume(sqlite_engine, old, LIMITS)
    with db.write_session(sqlite_engine) as session:
        token = sessions.renew(session, old, utcnow())
    assert sessions.resume(sqlite_engine, old, LIMITS) is None  # a copy of the old cookie is worth nothing
    live = sessions.resume(sqlite_engine, sessions.Key.of(token), LIMITS)
    assert live is not None and proven is not None
    assert (live.subject, live.via, live.role, live.reauthenticated_at) == (
        "ann",
        "local",
        Role.OPERATOR,
        proven.reauthenticated_at,
    )

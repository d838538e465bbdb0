"""Local accounts: roles, argon2id password hashes, the password policy, and sign-in with
throttling kept in the database (per account and address, per address, and a higher ceiling
per account).

Sign-in answers the same way, in about the same time, whether the account exists or not.
"""

from __future__ import annotations

import ipaddress
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import SecretStr
from sqlalchemy import Engine, case, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from lib.kernel.errors import FieldError, NotFoundError, SwitchboardError, ValidationError
from lib.services.accounts import sessions
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, Role, require
from lib.store.db import read_session, serialize, write_session
from lib.store.models import AuditEvent, SignInAttempt, User, utcnow

PASSWORD_MIN = 12
PASSWORD_MAX = 256
USERNAME = re.compile(r"^[A-Za-z0-9._@+-]{1,120}$")
# Failed attempts allowed within WINDOW before each further one must wait (see _delay): for one
# account from one client address; from one address over every account (one password tried on
# many names); and for one account from every address together, a ceiling far above what one
# address may do, so that nobody keeps an account's owner out with a few guesses of their own.
FAILURES_ALLOWED = 5
ADDRESS_FAILURES_ALLOWED = 20
ACCOUNT_FAILURES_ALLOWED = 100
WINDOW = timedelta(minutes=15)
MAX_DELAY = timedelta(minutes=15)
GENERIC_FAILURE = "The user name or password is not right."

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile: t=3, m=64 MiB, p=4


@dataclass(frozen=True)
class UserView:
    id: int
    username: str
    role: Role
    local: bool  # has a password (else signs in through OIDC)
    created_at: datetime
    password_changed_at: datetime | None
    must_change_password: bool  # an admin set the password; they choose their own at the next sign-in
    last_sign_in_at: datetime | None


class Throttled(SwitchboardError):
    """Too many failed attempts: wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        self.retry_after = retry_after
        super().__init__(message or f"Too many failed sign-in attempts. Try again in {int(retry_after) + 1} seconds.")


class SignInFailed(SwitchboardError):
    def __init__(self) -> None:
        super().__init__(GENERIC_FAILURE)


# What people call each input, in every message that refuses one.
FIELD_LABELS = {
    "username": "User name",
    "role": "Role",
    "password": "Password",
    "current_password": "Current password",
    "new_password": "New password",
}
_ROLE_CHOICES = f"Choose one of: {', '.join(r.value for r in Role)}."


def _refused(field: str, message: str) -> FieldError:
    return FieldError(field, FIELD_LABELS[field], message)


class WrongPassword(SwitchboardError):
    """Re-authentication failed: only the password was asked (the account is the signed-in
    one), so the answer names the password and nothing else."""

    def __init__(self) -> None:
        super().__init__("That is not your password. Type the password you sign in with, then Confirm again.")


# --- the password policy ------------------------------------------------------------------


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problems(password: str, username: str = "") -> list[str]:
    """What is wrong with a new password (empty when it is acceptable). No composition
    rules: length, a common-password list, and not the user name."""
    problems = []
    if len(password) < PASSWORD_MIN:
        problems.append(f"Use at least {PASSWORD_MIN} characters; a few unrelated words make a good one.")
    if len(password) > PASSWORD_MAX:
        problems.append(f"Use at most {PASSWORD_MAX} characters.")
    folded = password.casefold()
    # "password1234" is "password" with a counter: strip trailing digits and symbols too.
    core = re.sub(r"[\d\W_]+$", "", folded)
    if folded in _common_passwords() or (len(core) >= 4 and core in _common_passwords()):
        problems.append("This password is on a list of commonly used passwords; choose another.")
    if username and username.casefold() in folded:
        problems.append("The password must not contain the user name.")
    return problems


def _check_new(username: str, password: SecretStr, role: str) -> None:
    errors = []
    if not USERNAME.match(username):
        errors.append(_refused("username", "Use 1-120 letters, digits or . _ @ + -, e.g. an e-mail address."))
    if role not in {r.value for r in Role}:
        errors.append(_refused("role", _ROLE_CHOICES))
    errors += [_refused("password", p) for p in password_problems(password.get_secret_value(), username)]
    if errors:
        raise ValidationError(errors)


# --- accounts -----------------------------------------------------------------------------


def _view(user: User) -> UserView:
    assert user.id is not None
    return UserView(
        user.id,
        user.username,
        Role(user.role),
        user.password_hash is not None,
        user.created_at,
        user.password_changed_at,
        user.must_change_password,
        user.last_sign_in_at,
    )


def count_in(session: Session) -> int:
    """How many accounts exist, inside the caller's transaction."""
    return session.connection().execute(select(func.count()).select_from(User)).scalar_one()


def count(engine: Engine) -> int:
    with read_session(engine) as session:
        return count_in(session)


def insert(
    session: Session, username: str, password: SecretStr, role: str, *, actor: Principal, own_password: bool = False
) -> None:
    """Add a local account inside the caller's transaction (validated, hashed, audited). The
    person must change a password someone else chose at their first sign-in, unless
    ``own_password`` says they chose it themselves."""
    require(actor, Permission.MANAGE_USERS, recent_proof=True)
    username = username.strip()
    _check_new(username, password, role)
    now = utcnow()
    session.add(
        User(
            username=username,
            username_key=username.casefold(),
            role=role,
            password_hash=_hasher.hash(password.get_secret_value()),
            created_at=now,
            password_changed_at=now,
            must_change_password=not own_password,
        )
    )
    audit.record(session, actor, "user.add", username, audit.OK, f"role {role}")


def add(
    engine: Engine, username: str, password: SecretStr, role: str, *, actor: Principal, own_password: bool = False
) -> UserView:
    try:
        with write_session(engine) as session:
            insert(session, username, password, role, actor=actor, own_password=own_password)
    except IntegrityError:
        raise _name_taken() from None
    return get(engine, username)


def _name_taken() -> ValidationError:
    return ValidationError([_refused("username", "This user name is taken (names ignore case).")])


def get(engine: Engine, username: str) -> UserView:
    with read_session(engine) as session:
        user = session.scalars(select(User).where(col(User.username_key) == username.strip().casefold())).first()
        if user is None:
            raise NotFoundError(f"No user is named '{username}'.")
        return _view(user)


def list_users(engine: Engine) -> list[UserView]:
    with read_session(engine) as session:
        return [_view(u) for u in session.scalars(select(User).order_by(col(User.username_key))).all()]


def _change(
    engine: Engine, username: str, action: str, detail: str, actor: Principal, apply: Callable[[Session, User], None]
) -> None:
    """Apply one change to one account in a transaction, never leaving Switchboard without an admin."""
    require(actor, Permission.MANAGE_USERS, recent_proof=True)
    with write_session(engine) as session:
        user = session.scalars(select(User).where(col(User.username_key) == username.strip().casefold())).first()
        if user is None:
            raise NotFoundError(f"No user is named '{username}'.")
        was_admin = user.role == Role.ADMIN
        apply(session, user)
        stays_admin = action != "user.remove" and user.role == Role.ADMIN
        if was_admin and not stays_admin:
            others = (
                session.connection()
                .execute(
                    select(func.count())
                    .select_from(User)
                    .where(col(User.role) == Role.ADMIN.value, col(User.id) != user.id)
                )
                .scalar_one()
            )
            if others == 0:
                raise ValidationError([_refused("role", "This is the last admin; make another person an admin first.")])
        audit.record(session, actor, action, user.username, audit.OK, detail)


def remove(engine: Engine, username: str, *, actor: Principal) -> None:
    def apply(session: Session, user: User) -> None:
        session.delete(user)
        sessions.end_all_for(session, user.username)

    _change(engine, username, "user.remove", "", actor, apply)


def set_role(engine: Engine, username: str, role: str, *, actor: Principal) -> None:
    if role not in {r.value for r in Role}:
        raise ValidationError([_refused("role", _ROLE_CHOICES)])

    def apply(_session: Session, user: User) -> None:
        user.role = role

    _change(engine, username, "user.set_role", f"role {role}", actor, apply)


def reset_password(
    engine: Engine, username: str, password: SecretStr, *, actor: Principal, own_password: bool = False
) -> None:
    """A new password chosen by an admin: the account is signed out everywhere, and its owner
    must choose their own at the next sign-in (not when admins reset their own, or
    ``own_password`` says the person chose it)."""
    problems = password_problems(password.get_secret_value(), username)
    if problems:
        raise ValidationError([_refused("password", p) for p in problems])
    new_hash = _hasher.hash(password.get_secret_value())

    def apply(session: Session, user: User) -> None:
        user.password_hash, user.password_changed_at = new_hash, utcnow()
        user.must_change_password = not own_password and user.username != actor.name
        sessions.end_all_for(session, user.username)  # a reset signs the account out everywhere

    _change(engine, username, "user.reset_password", "", actor, apply)


# --- sign-in ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified when the account does not exist, so both answers cost one argon2 verification.
    Made at the first sign-in, not when the server starts (one hash costs ~0.1 s)."""
    return _hasher.hash("switchboard: no such account")


# Each argon2 verification holds 64 MiB for a moment: at most this many run at once in a
# process, and an attempt beyond them is answered "busy" at once instead of queueing.
VERIFICATIONS_AT_ONCE = 2
verifying = threading.BoundedSemaphore(VERIFICATIONS_AT_ONCE)  # held while argon2 runs
THROTTLED = "throttled: too many recent failures; further refusals in this window are not recorded one by one"


class Busy(Throttled):
    """Too many sign-ins are being checked at this moment."""

    def __init__(self) -> None:
        super().__init__(1.0, "Switchboard is checking other sign-ins right now. Try again in a few seconds.")


def address_scope(address: str) -> str:
    """What the throttle counts an address as: an IPv4 address alone, an IPv6 address by its
    /64 (one subscriber gets a whole /64, so single IPv6 addresses cost an attacker nothing)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def _failures_since(
    session: Session, since: datetime, key: str, address: str
) -> list[tuple[int, datetime | None, int]]:
    """Attempts since ``since`` that did not succeed (an attempt still being checked counts as
    failed), as (how many, the latest, how many are allowed) for each scope throttling counts:
    this account from this address, this address, this account."""
    by_account = col(SignInAttempt.username_key) == key
    by_address = col(SignInAttempt.address) == address_scope(address)
    scopes = (
        (by_account & by_address, FAILURES_ALLOWED),
        (by_address, ADDRESS_FAILURES_ALLOWED),
        (by_account, ACCOUNT_FAILURES_ALLOWED),
    )
    columns = [
        column
        for which, _allowed in scopes
        for column in (func.sum(case((which, 1), else_=0)), func.max(case((which, SignInAttempt.at))))
    ]
    row = (
        session.connection()
        .execute(
            select(*columns).where(
                col(SignInAttempt.at) >= since, col(SignInAttempt.success).is_(False), by_account | by_address
            )
        )
        .one()
    )
    return [(row[2 * n] or 0, row[2 * n + 1], allowed) for n, (_which, allowed) in enumerate(scopes)]


def _delay(failures: int, latest: datetime | None, allowed: int, now: datetime) -> float:
    """None for the first ``allowed`` failures in WINDOW, then doubling from 1 s per further
    failure, capped at MAX_DELAY."""
    if failures < allowed or latest is None:
        return 0.0
    delay = min(MAX_DELAY.total_seconds(), 2.0 ** min(failures - allowed, 32))
    return max(0.0, (latest + timedelta(seconds=delay) - now).total_seconds())


def _wait(session: Session, key: str, address: str, now: datetime) -> float:
    """Seconds to wait: the longest any scope asks."""
    return max(
        _delay(failures, latest, allowed, now)
        for failures, latest, allowed in _failures_since(session, now - WINDOW, key, address)
    )


def wait_required(engine: Engine, username: str, address: str, now: datetime | None = None) -> float:
    """Seconds to wait before the next attempt for this account from this address."""
    now = now or utcnow()
    with read_session(engine) as session:
        return _wait(session, username.strip().casefold(), address, now)


def _note_throttled(session: Session, key: str, address: str, action: str, now: datetime) -> None:
    """One audit row per window for a throttled account or address, not one per attempt."""
    noted = (
        session.connection()
        .execute(
            select(col(AuditEvent.id))
            .where(
                col(AuditEvent.at) >= now - WINDOW,
                col(AuditEvent.action) == action,
                col(AuditEvent.result) == audit.REFUSED,
                col(AuditEvent.detail) == THROTTLED,
                (col(AuditEvent.target) == key) | (col(AuditEvent.client_address) == (address or None)),
            )
            .limit(1)
        )
        .first()
    )
    if noted is None:
        audit.record(
            session, Principal("anonymous", Role.VIEWER, address or None), action, key, audit.REFUSED, THROTTLED
        )


def claim_attempt(engine: Engine, key: str, address: str, action: str, now: datetime | None = None) -> int:
    """Count an attempt *before* its secret is checked, so that concurrent attempts cannot
    all slip under the limit: the count and the new row are one serialized transaction, and
    the row counts as failed until :func:`settle_attempt` says otherwise. Raises Throttled
    (audited once per window) instead of counting an attempt that must wait."""
    now = now or utcnow()
    with write_session(engine) as session:
        serialize(session, "sign-in attempts")
        wait = _wait(session, key, address, now)
        if wait > 0:
            _note_throttled(session, key, address, action, now)
        else:
            attempt = SignInAttempt(at=now, username_key=key, address=address_scope(address), success=False)
            session.add(attempt)
            session.flush()
            assert attempt.id is not None
            return attempt.id
    raise Throttled(wait)


REAUTHENTICATE = "reauthenticate"  # the attempt's action when a signed-in person proves it is them
CHANGE_PASSWORD = "user.password_change"  # ... or changes their own password
# Attempts of a person already signed in: only the password was asked, so a failure is theirs.
_SIGNED_IN_FAILURES = {REAUTHENTICATE: "wrong password", CHANGE_PASSWORD: "wrong current password"}


def settle_attempt(session: Session, attempt_id: int, *, ok: bool, key: str, address: str, action: str) -> None:
    """Record how a claimed attempt ended, in the caller's transaction; a failure is audited."""
    if ok:
        session.execute(sql_update(SignInAttempt).where(col(SignInAttempt.id) == attempt_id).values(success=True))
    elif action in _SIGNED_IN_FAILURES:
        audit.record(
            session,
            Principal(key, Role.VIEWER, address or None),
            action,
            key,
            audit.REFUSED,
            _SIGNED_IN_FAILURES[action],
        )
    else:
        audit.record(
            session,
            Principal("anonymous", Role.VIEWER, address or None),
            action,
            key,
            audit.REFUSED,
            "wrong user name, password or code",
        )


def authenticate(
    engine: Engine,
    username: str,
    password: SecretStr,
    *,
    address: str,
    now: datetime | None = None,
    action: str = "sign_in",
) -> UserView:
    """The account, or SignInFailed (same message whether the account exists or not), or
    Throttled (Busy when too many verifications run already). Every attempt counts towards
    throttling and a failure is audited here; a success is audited by whoever acts on it (a
    new session, a re-authentication). The hash is upgraded when the hasher's parameters
    changed."""
    key = username.strip().casefold()
    if not verifying.acquire(blocking=False):
        raise Busy()
    try:
        attempt = claim_attempt(engine, key, address, action, now)
        with read_session(engine) as session:
            user = session.scalars(select(User).where(col(User.username_key) == key)).first()
        dummy = _dummy_hash()
        stored = user.password_hash if user is not None and user.password_hash else dummy
        try:
            ok = _hasher.verify(stored, password.get_secret_value()) and stored is not dummy
        except (VerificationError, InvalidHashError):
            ok = False
        rehash = _hasher.hash(password.get_secret_value()) if ok and _hasher.check_needs_rehash(stored) else None
    finally:
        verifying.release()
    with write_session(engine) as session:
        settle_attempt(session, attempt, ok=ok, key=key, address=address, action=action)
        if rehash is not None and user is not None:
            session.execute(sql_update(User).where(col(User.id) == user.id).values(password_hash=rehash))
    if not ok or user is None:
        raise SignInFailed()
    return _view(user)


# --- people's own passwords -------------------------------------------------------------


def change_password(
    engine: Engine,
    username: str,
    current: SecretStr,
    new: SecretStr,
    *,
    address: str,
    keep: sessions.Key,
    now: datetime | None = None,
) -> str | None:
    """A signed-in person replaces their own password. The current one is checked like a
    sign-in (counted first, throttled, a failure audited under the person); the new one
    obeys the policy and differs from it. Every session of theirs ends, ``keep`` (the one
    that made the change) included: its browser stays signed in under the new token this
    returns (None when its session ended meanwhile: it signs in again), so a stolen copy of
    its cookie stops working too. An admin's demand for a change is met. Raises
    ValidationError (naming the field) or Throttled."""
    problems = password_problems(new.get_secret_value(), username)
    if new.get_secret_value() == current.get_secret_value():
        problems.append("Choose a password other than the one you have now.")
    if problems:
        raise ValidationError([_refused("new_password", p) for p in problems])
    try:
        view = authenticate(engine, username, current, address=address, now=now, action=CHANGE_PASSWORD)
    except SignInFailed:
        raise ValidationError(
            [_refused("current_password", "This is not your current password. Type the one you signed in with.")]
        ) from None
    new_hash = _hasher.hash(new.get_secret_value())
    now = now or utcnow()
    with write_session(engine) as session:
        session.execute(
            sql_update(User)
            .where(col(User.id) == view.id)
            .values(password_hash=new_hash, password_changed_at=now, must_change_password=False)
        )
        sessions.end_all_for(session, view.username, now)
        token = sessions.renew(session, keep, now)
        audit.record(
            session,
            Principal(view.username, view.role, address or None),
            CHANGE_PASSWORD,
            view.username,
            audit.OK,
            "every session ended; this browser's renewed",
        )
    return token

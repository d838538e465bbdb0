"""The first admin: no default account exists; a one-time setup code, printed on the server's
console when it starts with no users, lets the first visitor create one.

The code is random (80 bits), stored only as a SHA-256, single-use, and expires after an
hour; a restart with still no users prints a fresh one. ``switchboard users add --role
admin --own-password`` is the shell's way to the same end.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import Engine, select, update
from sqlmodel import col

from lib.kernel.errors import FieldError, ValidationError
from lib.services.accounts import users
from lib.services.guard.access import Principal, Role
from lib.store.db import write_session
from lib.store.models import SetupCode, utcnow

CODE_LIFETIME = timedelta(hours=1)
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O or 1/I to misread
SETUP_KEY = "(setup code)"  # what wrong codes are counted and audited under
# A typo needs another look at the code; only a spent code needs the server restarted.
CODE_WRONG = (
    "This is not the setup code. Compare it with the one printed on the Switchboard server's "
    "console and type it again (dashes and upper or lower case do not matter)."
)
CODE_SPENT = (
    "This setup code has expired or was used already. Use the newest code the server printed; "
    "if there is none, restart the Switchboard server and it prints a new one."
)
HAS_USERS = "Switchboard has been set up already: sign in, or ask an admin for an account."


def _hash(code: str) -> str:
    normalised = "".join(ch for ch in code.upper() if ch.isalnum())
    return hashlib.sha256(normalised.encode()).hexdigest()


def _new_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def issue(engine: Engine, *, now: datetime | None = None) -> str | None:
    """A fresh setup code when there are no users yet (earlier codes stop working), else None."""
    now = now or utcnow()
    with write_session(engine) as session:
        if users.count_in(session):
            return None
        session.execute(update(SetupCode).where(col(SetupCode.used_at).is_(None)).values(expires_at=now))
        code = _new_code()
        session.add(SetupCode(code_hash=_hash(code), created_at=now, expires_at=now + CODE_LIFETIME))
    return code


def needs_setup(engine: Engine) -> bool:
    return users.count(engine) == 0


def redeem(
    engine: Engine, code: SecretStr, username: str, password: SecretStr, *, address: str, now: datetime | None = None
) -> Principal:
    """Create the first admin with a valid code, in one transaction: the code is spent and
    the account made together, or neither. Wrong codes count as failed sign-ins, counted
    before the code is looked at (see users.claim_attempt)."""
    now = now or utcnow()
    attempt = users.claim_attempt(engine, SETUP_KEY, address, "setup", now)
    admin = Principal(username.strip(), Role.ADMIN, address or None, "local")
    problem: str | None = CODE_WRONG  # of the code: a weak new password is refused, but is no failed attempt
    try:
        with write_session(engine) as session:
            rows = session.scalars(select(SetupCode)).all()
            wanted = _hash(code.get_secret_value())
            match = next((row for row in rows if hmac.compare_digest(row.code_hash, wanted)), None)
            problem = (
                HAS_USERS
                if users.count_in(session)
                else CODE_WRONG
                if match is None
                else CODE_SPENT
                if match.used_at is not None or match.expires_at <= now
                else None
            )
            if match is not None and problem is None:
                match.used_at = now
                setup = Principal("setup code", Role.ADMIN, address or None, "setup code")
                users.insert(session, username, password, Role.ADMIN.value, actor=setup, own_password=True)
    finally:
        with write_session(engine) as session:
            users.settle_attempt(session, attempt, ok=problem is None, key=SETUP_KEY, address=address, action="setup")
    if problem is not None:
        raise ValidationError([FieldError("setup_code", "Setup code", problem)])
    return admin

"""Server-side sign-in sessions, shared by every tab of a browser.

A local sign-in gets a random token in an HttpOnly, SameSite=Lax cookie (``__Host-`` where
the browser keeps one: ``lib.web.cookie``); an OIDC sign-in is keyed by its ID token (issuer,
subject, issue time). Either way the row decides: ending
it signs out every tab at its next step, and the idle and absolute limits are checked on
every use. Only a SHA-256 of the token is stored, and only that digest (a :class:`Key`) is
ever held in memory past the request that carried the cookie.

The same row is read again whenever a service call ``require``s a permission (:class:`Bound`),
so a principal kept by a Streamlit callback or download stops working the moment its
session ends, its account goes or its role changes.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, func, select, update
from sqlmodel import Session, col

from lib.services.guard import audit
from lib.services.guard.access import PasswordChangeRequired, Principal, Role, Standing
from lib.store.db import read_session, write_session
from lib.store.models import User, WebSession, utcnow

# The session cookie as the server's code reads it; the browser may hold it as
# "__Host-switchboard_session" (lib.web.cookie shows the server that one under this name).
COOKIE_NAME = "switchboard_session"
_TOUCH_EVERY = timedelta(seconds=15)  # last_seen is written at most this often


@dataclass(frozen=True)
class Limits:
    idle: timedelta
    lifetime: timedelta


@dataclass(frozen=True)
class Key:
    """Names one session row: the SHA-256 of its cookie token (or OIDC key). It cannot be
    replayed as a cookie, so it may be kept where the token may not."""

    digest: str

    @classmethod
    def of(cls, token: str) -> Key:
        return cls(hashlib.sha256(token.encode()).hexdigest())


@dataclass(frozen=True)
class SignedIn:
    subject: str
    via: str
    role: Role
    created_at: datetime
    reauthenticated_at: datetime | None
    must_change_password: bool = False  # see access.PasswordChangeRequired


def new_token() -> str:
    return secrets.token_urlsafe(32)


def oidc_key(claims: dict[str, object]) -> Key:
    """A stable key for one OIDC sign-in: the same in every tab, new at every sign-in."""
    parts = [str(claims.get(name) or "") for name in ("iss", "sub", "iat", "nonce")]
    return Key.of("oidc:" + "|".join(parts))


def start(engine: Engine, key: Key, principal: Principal, *, now: datetime | None = None) -> None:
    """Record a new sign-in (and its audit row, and a local account's last sign-in). A local
    account's role is read from the account on every use; an OIDC identity's role (from the
    allow-list) is kept on the row."""
    now = now or utcnow()
    local = principal.via == "local"
    with write_session(engine) as session:
        session.add(
            WebSession(
                token_hash=key.digest,
                subject=principal.name,
                via=principal.via,
                role=None if local else principal.role.value,
                address=principal.address or "",
                created_at=now,
                last_seen_at=now,
                reauthenticated_at=principal.reauthenticated_at,
            )
        )
        if local:
            session.execute(
                update(User).where(col(User.username_key) == principal.name.casefold()).values(last_sign_in_at=now)
            )
        audit.record(session, principal, "sign_in", principal.name, audit.OK, f"via {principal.via}")


def known(engine: Engine, key: Key) -> bool:
    """Whether ``key`` ever started a session (ended ones included)."""
    with read_session(engine) as session:
        return (
            session.scalars(select(col(WebSession.id)).where(col(WebSession.token_hash) == key.digest)).first()
            is not None
        )


# The session row and, for a local sign-in, its account: one read over two unique indexes
# (user names are ASCII, so lower() is the casefold the account key holds).
_ROW: Select[*tuple[Any, ...]] = (
    select(
        col(WebSession.id),
        col(WebSession.subject),
        col(WebSession.via),
        col(WebSession.address),
        col(WebSession.created_at),
        col(WebSession.last_seen_at),
        col(WebSession.ended_at),
        col(WebSession.reauthenticated_at),
        col(WebSession.role),
        col(User.role).label("account_role"),
        col(User.must_change_password).label("must_change"),
    )
    .select_from(WebSession)
    .outerjoin(User, col(User.username_key) == func.lower(col(WebSession.subject)))
)


def _read(engine: Engine, key: Key) -> Any:
    """The row of ``_ROW`` for ``key`` (read by column name), or None."""
    with read_session(engine) as session:
        return session.connection().execute(_ROW.where(col(WebSession.token_hash) == key.digest)).first()


def _role(row: Any) -> Role | None:
    """A local session's role is its account's (None once the account is gone); an OIDC
    session's is the one the allow-list gave it."""
    role = row.account_role if row.via == "local" else row.role
    return Role(role) if role else None


def _must_change(row: Any) -> bool:
    """Only a local account has a password an admin could have set."""
    return row.via == "local" and bool(row.must_change)


def _expired_because(row: Any, limits: Limits, now: datetime) -> str | None:
    if now - row.created_at > limits.lifetime:
        return "absolute lifetime reached"
    if now - row.last_seen_at > limits.idle:
        return "idle timeout"
    return None


def standing(engine: Engine, key: Key, limits: Limits, *, now: datetime | None = None) -> Standing | None:
    """The session's role and last proof as they are now, or None when it is not live.
    Read-only: what ``require`` asks before every action."""
    row = _read(engine, key)
    if row is None or row.ended_at is not None or _expired_because(row, limits, now or utcnow()):
        return None
    role = _role(row)
    return None if role is None else Standing(role, row.reauthenticated_at, _must_change(row))


@dataclass(frozen=True)
class Bound:
    """A principal's link to its session row (``access.LiveSession``): holds the digest,
    never the token."""

    engine: Engine
    key: Key
    limits: Limits

    def standing(self) -> Standing | None:
        return standing(self.engine, self.key, self.limits)


def resume(engine: Engine, key: Key | None, limits: Limits, *, now: datetime | None = None) -> SignedIn | None:
    """The live session for ``key``, or None. A session past a limit is ended here; a live
    one has its last activity recorded."""
    if key is None:
        return None
    now = now or utcnow()
    row = _read(engine, key)
    if row is None or row.ended_at is not None:
        return None
    reason = _expired_because(row, limits, now)
    if reason:
        # The role is not part of an audit row; the expiry is recorded under the session's subject.
        _end(
            engine,
            col(WebSession.id) == row.id,
            Principal(row.subject, Role.VIEWER, row.address or None, row.via),
            "session.expired",
            reason,
            now,
        )
        return None
    role = _role(row)
    if role is None:  # the account was removed (its sessions ended with it) or never had a role
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        with write_session(engine) as session:
            session.execute(update(WebSession).where(col(WebSession.id) == row.id).values(last_seen_at=now))
    return SignedIn(row.subject, row.via, role, row.created_at, row.reauthenticated_at, _must_change(row))


def principal(
    engine: Engine, key: Key | None, limits: Limits, *, address: str | None = None, now: datetime | None = None
) -> Principal | None:
    """Who is signed in with ``key`` now, bound to the session so every service call asks
    again; None when nobody is. Raises PasswordChangeRequired while an admin-set password
    waits to be changed (that happens on the server's own page, not in the console)."""
    live = resume(engine, key, limits, now=now)
    if live is None or key is None:
        return None
    if live.must_change_password:
        raise PasswordChangeRequired()
    return Principal(
        live.subject, live.role, address, live.via, live.reauthenticated_at, session=Bound(engine, key, limits)
    )


def assign_role(engine: Engine, key: Key, role: Role) -> None:
    """An OIDC session's role after the allow-list changed (local roles live on the account)."""
    with write_session(engine) as session:
        session.execute(
            update(WebSession)
            .where(col(WebSession.token_hash) == key.digest, col(WebSession.via) != "local")
            .values(role=role.value)
        )


def _end(
    engine: Engine, which: ColumnElement[bool], principal: Principal, action: str, detail: str, now: datetime
) -> bool:
    """End the live session ``which`` selects, with its audit row; False when none was live."""
    with write_session(engine) as session:
        ended = session.exec(
            update(WebSession).where(which, col(WebSession.ended_at).is_(None)).values(ended_at=now)
        ).rowcount
        if ended:
            audit.record(session, principal, action, principal.name, audit.OK, detail)
    return bool(ended)


def end(engine: Engine, key: Key, principal: Principal, *, now: datetime | None = None) -> bool:
    """Sign out: ends the session in every tab. False when it had already ended."""
    return _end(
        engine, col(WebSession.token_hash) == key.digest, principal, "sign_out", f"via {principal.via}", now or utcnow()
    )


def refuse(engine: Engine, key: Key, principal: Principal, reason: str, *, now: datetime | None = None) -> bool:
    """End a session whose identity may no longer come in (taken off the allow-list)."""
    return _end(engine, col(WebSession.token_hash) == key.digest, principal, "session.refused", reason, now or utcnow())


def end_all_for(session: Session, subject: str, now: datetime | None = None) -> None:
    """End every session of ``subject`` inside the caller's transaction (account removed,
    password reset or changed)."""
    session.execute(
        update(WebSession)
        .where(col(WebSession.subject) == subject, col(WebSession.ended_at).is_(None))
        .values(ended_at=now or utcnow())
    )


def renew(session: Session, old: Key, now: datetime) -> str | None:
    """End the session ``old`` and start a new one for the same browser, inside the caller's
    transaction (a password change): the same person and proof of identity, a new token, so a
    copy of the old cookie stops working. Returns the new token, for the browser's cookie;
    None when ``old`` is gone meanwhile (the browser signs in again)."""
    row = session.scalars(select(WebSession).where(col(WebSession.token_hash) == old.digest)).first()
    if row is None:
        return None
    session.execute(
        update(WebSession).where(col(WebSession.id) == row.id, col(WebSession.ended_at).is_(None)).values(ended_at=now)
    )
    token = new_token()
    session.add(
        WebSession(
            token_hash=Key.of(token).digest,
            subject=row.subject,
            via=row.via,
            role=row.role,
            address=row.address,
            created_at=now,
            last_seen_at=now,
            reauthenticated_at=row.reauthenticated_at,
        )
    )
    return token


def mark_reauthenticated(engine: Engine, key: Key, principal: Principal, *, now: datetime | None = None) -> None:
    """The password was entered again: sensitive actions may go ahead for REAUTH_VALID."""
    with write_session(engine) as session:
        session.execute(
            update(WebSession)
            .where(col(WebSession.token_hash) == key.digest)
            .values(reauthenticated_at=now or utcnow())
        )
        audit.record(session, principal, "reauthenticate", principal.name, audit.OK, f"via {principal.via}")

"""Server-side sign-in sessions, shared by every tab of a browser.

A local sign-in gets a random token in an HttpOnly, SameSite=Strict cookie; an OIDC sign-in
is keyed by its ID token (issuer, subject, issue time). Either way the row decides: ending
it signs out every tab at its next step, and the idle and absolute limits are checked on
every use. Only a SHA-256 of the token is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, update
from sqlalchemy import select as sql_select
from sqlmodel import Session, col

from lib import audit
from lib.access import Principal, Role
from lib.db import read_session, write_session
from lib.models import WebSession, utcnow

COOKIE_NAME = "switchboard_session"
_TOUCH_EVERY = timedelta(seconds=15)  # last_seen is written at most this often


@dataclass(frozen=True)
class Limits:
    idle: timedelta
    lifetime: timedelta


@dataclass(frozen=True)
class SignedIn:
    subject: str
    via: str
    created_at: datetime
    reauthenticated_at: datetime | None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def oidc_key(claims: dict[str, object]) -> str:
    """A stable key for one OIDC sign-in: the same in every tab, new at every sign-in."""
    parts = [str(claims.get(name) or "") for name in ("iss", "sub", "iat", "nonce")]
    return "oidc:" + "|".join(parts)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(engine: Engine, token: str, principal: Principal, *, now: datetime | None = None) -> None:
    """Record a new sign-in (and its audit row) for ``token``."""
    now = now or utcnow()
    with write_session(engine) as session:
        session.add(WebSession(token_hash=_hash(token), subject=principal.name, via=principal.via,
                               address=principal.address or "", created_at=now, last_seen_at=now))
        audit.record(session, principal, "sign_in", principal.name, audit.OK, f"via {principal.via}")


def known(engine: Engine, token: str) -> bool:
    """Whether ``token`` ever started a session (ended ones included)."""
    with read_session(engine) as session:
        return session.exec(sql_select(WebSession.id).where(  # type: ignore[call-overload]
            WebSession.token_hash == _hash(token))).first() is not None


def _expired_because(row: WebSession, limits: Limits, now: datetime) -> str | None:
    if now - row.created_at > limits.lifetime:
        return "absolute lifetime reached"
    if now - row.last_seen_at > limits.idle:
        return "idle timeout"
    return None


def resume(engine: Engine, token: str | None, limits: Limits, *, now: datetime | None = None) -> SignedIn | None:
    """The live session for ``token``, or None. A session past a limit is ended here."""
    if not token:
        return None
    now = now or utcnow()
    with read_session(engine) as session:
        row = session.exec(sql_select(WebSession).where(  # type: ignore[call-overload]
            WebSession.token_hash == _hash(token))).scalars().first()
    if row is None or row.ended_at is not None:
        return None
    reason = _expired_because(row, limits, now)
    if reason:
        # The role is not part of an audit row; the expiry is recorded under the session's subject.
        _end(engine, col(WebSession.id) == row.id, Principal(row.subject, Role.VIEWER, row.address or None, row.via),
             "session.expired", reason, now)
        return None
    if now - row.last_seen_at >= _TOUCH_EVERY:
        with write_session(engine) as session:
            session.execute(update(WebSession).where(col(WebSession.id) == row.id).values(last_seen_at=now))
    return SignedIn(row.subject, row.via, row.created_at, row.reauthenticated_at)


def _end(engine: Engine, which: ColumnElement[bool], principal: Principal, action: str, detail: str,
         now: datetime) -> bool:
    """End the live session ``which`` selects, with its audit row; False when none was live."""
    with write_session(engine) as session:
        ended = session.execute(update(WebSession).where(
            which, col(WebSession.ended_at).is_(None)).values(ended_at=now)).rowcount
        if ended:
            audit.record(session, principal, action, principal.name, audit.OK, detail)
    return bool(ended)


def end(engine: Engine, token: str, principal: Principal, *, now: datetime | None = None) -> bool:
    """Sign out: ends the session in every tab. False when it had already ended."""
    return _end(engine, col(WebSession.token_hash) == _hash(token), principal, "sign_out", f"via {principal.via}",
                now or utcnow())


def end_all_for(session: Session, subject: str, now: datetime | None = None) -> None:
    """End every session of ``subject`` inside the caller's transaction (account removed,
    password reset)."""
    session.execute(update(WebSession).where(
        col(WebSession.subject) == subject, col(WebSession.ended_at).is_(None)).values(ended_at=now or utcnow()))


def mark_reauthenticated(engine: Engine, token: str, principal: Principal, *,
                         now: datetime | None = None) -> None:
    """The password was entered again: sensitive actions may go ahead for REAUTH_VALID."""
    with write_session(engine) as session:
        session.execute(update(WebSession).where(col(WebSession.token_hash) == _hash(token))
                        .values(reauthenticated_at=now or utcnow()))
        audit.record(session, principal, "reauthenticate", principal.name, audit.OK, f"via {principal.via}")

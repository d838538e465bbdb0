"""API tokens for machines: a monitoring system reads the status API and /metrics with one,
sent as ``Authorization: Bearer sbt_…``.

A token is shown once, when it is made; only its SHA-256 is stored. A token acts with the
role it was given (viewer or operator, never admin), and like a web sign-in its row is read
again on every ``require`` (:class:`Bound`), so a revoked token stops working at once, even
inside a request that began before. Every use records when it was last used (at most once a
minute per token); every refused use is audited, never with the token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr
from sqlalchemy import Engine, Row, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from lib.kernel.errors import FieldError, NotFoundError, SwitchboardError, ValidationError
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, Role, Standing, require
from lib.store.db import read_session, write_session
from lib.store.models import ApiToken, AuditEvent, utcnow

PREFIX = "sbt_"  # recognisable in a config file, a log line or a secret scanner's rules
ROLES = (Role.VIEWER, Role.OPERATOR)  # what a machine may be given; admin stays with people
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_TOUCH_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often
_REFUSAL_QUIET = timedelta(minutes=1)  # one audit row per address and reason in this time


def digest(token: str) -> str:
    """The stored form of a token: its SHA-256, hex.

    A fast, unsalted hash is enough here, unlike for passwords: a token is 256 random bits
    (``secrets.token_urlsafe(32)``), so no list of likely values exists and no amount of
    hashing speed makes trying 2**255 of them feasible. A slow hash such as argon2 guards the
    few bits of a person's password, and would cost every API call tens of milliseconds and
    64 MiB; a salt would stop the one lookup by hash an unknown token needs. A copy of the
    database therefore cannot be turned back into working tokens.
    """
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenView:
    """What the list shows: never the token or its hash."""

    name: str
    role: Role
    created_at: datetime
    created_by: str
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class Issued:
    name: str
    role: Role
    token: SecretStr  # shown once, then gone: only its digest is stored


class TokenRefused(SwitchboardError):
    """No usable token: none sent, an unknown one, or a revoked one. Says nothing more."""

    def __init__(self, reason: str) -> None:
        self.reason = reason  # for the audit trail; the answer to the caller stays generic
        super().__init__("Send a valid Switchboard API token: Authorization: Bearer sbt_…")


def _check(name: str, role: str) -> None:
    errors = []
    if not NAME.match(name):
        errors.append(
            FieldError(
                "name",
                "Token name",
                "Use 1-80 lower-case letters, digits or . _ -, starting with a letter or digit, e.g. prometheus-prod.",
            )
        )
    if role not in {r.value for r in ROLES}:
        errors.append(
            FieldError("role", "Role", "Choose viewer (reads status) or operator; admin tokens are not made.")
        )
    if errors:
        raise ValidationError(errors)


def create(engine: Engine, name: str, role: str, *, actor: Principal) -> Issued:
    """A new token for ``name`` with ``role``; the only time the token itself exists."""
    require(actor, Permission.MANAGE_USERS, recent_proof=True)
    name = name.strip().casefold()
    _check(name, role)
    token = PREFIX + secrets.token_urlsafe(32)
    try:
        with write_session(engine) as session:
            session.add(
                ApiToken(
                    name=name, role=role, token_hash=digest(token), created_at=utcnow(), created_by=actor.name[:120]
                )
            )
            audit.record(session, actor, "token.create", name, audit.OK, f"role {role}")
    except IntegrityError:
        raise ValidationError(
            [
                FieldError(
                    "name",
                    "Token name",
                    "A token with this name exists (revoked ones keep their names); choose another name.",
                )
            ]
        ) from None
    return Issued(name, Role(role), SecretStr(token))


def list_tokens(engine: Engine, *, actor: Principal) -> list[TokenView]:
    """Every token, live and revoked, by name."""
    require(actor, Permission.MANAGE_USERS)
    with read_session(engine) as session:
        rows = (
            session.connection()
            .execute(
                select(
                    col(ApiToken.name),
                    col(ApiToken.role),
                    col(ApiToken.created_at),
                    col(ApiToken.created_by),
                    col(ApiToken.last_used_at),
                    col(ApiToken.revoked_at),
                ).order_by(col(ApiToken.name))
            )
            .all()
        )
    return [TokenView(r.name, Role(r.role), r.created_at, r.created_by, r.last_used_at, r.revoked_at) for r in rows]


def revoke(engine: Engine, name: str, *, actor: Principal) -> None:
    """Stop a token from working, at once, on every instance."""
    require(actor, Permission.MANAGE_USERS, recent_proof=True)
    key = name.strip().casefold()
    with write_session(engine) as session:
        revoked = session.exec(
            update(ApiToken)
            .where(col(ApiToken.name) == key, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=utcnow())
        ).rowcount
        if not revoked:
            known = session.connection().execute(select(col(ApiToken.id)).where(col(ApiToken.name) == key)).first()
            raise NotFoundError(
                f"The token '{key}' is already revoked."
                if known
                else f"No API token is named '{key}'. `tokens list` shows them."
            )
        audit.record(session, actor, "token.revoke", key, audit.OK)


_ROW = select(
    col(ApiToken.id), col(ApiToken.name), col(ApiToken.role), col(ApiToken.last_used_at), col(ApiToken.revoked_at)
)


def _row(engine: Engine, token_hash: str) -> Row[int | None, str, str, datetime | None, datetime | None] | None:
    with read_session(engine) as session:
        return session.connection().execute(_ROW.where(col(ApiToken.token_hash) == token_hash)).first()


@dataclass(frozen=True)
class Bound:
    """A token principal's link to its row (``access.LiveSession``): holds the digest, never
    the token. A token never counts as a recent proof of identity."""

    engine: Engine
    token_hash: str

    def standing(self) -> Standing | None:
        row = _row(self.engine, self.token_hash)
        return None if row is None or row.revoked_at is not None else Standing(Role(row.role), None)


def actor_name(name: str) -> str:
    """How a token is named in the audit trail."""
    return f"token:{name}"


def _refused(engine: Engine, actor: Principal, reason: str, target: str) -> None:
    """Audit a refused use, once a minute per token (or unknown), address and reason: a flood
    of bad requests must not become a flood of rows."""
    with read_session(engine) as session:
        recent = (
            session.connection()
            .execute(
                select(col(AuditEvent.id))
                .where(
                    col(AuditEvent.at) >= utcnow() - _REFUSAL_QUIET,
                    col(AuditEvent.action) == "token.use",
                    col(AuditEvent.actor) == actor.name,
                    col(AuditEvent.result) == audit.REFUSED,
                    col(AuditEvent.detail) == reason,
                    col(AuditEvent.client_address) == (actor.address or None),
                )
                .limit(1)
            )
            .first()
        )
    if recent is None:
        audit.record_now(engine, actor, "token.use", target, audit.REFUSED, reason)


def authenticate(engine: Engine, presented: str | None, *, address: str | None, target: str) -> Principal:
    """The principal a bearer token acts as, bound to its row; raises TokenRefused otherwise
    (audited, unless no token was sent at all). ``target`` names what was asked for."""
    if not presented:
        raise TokenRefused("no token")
    token_hash = digest(presented)
    row = _row(engine, token_hash)
    if row is None or row.revoked_at is not None:
        reason = "unknown token" if row is None else "revoked token"
        _refused(
            engine,
            Principal(actor_name(row.name if row else "unknown"), Role.VIEWER, address, via="token"),
            reason,
            target,
        )
        raise TokenRefused(reason)
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at >= _TOUCH_EVERY:  # one write a minute, at most
        with write_session(engine) as session:
            session.execute(
                update(ApiToken)
                .where(
                    col(ApiToken.id) == row.id,
                    or_(col(ApiToken.last_used_at).is_(None), col(ApiToken.last_used_at) < now - _TOUCH_EVERY),
                )
                .values(last_used_at=now)
            )
    return Principal(actor_name(row.name), Role(row.role), address, via="token", session=Bound(engine, token_hash))


def refuse(principal: Principal, permission: Permission, target: str) -> None:
    """Audit a token whose role may not do what it asked."""
    assert isinstance(principal.session, Bound), "not a token principal"
    _refused(principal.session.engine, principal, f"role {principal.role} may not {permission}", target)

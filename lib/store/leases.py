"""Rows a worker holds for a while: ``claimed_by`` names the worker, ``claimed_until`` ends
its hold. A worker that dies stops renewing, and once its lease has run out any worker may
take the row again. Due checks (lib.services.checking.worker) and the alert outbox
(lib.services.alerts.delivery) are both claimed this way, with these statements."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Update, or_, update
from sqlmodel import col

from lib.store.models import AlertOutbox, DueCheck

Leased = type[DueCheck] | type[AlertOutbox]


def free(model: Leased, now: datetime) -> ColumnElement[bool]:
    """Rows of ``model`` nobody holds at ``now``: never claimed, or the lease has run out."""
    return or_(col(model.claimed_until).is_(None), col(model.claimed_until) < now)


def held_by(model: Leased, worker: str) -> ColumnElement[bool]:
    return col(model.claimed_by) == worker


def take(model: Leased, which: ColumnElement[bool], worker: str, until: datetime) -> Update:
    """Mark the rows ``which`` picks as held by ``worker`` until ``until``."""
    return update(model).where(which).values(claimed_by=worker, claimed_until=until)


def renew(model: Leased, worker: str, until: datetime) -> Update:
    """Extend every lease ``worker`` holds on ``model`` to ``until``."""
    return update(model).where(held_by(model, worker)).values(claimed_until=until)


def let_go(model: Leased, which: ColumnElement[bool]) -> Update:
    """Release the rows ``which`` picks, whoever holds them; more values may be set with it."""
    return update(model).where(which).values(claimed_by=None, claimed_until=None)

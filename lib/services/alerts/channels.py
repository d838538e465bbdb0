"""Alert channels: where events go, which events and environments each receives, its quiet
windows, and turning it on and off. Admins change them (audited); every role reads them.

A channel's URL (Slack and Teams URLs are credentials in themselves) and its secret are vault
envelopes bound to the channel's row, like a connection's credentials; people see
``url_hint`` (scheme and host), never the URL.

Every field is checked here, before anything is saved, so the console and the CLI obey the
same rules: each kind's URL and secret by that kind's fields (lib.notify.kinds, whose rules
every delivery attempt applies again), the name, events and environments below. One refusal
names every wrong field.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy import ColumnElement, Engine, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from lib.catalogue.limits import ENVIRONMENT_MAX
from lib.kernel.config import Settings
from lib.kernel.errors import FieldError, NotFoundError, ValidationError
from lib.kernel.redaction import registry
from lib.notify import kinds
from lib.notify.models import Destination, EventKind
from lib.notify.spec import Kind
from lib.notify.ssrf import Allow
from lib.services.alerts.outbox import insert_ignoring, outside_maintenance, routes
from lib.services.alerts.outbox import row as outbox_row
from lib.services.alerts.rules import open_failures
from lib.services.alerts.windows import Window, quoted
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.store.db import read_session, write_session
from lib.store.keyring import bound
from lib.store.models import AlertChannel, AlertOutbox, QuietWindow, utcnow
from lib.store.vault import Binding, Vault

NAME_MAX = 80
ENVIRONMENTS_MAX = 50  # environments one channel may name (each as long as a connection's may be)
# What a channel receives unless told otherwise: every event the rules raise.
ROUTABLE: tuple[EventKind, ...] = (
    EventKind.FAILED,
    EventKind.RECOVERED,
    EventKind.STILL_FAILING,
    EventKind.DRIFTED,
    EventKind.SECRET_AGING,
)
T = TypeVar("T")


def binding(channel_id: uuid.UUID, column: str) -> Binding:
    return bound(AlertChannel, column, channel_id)


@dataclass(frozen=True)
class ChannelView:
    """A channel as pages and the CLI show it: never its URL or secret."""

    id: uuid.UUID
    name: str
    kind: str  # a key of lib.notify.kinds
    url_hint: str
    events: tuple[str, ...]
    environments: tuple[str, ...]
    enabled: bool
    disabled_reason: str | None
    has_secret: bool
    windows: tuple[tuple[int, Window], ...] = field(default_factory=tuple)
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None
    updated_by: str = ""


def _refused(name: str, label: str, message: str) -> ValidationError:
    return ValidationError([FieldError(name, label, message)])


class _Refusals:
    """Every field's check run, and every refusal kept: one answer names all the wrong fields."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def check(self, check: Callable[[], T]) -> T | None:
        try:
            return check()
        except ValidationError as exc:
            self.errors.extend(exc.errors)
            return None

    def raise_any(self) -> None:
        if self.errors:
            raise ValidationError(self.errors)


def url_hint(url: str) -> str:
    """Enough of a checked URL to recognise where it goes (scheme, host, port); never its path,
    query or user, which may be the credential (Slack and Teams put theirs in the path)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name.casefold()) > NAME_MAX or not name.isprintable():  # casefolded: its key
        raise _refused("name", "Channel name", f"Use 1-{NAME_MAX} printable characters, e.g. 'Ops Slack'.")
    return name


def _check_events(events: Collection[str] | None) -> list[str]:
    if events is None:
        return [k.value for k in ROUTABLE]
    chosen = [e.strip() for e in events if e.strip()]
    unknown = [e for e in chosen if e not in {k.value for k in ROUTABLE}]
    if unknown or not chosen:
        raise _refused(
            "events",
            "Events",
            f"Choose among {', '.join(k.value for k in ROUTABLE)}"
            + (f"; '{quoted(unknown[0])}' is not one." if unknown else "."),
        )
    return [k.value for k in ROUTABLE if k.value in chosen]


def environments_of(values: Collection[str]) -> list[str]:
    """The environments a channel is for, as stored: trimmed, once each, sorted; none is all."""
    return sorted({e.strip() for e in values if e.strip()})


def _check_environments(values: Collection[str]) -> list[str]:
    wanted = environments_of(values)
    if len(wanted) > ENVIRONMENTS_MAX or not all(len(e) <= ENVIRONMENT_MAX and e.isprintable() for e in wanted):
        raise _refused(
            "environments",
            "Environments",
            f"Name at most {ENVIRONMENTS_MAX} environments, separated by commas, each of at most "
            f"{ENVIRONMENT_MAX} printable characters as a connection's environment is "
            "(e.g. production); none for all.",
        )
    return wanted


def allowed(settings: Settings) -> Allow:
    """SWITCHBOARD_ALERT_ALLOW: where channels may point although internal, or over http://."""
    return Allow.of(settings.alert_allow)


def add(
    engine: Engine,
    vault: Vault,
    name: str,
    kind: str,
    url: SecretStr,
    *,
    actor: Principal,
    allow: Allow,
    secret: SecretStr | None = None,
    events: Collection[str] | None = None,
    environments: Collection[str] = (),
) -> tuple[ChannelView, SecretStr | None]:
    """A new channel, every field checked first (the kind's fields, lib.notify.kinds, for the
    URL and secret) and every refusal named at once; nothing is saved unless all pass. A kind
    whose secret Switchboard makes (a webhook's signing secret) given none gets a new one,
    returned (only now) so it can be shown once; otherwise the second value is None. ``allow``
    is the SWITCHBOARD_ALERT_ALLOW list the URL is checked against."""
    require(actor, Permission.MANAGE_ALERTS)
    refusals = _Refusals()
    checked_name = refusals.check(lambda: _check_name(name))
    channel_kind = refusals.check(lambda: kinds.get(kind))
    chosen = refusals.check(lambda: _check_events(events))
    wanted = refusals.check(lambda: _check_environments(environments))
    plain_url = url.get_secret_value().strip()
    made, plain_secret = None, None
    if channel_kind is not None:
        if not (secret and secret.get_secret_value()):
            made = _make(channel_kind)
        plain_secret = (made[0] if made else secret or SecretStr("")).get_secret_value() or None
        refusals.check(lambda: channel_kind.check(plain_url, plain_secret, allow=allow))
    refusals.raise_any()
    assert checked_name is not None and channel_kind is not None and chosen is not None and wanted is not None
    registry.add(plain_url, urlsplit(plain_url).path, plain_secret)
    row_id, now, hint = uuid.uuid4(), utcnow(), url_hint(plain_url)
    row = AlertChannel(
        id=row_id,
        name=checked_name,
        name_key=checked_name.casefold(),
        kind=channel_kind.key,
        url_enc=vault.encrypt(plain_url, binding(row_id, "url_enc")),
        secret_enc=vault.encrypt(plain_secret, binding(row_id, "secret_enc")) if plain_secret else None,
        url_hint=hint,
        events=chosen,
        environments=wanted,
        created_at=now,
        created_by=actor.name[:120],
        updated_at=now,
        updated_by=actor.name[:120],
    )
    try:
        with write_session(engine) as session:
            session.add(row)
            session.flush()
            _catch_up(session, row)
            audit.record(
                session,
                actor,
                "channel.add",
                checked_name,
                audit.OK,
                f"{channel_kind.key} to {hint}; events {', '.join(chosen)}; environments "
                f"{', '.join(wanted) or 'all'}" + (f"; {made[1]}" if made else ""),
            )
    except IntegrityError:
        raise _refused(
            "name", "Channel name", "Another channel has this name (names ignore case); choose another."
        ) from None
    return get(engine, checked_name, actor=actor), made[0] if made else None


def change(
    engine: Engine,
    vault: Vault,
    name: str,
    *,
    actor: Principal,
    allow: Allow,
    url: SecretStr | None = None,
    secret: SecretStr | None = None,
    make_secret: bool = False,
    events: Collection[str] | None = None,
    environments: Collection[str] | None = None,
) -> tuple[ChannelView, SecretStr | None]:
    """Change what was given when the channel was added; what is None (or a blank URL or
    secret) stays. The URL and secret the channel then has are checked as when adding (the
    one not given is the stored one), so an edit never leaves a channel that cannot be sent
    to: a new URL is the way to follow a receiver that moved, or answered 410. With
    ``make_secret`` a kind whose secret Switchboard makes gets a new one, returned (only now)
    to be shown once. The kind stays; for another kind, add another channel."""
    require(actor, Permission.MANAGE_ALERTS)
    plain_url = url.get_secret_value().strip() if url else ""
    plain_secret = secret.get_secret_value() if secret else ""
    refusals = _Refusals()
    chosen = None if events is None else refusals.check(lambda: _check_events(events))
    wanted = None if environments is None else refusals.check(lambda: _check_environments(environments))
    if make_secret and plain_secret:
        refusals.errors.append(FieldError("secret", "Secret", "Give a new secret or ask for one to be made, not both."))
    refusals.raise_any()
    with write_session(engine) as session:
        row = locked(session, name)
        kind = kinds.get(row.kind)
        made = _make(kind) if make_secret else None
        if make_secret and made is None:
            raise _refused("secret", "Secret", f"A {kind.key} channel has no signing secret to make.")
        said = _new_destination(
            vault,
            row,
            kind,
            plain_url,
            made[0] if made else SecretStr(plain_secret),
            allow,
            made=made[1] if made else "",
        )
        if chosen is not None and chosen != row.events:
            row.events = chosen
            said.append(f"events {', '.join(chosen)}")
        if wanted is not None and wanted != row.environments:
            row.environments = wanted
            said.append(f"environments {', '.join(wanted) or 'all'}")
        if not said:
            raise _refused("channel", "Channel", "Nothing to change: give a new URL, secret, events or environments.")
        row.updated_at, row.updated_by = utcnow(), actor.name[:120]
        audit.record(session, actor, "channel.change", row.name, audit.OK, "; ".join(said))
        changed = row.name
    return get(engine, changed, actor=actor), made[0] if made else None


def _make(kind: Kind) -> tuple[SecretStr, str] | None:
    """A new secret for a kind whose secret Switchboard makes (a webhook's signing secret), and
    what the audit says of it; None for the other kinds."""
    field = kind.field("secret")
    if field is None or field.made is None:
        return None
    return SecretStr(field.made()), f"{field.in_sentence} made"


def _new_destination(
    vault: Vault, row: AlertChannel, kind: Kind, url: str, given: SecretStr, allow: Allow, *, made: str
) -> list[str]:
    """Store a new URL and/or secret on ``row``, once the pair the channel then has passes the
    rules for saving; what changed, for the audit (``made``: what it says of a secret Switchboard
    made, else "")."""
    secret = given.get_secret_value()
    if not (url or secret):
        return []
    kind.check(
        url or vault.decrypt(row.url_enc, binding(row.id, "url_enc")),
        secret or (vault.decrypt(row.secret_enc, binding(row.id, "secret_enc")) if row.secret_enc else None),
        allow=allow,
    )
    registry.add(url, urlsplit(url).path, secret)
    said = []
    if url:
        row.url_enc, row.url_hint = vault.encrypt(url, binding(row.id, "url_enc")), url_hint(url)
        said.append(f"URL now to {row.url_hint}")
    if secret:
        row.secret_enc = vault.encrypt(secret, binding(row.id, "secret_enc"))
        said.append(f"new {made}" if made else "new secret")
    return said


def _views(session: Session, *where: ColumnElement[bool]) -> list[ChannelView]:
    rows = session.scalars(select(AlertChannel).where(*where).order_by(col(AlertChannel.name_key))).all()
    windows: dict[uuid.UUID, list[tuple[int, Window]]] = {}
    for w in session.scalars(select(QuietWindow).order_by(col(QuietWindow.id))).all():
        windows.setdefault(w.channel_id, []).append((w.id or 0, Window(tuple(w.weekdays), w.start, w.end, w.timezone)))
    return [
        ChannelView(
            r.id,
            r.name,
            r.kind,
            r.url_hint,
            tuple(r.events),
            tuple(r.environments),
            r.enabled,
            r.disabled_reason,
            r.secret_enc is not None,
            tuple(windows.get(r.id, ())),
            r.created_at,
            r.created_by,
            r.updated_at,
            r.updated_by,
        )
        for r in rows
    ]


def list_channels(engine: Engine, *, actor: Principal) -> list[ChannelView]:
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        return _views(session)


def get(engine: Engine, name: str, *, actor: Principal) -> ChannelView:
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        found = _views(session, col(AlertChannel.name_key) == name.strip().casefold())
    if not found:
        raise NotFoundError(f"No alert channel is named '{name}'. `switchboard channels list` shows them.")
    return found[0]


def locked(session: Session, name: str) -> AlertChannel:
    row = session.scalars(
        select(AlertChannel).where(col(AlertChannel.name_key) == name.strip().casefold()).with_for_update()
    ).first()
    if row is None:
        raise NotFoundError(f"No alert channel is named '{name}'. `switchboard channels list` shows them.")
    return row


def remove(engine: Engine, name: str, *, actor: Principal) -> None:
    """Delete the channel, with what its outbox still held (the delivery log keeps its name)."""
    require(actor, Permission.MANAGE_ALERTS)
    with write_session(engine) as session:
        row = locked(session, name)
        audit.record(session, actor, "channel.remove", row.name, audit.OK, f"{row.kind} to {row.url_hint}")
        session.delete(row)


def set_enabled(engine: Engine, name: str, enabled: bool, *, actor: Principal) -> None:
    """Turn a channel on (clearing why it was turned off) or off."""
    require(actor, Permission.MANAGE_ALERTS)
    with write_session(engine) as session:
        row = locked(session, name)
        disable(session, row.id, None if enabled else f"turned off by {actor.name}", enabled=enabled)
        if enabled:
            _catch_up(session, row)
        audit.record(session, actor, "channel.enable" if enabled else "channel.disable", row.name, audit.OK)


def _catch_up(session: Session, channel: AlertChannel) -> None:
    """A channel that joins (added, or turned on again) while problems are open hears of each
    it routes now, as the check.failed it missed, not at the next 24-hour reminder. The same
    event id: a channel that had it already gets nothing twice. What a maintenance window covers
    now waits for the window's end summary, as for every other channel."""
    now = utcnow()
    rows = [
        outbox_row(channel.id, raised, now)
        for raised in outside_maintenance(session, open_failures(session), now)
        if routes(channel.events, channel.environments, raised[0])
    ]
    insert_ignoring(session, AlertOutbox, rows, ["channel_id", "event_id"])


def disable(session: Session, channel_id: uuid.UUID, reason: str | None, *, enabled: bool = False) -> None:
    session.connection().execute(
        update(AlertChannel)
        .where(col(AlertChannel.id) == channel_id)
        .values(enabled=enabled, disabled_reason=reason, updated_at=utcnow())
    )


def add_window(engine: Engine, name: str, window: Window, *, actor: Principal) -> None:
    require(actor, Permission.MANAGE_ALERTS)
    with write_session(engine) as session:
        row = locked(session, name)
        session.add(
            QuietWindow(
                channel_id=row.id,
                weekdays=list(window.weekdays),
                start=window.start,
                end=window.end,
                timezone=window.timezone,
            )
        )
        audit.record(session, actor, "channel.window.add", row.name, audit.OK, window.describe())


def remove_window(engine: Engine, name: str, window_id: int, *, actor: Principal) -> None:
    require(actor, Permission.MANAGE_ALERTS)
    with write_session(engine) as session:
        row = locked(session, name)
        gone = (
            session.connection()
            .execute(delete(QuietWindow).where(col(QuietWindow.id) == window_id, col(QuietWindow.channel_id) == row.id))
            .rowcount
        )
        if not gone:
            raise NotFoundError("That quiet window is gone already.")
        audit.record(session, actor, "channel.window.remove", row.name, audit.OK, f"window {window_id}")


def destination(vault: Vault, row: AlertChannel) -> Destination:
    """The channel's URL and secret, decrypted for one attempt (raises CredentialUnreadable),
    and registered with the log redaction first."""
    url = vault.decrypt(row.url_enc, binding(row.id, "url_enc"))
    secret = vault.decrypt(row.secret_enc, binding(row.id, "secret_enc")) if row.secret_enc else None
    registry.add(url, urlsplit(url).path, secret)
    return Destination(row.kind, url, secret)

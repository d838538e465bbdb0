"""Alert channels: where events go, which events and environments each receives, its quiet
windows, and turning it on and off. Admins change them (audited); every role reads them.

A channel's URL (Slack and Teams URLs are credentials in themselves) and its secret are vault
envelopes bound to the channel's row, like a connection's credentials; people see
``url_hint`` (scheme and host), never the URL.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy import Engine, delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from lib import audit
from lib.access import Permission, Principal, require
from lib.alerts.windows import Window
from lib.config import Settings
from lib.errors import FieldError, NotFoundError, ValidationError
from lib.notify.models import ChannelKind, Destination, EventKind
from lib.notify.ssrf import Allow
from lib.redaction import registry
from lib.store.db import read_session, write_session
from lib.store.models import AlertChannel, QuietWindow, utcnow
from lib.store.vault import Binding, Vault

NAME_MAX = 80
# What a channel receives unless told otherwise: every event the rules raise.
ROUTABLE: tuple[EventKind, ...] = (EventKind.FAILED, EventKind.RECOVERED, EventKind.STILL_FAILING,
                                   EventKind.DRIFTED, EventKind.SECRET_AGING)
# Raises ValidationError (naming the URL) for a destination that can never work.
def binding(channel_id: uuid.UUID, column: str) -> Binding:
    return Binding(table="alert_channel", column=column, row_id=str(channel_id))


@dataclass(frozen=True)
class ChannelView:
    """A channel as pages and the CLI show it: never its URL or secret."""

    id: uuid.UUID
    name: str
    kind: ChannelKind
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


def url_hint(url: str) -> str:
    """Enough of a URL to recognise where it goes (scheme, host, port); never its path, query
    or user, which may be the credential (Slack and Teams put theirs in the path)."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.scheme or not parts.hostname:
        raise _refused("url", "URL", "Give the whole address, starting with https:// (smtp:// for e-mail).")
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise _refused("name", "Channel name", f"Use 1-{NAME_MAX} printable characters, e.g. 'Ops Slack'.")
    return name


def _check_events(events: Collection[str] | None) -> list[str]:
    if events is None:
        return [k.value for k in ROUTABLE]
    chosen = [e.strip() for e in events if e.strip()]
    unknown = sorted(set(chosen) - {k.value for k in ROUTABLE})
    if unknown or not chosen:
        raise _refused("events", "Events", f"Choose among {', '.join(k.value for k in ROUTABLE)}"
                                           + (f"; not {', '.join(unknown)}." if unknown else "."))
    return [k.value for k in ROUTABLE if k.value in chosen]


def environments_of(values: Collection[str]) -> list[str]:
    """The environments a channel is for, as stored: trimmed, once each, sorted; none is all."""
    return sorted({e.strip() for e in values if e.strip()})


def allowed(settings: Settings) -> Allow:
    """SWITCHBOARD_ALERT_ALLOW: where channels may point although internal, or over http://."""
    return Allow.of(settings.alert_allow)


def _checked_url(kind: ChannelKind, url: str, allow: Allow) -> str:
    """The URL's hint, once the delivery layer's own rules (SSRF, schemes) accept it."""
    hint = url_hint(url)
    from lib.notify.send import check_destination

    check_destination(kind, url, allow=allow)
    return hint


def _new_secret() -> str:
    from lib.notify.signing import new_secret

    return new_secret()


def add(engine: Engine, vault: Vault, name: str, kind: str, url: SecretStr, *, actor: Principal,
        allow: Allow, secret: SecretStr | None = None, events: Collection[str] | None = None,
        environments: Collection[str] = ()) -> tuple[ChannelView, SecretStr | None]:
    """A new channel. A webhook given no secret gets a new ``whsec_…`` one, returned (only
    now) so it can be shown once; otherwise the second value is None. ``allow`` is the
    SWITCHBOARD_ALERT_ALLOW list the URL is checked against."""
    require(actor, Permission.MANAGE_ALERTS)
    name = _check_name(name)
    try:
        channel_kind = ChannelKind(kind)
    except ValueError:
        raise _refused("kind", "Kind", f"Choose one of {', '.join(k.value for k in ChannelKind)}.") from None
    chosen = _check_events(events)
    plain_url = url.get_secret_value().strip()
    hint = _checked_url(channel_kind, plain_url, allow)
    made = None
    if channel_kind is ChannelKind.WEBHOOK and not (secret and secret.get_secret_value()):
        made = SecretStr(_new_secret())
    plain_secret = (made or secret or SecretStr("")).get_secret_value() or None
    registry.add(plain_url, urlsplit(plain_url).path, plain_secret)
    row_id, now = uuid.uuid4(), utcnow()
    row = AlertChannel(
        id=row_id, name=name, name_key=name.casefold(), kind=channel_kind.value,
        url_enc=vault.encrypt(plain_url, binding(row_id, "url_enc")),
        secret_enc=vault.encrypt(plain_secret, binding(row_id, "secret_enc")) if plain_secret else None,
        url_hint=hint, events=chosen, environments=environments_of(environments),
        created_at=now, created_by=actor.name[:120], updated_at=now, updated_by=actor.name[:120])
    try:
        with write_session(engine) as session:
            session.add(row)
            audit.record(session, actor, "channel.add", name, audit.OK,
                         f"{channel_kind.value} to {hint}; events {', '.join(chosen)}; environments "
                         f"{', '.join(row.environments) or 'all'}")
    except IntegrityError:
        raise _refused("name", "Channel name", "Another channel has this name (names ignore case); "
                                               "choose another.") from None
    return get(engine, name, actor=actor), made


def change(engine: Engine, vault: Vault, name: str, *, actor: Principal, allow: Allow,
           url: SecretStr | None = None, secret: SecretStr | None = None,
           events: Collection[str] | None = None, environments: Collection[str] | None = None) -> ChannelView:
    """Change what was given when the channel was added; what is None (or a blank URL or
    secret) stays. A new URL is checked as when adding: the way to follow a receiver that
    moved, or answered 410. The kind stays; for another kind, add another channel."""
    require(actor, Permission.MANAGE_ALERTS)
    plain_url = url.get_secret_value().strip() if url else ""
    plain_secret = secret.get_secret_value() if secret else ""
    chosen = None if events is None else _check_events(events)
    registry.add(plain_url, urlsplit(plain_url).path, plain_secret)
    with write_session(engine) as session:
        row = locked(session, name)
        hint = _checked_url(ChannelKind(row.kind), plain_url, allow) if plain_url else None  # no lookups: quick
        said: list[str] = []
        if hint:
            row.url_enc, row.url_hint = vault.encrypt(plain_url, binding(row.id, "url_enc")), hint
            said.append(f"URL now to {hint}")
        if plain_secret:
            row.secret_enc = vault.encrypt(plain_secret, binding(row.id, "secret_enc"))
            said.append("new secret")
        if chosen is not None and chosen != row.events:
            row.events = chosen
            said.append(f"events {', '.join(chosen)}")
        wanted = None if environments is None else environments_of(environments)
        if wanted is not None and wanted != row.environments:
            row.environments = wanted
            said.append(f"environments {', '.join(wanted) or 'all'}")
        if not said:
            raise _refused("channel", "Channel", "Nothing to change: give a new URL, secret, events or "
                                                 "environments.")
        row.updated_at, row.updated_by = utcnow(), actor.name[:120]
        audit.record(session, actor, "channel.change", row.name, audit.OK, "; ".join(said))
        changed = row.name
    return get(engine, changed, actor=actor)


def _views(session: Session, *where: object) -> list[ChannelView]:
    rows = session.exec(select(AlertChannel).where(*where).order_by(AlertChannel.name_key)).all()
    windows: dict[uuid.UUID, list[tuple[int, Window]]] = {}
    for w in session.exec(select(QuietWindow).order_by(col(QuietWindow.id))).all():
        windows.setdefault(w.channel_id, []).append(
            (w.id or 0, Window(tuple(w.weekdays), w.start, w.end, w.timezone)))
    return [ChannelView(r.id, r.name, ChannelKind(r.kind), r.url_hint, tuple(r.events), tuple(r.environments),
                        r.enabled, r.disabled_reason, r.secret_enc is not None, tuple(windows.get(r.id, ())),
                        r.created_at, r.created_by, r.updated_at, r.updated_by) for r in rows]


def list_channels(engine: Engine, *, actor: Principal) -> list[ChannelView]:
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        return _views(session)


def get(engine: Engine, name: str, *, actor: Principal) -> ChannelView:
    require(actor, Permission.READ_STATUS)
    with read_session(engine) as session:
        found = _views(session, AlertChannel.name_key == name.strip().casefold())
    if not found:
        raise NotFoundError(f"No alert channel is named '{name}'. `switchboard channels list` shows them.")
    return found[0]


def locked(session: Session, name: str) -> AlertChannel:
    row = session.exec(select(AlertChannel).where(AlertChannel.name_key == name.strip().casefold())
                       .with_for_update()).first()
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
        audit.record(session, actor, "channel.enable" if enabled else "channel.disable", row.name, audit.OK)


def disable(session: Session, channel_id: uuid.UUID, reason: str | None, *, enabled: bool = False) -> None:
    session.connection().execute(update(AlertChannel).where(col(AlertChannel.id) == channel_id).values(
        enabled=enabled, disabled_reason=reason, updated_at=utcnow()))


def add_window(engine: Engine, name: str, window: Window, *, actor: Principal) -> None:
    require(actor, Permission.MANAGE_ALERTS)
    with write_session(engine) as session:
        row = locked(session, name)
        session.add(QuietWindow(channel_id=row.id, weekdays=list(window.weekdays), start=window.start,
                                end=window.end, timezone=window.timezone))
        audit.record(session, actor, "channel.window.add", row.name, audit.OK, window.describe())


def remove_window(engine: Engine, name: str, window_id: int, *, actor: Principal) -> None:
    require(actor, Permission.MANAGE_ALERTS)
    with write_session(engine) as session:
        row = locked(session, name)
        gone = session.connection().execute(delete(QuietWindow).where(
            col(QuietWindow.id) == window_id, col(QuietWindow.channel_id) == row.id)).rowcount
        if not gone:
            raise NotFoundError("That quiet window is gone already.")
        audit.record(session, actor, "channel.window.remove", row.name, audit.OK, f"window {window_id}")


def destination(vault: Vault, row: AlertChannel) -> Destination:
    """The channel's URL and secret, decrypted for one attempt (raises CredentialUnreadable),
    and registered with the log redaction first."""
    url = vault.decrypt(row.url_enc, binding(row.id, "url_enc"))
    secret = vault.decrypt(row.secret_enc, binding(row.id, "secret_enc")) if row.secret_enc else None
    registry.add(url, urlsplit(url).path, secret)
    return Destination(ChannelKind(row.kind), url, secret)


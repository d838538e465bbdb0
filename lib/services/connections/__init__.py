"""Connections: create, update, delete and list 8x8 API app credentials (the service layer).

Validation names the field and the fix, and nothing is half-saved. Credentials go in and
out of the database only as vault envelopes; lists carry hints (masked Client ID, secret
age), never plaintext. Only :func:`load_credentials` decrypts, for the prober.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import ColumnElement, Engine, bindparam, func, select
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from lib.catalogue.limits import CLIENT_ID_MAX, ENVIRONMENT_MAX, NAME_MAX, SECRET_MAX
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS, SETTINGS, Setting
from lib.eightbyeight.models import Credentials
from lib.kernel.errors import (
    ConflictError,
    CredentialUnreadable,
    FieldError,
    NotFoundError,
    ValidationError,
)
from lib.kernel.redaction import registry
from lib.services.guard import audit
from lib.services.guard.access import Permission, Principal, require
from lib.store.db import read_session, write_session
from lib.store.keyring import credential_binding
from lib.store.models import Connection, DueCheck, utcnow
from lib.store.vault import Vault

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What a masked value looks like when a form or an export echoes it back.
_MASK_LIKE = re.compile(r"^\s*[*•●·.…]{3,}")

SETTING_KEYS: tuple[str, ...] = tuple(SETTINGS)

# What people call each input: the console's labels, and the names in every message.
FIELD_LABELS: Mapping[str, str] = {
    "name": "Connection name",
    "environment": "Environment label",
    "client_id": "Client ID",
    "client_secret": "Client Secret",
    "expected_products": "Products enabled in 8x8",
    **{key: setting.label for key, setting in SETTINGS.items()},
}


@dataclass(frozen=True)
class ConnectionInput:
    """What an admin submits. On update a blank Client ID or secret keeps the stored one."""

    name: str
    client_id: str
    client_secret: SecretStr
    environment: str = ""
    expected_products: tuple[str, ...] = ()
    analytics_region: str | None = None
    storage_region: str | None = None
    qm_region: str | None = None
    chat_region: str | None = None
    tenant_id: str | None = None
    pbx: str | None = None

    def settings(self) -> dict[str, str | None]:
        return {key: getattr(self, key) for key in SETTING_KEYS}


@dataclass(frozen=True)
class ConnectionView:
    """A connection as pages and the CLI show it: hints only, nothing secret."""

    id: uuid.UUID
    name: str
    environment: str
    client_id_hint: str
    secret_set_at: datetime
    expected_products: tuple[str, ...]
    granted_products: tuple[str, ...] | None
    granted_at: datetime | None  # since when 8x8 has listed granted_products (None: never asked)
    settings: dict[str, str | None] = field(default_factory=dict)
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None
    updated_by: str = ""
    version: int = 1
    settings_version: int = 1  # what checks made now are stamped with (lib.services.checking.checks)

    @property
    def tested_products(self) -> tuple[str, ...]:
        """What a test of the whole connection covers: the products the admin ticked, or all
        five when none are ticked."""
        return self.expected_products or PRODUCT_KEYS


def client_id_hint(client_id: str) -> str:
    """Enough to recognise a Client ID, never enough to use it."""
    if len(client_id) >= 16:
        return f"{client_id[:4]}…{client_id[-4:]}"
    if len(client_id) >= 8:
        return f"…{client_id[-4:]}"
    return "…"


# --- Validation ---------------------------------------------------------------------------


def _refused(field: str, message: str) -> FieldError:
    return FieldError(field, FIELD_LABELS[field], message)


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _check_name(name: str) -> list[FieldError]:
    if not name:
        return [_refused("name", "Enter a name, for example 'Production reporting'.")]
    if len(name) > NAME_MAX:
        return [_refused("name", f"Use at most {NAME_MAX} characters (this one has {len(name)}).")]
    if not name.isprintable():
        return [_refused("name", "Remove tabs, line breaks and other invisible characters.")]
    return []


def _check_client_id(client_id: str, *, required: bool) -> list[FieldError]:
    if not client_id:
        if required:
            return [_refused("client_id", "Paste the Client ID from the 8x8 Admin Console (Home > API Management).")]
        return []
    if len(client_id) > CLIENT_ID_MAX:
        return [_refused("client_id", f"A Client ID has at most {CLIENT_ID_MAX} characters; check what was pasted.")]
    if any(ch.isspace() for ch in client_id) or _CONTROL.search(client_id):
        return [
            _refused(
                "client_id", "Remove spaces, line breaks or other invisible characters (often picked up when copying)."
            )
        ]
    if ":" in client_id:
        return [_refused("client_id", "A Client ID cannot contain ':'; check that only the Client ID was pasted.")]
    if _MASK_LIKE.match(client_id):
        return [
            _refused(
                "client_id",
                "This looks like a masked value; paste the real Client ID or leave it blank to keep the stored one.",
            )
        ]
    return []


def _check_secret(secret: str, *, required: bool) -> list[FieldError]:
    if not secret:
        if required:
            return [_refused("client_secret", "Paste the Client Secret from the 8x8 Admin Console.")]
        return []
    if len(secret) > SECRET_MAX:
        return [
            _refused("client_secret", f"A Client Secret has at most {SECRET_MAX} characters; check what was pasted.")
        ]
    if _CONTROL.search(secret):
        return [
            _refused(
                "client_secret", "Remove line breaks or other invisible characters (often picked up when copying)."
            )
        ]
    if _MASK_LIKE.match(secret):
        return [
            _refused(
                "client_secret",
                "This looks like a masked value, not a secret. Paste the real secret, or leave the field blank to keep the stored one.",
            )
        ]
    return []


def _choose(setting: Setting) -> str:
    return f"Choose one of: {', '.join(setting.choices or ())}."


def _check_settings(data: ConnectionInput) -> list[FieldError]:
    """Each value given must be usable, and every setting a ticked product needs must be
    given: without it that product could only ever be reported as a missing setting."""
    ticked = [product for key, product in PRODUCTS.items() if key in data.expected_products]
    errors = []
    for key, value in data.settings().items():
        setting, value = SETTINGS[key], _clean(value)
        if value is None:
            needing = [product.name for product in ticked if key in product.needs]
            if needing:
                fix = _choose(setting) if setting.choices else "Enter it as 8x8 shows it; the setup guide says where."
                errors.append(
                    _refused(
                        key,
                        f"{' and '.join(needing)} {'needs' if len(needing) == 1 else 'need'} it to be tested. {fix}",
                    )
                )
        elif not setting.accepts(value):
            errors.append(
                _refused(
                    key,
                    _choose(setting)
                    if setting.choices
                    else (
                        "Use 1-64 letters, digits, '.', '-' or '_', not only dots (copy it from 8x8 Configuration Manager)."
                    ),
                )
            )
    return errors


def _check_products(products: Iterable[str]) -> list[FieldError]:
    unknown = sorted(set(products) - set(PRODUCT_KEYS))
    if unknown:
        return [
            _refused(
                "expected_products",
                f"Unknown {'product' if len(unknown) == 1 else 'products'} {', '.join(unknown)}; choose from {', '.join(PRODUCT_KEYS)}.",
            )
        ]
    return []


def validate(data: ConnectionInput, *, creating: bool) -> None:
    """Raise ValidationError listing every problem, or return if the input is acceptable."""
    errors = _problems(data, creating=creating)
    if errors:
        raise ValidationError(errors)


def _problems(data: ConnectionInput, *, creating: bool) -> list[FieldError]:
    errors = [
        *_check_name(data.name.strip()),
        *_check_client_id(data.client_id.strip(), required=creating),
        *_check_secret(data.client_secret.get_secret_value(), required=creating),
        *_check_settings(data),
        *_check_products(data.expected_products),
    ]
    environment = data.environment.strip()
    if len(environment) > ENVIRONMENT_MAX or not environment.isprintable():
        errors.append(
            _refused("environment", f"Use at most {ENVIRONMENT_MAX} printable characters, e.g. 'production'.")
        )
    return errors


def _name_taken() -> FieldError:
    return _refused("name", "Another connection already has this name (names ignore case); choose another.")


def _changed_meanwhile() -> ConflictError:
    return ConflictError(
        "Somebody else changed this connection after you opened it. Nothing was "
        "saved: reload it, then make your change again."
    )


def precheck(
    engine: Engine,
    data: ConnectionInput,
    *,
    connection_id: uuid.UUID | None = None,
    expected_version: int | None = None,
) -> None:
    """Everything a save can be refused for without asking 8x8, checked before the credentials
    are sent there (a refusal after 8x8 answered costs a token request, and the pasted secret):
    the connection being edited still exists at ``expected_version``, every field is valid (as
    :func:`validate`) and no other connection has the name, ignoring case. Raises NotFoundError,
    ConflictError, or ValidationError naming every field at once.

    :func:`create` and :func:`update` still check what they must (a name taken meanwhile is
    refused by the database), so this only moves refusals earlier; it never lets one through."""
    name_key = data.name.strip().casefold()
    with read_session(engine) as session:
        holder = session.scalars(select(col(Connection.id)).where(col(Connection.name_key) == name_key)).first()
        version = (
            None
            if connection_id is None
            else session.scalars(select(col(Connection.version)).where(col(Connection.id) == connection_id)).first()
        )
    if connection_id is not None:
        if version is None:
            raise NotFoundError("This connection no longer exists.")
        if version != expected_version:
            raise _changed_meanwhile()
    errors = _problems(data, creating=connection_id is None)
    if holder is not None and holder != connection_id and not any(e.field == "name" for e in errors):
        errors.insert(0, _name_taken())
    if errors:
        raise ValidationError(errors)


def _common_values(data: ConnectionInput) -> dict[str, Any]:
    ordered = [key for key in PRODUCT_KEYS if key in set(data.expected_products)]
    return {
        "name": data.name.strip(),
        "name_key": data.name.strip().casefold(),
        "environment": data.environment.strip(),
        "expected_products": ordered,
        **{key: _clean(value) for key, value in data.settings().items()},
    }


# Every column but the ciphertexts: views are built without ever loading a credential.
_VIEW_COLUMNS = tuple(c for c in Connection.__table__.columns if not c.name.endswith("_enc"))  # type: ignore[attr-defined]


def _to_view(row: Any) -> ConnectionView:
    return ConnectionView(
        id=row.id,
        name=row.name,
        environment=row.environment,
        client_id_hint=row.client_id_hint,
        secret_set_at=row.secret_set_at,
        expected_products=tuple(row.expected_products),
        granted_products=None if row.granted_products is None else tuple(row.granted_products),
        granted_at=row.granted_at,
        settings={key: getattr(row, key) for key in SETTING_KEYS},
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        version=row.version,
        settings_version=row.settings_version,
    )


# --- Service functions ---------------------------------------------------------------------


def create(
    engine: Engine,
    vault: Vault,
    data: ConnectionInput,
    *,
    actor: Principal,
    granted_products: Iterable[str] | None = None,
) -> ConnectionView:
    require(actor, Permission.MANAGE_CONNECTIONS)
    validate(data, creating=True)
    client_id, secret = data.client_id.strip(), data.client_secret.get_secret_value()
    registry.add_credentials(client_id, secret)
    row_id, now = uuid.uuid4(), utcnow()
    row = Connection(
        id=row_id,
        client_id_enc=vault.encrypt(client_id, credential_binding(row_id, "client_id_enc")),
        client_secret_enc=vault.encrypt(secret, credential_binding(row_id, "client_secret_enc")),
        client_id_hint=client_id_hint(client_id),
        secret_set_at=now,
        granted_products=None if granted_products is None else sorted(granted_products),
        granted_at=None if granted_products is None else now,
        created_at=now,
        created_by=actor.name,
        updated_at=now,
        updated_by=actor.name,
        **_common_values(data),
    )
    try:
        with write_session(engine) as session:
            session.add(row)
            audit.record(
                session,
                actor,
                "connection.create",
                row.name,
                audit.OK,
                f"Client ID {row.client_id_hint}; products: {', '.join(row.expected_products) or 'none'}",
            )
    except IntegrityError:
        raise ValidationError([_name_taken()]) from None
    return get(engine, row_id)


def update(
    engine: Engine,
    vault: Vault,
    connection_id: uuid.UUID,
    data: ConnectionInput,
    *,
    expected_version: int,
    actor: Principal,
    granted_products: Iterable[str] | None = None,
) -> ConnectionView:
    """Apply an edit made on ``expected_version``; a newer stored version is a ConflictError.

    A blank Client ID or secret leaves that ciphertext untouched, byte for byte. An edit that
    changes what a check tests (see :func:`_tested_changes`) bumps the settings version, so
    results made before it stop counting as the current status, and makes the connection's
    scheduled checks due at once.
    """
    require(actor, Permission.MANAGE_CONNECTIONS)
    validate(data, creating=False)
    now = utcnow()
    values: dict[str, object] = {
        **_common_values(data),
        "updated_at": now,
        "updated_by": actor.name,
        "version": Connection.version + 1,
    }
    client_id, secret = data.client_id.strip(), data.client_secret.get_secret_value()
    registry.add(client_id, secret)
    if client_id:
        values["client_id_enc"] = vault.encrypt(client_id, credential_binding(connection_id, "client_id_enc"))
        values["client_id_hint"] = client_id_hint(client_id)
    if secret:
        values["client_secret_enc"] = vault.encrypt(secret, credential_binding(connection_id, "client_secret_enc"))
        values["secret_set_at"] = now
    try:
        with write_session(engine) as session:
            # Its due rows first, then the connection: the order a worker storing a check takes
            # them in (lib.services.checking.worker), so the two never wait for each other on PostgreSQL.
            session.scalars(
                select(col(DueCheck.product)).where(col(DueCheck.connection_id) == connection_id).with_for_update()
            ).all()
            stored = session.get(Connection, connection_id)
            changed = _tested_changes(stored, values) if stored is not None else []
            if changed:
                values["settings_version"] = Connection.settings_version + 1
                if "Client ID" in changed:  # another app: what the old one was granted says nothing
                    values["granted_products"], values["granted_at"] = None, None
            if granted_products is not None and _changed_grants(session, {connection_id: granted_products}):
                values["granted_products"], values["granted_at"] = sorted(granted_products), now
            result = session.exec(
                sql_update(Connection)
                .where(col(Connection.id) == connection_id, col(Connection.version) == expected_version)
                .values(**values)
            )
            if result.rowcount != 1:
                raise (
                    _changed_meanwhile() if stored is not None else NotFoundError("This connection no longer exists.")
                )
            if changed:
                session.exec(
                    sql_update(DueCheck).where(col(DueCheck.connection_id) == connection_id).values(due_at=now)
                )
            replaced = [label for label, new in (("Client ID", client_id), ("secret", secret)) if new]
            audit.record(
                session,
                actor,
                "connection.update",
                str(values["name"]),
                audit.OK,
                f"version {expected_version + 1}; replaced: {', '.join(replaced) or 'no credential'}"
                + (
                    f"; changed what is tested ({', '.join(changed)}): earlier results no longer count, checks due now"
                    if changed
                    else ""
                ),
            )
    except IntegrityError:
        raise ValidationError([_name_taken()]) from None
    return get(engine, connection_id)


def _tested_changes(stored: Connection, values: Mapping[str, object]) -> list[str]:
    """What of an edit changes what a check of the connection tests, by label: new credentials
    (a pasted value counts as new: it is not decrypted to compare), a region, the tenant, the
    PBX, the ticked products."""
    changed = [
        label
        for key, label in (("client_id_enc", "Client ID"), ("client_secret_enc", "Client Secret"))
        if key in values
    ]
    changed += [FIELD_LABELS[key] for key in SETTING_KEYS if getattr(stored, key) != values[key]]
    if list(stored.expected_products) != values["expected_products"]:
        changed.append(FIELD_LABELS["expected_products"])
    return changed


def record_granted(session: Session, granted: Mapping[uuid.UUID, Iterable[str]]) -> None:
    """Store what 8x8's tokens said each app may use, inside the caller's write transaction
    (an observation, not an edit: the version is not bumped). Only lists that changed (or were
    never recorded) are written, so ``granted_at`` says since when 8x8 has listed these
    products, and a test that finds them as they were leaves the connections untouched (their
    part of lib.services.history.status.data_stamp too). One statement for them all."""
    changed = _changed_grants(session, granted)
    if not changed:
        return
    session.connection().execute(
        sql_update(Connection)
        .where(col(Connection.id) == bindparam("connection"))
        .values(granted_products=bindparam("products"), granted_at=utcnow()),
        [{"connection": connection_id, "products": products} for connection_id, products in changed.items()],
    )


def _changed_grants(session: Session, granted: Mapping[uuid.UUID, Iterable[str]]) -> dict[uuid.UUID, list[str]]:
    """The product lists (sorted) of ``granted`` that differ from the stored ones, of the
    connections that exist."""
    if not granted:
        return {}
    lists = {connection_id: sorted(products) for connection_id, products in granted.items()}
    stored = (
        session.connection()
        .execute(select(col(Connection.id), col(Connection.granted_products)).where(col(Connection.id).in_(lists)))
        .all()
    )
    return {
        connection_id: lists[connection_id]
        for connection_id, listed in stored
        if listed is None or sorted(listed) != lists[connection_id]
    }


def delete(engine: Engine, connection_id: uuid.UUID, *, actor: Principal) -> None:
    require(actor, Permission.MANAGE_CONNECTIONS, recent_proof=True)
    with write_session(engine) as session:
        row = session.get(Connection, connection_id)
        if row is None:
            raise NotFoundError("This connection no longer exists.")
        audit.record(session, actor, "connection.delete", row.name, audit.OK, f"Client ID {row.client_id_hint}")
        session.delete(row)


def _views(engine: Engine, *where: ColumnElement[bool]) -> list[ConnectionView]:
    with read_session(engine) as session:
        rows = (
            session.connection().execute(select(*_VIEW_COLUMNS).where(*where).order_by(col(Connection.name_key))).all()
        )
    return [_to_view(row) for row in rows]


def get(engine: Engine, connection_id: uuid.UUID) -> ConnectionView:
    found = _views(engine, col(Connection.id) == connection_id)
    if not found:
        raise NotFoundError("This connection no longer exists.")
    return found[0]


def find_by_name(engine: Engine, name: str) -> ConnectionView:
    found = _views(engine, col(Connection.name_key) == name.strip().casefold())
    if not found:
        raise NotFoundError(f"No connection is named '{name}'. List them with: switchboard connections list")
    return found[0]


def list_connections(engine: Engine) -> list[ConnectionView]:
    """Every connection, by name, from one query. No ciphertext is even read."""
    return _views(engine)


def count(engine: Engine) -> int:
    with read_session(engine) as session:
        return session.scalars(select(func.count()).select_from(Connection)).one()


def load_credentials(engine: Engine, vault: Vault, connection_id: uuid.UUID) -> Credentials:
    """Decrypt one connection's credentials (raises CredentialUnreadable) and register them
    with the log redaction filter before anybody can log them."""
    found = load_credentials_of(engine, vault, [connection_id])
    if connection_id not in found:
        raise NotFoundError("This connection no longer exists.")
    loaded = found[connection_id]
    if isinstance(loaded, CredentialUnreadable):
        raise loaded
    return loaded


_READ_AT_ONCE = 1000  # ids per query, well inside every database's limit on bound parameters


def load_credentials_of(
    engine: Engine, vault: Vault, connection_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Credentials | CredentialUnreadable]:
    """Decrypt the credentials of many connections, a query per thousand (a scheduled tick
    holds thousands): each id's Credentials, or the CredentialUnreadable saying why not; a
    connection deleted meanwhile is absent. Registered with the log redaction filter first."""
    ids = list(connection_ids)
    rows: list[Any] = []
    with read_session(engine) as session:
        for start in range(0, len(ids), _READ_AT_ONCE):
            rows += (
                session.connection()
                .execute(
                    select(col(Connection.id), col(Connection.client_id_enc), col(Connection.client_secret_enc)).where(
                        col(Connection.id).in_(ids[start : start + _READ_AT_ONCE])
                    )
                )
                .all()
            )
    found: dict[uuid.UUID, Credentials | CredentialUnreadable] = {}
    for connection_id, client_id_enc, secret_enc in rows:
        try:
            client_id = vault.decrypt(client_id_enc, credential_binding(connection_id, "client_id_enc"))
            secret = vault.decrypt(secret_enc, credential_binding(connection_id, "client_secret_enc"))
        except CredentialUnreadable as exc:
            found[connection_id] = exc
            continue
        registry.add_credentials(client_id, secret)
        found[connection_id] = Credentials(connection_id, client_id, SecretStr(secret))
    return found


def input_from_view(view: ConnectionView, **overrides: object) -> ConnectionInput:
    """An edit form pre-filled from a stored connection, with blank credentials (= keep)."""
    base: dict[str, Any] = {
        "name": view.name,
        "client_id": "",
        "client_secret": SecretStr(""),
        "environment": view.environment,
        "expected_products": view.expected_products,
        **view.settings,
    }
    base.update(overrides)
    return ConnectionInput(**base)

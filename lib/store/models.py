"""SQLModel tables. Credentials are stored only as vault envelopes (``*_enc`` columns)."""

from __future__ import annotations

import uuid
from bisect import bisect_left
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel
from sqlmodel.sql.sqltypes import AutoString

from lib.catalogue.outcomes import OutcomeKey


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every engine (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use lib.store.models.utcnow()")
        # SQLite keeps the wall-clock digits and drops the offset: store every instant as UTC.
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None


def _utc_column(nullable: bool = False) -> Column[datetime]:
    return Column(UTCDateTime(), nullable=nullable)


class Connection(SQLModel, table=True):
    """One 8x8 API app's credentials and the settings its products need."""

    __tablename__ = "connection"

    # Made by the app, not the database, so it can be bound into the ciphertext before INSERT.
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=80)
    # name.casefold(): the unique key that makes names unique ignoring case on every engine.
    name_key: str = Field(max_length=80, unique=True)
    environment: str = Field(default="", max_length=40)
    client_id_enc: str = Field(sa_column=Column(Text, nullable=False))
    client_secret_enc: str = Field(sa_column=Column(Text, nullable=False))
    client_id_hint: str = Field(max_length=16)
    secret_set_at: datetime = Field(sa_column=_utc_column())
    expected_products: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    granted_products: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    granted_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    analytics_region: str | None = Field(default=None, max_length=8)
    storage_region: str | None = Field(default=None, max_length=8)
    qm_region: str | None = Field(default=None, max_length=8)
    chat_region: str | None = Field(default=None, max_length=8)
    tenant_id: str | None = Field(default=None, max_length=64)
    pbx: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=_utc_column())
    created_by: str = Field(default="", max_length=120)
    updated_at: datetime = Field(sa_column=_utc_column())
    updated_by: str = Field(default="", max_length=120)
    # Optimistic locking: every update says which version it read; a stale one is refused.
    version: int = Field(default=1)
    # Bumped by every edit that changes what a check tests (credentials, regions, tenant, PBX,
    # ticked products): results made with a lower number are "made with earlier settings".
    settings_version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))


class Check(SQLModel, table=True):
    """One probe of one product (or of the token) for one connection."""

    __tablename__ = "check_result"
    __table_args__ = (
        # Serves "latest check per (connection, product)" as one indexed query.
        Index("ix_check_result_latest", "connection_id", "product", "id"),
        # Serves a connection's newest checks (its detail page) without sorting its history.
        Index("ix_check_result_connection", "connection_id", "id"),
        Index("ix_check_result_run", "run_id"),
        Index("ix_check_result_batch", "batch"),
        # Serves the pruning of checks older than the retention time (lib.services.checking.retention).
        Index("ix_check_result_started", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    connection_id: uuid.UUID = Field(sa_column=Column(ForeignKey("connection.id", ondelete="CASCADE"), nullable=False))
    product: str = Field(max_length=40)
    started_at: datetime = Field(sa_column=_utc_column())
    duration_ms: int = 0
    http_status: int | None = None
    outcome: str = Field(max_length=40)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    triggered_by: str = Field(default="", max_length=120)
    run_id: str | None = Field(default=None, max_length=36)
    # The number CheckCounter gave the transaction that stored it (0: stored before there was one).
    batch: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, server_default="0"))
    # The connection's settings_version the check was made with (lower than the connection's
    # now: made with earlier settings, no longer its current status).
    settings_version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))


class CheckCounter(SQLModel, table=True):
    """How many transactions have stored checks: one row (id 1), bumped first thing by each of
    them, which stamps its checks with the new number (``Check.batch``). Holding the row until
    commit makes those transactions commit in the order of their numbers, on PostgreSQL too
    (where ids are handed out in one order and commits happen in another), so "the checks of a
    batch above n" is exactly what was stored since a reader saw n (lib.services.reporting.connections_table.Overview)."""

    __tablename__ = "check_counter"

    id: int = Field(default=1, primary_key=True)
    last: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class CurrentStatus(SQLModel, table=True):
    """The latest check of each (connection, product), kept in the same transaction as the
    check itself (and deleted with the connection): what the status pages and exports read,
    N x 5 rows, instead of shaping the whole history."""

    __tablename__ = "current_status"

    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connection.id", ondelete="CASCADE"), primary_key=True)
    )
    product: str = Field(max_length=40, primary_key=True)
    outcome: str = Field(max_length=40)
    http_status: int | None = None
    duration_ms: int = 0
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))
    checked_at: datetime = Field(sa_column=_utc_column())
    run_id: str | None = Field(default=None, max_length=36)
    settings_version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    # When the product last answered ok (the newest ok check that set the current status):
    # kept here, not looked up in the history, so it survives the pruning of old checks.
    last_ok_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


# Upper bounds of the check-duration buckets, in milliseconds (a check's deadline is 30 s); a
# check lands in the first bucket whose bound it does not exceed, or in the one after the last.
# CheckTally's rows are kept by these numbers: changing them needs a migration that re-fills it.
DURATION_BUCKETS_MS = (50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000)


def duration_bucket(duration_ms: int) -> int:
    """The CheckTally bucket of a check that took ``duration_ms``."""
    return bisect_left(DURATION_BUCKETS_MS, duration_ms)


class CheckTally(SQLModel, table=True):
    """How many checks were ever stored, by product (token steps included), outcome and duration
    bucket, and how long they took in all: what /metrics counts. Kept in the transaction that
    stores the checks, so counting reads a few dozen rows whatever the age of the history, and
    the counts go on rising when old checks are pruned (or go with their connection)."""

    __tablename__ = "check_tally"

    product: str = Field(max_length=40, primary_key=True)
    outcome: str = Field(max_length=40, primary_key=True)
    bucket: int = Field(primary_key=True)  # duration_bucket()
    checks: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    duration_ms: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))  # their sum


ROLLUP_OUTCOMES = tuple(OutcomeKey)  # a column each: ``n_<outcome>``; a new outcome needs a migration
ROLLUP_BUCKETS = (*(f"ms_le_{bound}" for bound in DURATION_BUCKETS_MS), f"ms_over_{DURATION_BUCKETS_MS[-1]}")


def _rollup(name: str, *, fleet: bool = False) -> Table:
    """A rollup table: per (connection, product) and hour or day (``start``, UTC), the product
    checks that count (made with the connection's settings of the time; token steps left out),
    by outcome, and their durations as a histogram over DURATION_BUCKETS_MS with their sum and
    maximum, so p50/p95 need no raw rows. Added to in the transaction that stores the checks
    (lib.services.checking.checks); deleted with the connection; pruned by lib.services.checking.retention.

    A ``fleet`` table sums the same checks per product over every connection (those deleted
    since included): five rows an hour or a day, whatever the size of the fleet, so fleet
    uptime (/metrics) reads a few hundred rows at any size and age."""
    # A fleet table's key leads with the start: its window and its pruning are ranges of it.
    keyed = ("start", "product") if fleet else ("connection_id", "product", "start")
    return Table(
        name,
        SQLModel.metadata,
        Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
        *(() if fleet else (Column("connection_id", ForeignKey("connection.id", ondelete="CASCADE"), nullable=False),)),
        Column("product", AutoString(length=40), nullable=False),
        Column("start", UTCDateTime(), nullable=False),
        Column("checks", Integer, nullable=False),
        *(Column(f"n_{outcome}", Integer, nullable=False, server_default="0") for outcome in ROLLUP_OUTCOMES),
        *(Column(bucket, Integer, nullable=False, server_default="0") for bucket in ROLLUP_BUCKETS),
        Column("duration_sum_ms", BigInteger, nullable=False),
        Column("duration_max_ms", Integer, nullable=False),
        # The upsert's key, and one connection's rows in time order (the API's one connection).
        Index(f"ux_{name}_key", *keyed, unique=True),
        # A window of every connection (uptime for the API and /metrics) and the pruning, covering.
        *(() if fleet else (Index(f"ix_{name}_start", "start", "connection_id", "product", "checks", "n_ok"),)),
    )


CheckRollupHour = _rollup("check_rollup_hour")
CheckRollupDay = _rollup("check_rollup_day")
FleetRollupHour = _rollup("fleet_rollup_hour", fleet=True)
FleetRollupDay = _rollup("fleet_rollup_day", fleet=True)


class RollupBackfill(SQLModel, table=True):
    """How far migration 0015 has rolled up the history stored before it (one row, id 1): the
    highest check id added, each batch in the transaction that moves it, so a migration stopped
    half way continues where it was and counts nothing twice."""

    __tablename__ = "rollup_backfill"

    id: int = Field(default=1, primary_key=True)
    done_to: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class KeyCheck(SQLModel, table=True):
    """A canary per key id: proves at start-up that the keyring matches the stored data."""

    __tablename__ = "crypto_key_check"

    kid: str = Field(primary_key=True, max_length=32)
    canary: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_utc_column())


class AuditEvent(SQLModel, table=True):
    """Who did what, when, from where, to which target, with which result. Append-only:
    Switchboard has no code path that updates a row, and deletes rows only once they are older
    than the audit retention time (lib.services.checking.retention). Never holds a secret."""

    __tablename__ = "audit_event"
    # Newest first within a time range, ties of ``at`` broken by id (lib.services.guard.audit.events).
    __table_args__ = (Index("ix_audit_event_at_id", "at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_utc_column())
    actor: str = Field(max_length=120)
    client_address: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=40)
    target: str = Field(default="", max_length=200)
    result: str = Field(max_length=20)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False))


class User(SQLModel, table=True):
    """A person who may use the console. Local accounts have an argon2id hash; accounts
    that sign in through OIDC have none."""

    __tablename__ = "app_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=120)
    username_key: str = Field(max_length=120, unique=True)  # casefolded
    role: str = Field(max_length=20)
    password_hash: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_utc_column())
    password_changed_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # Set when an admin chose the password (added the account, reset it): the person must
    # choose their own at their next sign-in before anything else opens.
    must_change_password: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    last_sign_in_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class SignInAttempt(SQLModel, table=True):
    """Every sign-in attempt, kept in the database so throttling survives new tabs,
    restarts and several instances."""

    __tablename__ = "sign_in_attempt"
    __table_args__ = (
        Index("ix_sign_in_attempt_user", "username_key", "at"),
        Index("ix_sign_in_attempt_address", "address", "at"),
        Index("ix_sign_in_attempt_at", "at"),  # pruning (lib.services.checking.retention)
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=_utc_column())
    username_key: str = Field(max_length=120)
    address: str = Field(default="", max_length=64)
    success: bool = False


class WebSession(SQLModel, table=True):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    copy of the database cannot be replayed as a cookie. Ending the row ends every tab."""

    __tablename__ = "web_session"
    __table_args__ = (
        Index("ix_web_session_subject", "subject"),
        Index("ix_web_session_created", "created_at"),  # pruning (lib.services.checking.retention)
    )

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    subject: str = Field(max_length=120)  # user name (local) or e-mail (OIDC)
    via: str = Field(max_length=10)
    # OIDC only: the role the [access] allow-list gave (a local account's role is on the account).
    role: str | None = Field(default=None, max_length=20)
    address: str = Field(default="", max_length=64)
    created_at: datetime = Field(sa_column=_utc_column())
    last_seen_at: datetime = Field(sa_column=_utc_column())
    reauthenticated_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    ended_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class SetupCode(SQLModel, table=True):
    """The one-time code that lets the first visitor create the first admin. Only its hash
    is stored; it is single-use and expires."""

    __tablename__ = "setup_code"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_utc_column())
    expires_at: datetime = Field(sa_column=_utc_column())
    used_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class ApiToken(SQLModel, table=True):
    """A machine's bearer token for the status API and /metrics. Only the SHA-256 of the token
    is stored (lib.services.accounts.api_tokens says why that suffices); revoked rows stay, so the audit trail and
    the list keep naming them."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)  # casefolded: names ignore case
    role: str = Field(max_length=20)
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=_utc_column())
    created_by: str = Field(default="", max_length=120)
    last_used_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class ScheduleSetting(SQLModel, table=True):
    """The schedule of every connection without one of its own: one row (id 1); no row means
    the defaults (lib.services.checking.schedule)."""

    __tablename__ = "schedule_setting"

    id: int = Field(default=1, primary_key=True)
    every_s: int
    paused: bool = False  # for all connections
    updated_at: datetime = Field(sa_column=_utc_column())
    updated_by: str = Field(default="", max_length=120)


class RetentionSetting(SQLModel, table=True):
    """How long check history and the audit trail are kept, the same for every instance: one
    row (id 1); no row means the defaults (lib.services.checking.retention)."""

    __tablename__ = "retention_setting"

    id: int = Field(default=1, primary_key=True)
    keep_checks_s: int
    keep_audit_s: int
    updated_at: datetime = Field(sa_column=_utc_column())
    updated_by: str = Field(default="", max_length=120)


class ConnectionSchedule(SQLModel, table=True):
    """A connection's own interval (None: the default one) and pause, once an admin set them."""

    __tablename__ = "connection_schedule"

    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connection.id", ondelete="CASCADE"), primary_key=True)
    )
    every_s: int | None = None
    paused: bool = False
    updated_at: datetime = Field(sa_column=_utc_column())
    updated_by: str = Field(default="", max_length=120)


class DueCheck(SQLModel, table=True):
    """The next scheduled check of one (connection, product): its slot, and the worker holding
    it until ``claimed_until`` (a worker that dies lets go when its lease ends). Completing a
    slot moves ``due_at`` on in the transaction that stores the check, so a slot runs once."""

    __tablename__ = "due_check"
    __table_args__ = (
        Index("ix_due_check_due", "due_at"),
        Index("ix_due_check_claimed_by", "claimed_by"),
    )

    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connection.id", ondelete="CASCADE"), primary_key=True)
    )
    product: str = Field(max_length=40, primary_key=True)
    due_at: datetime = Field(sa_column=_utc_column())
    claimed_by: str | None = Field(default=None, max_length=120)
    claimed_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_run_id: str | None = Field(default=None, max_length=36)
    last_checked_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class WorkerHeartbeat(SQLModel, table=True):
    """A worker's sign of life: written at every tick, and while a long tick runs."""

    __tablename__ = "worker_heartbeat"

    worker_id: str = Field(max_length=120, primary_key=True)
    host: str = Field(max_length=255)
    pid: int
    tick_s: int  # its time between ticks: it counts as alive while seen within 3 of them
    started_at: datetime = Field(sa_column=_utc_column())
    last_tick_at: datetime = Field(sa_column=_utc_column())  # when its latest tick began
    last_seen_at: datetime = Field(sa_column=_utc_column())
    # When a tick last completed every part (checks, alerts, pruning) without an error, and when one
    # last failed, with what (the error's kind and a sanitised message, never a secret).
    last_ok_tick_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_failed_tick_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    last_failure: str | None = Field(default=None, max_length=300)


class AlertChannel(SQLModel, table=True):
    """Where alerts go: a webhook, Slack, Teams or e-mail destination. Its URL (Slack and Teams
    URLs are credentials) and its secret are vault envelopes bound to this row; people only
    ever see ``url_hint`` (scheme and host)."""

    __tablename__ = "alert_channel"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    name: str = Field(max_length=80)
    name_key: str = Field(max_length=80, unique=True)  # casefolded: names ignore case
    kind: str = Field(max_length=16)
    url_enc: str = Field(sa_column=Column(Text, nullable=False))
    secret_enc: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    url_hint: str = Field(max_length=200)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # EventKind values
    environments: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # empty: all
    enabled: bool = True
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_column=_utc_column())
    created_by: str = Field(default="", max_length=120)
    updated_at: datetime = Field(sa_column=_utc_column())
    updated_by: str = Field(default="", max_length=120)


class QuietWindow(SQLModel, table=True):
    """A recurring time in which a channel is muted: on ``weekdays`` (0 Monday .. 6 Sunday, of
    the day the window starts) from ``start`` to ``end`` (HH:MM, local to ``timezone``; an end
    before the start runs past midnight)."""

    __tablename__ = "alert_quiet_window"

    id: int | None = Field(default=None, primary_key=True)
    channel_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("alert_channel.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    weekdays: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    start: str = Field(max_length=5)
    end: str = Field(max_length=5)
    timezone: str = Field(max_length=64)


class MaintenanceWindow(SQLModel, table=True):
    """A planned time (``starts_at`` to ``ends_at``) in which checks of one connection, one
    environment or every connection (neither given) still run and are stored, but raise no
    alert; ``summarised_at`` says when the end-of-window summary of what still fails was queued."""

    __tablename__ = "maintenance_window"

    id: int | None = Field(default=None, primary_key=True)
    connection_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(ForeignKey("connection.id", ondelete="CASCADE"), nullable=True, index=True)
    )
    environment: str | None = Field(default=None, max_length=40)
    starts_at: datetime = Field(sa_column=_utc_column())
    ends_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False, index=True))
    reason: str = Field(default="", max_length=200)
    created_at: datetime = Field(sa_column=_utc_column())
    created_by: str = Field(default="", max_length=120)
    summarised_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class AlertState(SQLModel, table=True):
    """What the alert rules remember about one (connection, subject): a subject is a product
    key (failures in a row, whether check.failed was sent for the current episode, the last
    reminder), or ``secret`` (the last secret-age step announced, in ``episode``)."""

    __tablename__ = "alert_state"

    connection_id: uuid.UUID = Field(
        sa_column=Column(ForeignKey("connection.id", ondelete="CASCADE"), primary_key=True)
    )
    subject: str = Field(max_length=40, primary_key=True)
    failures: int = 0  # consecutive failing checks
    last_outcome: str | None = Field(default=None, max_length=40)
    episode: str | None = Field(default=None, max_length=64)  # names the current failing episode
    failing_since: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    alerted_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))  # check.failed sent
    last_reminder_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    # Who acknowledged the open episode and when: reminders stop until it changes or recovers.
    acknowledged_by: str | None = Field(default=None, max_length=120)
    acknowledged_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class AlertOutbox(SQLModel, table=True):
    """One event for one channel, written in the transaction that caused it and delivered by a
    worker holding a lease (``claimed_by`` until ``claimed_until``). Unique per (channel, event
    id): the same event is never queued twice. ``event`` never holds a secret."""

    __tablename__ = "alert_outbox"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_id", name="uq_alert_outbox_event"),
        Index("ix_alert_outbox_due", "status", "due_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: uuid.UUID = Field(sa_column=Column(ForeignKey("alert_channel.id", ondelete="CASCADE"), nullable=False))
    event_id: str = Field(max_length=64)
    kind: str = Field(max_length=40)
    connection_id: uuid.UUID | None = None  # no foreign key: the event outlives its connection
    product: str | None = Field(default=None, max_length=40)
    event: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(sa_column=_utc_column())
    due_at: datetime = Field(sa_column=_utc_column())
    attempts: int = 0
    status: str = Field(default="pending", max_length=12)  # pending, delivered, failed, held, summarised
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    claimed_by: str | None = Field(default=None, max_length=120)
    claimed_until: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))
    finished_at: datetime | None = Field(default=None, sa_column=_utc_column(nullable=True))


class AlertDelivery(SQLModel, table=True):
    """One delivery attempt: what the console's delivery log shows. It keeps the channel's name,
    so it outlives the channel; never a URL, a secret or a response body."""

    __tablename__ = "alert_delivery"
    __table_args__ = (Index("ix_alert_delivery_at", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel_id: uuid.UUID
    channel: str = Field(max_length=80)
    event_id: str = Field(max_length=64)
    kind: str = Field(max_length=40)
    connection: str | None = Field(default=None, max_length=120)  # its name at the time; None: about none
    product: str | None = Field(default=None, max_length=40)  # catalogue key
    attempt: int
    at: datetime = Field(sa_column=_utc_column())
    http_status: int | None = None
    outcome: str = Field(max_length=12)  # delivered, retrying, failed, refused, gone
    error: str = Field(default="", sa_column=Column(Text, nullable=False))
    duration_ms: int = 0
    worker: str = Field(default="", max_length=120)

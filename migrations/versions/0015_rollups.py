"""rollups: per (connection, product) and hour or day, the product checks that count, by outcome
and duration, filled from the history in batches that a stopped upgrade resumes

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 14:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# lib.catalogue.outcomes.OutcomeKey and lib.store.models.DURATION_BUCKETS_MS as this revision
# knows them (copies: the migration must not change when the code does).
_OUTCOMES = (
    "ok",
    "bad_credentials",
    "product_not_enabled",
    "forbidden",
    "missing_config",
    "not_found",
    "rate_limited",
    "vendor_error",
    "timeout",
    "network_error",
    "tls_error",
    "unexpected_response",
    "credential_unreadable",
)
_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)
_BUCKETS = (*(f"ms_le_{bound}" for bound in _BUCKETS_MS), f"ms_over_{_BUCKETS_MS[-1]}")
_TABLES = {"check_rollup_hour": "hour", "check_rollup_day": "day"}
BATCH = 20_000  # history rows rolled up per transaction: a short hold of SQLite's write lock


def _create(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        *(sa.Column(f"n_{outcome}", sa.Integer(), server_default="0", nullable=False) for outcome in _OUTCOMES),
        *(sa.Column(bucket, sa.Integer(), server_default="0", nullable=False) for bucket in _BUCKETS),
        sa.Column("duration_sum_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration_max_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["connection_id"], ["connection.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(f"ux_{name}_key", name, ["connection_id", "product", "start"], unique=True)
    op.create_index(f"ix_{name}_start", name, ["start", "connection_id", "product", "checks", "n_ok"], unique=False)


def _start(span: str, dialect: str) -> str:
    """SQL for the start of the UTC hour or day of check_result.started_at, as the code stores it
    (SQLite: text 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC; PostgreSQL: timestamptz)."""
    if dialect == "sqlite":
        return (
            "strftime('%Y-%m-%d %H:00:00.000000', started_at)"
            if span == "hour"
            else "strftime('%Y-%m-%d 00:00:00.000000', started_at)"
        )
    return f"date_trunc('{span}', started_at, 'UTC')"


def _fill(table: str, span: str, dialect: str, low: int, high: int) -> str:
    """Add the product checks with ids in (low, high] to a rollup table, as lib.services.checking.checks would have
    when it stored them; a row made with earlier settings cannot be told apart afterwards (the
    connection's version at the time is not kept), so every product check counts."""
    buckets = [f"WHEN duration_ms <= {bound} THEN '{name}'" for bound, name in zip(_BUCKETS_MS, _BUCKETS)]
    bucket = f"CASE {' '.join(buckets)} ELSE '{_BUCKETS[-1]}' END"
    counted = ["checks", *(f"n_{o}" for o in _OUTCOMES), *_BUCKETS, "duration_sum_ms"]
    sums = [
        "count(*)",
        *(f"sum(CASE WHEN outcome = '{o}' THEN 1 ELSE 0 END)" for o in _OUTCOMES),
        *(f"sum(CASE WHEN {bucket} = '{b}' THEN 1 ELSE 0 END)" for b in _BUCKETS),
        "sum(duration_ms)",
    ]
    start = _start(span, dialect)
    added = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in counted)
    return (
        f"INSERT INTO {table} (connection_id, product, start, {', '.join(counted)}, duration_max_ms) "
        f"SELECT connection_id, product, {start}, {', '.join(sums)}, max(duration_ms) FROM check_result "
        f"WHERE id > {low} AND id <= {high} AND product <> 'token' "
        f"GROUP BY connection_id, product, {start} "
        f"ON CONFLICT (connection_id, product, start) DO UPDATE SET {added}, duration_max_ms = "
        f"CASE WHEN excluded.duration_max_ms > {table}.duration_max_ms THEN excluded.duration_max_ms "
        f"ELSE {table}.duration_max_ms END"
    )


def backfill(engine: sa.Engine, batch: int = BATCH) -> None:
    """Roll up the history above the mark, BATCH ids at a time, each batch and the mark's move in
    one transaction of its own: stopped anywhere, the next run goes on from the mark."""
    dialect = engine.dialect.name
    while True:
        with engine.begin() as conn:
            low = conn.execute(sa.text("SELECT done_to FROM rollup_backfill WHERE id = 1")).scalar_one()
            top = conn.execute(sa.text("SELECT max(id) FROM check_result")).scalar()
            if top is None or top <= low:
                return
            high = min(low + batch, top)
            for table, span in _TABLES.items():
                conn.execute(sa.text(_fill(table, span, dialect, low, high)))
            conn.execute(sa.text("UPDATE rollup_backfill SET done_to = :high WHERE id = 1"), {"high": high})


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("rollup_backfill"):  # absent: a first run (else resumed)
        for name in _TABLES:
            _create(name)
        op.create_table(
            "rollup_backfill",
            sa.Column("id", sa.Integer(), nullable=False),
            sa.Column("done_to", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.execute("INSERT INTO rollup_backfill (id, done_to) VALUES (1, 0)")
    # The tables are committed first; then each batch is a transaction of its own, on a
    # connection of its own, so no lock is held for the whole history.
    with op.get_context().autocommit_block():
        backfill(bind.engine)


def downgrade() -> None:
    op.drop_table("rollup_backfill")
    for name in reversed(_TABLES):
        op.drop_index(f"ix_{name}_start", table_name=name)
        op.drop_index(f"ux_{name}_key", table_name=name)
        op.drop_table(name)

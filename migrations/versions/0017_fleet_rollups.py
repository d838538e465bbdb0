"""fleet rollups: per product and hour or day, the checks of every connection summed, filled
from the per-connection rollups a few hours or days at a time

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-08 02:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

# lib.catalogue.outcomes.OutcomeKey and lib.store.models.DURATION_BUCKETS_MS as this revision
# knows them (copies, as in 0015: the migration must not change when the code does).
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
# Each fleet table and the per-connection table it is summed from.
_TABLES = {"fleet_rollup_hour": "check_rollup_hour", "fleet_rollup_day": "check_rollup_day"}
STARTS = 24  # hours or days summed per transaction: at 1,000 connections, 120,000 rows read


def _create(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checks", sa.Integer(), nullable=False),
        *(sa.Column(f"n_{outcome}", sa.Integer(), server_default="0", nullable=False) for outcome in _OUTCOMES),
        *(sa.Column(bucket, sa.Integer(), server_default="0", nullable=False) for bucket in _BUCKETS),
        sa.Column("duration_sum_ms", sa.BigInteger(), nullable=False),
        sa.Column("duration_max_ms", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(f"ux_{name}_key", name, ["start", "product"], unique=True)


def fill(engine: sa.Engine, starts: int = STARTS) -> None:
    """Sum the per-connection rollups into the fleet tables, ``starts`` hours or days per
    transaction. Each transaction first deletes the fleet rows of its range, so a fill stopped
    anywhere is simply run again."""
    summed = ["checks", *(f"n_{o}" for o in _OUTCOMES), *_BUCKETS, "duration_sum_ms"]
    for fleet, source in _TABLES.items():
        with engine.connect() as conn:
            found = conn.execute(sa.text(f"SELECT DISTINCT start FROM {source} ORDER BY start")).scalars().all()
        for at in range(0, len(found), starts):
            first, last = found[at], found[min(at + starts, len(found)) - 1]
            span = {"first": first, "last": last}
            with engine.begin() as conn:
                conn.execute(sa.text(f"DELETE FROM {fleet} WHERE start >= :first AND start <= :last"), span)
                conn.execute(
                    sa.text(
                        f"INSERT INTO {fleet} (product, start, {', '.join(summed)}, duration_max_ms) "
                        f"SELECT product, start, {', '.join(f'sum({c})' for c in summed)}, max(duration_max_ms) "
                        f"FROM {source} WHERE start >= :first AND start <= :last GROUP BY product, start"
                    ),
                    span,
                )


def upgrade() -> None:
    bind = op.get_bind()
    for name in _TABLES:
        if not sa.inspect(bind).has_table(name):  # present: a fill stopped half way, run again
            _create(name)
    # The tables are committed first; then each range is a transaction of its own.
    with op.get_context().autocommit_block():
        fill(bind.engine)


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_index(f"ux_{name}_key", table_name=name)
        op.drop_table(name)

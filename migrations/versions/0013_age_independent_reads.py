"""reads that do not depend on the age of the history: a tally of stored checks (what /metrics
counts), each product's last ok moment in its current status, and indexes for a connection's
newest checks and the newest audit rows

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# lib.store.models.DURATION_BUCKETS_MS as this revision fills the tally with (a copy: the
# migration must not change when the code does).
_BUCKETS_MS = (50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000)


def _bucket_of_duration() -> str:
    """SQL for the bucket of check_result.duration_ms: the first bound it does not exceed."""
    whens = " ".join(f"WHEN duration_ms <= {bound} THEN {i}" for i, bound in enumerate(_BUCKETS_MS))
    return f"CASE {whens} ELSE {len(_BUCKETS_MS)} END"


def upgrade() -> None:
    op.create_table(
        "check_tally",
        sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("bucket", sa.Integer(), nullable=False),
        sa.Column("checks", sa.BigInteger(), nullable=False),
        sa.Column("duration_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("product", "outcome", "bucket"),
    )
    # Every check stored so far, counted in one grouped pass over the history.
    bucket = _bucket_of_duration()
    op.execute(
        "INSERT INTO check_tally (product, outcome, bucket, checks, duration_ms) "
        f"SELECT product, outcome, {bucket}, count(*), coalesce(sum(duration_ms), 0) FROM check_result "
        f"GROUP BY product, outcome, {bucket}"
    )
    with op.batch_alter_table("current_status") as batch_op:
        batch_op.add_column(sa.Column("last_ok_at", sa.DateTime(timezone=True), nullable=True))
    # The newest ok check of each (connection, product) so far, by the index on
    # (connection_id, product, id).
    op.execute(
        "UPDATE current_status SET last_ok_at = (SELECT max(c.started_at) FROM check_result c "
        "WHERE c.connection_id = current_status.connection_id AND c.product = current_status.product "
        "AND c.outcome = 'ok')"
    )
    op.create_index("ix_check_result_connection", "check_result", ["connection_id", "id"], unique=False)
    op.drop_index("ix_audit_event_at", table_name="audit_event")
    op.create_index("ix_audit_event_at_id", "audit_event", ["at", "id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_audit_event_at_id", table_name="audit_event")
    op.create_index("ix_audit_event_at", "audit_event", ["at"], unique=False)
    op.drop_index("ix_check_result_connection", table_name="check_result")
    with op.batch_alter_table("current_status") as batch_op:
        batch_op.drop_column("last_ok_at")
    op.drop_table("check_tally")

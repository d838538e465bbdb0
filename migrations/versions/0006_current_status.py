"""current status: the latest check per (connection, product), backfilled from the history

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 17:20:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "current_status",
        sa.Column("connection_id", sa.Uuid(), nullable=False),
        sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["connection.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("connection_id", "product"),
    )
    # The newest check of each (connection, product) so far becomes its current status.
    op.execute(
        "INSERT INTO current_status (connection_id, product, outcome, http_status, duration_ms, detail, "
        "checked_at, run_id) "
        "SELECT c.connection_id, c.product, c.outcome, c.http_status, c.duration_ms, c.detail, c.started_at, "
        "c.run_id FROM check_result c JOIN (SELECT max(id) AS id FROM check_result "
        "GROUP BY connection_id, product) latest ON latest.id = c.id"
    )


def downgrade() -> None:
    op.drop_table("current_status")

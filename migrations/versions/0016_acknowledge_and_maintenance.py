"""acknowledge and maintenance: who acknowledged an open alert episode, and planned windows in
which checks raise no alert

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 01:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert_state") as batch:
        batch.add_column(sa.Column("acknowledged_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch.add_column(sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "maintenance_window",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("connection_id", sa.Uuid(), nullable=True),
        sa.Column("environment", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.Column("summarised_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["connection_id"], ["connection.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_maintenance_window_connection_id", "maintenance_window", ["connection_id"], unique=False)
    op.create_index("ix_maintenance_window_ends_at", "maintenance_window", ["ends_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_maintenance_window_ends_at", table_name="maintenance_window")
    op.drop_index("ix_maintenance_window_connection_id", table_name="maintenance_window")
    op.drop_table("maintenance_window")
    with op.batch_alter_table("alert_state") as batch:
        batch.drop_column("acknowledged_at")
        batch.drop_column("acknowledged_by")

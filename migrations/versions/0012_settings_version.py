"""settings versions (results made with earlier settings stop counting) and a worker's last
successful and last failed tick

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_VERSIONED = ("connection", "check_result", "current_status")


def upgrade() -> None:
    for table in _VERSIONED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("settings_version", sa.Integer(), server_default="1", nullable=False))
    with op.batch_alter_table("worker_heartbeat") as batch_op:
        batch_op.add_column(sa.Column("last_ok_tick_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_failed_tick_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("last_failure", sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("worker_heartbeat") as batch_op:
        batch_op.drop_column("last_failure")
        batch_op.drop_column("last_failed_tick_at")
        batch_op.drop_column("last_ok_tick_at")
    for table in reversed(_VERSIONED):
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("settings_version")

"""retention: how long check history and the audit trail are kept (one row, for every instance),
and the indexes the pruning of expired rows reads

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 12:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

# PostgreSQL vacuums a table once this share of its rows are dead (20 % by default): the pruning
# deletes about a thirtieth of the check history a day, so without it the space of a week of
# deleted checks would wait for autovacuum.
_CHECKS_VACUUM_SCALE = 0.02


def upgrade() -> None:
    op.create_table(
        "retention_setting",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("keep_checks_s", sa.Integer(), nullable=False),
        sa.Column("keep_audit_s", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_check_result_started", "check_result", ["started_at"], unique=False)
    op.create_index("ix_sign_in_attempt_at", "sign_in_attempt", ["at"], unique=False)
    op.create_index("ix_web_session_created", "web_session", ["created_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE check_result SET (autovacuum_vacuum_scale_factor = {_CHECKS_VACUUM_SCALE}, "
            f"autovacuum_analyze_scale_factor = {_CHECKS_VACUUM_SCALE})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE check_result RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor)")
    op.drop_index("ix_web_session_created", table_name="web_session")
    op.drop_index("ix_sign_in_attempt_at", table_name="sign_in_attempt")
    op.drop_index("ix_check_result_started", table_name="check_result")
    op.drop_table("retention_setting")

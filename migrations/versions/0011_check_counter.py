"""check counter: a number for each transaction that stores checks, in commit order

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_counter",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("last", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.execute("INSERT INTO check_counter (id, last) VALUES (1, 0)")
    # Checks stored so far count as batch 0: a reader builds its view of them in full.
    with op.batch_alter_table("check_result") as batch_op:
        batch_op.add_column(sa.Column("batch", sa.BigInteger(), server_default="0", nullable=False))
        batch_op.create_index("ix_check_result_batch", ["batch"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("check_result") as batch_op:
        batch_op.drop_index("ix_check_result_batch")
        batch_op.drop_column("batch")
    op.drop_table("check_counter")

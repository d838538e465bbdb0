"""delivery log subject: which connection and product each delivery attempt was about

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-08 02:30:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Attempts logged before stay without them (the log keeps 90 days): the console shows "—".
    with op.batch_alter_table("alert_delivery") as batch:
        batch.add_column(sa.Column("connection", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch.add_column(sa.Column("product", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("alert_delivery") as batch:
        batch.drop_column("product")
        batch.drop_column("connection")

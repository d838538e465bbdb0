"""Alembic environment: runs on the engine handed over by lib.store.db (never a URL from a file)."""

from alembic import context

from lib.store.models import SQLModel, UTCDateTime

target_metadata = SQLModel.metadata


def render_item(kind: str, obj: object, autogen_context: object) -> str | bool:
    """Migrations stay free of our own types: UTCDateTime is a timezone-aware DateTime."""
    if kind == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations() -> None:
    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things; batch mode copies the table
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations()

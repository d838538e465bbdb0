"""``switchboard audit``: the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from lib.cli.common import reports_errors, to_json
from lib.kernel.words import parse_span, shown
from lib.services.guard import audit
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime
from lib.store.models import AuditEvent


def _since(value: str | None) -> datetime | None:
    """An ISO date/time (UTC when no zone is given), or a span back from now: 30m, 24h, 7d."""
    if value is None:
        return None
    back = parse_span(value)
    if back is not None:
        return datetime.now(UTC) - back
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use an ISO date such as 2026-11-01, or a span such as 7d, 24h, 30m") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.command("audit")
@click.option("--since", help="ISO date/time (UTC) or a span back from now: 30m, 24h, 7d.")
@click.option(
    "--limit",
    type=click.IntRange(1, audit.EXPORT_LIMIT),
    default=audit.PAGE_SIZE,
    show_default=True,
    help="Print at most this many rows.",
)
@click.option(
    "--before",
    type=click.IntRange(min=1),
    metavar="ID",
    help="Only rows older than row ID: the next page, as the line after the rows says.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (each row with its id).")
@reports_errors
def command(since: str | None, limit: int, before: int | None, as_json: bool) -> None:
    """The audit trail: who did what and when.

    Sign-ins, changes, tests, exports, key operations and account changes, newest first, a
    page at a time: standard error says which rows of how many were printed, and how to ask
    for the older ones.
    """
    start = _since(since)
    rt = open_runtime()
    page = audit.page(rt.engine, shell(), audit.Filter(since=start), before=before, size=limit)
    if as_json:
        # In the table's declared order: an ORM-loaded row's own dict follows no fixed order
        # (it varied with the process's hash seed), and scripts diff this output.
        click.echo(to_json([{name: getattr(e, name) for name in AuditEvent.model_fields} for e in page.rows]))
    elif not page.rows:
        click.echo("No audit events.")
    else:
        for e in page.rows:
            click.echo(f"{shown(e.at)} {e.actor:<20} {e.action:<18} {e.result:<8} {e.target}  {e.detail}")
    if page.rows:
        older = f" Older ones: add --before {page.older}." if page.older is not None else ""
        click.echo(f"{page.describe()}, newest first.{older}", err=True)

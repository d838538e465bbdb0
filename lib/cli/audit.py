"""``switchboard audit``: the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from lib import audit
from lib.access import shell
from lib.cli.common import reports_errors, to_json
from lib.runtime import open_runtime
from lib.words import parse_span, shown


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
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def command(since: str | None, as_json: bool) -> None:
    """The audit trail: who did what and when.

    Sign-ins, changes, tests, exports, key operations and account changes, oldest first.
    """
    start = _since(since)
    rt = open_runtime()
    events = audit.events(rt.engine, shell(), since=start)
    if as_json:
        click.echo(to_json([e.model_dump(exclude={"id"}) for e in events]))
        return
    if not events:
        click.echo("No audit events.")
        return
    for e in events:
        click.echo(f"{shown(e.at)} {e.actor:<20} {e.action:<18} {e.result:<8} {e.target}  {e.detail}")

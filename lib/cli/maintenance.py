"""``switchboard maintenance``: planned times in which a connection, an environment or every
connection raises no alert (lib.services.alerts.maintenance)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from lib.cli.common import invoked_as, reports_errors, to_json
from lib.kernel.words import SPAN_EXAMPLES, parse_span, shown
from lib.services.alerts import maintenance
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime

MOMENT_HELP = "ISO 8601 (e.g. 2026-12-24T22:00, UTC unless it names its zone), 'now' or from now (+2h)."


class Moment(click.ParamType[datetime]):
    """A moment as people write it on a command line: ISO 8601 (naive is UTC), ``now``, or a
    span from now (``+2h``, as lib.kernel.words reads spans)."""

    name = "moment"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text, now = str(value).strip(), datetime.now(UTC)
        if text.lower() == "now":
            return now
        if text.startswith("+") and (ahead := parse_span(text[1:])) is not None:
            return now + ahead
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"'{text[:40]}' is not a moment: write e.g. 2026-12-24T22:00 (UTC), now, or +{SPAN_EXAMPLES}.",
                param,
                ctx,
            )
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@click.group("maintenance")
def command() -> None:
    """Maintenance windows: add, list, remove (no alerts while they run).

    Checks still run and are stored; what happens inside a window is sent to no channel, and
    when it ends one maintenance.ended event names what still fails (nothing when all works).
    """


@command.command("add")
@click.option("--from", "starts_at", type=Moment(), required=True, help=f"When it starts: {MOMENT_HELP}")
@click.option("--to", "ends_at", type=Moment(), required=True, help=f"When it ends: {MOMENT_HELP}")
@click.option("--connection", help="Only this connection (by name, capitals ignored).")
@click.option("--environment", help="Only the connections with this environment label (e.g. production).")
@click.option("--reason", default="", help="Why, for the people who see it (at most 200 characters).")
@reports_errors
def maintenance_add(
    starts_at: datetime, ends_at: datetime, connection: str | None, environment: str | None, reason: str
) -> None:
    """Add a window for a connection, an environment, or (neither) every connection."""
    view = maintenance.add(
        open_runtime().engine,
        starts_at=starts_at,
        ends_at=ends_at,
        connection=connection,
        environment=environment,
        reason=reason,
        actor=shell(),
    )
    click.echo(
        f"Added maintenance window #{view.id} for {view.covered}, {shown(view.starts_at)} to {shown(view.ends_at)}."
    )


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def maintenance_list(as_json: bool) -> None:
    """Current and upcoming windows, soonest first."""
    views = maintenance.list_windows(open_runtime().engine, actor=shell())
    if as_json:
        click.echo(to_json([v.as_json() for v in views]))
        return
    if not views:
        click.echo(f"No maintenance windows. Add one with: {invoked_as()} maintenance add --from now --to +2h")
    now = datetime.now(UTC)
    for v in views:
        click.echo(
            f"#{v.id:<5} {v.state(now):<9} {shown(v.starts_at)} to {shown(v.ends_at)}  {v.covered}"
            + (f" ({v.reason})" if v.reason else "")
        )


@command.command("remove")
@click.argument("window_id", type=int)
@reports_errors
def maintenance_remove(window_id: int) -> None:
    """Remove a planned window, or end one in force now (its summary follows)."""
    click.echo(maintenance.remove(open_runtime().engine, window_id, actor=shell()))

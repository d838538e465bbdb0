"""``switchboard incidents``: what is failing now, and acknowledging it."""

from __future__ import annotations

import dataclasses

import click

from lib.cli.common import reports_errors, to_json
from lib.kernel.words import shown
from lib.services.alerts import incidents
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime


@click.group("incidents")
def command() -> None:
    """Open problems: list what is failing now, acknowledge one.

    An incident is one ticked product of one connection that failed enough checks in a row to
    alert, and fails still. Acknowledging it stops its reminders until it recovers or fails
    another way, and tells the channels that heard of it who took it on.
    """


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array (times in UTC, ISO 8601).")
@reports_errors
def incidents_list(as_json: bool) -> None:
    """What is failing now, newest first: since when, which channels were told, the next reminder."""
    found = incidents.open_incidents(open_runtime().engine, actor=shell())
    if as_json:
        click.echo(to_json([dataclasses.asdict(i) for i in found]))
        return
    if not found:
        click.echo("Nothing is failing now.")
    for i in found:
        acknowledged = (
            f"acknowledged by {i.acknowledged_by} {shown(i.acknowledged_at)}"
            if i.acknowledged_by
            else f"next reminder {shown(i.next_reminder_at)}"
        )
        told = "; ".join(t.describe() for t in i.told) or "no channel"
        maintained = f"\n{'':12}in maintenance until {shown(i.maintenance_until)}" if i.maintenance_until else ""
        click.echo(
            f"{i.id}  {i.connection} ({i.environment or 'no environment'}): {i.product_label}: {i.outcome_label}\n"
            f"{'':12}failing since {shown(i.failing_since)}, {i.failures} in a row; {acknowledged}\n"
            f"{'':12}told: {told}{maintained}"
        )


@command.command("ack")
@click.argument("incident_id", metavar="ID")
@reports_errors
def incidents_ack(incident_id: str) -> None:
    """Acknowledge incident ID (from `incidents list`): its reminders stop until it changes."""
    done = incidents.acknowledge(open_runtime().engine, incident_id, actor=shell())
    click.echo(done.describe())

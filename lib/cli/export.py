"""``switchboard export``: connection status as CSV, JSON or Excel."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lib.catalogue.outcomes import OUTCOMES
from lib.cli.common import reports_errors
from lib.services.guard.access import shell
from lib.services.history import status
from lib.services.reporting import export
from lib.services.reporting.connections_table import ANY_PROBLEM, Selection
from lib.services.runtime import open_runtime

OUTCOME_CHOICES = ("any-problem", *OUTCOMES, *status.UNTESTED)


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(sorted(export.FORMATS)), required=True, help="xlsx is Excel.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: a timestamped name in the current folder; - for stdout).",
)
@click.option(
    "--environment",
    "environments",
    multiple=True,
    metavar="ENV",
    help="Only connections in this environment (repeat for several).",
)
@click.option("--search", default="", help="Only connections whose name contains this text.")
@click.option(
    "--outcome",
    "outcomes",
    multiple=True,
    type=click.Choice(OUTCOME_CHOICES),
    metavar="OUTCOME",
    help=f"Only connections with a ticked product in this state (repeat for several): {', '.join(OUTCOME_CHOICES)}.",
)
@reports_errors
def command(
    fmt: str, output: Path | None, environments: tuple[str, ...], search: str, outcomes: tuple[str, ...]
) -> None:
    """Connection status as CSV, JSON or Excel (never a secret).

    One row per connection and product, for the connections the filters select (every
    connection without filters), with who must act and the fix where a product fails.
    """
    rt = open_runtime()
    selection = (
        Selection(
            search, frozenset(environments), frozenset(ANY_PROBLEM if o == "any-problem" else o for o in outcomes)
        )
        if environments or search or outcomes
        else None
    )
    to_stdout = output is not None and str(output) == "-"
    target = None if to_stdout else (output or Path(export.file_name(fmt))).resolve()
    result = export.export(
        rt.engine,
        fmt,
        actor=shell(),
        selection=selection,
        written_to="standard output" if target is None else str(target),
    )
    if target is None:
        sys.stdout.buffer.write(result.data)
        return
    target.write_bytes(result.data)
    click.echo(f"Wrote {target}", err=True)

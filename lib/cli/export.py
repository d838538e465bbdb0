"""``switchboard export``: connection status as CSV, JSON or Excel."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from lib import export
from lib.access import shell
from lib.cli.common import reports_errors
from lib.runtime import open_runtime


@click.command("export")
@click.option("--format", "fmt", type=click.Choice(sorted(export.FORMATS)), required=True,
              help="xlsx is Excel.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: a timestamped name in the current folder; - for stdout).")
@reports_errors
def command(fmt: str, output: Path | None) -> None:
    """Connection status as CSV, JSON or Excel (never a secret).

    One row per connection and product.
    """
    rt = open_runtime()
    result = export.export(rt.engine, fmt, actor=shell())
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(result.data)
        return
    target = output or Path(result.file_name)
    target.write_bytes(result.data)
    click.echo(f"Wrote {target}", err=True)

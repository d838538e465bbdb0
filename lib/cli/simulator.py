"""``switchboard simulator``: a local 8x8 for demos and tests."""

from __future__ import annotations

from pathlib import Path

import click

from lib.cli.common import reports_errors
from lib.simulator import serve


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option("--port", default=8088, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--scenario",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Scenario JSON (default: the sample scenario).",
)
@reports_errors
def command(host: str, port: int, scenario: Path | None) -> None:
    """Serve a local 8x8 API simulator, for demos and tests.

    The token endpoint and the five probes, on a loopback address only.
    """
    serve(host, port, scenario)

"""``switchboard worker``: run the scheduled checks, as a process of its own or from cron."""

from __future__ import annotations

import signal
import sys
import threading
from datetime import UTC, datetime, timedelta

import click

from lib.cli.common import CONFIG_ERRORS, prober
from lib.kernel.words import SPAN_EXAMPLES, parse_span, shown
from lib.services.checking.worker import TickReport, Worker
from lib.services.runtime import open_runtime


def _span(value: str, option: str) -> timedelta:
    found = parse_span(value)
    if found is None or found < timedelta(seconds=1):
        raise click.BadParameter(f"write a whole number and a unit, e.g. {SPAN_EXAMPLES}", param_hint=option)
    return found


@click.command("worker")
@click.option("--once", is_flag=True, help="Run one tick and exit: 0 when every check was ok, 1 when any was not.")
@click.option(
    "--tick", "tick_text", default="30s", show_default=True, help="Time from the start of one tick to the next."
)
@click.option(
    "--lease",
    "lease_text",
    default="2m",
    show_default=True,
    help="How long what this worker claimed stays its own without renewal; a worker that "
    "died lets go of it after this.",
)
@click.option(
    "--batch",
    default=2500,
    show_default=True,
    type=click.IntRange(min=1),
    help="Due (connection, product) pairs claimed at a time.",
)
def command(once: bool, tick_text: str, lease_text: str, batch: int) -> None:
    """Run the scheduled checks: tick until stopped, or once.

    Any number of workers may share the database: each due check runs once. SIGTERM or Ctrl+C
    stops the worker after the batch it is checking (exit 0). With --once: exit 0 when every
    check of the tick was ok, 1 when any was not. Exit 2 for usage or configuration errors.
    """
    tick, lease = _span(tick_text, "--tick"), _span(lease_text, "--lease")
    try:
        rt = open_runtime()
    except CONFIG_ERRORS as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    with prober(rt) as client:
        assert client is not None
        worker = Worker(rt, client, tick=tick, lease=lease, batch=batch)
        if once:
            report = worker.tick()
            click.echo(report.describe())
            sys.exit(0 if report.ok else 1)
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        click.echo(f"Worker {worker.id} ticks every {tick_text}; stop it with SIGTERM or Ctrl+C.")

        def said(report: TickReport) -> None:
            if report.checked:
                click.echo(f"{shown(datetime.now(UTC))} {report.describe()}")

        worker.run(stop, on_tick=said)
    click.echo("Worker stopped.")

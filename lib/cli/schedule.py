"""``switchboard schedule``: how often connections are checked, and pausing them."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import click

from lib.cli.common import CONFIG_ERRORS, reports_errors
from lib.kernel.errors import NotFoundError, ValidationError
from lib.kernel.words import shown, span
from lib.services import connections
from lib.services.checking import schedule
from lib.services.connections import ConnectionView
from lib.services.guard.access import shell
from lib.services.runtime import Runtime, open_runtime

_CONNECTION = click.option(
    "--connection", "name", metavar="NAME", help="Only this connection (default: all connections)."
)


@click.group("schedule")
def command() -> None:
    """How often connections are checked: show, set, pause, resume."""


def _open(name: str | None) -> tuple[Runtime, ConnectionView | None]:
    """The runtime and the named connection; an unknown name is a usage error (exit 2)."""
    try:
        rt = open_runtime()
        return rt, connections.find_by_name(rt.engine, name) if name is not None else None
    except (*CONFIG_ERRORS, NotFoundError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _next(plan: schedule.ConnectionPlan, now: datetime) -> str:
    """Its next scheduled check, marked "(due)" only when a worker's tick takes it now: its
    earliest slot has come and the connection is not paused (as lib.services.checking.worker claims). A
    connection the worker has not planned yet gets its first slot, in the future, at the tick."""
    if plan.paused:
        return "paused"
    if plan.next_check is None:
        return "not planned yet"
    return shown(plan.next_check) + (" (due)" if plan.due else "")


def _ago(when: datetime, now: datetime) -> str:
    return f"{max(0, int((now - when).total_seconds()))} s ago"


@command.command("show")
@reports_errors
def show() -> None:
    """The interval, what is paused, each connection's next and last scheduled check, and the workers."""
    rt, _ = _open(None)
    now = datetime.now(UTC)
    plan = schedule.overview(rt.engine, shell())
    click.echo(f"Every {span(plan.every)} by default" + ("; PAUSED for all connections." if plan.paused else "."))
    workers = schedule.workers(rt.engine, shell())
    alive = [w for w in workers if w.alive(now)]
    if not alive:
        click.echo("No worker is running: scheduled checks wait until `switchboard worker` or the server runs.")
    for w in alive:
        ok = f"last successful tick {_ago(w.last_ok_tick_at, now)}" if w.last_ok_tick_at else "no successful tick yet"
        click.echo(
            f"Worker {w.worker_id}: last tick began {_ago(w.last_tick_at, now)}, {ok}, ticks every {span(w.tick)}."
        )
        if w.failing:
            click.echo(
                f"  FAILING: its latest tick failed {_ago(w.last_failed_tick_at or now, now)}: "
                f"{w.last_failure or 'no detail'}"
            )
    if not plan.connections:
        click.echo("No connections stored.")
        return
    click.echo(f"\n{'connection':<28} {'every':<10} {'next check':<26} last scheduled check")
    for c in plan.connections:
        every = span(c.every) + ("" if c.own_every else "*")
        click.echo(f"{c.name[:28]:<28} {every:<10} {_next(c, now):<26} {shown(c.last_run, never='none yet')}")
    click.echo("\n* the default interval")


@command.command("set")
@click.option(
    "--every",
    "every_text",
    required=True,
    help="Interval between checks, e.g. 30m or 1h (1m to 7d); with --connection, "
    "'default' makes it follow the default again.",
)
@_CONNECTION
@reports_errors
def set_every(every_text: str, name: str | None) -> None:
    """Check connections this often (all of them, or one with --connection)."""
    try:
        every = (
            None if name is not None and every_text.strip().lower() == "default" else schedule.parse_every(every_text)
        )
    except ValidationError as exc:
        raise click.BadParameter(exc.errors[0].message, param_hint="--every") from None
    rt, view = _open(name)
    schedule.set_every(rt.engine, every, actor=shell(), connection=view)
    who = view.name if view is not None else "Connections without an interval of their own"
    click.echo(
        f"{who}: checked every {span(every)}." if every is not None else f"{who}: follows the default interval again."
    )


@command.command("pause")
@_CONNECTION
@reports_errors
def pause(name: str | None) -> None:
    """Stop scheduled checks (of all connections, or one) until resumed; manual tests still run."""
    rt, view = _open(name)
    schedule.set_paused(rt.engine, True, actor=shell(), connection=view)
    click.echo(f"Scheduled checks paused for {view.name if view else 'all connections'}.")


@command.command("resume")
@_CONNECTION
@reports_errors
def resume(name: str | None) -> None:
    """Start scheduled checks again; what fell due meanwhile runs at the next tick, once."""
    rt, view = _open(name)
    schedule.set_paused(rt.engine, False, actor=shell(), connection=view)
    click.echo(f"Scheduled checks resumed for {view.name if view else 'all connections'}.")

"""``switchboard check``: test connections against 8x8, for people and for cron."""

from __future__ import annotations

import sys
from typing import Any

import click

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS
from lib.cli.common import CONFIG_ERRORS, prober, to_json
from lib.kernel.errors import NotFoundError
from lib.services import connections
from lib.services.checking import checks
from lib.services.connections import ConnectionView
from lib.services.guard.access import shell
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime, open_runtime


def _check_json(record: CheckRecord, environment: str) -> dict[str, Any]:
    outcome = OUTCOMES[record.outcome]
    return {
        "connection": record.connection,
        "environment": environment,
        "product": record.product,
        "outcome": record.outcome,
        "http_status": record.http_status,
        "duration_ms": record.duration_ms,
        "detail": record.detail,
        "checked_at": record.checked_at,  # to_json writes it in the machine form
        "cause": outcome.cause,
        "who_must_act": outcome.actor.value,
        "fix": outcome.fix,
        "run_id": record.run_id,
    }


def _selected(rt: Runtime, names: tuple[str, ...], environment: str | None) -> list[ConnectionView]:
    """The named connections (every one when no names), narrowed to ``environment`` if given."""
    views = (
        [connections.find_by_name(rt.engine, name) for name in names]
        if names
        else connections.list_connections(rt.engine)
    )
    if environment is None:
        return views
    wanted = environment.strip().casefold()
    inside = [v for v in views if v.environment.strip().casefold() == wanted]
    if names and len(inside) < len(views):
        v = next(v for v in views if v.environment.strip().casefold() != wanted)
        where = f"in environment '{v.environment}'" if v.environment else "in no environment"
        raise click.UsageError(f"Connection '{v.name}' is {where}, not in '{environment}'.")
    if not inside:
        known = sorted({v.environment for v in views if v.environment}, key=str.casefold)
        raise click.UsageError(
            f"No connection is in environment '{environment}'. Environments in use: "
            + (", ".join(known) if known else "none (no connection has one)")
            + "."
        )
    return inside


@click.command("check")
@click.argument("names", nargs=-1)
@click.option("--all", "check_all", is_flag=True, help="Check every stored connection.")
@click.option(
    "--environment", help="Only connections in this environment (e.g. production); narrows the named ones or --all."
)
@click.option("--product", type=click.Choice(PRODUCT_KEYS), help="Check only this product.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per product.")
def command(
    names: tuple[str, ...], check_all: bool, environment: str | None, product: str | None, as_json: bool
) -> None:
    """Test products of the named connections (or --all) against 8x8.

    Exit 0 when every outcome is ok, 1 when any is not, 2 for usage or configuration errors.
    """
    if bool(names) == check_all:
        raise click.UsageError("Name one or more connections, or give --all (not both).")
    try:
        rt = open_runtime()
        views = _selected(rt, names, environment)
    except (*CONFIG_ERRORS, NotFoundError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    ids = None if check_all and environment is None else [v.id for v in views]
    with prober(rt) as client:
        assert client is not None
        report = checks.run_checks(rt, client, connection_ids=ids, product=product, triggered_by=shell())
    records = sorted(report.products, key=lambda r: (r.connection.casefold(), PRODUCT_KEYS.index(r.product)))
    if as_json:
        environments = {v.id: v.environment for v in views}
        click.echo(to_json([_check_json(r, environments.get(r.connection_id, "")) for r in records]))
    else:
        _print_table(records)
    sys.exit(0 if report.ok else 1)


def _print_table(records: list[CheckRecord]) -> None:
    if not records:
        click.echo("Nothing to check: no connections stored.")
        return
    click.echo(f"{'connection':<24} {'product':<26} {'outcome':<22} {'http':>4} {'ms':>6}  detail / who must act")
    for r in records:
        outcome = OUTCOMES[r.outcome]
        style = {"fg": "green"} if r.ok else {"fg": "red", "bold": True}
        label = click.style(f"{outcome.label:<22}", **style)  # colour only reaches a terminal
        click.echo(
            f"{r.connection[:24]:<24} {PRODUCTS[r.product].name:<26} {label} "
            f"{r.http_status or '':>4} {r.duration_ms:>6}  {r.detail}"
        )
        if not r.ok:
            click.echo(f"{'':<82}-> {outcome.actor.value}: {outcome.fix}")

"""``switchboard connections``: stored 8x8 API app credentials."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import click

from lib import connections, linking
from lib.access import shell
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS, SETTINGS
from lib.cli.common import F, invoked_as, prober, read_hidden, reports_errors, to_json
from lib.connections import ConnectionInput, ConnectionView
from lib.runtime import open_runtime


@click.group("connections")
def command() -> None:
    """Stored 8x8 API app credentials: add, list, remove."""


def _product_list(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


def setting_options(func: F) -> F:
    """One --<setting> option per product setting in lib.catalogue.products (data-driven)."""
    for setting in reversed(SETTINGS.values()):
        option = f"--{setting.key.replace('_', '-')}"
        choice = click.Choice(setting.choices) if setting.choices else None
        func = click.option(option, setting.key, type=choice, help=setting.help)(func)
    return func


@command.command("add")
@click.option("--name", required=True, help="A name people recognise, unique ignoring case.")
@click.option("--no-verify", is_flag=True, help="Save without asking 8x8 first (saved as untested).")
@click.option("--client-id", required=True, help="The Client ID from the 8x8 Admin Console.")
@click.option("--secret-stdin", is_flag=True, help="Read the Client Secret from standard input.")
@click.option("--environment", default="", help="A label such as production or staging.")
@click.option("--products", "expected_products", help=f"Products ticked on the 8x8 app, comma-separated: {', '.join(PRODUCT_KEYS)}.")
@setting_options
@reports_errors
def connections_add(name: str, no_verify: bool, client_id: str, secret_stdin: bool, environment: str,
                    expected_products: str | None, **settings: str | None) -> None:
    """Verify with 8x8, then store a connection (encrypted).

    The Client Secret comes from standard input (--secret-stdin) or a hidden prompt.
    """
    rt = open_runtime()
    secret = read_hidden(secret_stdin, "Client Secret", "--secret-stdin")
    data = ConnectionInput(name=name, client_id=client_id, client_secret=secret,
                           environment=environment, expected_products=_product_list(expected_products), **settings)
    with prober(rt, skip=no_verify) as client:
        view, answer = linking.save(rt, client, data, actor=shell())
    if answer is None:
        click.echo(f"Saved connection '{view.name}' (Client ID {view.client_id_hint}) without verifying; "
                   "it is untested.")
        return
    granted = ", ".join(PRODUCTS[k].name for k in PRODUCT_KEYS if k in answer.granted) or "no products"
    click.echo(f"8x8 issued a token. Saved connection '{view.name}' (Client ID {view.client_id_hint}). "
               f"8x8 grants: {granted}.")
    for warning in answer.warnings():
        click.echo(f"warning: {warning}", err=True)


def _view_json(view: ConnectionView) -> dict[str, Any]:
    out = asdict(view)
    out["id"] = str(view.id)
    return out


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def connections_list(as_json: bool) -> None:
    """Stored connections, with masked Client IDs (never a secret)."""
    views = connections.list_connections(open_runtime().engine)
    if as_json:
        click.echo(to_json([_view_json(v) for v in views]))
        return
    if not views:
        click.echo(f"No connections yet. Add one with: {invoked_as()} connections add --help")
        return
    click.echo(f"{'name':<30} {'environment':<14} {'client id':<12} {'secret set':<20} products")
    for v in views:
        click.echo(f"{v.name:<30} {v.environment:<14} {v.client_id_hint:<12} "
                   f"{v.secret_set_at:%Y-%m-%d %H:%M}Z     {','.join(v.expected_products) or '-'}")


@command.command("remove")
@click.argument("name")
@reports_errors
def connections_remove(name: str) -> None:
    """Delete the connection called NAME and its test history."""
    rt = open_runtime()
    view = connections.find_by_name(rt.engine, name)
    connections.delete(rt.engine, view.id, actor=shell())
    click.echo(f"Removed connection '{view.name}'.")

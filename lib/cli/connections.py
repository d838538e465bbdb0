"""``switchboard connections``: stored 8x8 API app credentials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click
from pydantic import SecretStr

from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS, SETTINGS
from lib.cli.common import F, invoked_as, prober, read_hidden, reports_errors, to_json
from lib.kernel.errors import FieldError, ValidationError
from lib.kernel.words import shown
from lib.services import connections
from lib.services.connections import FIELD_LABELS, ConnectionInput, ConnectionView, linking
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime


@click.group("connections")
def command() -> None:
    """Stored 8x8 API app credentials: add, edit, list, remove."""


def _product_list(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


class _ChoiceOrEmpty(click.Choice[str]):
    """One of the choices, or "" (an edit's way to clear the stored value)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return "" if value == "" else super().convert(value, param, ctx)


def _setting_options(*, clearable: bool) -> Callable[[F], F]:
    """One --<setting> option per product setting in lib.catalogue.products (data-driven);
    ``clearable``: an empty value is accepted, and clears the stored one."""

    def decorate(func: F) -> F:
        for setting in reversed(list(SETTINGS.values())):
            option = f"--{setting.key.replace('_', '-')}"
            choice = (_ChoiceOrEmpty if clearable else click.Choice)(setting.choices) if setting.choices else None
            text = f'{setting.help} "" clears it.' if clearable else setting.help
            func = click.option(option, setting.key, type=choice, help=text)(func)
        return func

    return decorate


setting_options = _setting_options(clearable=False)


@command.command("add")
@click.option("--name", required=True, help="A name people recognise, unique ignoring case.")
@click.option("--no-verify", is_flag=True, help="Save without asking 8x8 first (saved as untested).")
@click.option("--client-id", required=True, help="The Client ID from the 8x8 Admin Console.")
@click.option("--secret-stdin", is_flag=True, help="Read the Client Secret from standard input.")
@click.option("--environment", default="", help="A label such as production or staging.")
@click.option(
    "--products",
    "expected_products",
    help=f"Products ticked on the 8x8 app, comma-separated: {', '.join(PRODUCT_KEYS)}.",
)
@setting_options
@reports_errors
def connections_add(
    name: str,
    no_verify: bool,
    client_id: str,
    secret_stdin: bool,
    environment: str,
    expected_products: str | None,
    **settings: str | None,
) -> None:
    """Verify with 8x8, then store a connection (encrypted).

    The Client Secret comes from standard input (--secret-stdin) or a hidden prompt.
    """
    rt = open_runtime()
    secret = read_hidden(secret_stdin, "Client Secret", "--secret-stdin")
    data = ConnectionInput(
        name=name,
        client_id=client_id,
        client_secret=secret,
        environment=environment,
        expected_products=_product_list(expected_products),
        **settings,
    )
    with prober(rt, skip=no_verify) as client:
        view, answer = linking.save(rt, client, data, actor=shell())
    _report_saved(view, answer, "it is untested")


def _report_saved(view: ConnectionView, answer: linking.TokenAnswer | None, unverified: str) -> None:
    if answer is None:
        click.echo(f"Saved connection '{view.name}' (Client ID {view.client_id_hint}) without verifying; {unverified}.")
        return
    granted = ", ".join(PRODUCTS[k].name for k in PRODUCT_KEYS if k in answer.granted) or "no products"
    click.echo(
        f"8x8 issued a token. Saved connection '{view.name}' (Client ID {view.client_id_hint}). 8x8 grants: {granted}."
    )
    for warning in answer.warnings():
        click.echo(f"warning: {warning}", err=True)


@command.command("edit")
@click.argument("connection")
@click.option("--name", help="A new name, unique ignoring case.")
@click.option("--no-verify", is_flag=True, help="Save without asking 8x8 first.")
@click.option(
    "--secret-stdin", is_flag=True, help="Replace the Client Secret with the one read from standard input (a rotation)."
)
@click.option("--client-id", help="Replace the Client ID too (another 8x8 app); usually with --secret-stdin.")
@click.option("--environment", help='A label such as production or staging; "" clears it.')
@click.option(
    "--products",
    "expected_products",
    help=f'Products ticked on the 8x8 app, comma-separated ("" for none: all are tested): {", ".join(PRODUCT_KEYS)}.',
)
@_setting_options(clearable=True)
@reports_errors
def connections_edit(
    connection: str,
    name: str | None,
    no_verify: bool,
    secret_stdin: bool,
    client_id: str | None,
    environment: str | None,
    expected_products: str | None,
    **settings: str | None,
) -> None:
    """Change the connection called CONNECTION, or rotate its Client Secret, keeping its test
    history and alert state.

    Only the options given change; "" clears an optional one. Verified with 8x8 before
    anything is saved, as with add. To rotate the Client Secret, regenerate it in the 8x8
    Admin Console, then pipe it to: connections edit NAME --secret-stdin
    """
    changes: dict[str, object] = {
        key: value
        for key, value in (("name", name), ("environment", environment), *settings.items())
        if value is not None
    }
    if expected_products is not None:
        changes["expected_products"] = _product_list(expected_products)
    if not changes and client_id is None and not secret_stdin:
        raise click.UsageError(
            "Nothing to change: give the options to change (e.g. --environment), or "
            "--secret-stdin to replace the Client Secret."
        )
    rt = open_runtime()
    view = connections.find_by_name(rt.engine, connection)
    secret = read_hidden(True, "Client Secret", "--secret-stdin") if secret_stdin else None
    _refuse_blank_credentials(client_id, secret)
    data = connections.input_from_view(
        view, client_id=client_id or "", client_secret=secret or SecretStr(""), **changes
    )
    with prober(rt, skip=no_verify) as client:
        saved, answer = linking.save(
            rt, client, data, actor=shell(), connection_id=view.id, expected_version=view.version
        )
    _report_saved(saved, answer, "its next test tells whether 8x8 accepts it")
    if saved.settings_version != view.settings_version:
        click.echo(
            "Its earlier results no longer count as its status (what is tested changed); "
            "the next check tests it as it is now."
        )


def _refuse_blank_credentials(client_id: str | None, secret: SecretStr | None) -> None:
    """An edit's blank credential means "keep the stored one": given on purpose but empty, it
    is a mistake to name, not a quiet no-op."""
    errors = []
    if client_id is not None and not client_id.strip():
        errors.append(
            FieldError(
                "client_id",
                FIELD_LABELS["client_id"],
                "Paste the new Client ID, or leave --client-id out to keep the stored one.",
            )
        )
    if secret is not None and not secret.get_secret_value():
        errors.append(
            FieldError(
                "client_secret",
                FIELD_LABELS["client_secret"],
                "Standard input held no secret: pipe the new Client Secret in, or leave "
                "--secret-stdin out to keep the stored one.",
            )
        )
    if errors:
        raise ValidationError(errors)


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
        click.echo(
            f"{v.name:<30} {v.environment:<14} {v.client_id_hint:<12} "
            f"{shown(v.secret_set_at):<20} {','.join(v.expected_products) or '-'}"
        )


@command.command("remove")
@click.argument("name")
@reports_errors
def connections_remove(name: str) -> None:
    """Delete the connection called NAME and its test history."""
    rt = open_runtime()
    view = connections.find_by_name(rt.engine, name)
    connections.delete(rt.engine, view.id, actor=shell())
    click.echo(f"Removed connection '{view.name}'.")

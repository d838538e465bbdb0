"""``python -m lib …``: the same service functions the console uses, for shells and cron.

Exit codes: 0 success, 1 the action failed or found a problem, 2 usage or configuration error.
Secrets are read from standard input (``--secret-stdin``) or a hidden prompt, never from
arguments, so they stay out of shell history and ``ps``.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import SecretStr

from lib import audit, checks, connections, keys, linking, users
from lib import export as export_mod
from lib.access import shell
from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCT_KEYS, PRODUCTS, SETTINGS
from lib.config import get_settings
from lib.connections import ConnectionInput, ConnectionView
from lib.eightbyeight.prober import Prober
from lib.errors import (
    ConfigError,
    DatabaseNotReady,
    KeyringError,
    NotFoundError,
    SwitchboardError,
    ValidationError,
)
from lib.redaction import configure_logging
from lib.runtime import Runtime, open_runtime
from lib.status import CheckRecord
from lib.store import db, keyring

F = TypeVar("F", bound=Callable[..., Any])
CONFIG_ERRORS = (ConfigError, KeyringError, DatabaseNotReady)


def reports_errors(func: F) -> F:
    """Turn Switchboard's typed errors into a message on stderr and the contract's exit code."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            for error in exc.errors:
                click.echo(f"error: --{error.field.replace('_', '-')}: {error.message}", err=True)
            sys.exit(1)
        except CONFIG_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except SwitchboardError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Switchboard: keep and test 8x8 API credentials."""
    configure_logging([logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])


# --- keys ---------------------------------------------------------------------------------


@cli.group("keys")
def keys_group() -> None:
    """The encryption keyring."""


@keys_group.command("status")
@reports_errors
def keys_status() -> None:
    """Which keys exist, which is active, and how many stored values use each."""
    rt = open_runtime()
    click.echo(f"{'kid':<12} {'in keyring':<11} {'active':<7} values")
    for status in keys.key_status(rt.engine, rt.vault):
        click.echo(f"{status.kid:<12} {'yes' if status.in_keyring else 'NO':<11} "
                   f"{'yes' if status.active else '':<7} {status.values}")


@keys_group.command("add")
@reports_errors
def keys_add() -> None:
    """Create a new key in the keyring file and make it active (then run `keys rotate`)."""
    open_runtime()  # the current keyring must match the data before it grows
    grown = keyring.add_key(get_settings())
    rt = open_runtime()  # writes the new key's canary
    audit.record_now(rt.engine, shell(), "keys.add", grown.active, audit.OK, "new key made active")
    click.echo(f"Added key '{grown.active}' and made it active. Back up the keyring file now, "
               "then run: python -m lib keys rotate")


@keys_group.command("rotate")
@click.option("--batch", default=100, show_default=True, help="Rows read per round.")
@reports_errors
def keys_rotate(batch: int) -> None:
    """Re-encrypt every credential still under an older key (resumable, safe beside edits)."""
    rt = open_runtime()
    report = keys.rotate(rt.engine, rt.vault, actor=shell(), batch=batch)
    click.echo(f"Rotated {report.rotated} connection(s) to key '{rt.vault.active_kid}'"
               + (f"; {report.retried} changed meanwhile and were redone." if report.retried else "."))


@keys_group.command("verify")
@reports_errors
def keys_verify() -> None:
    """Decrypt every stored credential; exit 1 if any cannot be read."""
    rt = open_runtime()
    report = keys.prove_readable(rt.engine, rt.vault)
    for kid, count in sorted(report.values_per_kid.items()):
        click.echo(f"{kid}: {count} value(s)" + (" (active)" if kid == rt.vault.active_kid else ""))
    for row_id, column, reason in report.unreadable:
        click.echo(f"unreadable: connection {row_id} {column}: {reason}", err=True)
    if not report.ok:
        sys.exit(1)
    click.echo("All stored credentials decrypt.")


# --- db -----------------------------------------------------------------------------------


@cli.group("db")
def db_group() -> None:
    """The database schema and backups."""


@db_group.command("upgrade")
@reports_errors
def db_upgrade() -> None:
    """Bring the database schema to the newest revision."""
    engine = db.make_engine(get_settings().database_url)
    db.upgrade(engine)
    click.echo(f"Database is at revision {db.current_revision(engine)}.")


@db_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@reports_errors
def db_backup(file: Path) -> None:
    """Online backup of the SQLite database to FILE (the keyring is NOT included)."""
    engine = db.make_engine(get_settings().database_url)
    target = db.backup(engine, file)
    click.echo(f"Backed up to {target}. Back up the keyring separately; keep the two apart.")


# --- connections --------------------------------------------------------------------------


@cli.group("connections")
def connections_group() -> None:
    """Stored 8x8 API app credentials."""


def _read_hidden(from_stdin: bool, what: str, flag: str, *, confirm: bool = False) -> SecretStr:
    """A secret from one line of standard input, or a hidden prompt; never an argument."""
    if from_stdin:
        return SecretStr(sys.stdin.readline().rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise click.UsageError(f"Give {flag} and pipe the {what} in, or run in a terminal.")
    return SecretStr(click.prompt(what, hide_input=True, confirmation_prompt=confirm))


def _product_list(value: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in value.split(",") if p.strip()) if value else ()


def setting_options(func: F) -> F:
    """One --<setting> option per product setting in lib.catalogue.products (data-driven)."""
    for setting in reversed(SETTINGS.values()):
        option = f"--{setting.key.replace('_', '-')}"
        choice = click.Choice(setting.choices) if setting.choices else None
        func = click.option(option, setting.key, type=choice, help=setting.help)(func)
    return func


@connections_group.command("add")
@click.option("--name", required=True, help="A name people recognise, unique ignoring case.")
@click.option("--no-verify", is_flag=True, help="Save without asking 8x8 first (saved as untested).")
@click.option("--client-id", required=True, help="The Client ID from the 8x8 Admin Console.")
@click.option("--secret-stdin", is_flag=True, help="Read the Client Secret from standard input.")
@click.option("--environment", default="", help="A label such as production or staging.")
@click.option("--products", help=f"Products enabled on the 8x8 app: {','.join(PRODUCT_KEYS)}")
@setting_options
@reports_errors
def connections_add(name: str, no_verify: bool, client_id: str, secret_stdin: bool, environment: str,
                    products: str | None, **settings: str | None) -> None:
    """Verify the credentials with 8x8, then store the connection (encrypted)."""
    rt = open_runtime()
    secret = _read_hidden(secret_stdin, "Client Secret", "--secret-stdin")
    data = ConnectionInput(name=name, client_id=client_id, client_secret=secret,
                           environment=environment, expected_products=_product_list(products), **settings)
    with _prober(rt, skip=no_verify) as prober:
        view, answer = linking.save(rt, prober, data, actor=shell())
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


@connections_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def connections_list(as_json: bool) -> None:
    """Stored connections, with masked Client IDs (never a secret)."""
    rt: Runtime = open_runtime()
    views = connections.list_connections(rt.engine)
    if as_json:
        click.echo(_json([_view_json(v) for v in views]))
        return
    if not views:
        click.echo("No connections yet. Add one with: python -m lib connections add --help")
        return
    click.echo(f"{'name':<30} {'environment':<14} {'client id':<12} {'secret set':<20} products")
    for v in views:
        click.echo(f"{v.name:<30} {v.environment:<14} {v.client_id_hint:<12} "
                   f"{v.secret_set_at:%Y-%m-%d %H:%M}Z     {','.join(v.expected_products) or '-'}")


@connections_group.command("remove")
@click.argument("name")
@reports_errors
def connections_remove(name: str) -> None:
    """Delete the connection called NAME and its test history."""
    rt = open_runtime()
    view = connections.find_by_name(rt.engine, name)
    connections.delete(rt.engine, view.id, actor=shell())
    click.echo(f"Removed connection '{view.name}'.")


@contextmanager
def _prober(rt: Runtime, *, skip: bool = False) -> Iterator[Prober | None]:
    if skip:
        yield None
        return
    prober = Prober(rt.settings.base_url)
    try:
        yield prober
    finally:
        prober.close()


# --- check --------------------------------------------------------------------------------


def _check_json(record: CheckRecord) -> dict[str, Any]:
    outcome = OUTCOMES[record.outcome]
    return {
        "connection": record.connection,
        "product": record.product,
        "outcome": record.outcome,
        "http_status": record.http_status,
        "duration_ms": record.duration_ms,
        "detail": record.detail,
        "checked_at": record.checked_at.isoformat(),
        "cause": outcome.cause,
        "who_must_act": outcome.actor.value,
        "fix": outcome.fix,
        "run_id": record.run_id,
    }


@cli.command("check")
@click.argument("names", nargs=-1)
@click.option("--all", "check_all", is_flag=True, help="Check every stored connection.")
@click.option("--product", type=click.Choice(PRODUCT_KEYS), help="Check only this product.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per product.")
def check(names: tuple[str, ...], check_all: bool, product: str | None, as_json: bool) -> None:
    """Test products of the named connections (or --all) against 8x8.

    Exit 0 when every outcome is ok, 1 when any is not, 2 for usage or configuration errors.
    """
    if bool(names) == check_all:
        raise click.UsageError("Name one or more connections, or give --all (not both).")
    try:
        rt = open_runtime()
        ids = None if check_all else [connections.find_by_name(rt.engine, n).id for n in names]
    except (*CONFIG_ERRORS, NotFoundError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    with _prober(rt) as prober:
        assert prober is not None
        report = checks.run_checks(rt, prober, connection_ids=ids, product=product, triggered_by=shell())
    records = sorted(report.products, key=lambda r: (r.connection.casefold(), PRODUCT_KEYS.index(r.product)))
    if as_json:
        click.echo(_json([_check_json(r) for r in records]))
    else:
        _print_check_table(records)
    sys.exit(0 if report.ok else 1)


def _print_check_table(records: list[CheckRecord]) -> None:
    if not records:
        click.echo("Nothing to check: no connections stored.")
        return
    click.echo(f"{'connection':<24} {'product':<26} {'outcome':<22} {'http':>4} {'ms':>6}  detail / who must act")
    for r in records:
        outcome = OUTCOMES[r.outcome]
        style = {"fg": "green"} if r.ok else {"fg": "red", "bold": True}
        label = click.style(f"{outcome.label:<22}", **style)  # colour only reaches a terminal
        click.echo(f"{r.connection[:24]:<24} {PRODUCTS[r.product].name:<26} {label} "
                   f"{r.http_status or '':>4} {r.duration_ms:>6}  {r.detail}")
        if not r.ok:
            click.echo(f"{'':<82}-> {outcome.actor.value}: {outcome.fix}")


# --- export -------------------------------------------------------------------------------


@cli.command("export")
@click.option("--format", "fmt", type=click.Choice(sorted(export_mod.FORMATS)), required=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write (default: a timestamped name in the current folder; - for stdout).")
@reports_errors
def export(fmt: str, output: Path | None) -> None:
    """Connection status per (connection, product); never a secret."""
    rt = open_runtime()
    result = export_mod.export(rt.engine, fmt, actor=shell())
    if output is not None and str(output) == "-":
        sys.stdout.buffer.write(result.data)
        return
    target = output or Path(result.file_name)
    target.write_bytes(result.data)
    click.echo(f"Wrote {target}", err=True)


# --- users --------------------------------------------------------------------------------


@cli.group("users")
def users_group() -> None:
    """Local accounts of the console (sign-in itself arrives with the console's sign-in page)."""


@users_group.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in users.Role]), required=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@reports_errors
def users_add(username: str, role: str, password_stdin: bool) -> None:
    """Create a local account."""
    rt = open_runtime()
    password = _read_hidden(password_stdin, "Password", "--password-stdin", confirm=True)
    view = users.add(rt.engine, username, password, role, actor=shell())
    click.echo(f"Added {view.role.value} '{view.username}'.")


@users_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def users_list(as_json: bool) -> None:
    """Accounts and their roles (never a hash)."""
    views = users.list_users(open_runtime().engine)
    if as_json:
        click.echo(_json([asdict(v) for v in views]))
        return
    for v in views:
        click.echo(f"{v.username:<40} {v.role.value:<9} {'local' if v.local else 'OIDC'}")


@users_group.command("remove")
@click.argument("username")
@reports_errors
def users_remove(username: str) -> None:
    """Delete an account (never the last admin)."""
    users.remove(open_runtime().engine, username, actor=shell())
    click.echo(f"Removed '{username}'.")


@users_group.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice([r.value for r in users.Role]))
@reports_errors
def users_set_role(username: str, role: str) -> None:
    """Change an account's role (never the last admin's)."""
    users.set_role(open_runtime().engine, username, role, actor=shell())
    click.echo(f"'{username}' is now {role}.")


@users_group.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@reports_errors
def users_reset_password(username: str, password_stdin: bool) -> None:
    """Set a new password for an account."""
    password = _read_hidden(password_stdin, "Password", "--password-stdin", confirm=True)
    users.reset_password(open_runtime().engine, username, password, actor=shell())
    click.echo(f"New password set for '{username}'.")


# --- audit --------------------------------------------------------------------------------


def _since(value: str | None) -> datetime | None:
    """An ISO date/time (UTC when no zone is given), or a span back from now: 30m, 24h, 7d."""
    if value is None:
        return None
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if value[:-1].isdigit() and value[-1:] in units:
        return datetime.now(timezone.utc) - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use an ISO date such as 2026-11-01, or a span such as 7d, 24h, 30m") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


@cli.command("audit")
@click.option("--since", help="ISO date/time (UTC) or a span back from now: 30m, 24h, 7d.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def audit_command(since: str | None, as_json: bool) -> None:
    """Who did what and when: changes, tests, exports and key operations."""
    start = _since(since)
    rt = open_runtime()
    events = audit.events(rt.engine, shell(), since=start)
    if as_json:
        click.echo(_json([e.model_dump(exclude={"id"}) for e in events]))
        return
    if not events:
        click.echo("No audit events.")
        return
    for e in events:
        click.echo(f"{e.at:%Y-%m-%d %H:%M:%S}Z {e.actor:<20} {e.action:<18} {e.result:<8} {e.target}  {e.detail}")


# --- simulator ----------------------------------------------------------------------------


@cli.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option("--port", default=8088, show_default=True, type=int)
@click.option("--scenario", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scenario JSON (default: the sample scenario).")
@reports_errors
def simulator(host: str, port: int, scenario: Path | None) -> None:
    """Serve a local 8x8 API simulator (token endpoint and the five probes)."""
    from lib.simulator import serve

    serve(host, port, scenario)


def main() -> None:
    cli(prog_name="python -m lib")

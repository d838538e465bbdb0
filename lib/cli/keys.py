"""``switchboard keys``: the encryption keyring."""

from __future__ import annotations

import sys

import click

from lib.cli.common import invoked_as, reports_errors
from lib.kernel import words
from lib.kernel.config import get_settings
from lib.services.connections import keys
from lib.services.guard import audit
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime
from lib.store import db, keyring


@click.group("keys")
def command() -> None:
    """The encryption keyring: status, add a key, rotate, verify."""


@command.command("status")
@reports_errors
def keys_status() -> None:
    """Which keys exist, which is active, and what uses each."""
    rt = open_runtime()
    click.echo(f"{'kid':<12} {'in keyring':<11} {'active':<7} {'values':<7} where")
    for status in keys.key_status(rt.engine, rt.vault):
        click.echo(
            f"{status.kid:<12} {'yes' if status.in_keyring else 'NO':<11} "
            f"{'yes' if status.active else '':<7} {status.values:<7} {status.where()}".rstrip()
        )


@command.command("add")
@reports_errors
def keys_add() -> None:
    """Add a new key to the keyring file and make it active.

    Older keys stay, to read what they encrypted: back up the keyring file, then run
    `keys rotate`. On a new install (no keyring yet) this makes the keyring, with one key.
    """
    settings = get_settings()
    if keyring.missing(settings):
        _new_keyring()
        return
    open_runtime()  # the current keyring must match the data before it grows
    grown = keyring.add_key(settings)
    rt = open_runtime()  # writes the new key's canary
    audit.record_now(rt.engine, shell(), "keys.add", grown.active, audit.OK, "new key made active")
    click.echo(
        f"Added key '{grown.active}' and made it active. Back up the keyring file now, "
        f"then run: {invoked_as()} keys rotate"
    )


def _new_keyring() -> None:
    """A new install's keyring. It is proven against the database when there is one (which
    refuses if that database was set up with another keyring); none is made here."""
    settings = get_settings()
    if db.missing_file(settings.database_url):
        made = keyring.create_keyring(settings, None)
        click.echo(
            f"Made a new keyring with key '{made.active}'. There is no database yet: run "
            f"`{invoked_as()} db upgrade` or start the server."
        )
        return
    rt = open_runtime(create=True)  # the database exists: only the keyring is made
    audit.record_now(rt.engine, shell(), "keys.add", rt.vault.active_kid, audit.OK, "new keyring")
    click.echo(f"Made a new keyring with key '{rt.vault.active_kid}'.")


@command.command("rotate")
@click.option("--batch", default=100, show_default=True, help="Rows read per round.")
@reports_errors
def keys_rotate(batch: int) -> None:
    """Re-encrypt every stored value still under an older key.

    Connections' credentials and alert channels' URLs and secrets alike. Resumable, and safe
    beside live edits.
    """
    rt = open_runtime()
    report = keys.rotate(rt.engine, rt.vault, actor=shell(), batch=batch)
    if report.per_owner:
        done = " and ".join(words.count(n, owner) for owner, n in report.per_owner.items())
        click.echo(
            f"Rotated {done} to key '{rt.vault.active_kid}'"
            + (f"; {report.retried} changed meanwhile and were redone." if report.retried else ".")
        )
    elif not report.unreadable:
        click.echo(f"Nothing to rotate: every stored value is under key '{rt.vault.active_kid}'.")
    if report.unreadable:
        click.echo(
            f"error: {words.count(report.unreadable, 'row')} could not be read and "
            f"{'was' if report.unreadable == 1 else 'were'} left as they are; "
            f"`{invoked_as()} keys verify` names them.",
            err=True,
        )
        sys.exit(1)


@command.command("verify")
@reports_errors
def keys_verify() -> None:
    """Decrypt every stored value and prove none needs a key but the active one.

    Exit 1 if any value cannot be read, or any still uses an older key (then that key cannot
    be removed from the keyring yet).
    """
    rt = open_runtime()
    report = keys.prove_readable(rt.engine, rt.vault)
    active = rt.vault.active_kid
    for kid, count in report.values_per_kid.items():
        click.echo(
            f"{kid}: {words.count(count, 'value')}" + (" (active)" if kid == active else "") + f": {report.where(kid)}"
        )
    for problem in report.unreadable:
        click.echo(f"unreadable: {problem.describe()}", err=True)
    for kid in report.on_other_keys:
        click.echo(
            f"still on key '{kid}', not the active key '{active}': {report.where(kid)}. Run "
            f"`{invoked_as()} keys rotate`; remove key '{kid}' from the keyring only once "
            "verify passes.",
            err=True,
        )
    if not report.ok:
        sys.exit(1)
    click.echo(f"All stored values decrypt, every one with the active key '{active}': no other key is in use.")

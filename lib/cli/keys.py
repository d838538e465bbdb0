"""``switchboard keys``: the encryption keyring."""

from __future__ import annotations

import sys

import click

from lib import audit, keys, words
from lib.access import shell
from lib.cli.common import invoked_as, reports_errors
from lib.config import get_settings
from lib.runtime import open_runtime
from lib.store import keyring


@click.group("keys")
def command() -> None:
    """The encryption keyring: status, add a key, rotate, verify."""


@command.command("status")
@reports_errors
def keys_status() -> None:
    """Which keys exist, which is active, and what uses each."""
    rt = open_runtime()
    click.echo(f"{'kid':<12} {'in keyring':<11} {'active':<7} values")
    for status in keys.key_status(rt.engine, rt.vault):
        click.echo(f"{status.kid:<12} {'yes' if status.in_keyring else 'NO':<11} "
                   f"{'yes' if status.active else '':<7} {status.values}")


@command.command("add")
@reports_errors
def keys_add() -> None:
    """Add a new key to the keyring file and make it active.

    Older keys stay, to read what they encrypted: back up the keyring file, then run
    `keys rotate`.
    """
    open_runtime()  # the current keyring must match the data before it grows
    grown = keyring.add_key(get_settings())
    rt = open_runtime()  # writes the new key's canary
    audit.record_now(rt.engine, shell(), "keys.add", grown.active, audit.OK, "new key made active")
    click.echo(f"Added key '{grown.active}' and made it active. Back up the keyring file now, "
               f"then run: {invoked_as()} keys rotate")


@command.command("rotate")
@click.option("--batch", default=100, show_default=True, help="Rows read per round.")
@reports_errors
def keys_rotate(batch: int) -> None:
    """Re-encrypt every credential still under an older key.

    Resumable, and safe beside live edits.
    """
    rt = open_runtime()
    report = keys.rotate(rt.engine, rt.vault, actor=shell(), batch=batch)
    click.echo(f"Rotated {words.count(report.rotated, 'connection')} to key '{rt.vault.active_kid}'"
               + (f"; {report.retried} changed meanwhile and were redone." if report.retried else "."))


@command.command("verify")
@reports_errors
def keys_verify() -> None:
    """Decrypt every stored credential; exit 1 if any cannot be read."""
    rt = open_runtime()
    report = keys.prove_readable(rt.engine, rt.vault)
    for kid, count in sorted(report.values_per_kid.items()):
        click.echo(f"{kid}: {words.count(count, 'value')}" + (" (active)" if kid == rt.vault.active_kid else ""))
    for name, credential, reason in report.unreadable:
        click.echo(f"unreadable: the {credential} of connection '{name}': {reason}", err=True)
    if not report.ok:
        sys.exit(1)
    click.echo("All stored credentials decrypt.")

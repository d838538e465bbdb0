"""``switchboard`` (or ``python -m lib``): the same service functions the console uses, for
shells and cron.

Exit codes: 0 success, 1 the action failed or found a problem, 2 usage or configuration error.
Secrets are read from standard input (``--secret-stdin``) or a hidden prompt, never from
arguments, so they stay out of shell history and ``ps``.

Each command lives in its own module (``lib/cli/<command>.py``, exporting ``command``), imported
only when that command runs or its help is asked for: ``switchboard --help`` loads click and
nothing else, and a cron job pays only for the libraries its command needs.
"""

from __future__ import annotations

import importlib
import logging

import click

from lib.kernel.redaction import configure_logging

# Each command and the one line `switchboard --help` shows for it (the command's own first
# help line; tests/test_cli.py holds the two together).
COMMANDS: dict[str, str] = {
    "audit": "The audit trail: who did what and when.",
    "badges": "Status badges (SVG) for wikis and runbooks: print a badge's URL.",
    "channels": "Alert channels: add, edit, list, test, turn on and off, quiet windows, remove.",
    "check": "Test products of the named connections (or --all) against 8x8.",
    "connections": "Stored 8x8 API app credentials: add, edit, list, remove.",
    "db": "The database schema, backups and compacting.",
    "export": "Connection status as CSV, JSON or Excel (never a secret).",
    "incidents": "Open problems: list what is failing now, acknowledge one.",
    "keys": "The encryption keyring: status, add a key, rotate, verify.",
    "maintenance": "Maintenance windows: add, list, remove (no alerts while they run).",
    "schedule": "How often connections are checked: show, set, pause, resume.",
    "settings": "How long history and the audit trail are kept: show, set.",
    "simulator": "Serve a local 8x8 API simulator, for demos and tests.",
    "tokens": "API tokens for machines: the status API and /metrics.",
    "users": "Local accounts that sign in with a password, and their roles.",
    "worker": "Run the scheduled checks: tick until stopped, or once.",
}


class LazyGroup(click.Group):
    """A group whose commands are imported when used; its own help lists them from COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        command: click.Command = importlib.import_module(f"lib.cli.{cmd_name}").command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name]) for name in self.list_commands(ctx)])


@click.group(
    cls=LazyGroup,
    epilog="Settings come from SWITCHBOARD_* environment variables (docs/operating/"
    "configuration.md). Exit codes: 0 success, 1 a problem found or the action failed, 2 usage "
    "or configuration error.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Switchboard: keep and test 8x8 API credentials."""
    configure_logging([logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)])


def main() -> None:
    """The ``switchboard`` console script and ``python -m lib``; click names the program as it
    was called."""
    cli()

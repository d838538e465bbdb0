"""``switchboard users``: local accounts of the console."""

from __future__ import annotations

from dataclasses import asdict

import click

from lib.cli.common import read_hidden, reports_errors, to_json
from lib.services.accounts import users
from lib.services.guard.access import Role, shell
from lib.services.runtime import open_runtime

ROLES = click.Choice([r.value for r in Role])
OWN_PASSWORD = click.option(
    "--own-password",
    is_flag=True,
    help="The person chose this password (for example your own account): no change is asked at their next sign-in.",
)


@click.group("users")
def command() -> None:
    """Local accounts that sign in with a password, and their roles.

    With OIDC sign-in, people and roles are listed in [access] of .streamlit/secrets.toml instead.
    """


@command.command("add")
@click.argument("username")
@click.option(
    "--role",
    type=ROLES,
    required=True,
    help="viewer reads status; operator also runs tests and exports; admin does everything.",
)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@OWN_PASSWORD
@reports_errors
def users_add(username: str, role: str, password_stdin: bool, own_password: bool) -> None:
    """Create a local account.

    The password comes from standard input (--password-stdin) or a hidden prompt. The person
    chooses their own at their first sign-in, unless --own-password.
    """
    rt = open_runtime()
    password = read_hidden(password_stdin, "Password", "--password-stdin", confirm=True)
    view = users.add(rt.engine, username, password, role, actor=shell(), own_password=own_password)
    click.echo(f"Added {view.role.value} '{view.username}'.")


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def users_list(as_json: bool) -> None:
    """Accounts and their roles (never a hash)."""
    views = users.list_users(open_runtime().engine)
    if as_json:
        click.echo(to_json([asdict(v) for v in views]))
        return
    for v in views:
        click.echo(f"{v.username:<40} {v.role.value:<9} {'local' if v.local else 'OIDC'}")


@command.command("remove")
@click.argument("username")
@reports_errors
def users_remove(username: str) -> None:
    """Delete an account and its sessions (never the last admin)."""
    users.remove(open_runtime().engine, username, actor=shell())
    click.echo(f"Removed '{username}'.")


@command.command("set-role")
@click.argument("username")
@click.argument("role", type=ROLES)
@reports_errors
def users_set_role(username: str, role: str) -> None:
    """Change an account's role (never the last admin's)."""
    users.set_role(open_runtime().engine, username, role, actor=shell())
    click.echo(f"'{username}' is now {role}.")


@command.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@OWN_PASSWORD
@reports_errors
def users_reset_password(username: str, password_stdin: bool, own_password: bool) -> None:
    """Set a new password for an account; its sessions end, and the person chooses their own
    at their next sign-in (unless --own-password)."""
    password = read_hidden(password_stdin, "Password", "--password-stdin", confirm=True)
    users.reset_password(open_runtime().engine, username, password, actor=shell(), own_password=own_password)
    click.echo(f"New password set for '{username}'.")

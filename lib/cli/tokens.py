"""``switchboard tokens``: API tokens for machines (the status API and /metrics)."""

from __future__ import annotations

import click

from lib.cli.common import reports_errors, to_json
from lib.kernel.words import shown
from lib.services.accounts import api_tokens
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime

ROLES = click.Choice([r.value for r in api_tokens.ROLES])


@click.group("tokens")
def command() -> None:
    """API tokens for machines: the status API and /metrics.

    A machine sends its token as `Authorization: Bearer sbt_…`. Only a hash of each token is
    stored: the token is printed once, when it is made.
    """


@command.command("create")
@click.option(
    "--name", required=True, help="What uses the token, e.g. prometheus-prod (lower-case letters, digits, . _ -)."
)
@click.option(
    "--role",
    type=ROLES,
    required=True,
    help="Its rights, as for people: viewer reads status and metrics; operator may also run tests and export.",
)
@reports_errors
def tokens_create(name: str, role: str) -> None:
    """Make a token and print it, once, on standard output (the notes go to standard error).

    Write it straight to where it is used, e.g. `switchboard tokens create --name prometheus
    --role viewer > /etc/prometheus/switchboard.token`.
    """
    issued = api_tokens.create(open_runtime().engine, name, role, actor=shell())
    click.echo(issued.token.get_secret_value())
    click.echo(
        f"Created {issued.role.value} token '{issued.name}'. It is shown only now: store it where the "
        "machine reads it. Send it as: Authorization: Bearer <token>",
        err=True,
    )


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def tokens_list(as_json: bool) -> None:
    """Tokens with their role, when made, last used and revoked (never the token)."""
    views = api_tokens.list_tokens(open_runtime().engine, actor=shell())
    if as_json:
        click.echo(
            to_json(
                [
                    {
                        "name": v.name,
                        "role": v.role.value,
                        "created_at": v.created_at,
                        "created_by": v.created_by,
                        "last_used_at": v.last_used_at,
                        "revoked_at": v.revoked_at,
                    }
                    for v in views
                ]
            )
        )
        return
    for v in views:
        click.echo(
            f"{v.name:<30} {v.role.value:<9} created {shown(v.created_at)}  last used "
            f"{shown(v.last_used_at, never='never'):<20}  {'revoked ' + shown(v.revoked_at) if v.revoked_at else 'live'}"
        )


@command.command("revoke")
@click.argument("name")
@reports_errors
def tokens_revoke(name: str) -> None:
    """Stop a token from working, at once (it stays in the list, marked revoked)."""
    api_tokens.revoke(open_runtime().engine, name, actor=shell())
    click.echo(f"Revoked '{name.strip().casefold()}'.")

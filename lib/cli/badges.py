"""``switchboard badges``: status badge URLs for wikis and runbooks."""

from __future__ import annotations

import click

from lib.cli.common import reports_errors
from lib.services.guard.access import shell
from lib.services.reporting import badges
from lib.services.runtime import open_runtime


@click.group("badges")
def command() -> None:
    """Status badges (SVG) for wikis and runbooks: print a badge's URL.

    A badge URL opens that one badge and nothing else. `switchboard keys add` (a new active
    key), then a restart of every instance, revokes every badge URL at once.
    """


@command.command("url")
@click.option("--connection", help="The badge of this connection (its name, any capitals).")
@click.option("--environment", help="The badge of every connection with this environment label (any capitals).")
@reports_errors
def badges_url(connection: str | None, environment: str | None) -> None:
    """Print the badge URL of one connection or one environment on standard output (audited).

    The URL starts with SWITCHBOARD_PUBLIC_URL when it is set; otherwise put the server's
    address in front of the path printed.
    """
    if (connection is None) == (environment is None):
        raise click.UsageError("Give --connection NAME or --environment ENV (one of them).")
    runtime = open_runtime()
    subject = (
        badges.Subject(badges.Kind.CONNECTION, connection)
        if connection is not None
        else badges.Subject(badges.Kind.ENVIRONMENT, environment or "")
    )
    issued = badges.issue(runtime.engine, runtime.vault.keyring, subject, actor=shell())
    click.echo((runtime.settings.public_origin or "") + issued.path)
    click.echo(
        f"Badge of {subject.kind.value} '{subject.name.strip()}'. Anyone holding this URL sees that badge "
        "(and nothing else); `switchboard keys add` and a restart revoke every badge URL.",
        err=True,
    )

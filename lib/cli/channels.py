"""``switchboard channels``: where alerts go (webhook, Slack, Teams, e-mail)."""

from __future__ import annotations

import sys

import click
from pydantic import SecretStr

from lib import alerts
from lib.access import shell
from lib.alerts import channels
from lib.cli.common import read_hidden, reports_errors, to_json
from lib.notify.models import ChannelKind
from lib.runtime import open_runtime

KINDS = click.Choice([k.value for k in ChannelKind])


def _listed(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


@click.group("channels")
def command() -> None:
    """Alert channels: add, list, test, remove.

    Channel URLs and secrets are stored encrypted and never shown back: lists show the scheme
    and host only.
    """


@command.command("add")
@click.option("--name", required=True, help="What people call the channel, e.g. 'Ops Slack'.")
@click.option("--kind", type=KINDS, required=True, help="webhook (signed JSON), slack, teams or email.")
@click.option("--url", required=True, help="https:// endpoint (Slack or Teams webhook URL), or "
                                           "smtp://[user@]host[:port]?from=ADDR&to=ADDR for email.")
@click.option("--secret-stdin", is_flag=True, help="Read the webhook signing secret (whsec_…) or SMTP password "
                                                   "from standard input. A webhook without one gets a new secret, "
                                                   "printed once.")
@click.option("--events", help="Comma-separated events to send (default: all): "
                               + ", ".join(k.value for k in channels.ROUTABLE) + ".")
@click.option("--environments", help="Comma-separated connection environments to send about (default: all).")
@reports_errors
def channels_add(name: str, kind: str, url: str, secret_stdin: bool, events: str | None,
                 environments: str | None) -> None:
    """Add a channel. Prints a generated webhook secret once, on standard output."""
    rt = open_runtime()
    secret = read_hidden(True, "secret", "--secret-stdin") if secret_stdin else None
    view, made = channels.add(rt.engine, rt.vault, name, kind, SecretStr(url), actor=shell(),
                              allow=channels.allowed(rt.settings), secret=secret,
                              events=_listed(events), environments=_listed(environments) or ())
    if made is not None:
        click.echo(made.get_secret_value())
        click.echo("That is the channel's signing secret, shown only now: give it to the receiver to verify "
                   "the webhook-signature header.", err=True)
    click.echo(f"Added {view.kind.value} channel '{view.name}' to {view.url_hint}.", err=True)


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@reports_errors
def channels_list(as_json: bool) -> None:
    """Channels with their kind, host, events, environments and state (never a URL or secret)."""
    views = channels.list_channels(open_runtime().engine, actor=shell())
    if as_json:
        click.echo(to_json([{"name": v.name, "kind": v.kind.value, "url_hint": v.url_hint, "events": v.events,
                             "environments": v.environments, "enabled": v.enabled,
                             "disabled_reason": v.disabled_reason,
                             "quiet_windows": [w.describe() for _, w in v.windows]} for v in views]))
        return
    if not views:
        click.echo("No alert channels yet. Add one with: switchboard channels add --name N --kind webhook --url URL")
    for v in views:
        state = "on" if v.enabled else f"off ({v.disabled_reason or 'turned off'})"
        click.echo(f"{v.name:<24} {v.kind.value:<8} {v.url_hint:<40} {state}\n"
                   f"{'':<24} events: {', '.join(v.events)}; environments: {', '.join(v.environments) or 'all'}"
                   + "".join(f"\n{'':<24} quiet: {w.describe()}" for _, w in v.windows))


@command.command("test")
@click.argument("name")
@reports_errors
def channels_test(name: str) -> None:
    """Send a channel.test event now; exit 0 when it was delivered, 1 when not."""
    attempt = alerts.send_test(open_runtime(), name, actor=shell())
    if attempt.delivered:
        click.echo(f"Delivered to '{name}'" + (f" (HTTP {attempt.status})." if attempt.status else "."))
        return
    click.echo(f"error: not delivered to '{name}': {attempt.error or f'HTTP {attempt.status}'}", err=True)
    sys.exit(1)


@command.command("remove")
@click.argument("name")
@reports_errors
def channels_remove(name: str) -> None:
    """Delete a channel and what its outbox still holds (the delivery log keeps its name)."""
    channels.remove(open_runtime().engine, name, actor=shell())
    click.echo(f"Removed '{name}'.")

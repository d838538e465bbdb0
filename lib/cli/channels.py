"""``switchboard channels``: where alerts go (webhook, Slack, Teams, e-mail)."""

from __future__ import annotations

import sys

import click
from pydantic import SecretStr

from lib.cli.common import invoked_as, read_hidden, reports_errors, to_json
from lib.notify.kinds import KINDS
from lib.notify.models import ChannelKind
from lib.services import alerts
from lib.services.alerts import channels
from lib.services.alerts.windows import parse
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime

KIND_CHOICE = click.Choice([k.value for k in ChannelKind])


def _listed(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _url(url: str | None, from_stdin: bool) -> SecretStr | None:
    if url and from_stdin:
        raise click.UsageError("Give --url or --url-stdin, not both.")
    if not from_stdin:
        return SecretStr(url) if url else None
    given = read_hidden(True, "URL", "--url-stdin")
    if not given.get_secret_value().strip():
        raise click.UsageError("--url-stdin read an empty line; pipe the URL in as the first line.")
    return given


def _print_made(made: SecretStr | None) -> None:
    """A secret made for the channel: on standard output, once, for the receiver."""
    if made is not None:
        click.echo(made.get_secret_value())
        click.echo("That is the channel's signing secret, shown only now: give it to the receiver to verify "
                   "the webhook-signature header.", err=True)


def _warn_if_credential(kind: ChannelKind, url: str | None) -> None:
    if url and KINDS[kind].secret is None:  # the URL is the kind's credential (Slack, Teams)
        click.echo(f"warning: a {kind.value} URL is a credential, and --url left it in your shell history and "
                   "in what `ps` showed meanwhile; next time pipe it in with --url-stdin.", err=True)


@click.group("channels")
def command() -> None:
    """Alert channels: add, edit, list, test, turn on and off, quiet windows, remove.

    Channel URLs and secrets are stored encrypted and never shown back: lists show the scheme
    and host only.
    """


@command.command("add")
@click.option("--name", required=True, help="What people call the channel, e.g. 'Ops Slack'.")
@click.option("--kind", type=KIND_CHOICE, required=True, help="webhook (signed JSON), slack, teams or email.")
@click.option("--url", help="https:// endpoint, or smtp://[user@]host[:port]?from=ADDR&to=ADDR for email. "
                            "Slack and Teams URLs are credentials: give those with --url-stdin (or at the "
                            "hidden prompt, without either option).")
@click.option("--url-stdin", is_flag=True, help="Read the URL from standard input (its first line).")
@click.option("--secret-stdin", is_flag=True, help="Read the webhook signing secret (whsec_…) or SMTP password "
                                                   "from standard input (the line after the URL, with "
                                                   "--url-stdin). A webhook without one gets a new secret, "
                                                   "printed once. Slack and Teams take none: their URL is "
                                                   "the credential.")
@click.option("--events", help="Comma-separated events to send (default: all): "
                               + ", ".join(k.value for k in channels.ROUTABLE) + ".")
@click.option("--environments", help="Comma-separated connection environments to send about (default: all).")
@reports_errors
def channels_add(name: str, kind: str, url: str | None, url_stdin: bool, secret_stdin: bool, events: str | None,
                 environments: str | None) -> None:
    """Add a channel. Prints a generated webhook secret once, on standard output."""
    given = _url(url, url_stdin) or read_hidden(False, "URL", "--url-stdin")
    secret = read_hidden(True, "secret", "--secret-stdin") if secret_stdin else None
    rt = open_runtime()
    view, made = channels.add(rt.engine, rt.vault, name, kind, given, actor=shell(),
                              allow=channels.allowed(rt.settings), secret=secret,
                              events=_listed(events), environments=_listed(environments) or ())
    _warn_if_credential(view.kind, url)
    _print_made(made)
    click.echo(f"Added {view.kind.value} channel '{view.name}' to {view.url_hint}.", err=True)


@command.command("edit")
@click.argument("name")
@click.option("--url", help="A new address, checked as when adding; e.g. after the receiver answered 410.")
@click.option("--url-stdin", is_flag=True, help="Read the new URL from standard input (its first line).")
@click.option("--secret-stdin", is_flag=True, help="Read a new webhook signing secret or SMTP password from "
                                                   "standard input (the line after the URL, with --url-stdin).")
@click.option("--new-secret", "make_secret", is_flag=True,
              help="Make a new webhook signing secret, printed once on standard output for the receiver.")
@click.option("--events", help="Comma-separated events to send: " + ", ".join(k.value for k in channels.ROUTABLE) + ".")
@click.option("--environments", help="Comma-separated connection environments to send about; '' for all.")
@reports_errors
def channels_edit(name: str, url: str | None, url_stdin: bool, secret_stdin: bool, make_secret: bool,
                  events: str | None, environments: str | None) -> None:
    """Change a channel's URL, secret, events or environments; what is not given stays."""
    given = _url(url, url_stdin)
    secret = read_hidden(True, "secret", "--secret-stdin") if secret_stdin else None
    rt = open_runtime()
    view, made = channels.change(rt.engine, rt.vault, name, actor=shell(), allow=channels.allowed(rt.settings),
                                 url=given, secret=secret, make_secret=make_secret, events=_listed(events),
                                 environments=_listed(environments))
    _warn_if_credential(view.kind, url)
    _print_made(made)
    off = "" if view.enabled else f" It is off ({view.disabled_reason or 'turned off'}): turn it on with " \
                                  f"`{invoked_as()} channels enable '{view.name}'`."
    click.echo(f"Changed '{view.name}': sends to {view.url_hint}.{off}", err=made is not None)  # stdout: the secret


def _switch(verb: str, enabled: bool, doc: str) -> None:
    @command.command(verb, help=doc)
    @click.argument("name")
    @reports_errors
    def switch(name: str) -> None:
        channels.set_enabled(open_runtime().engine, name, enabled, actor=shell())
        click.echo(f"Turned '{name}' {'on' if enabled else 'off'}.")


_switch("enable", True, "Turn a channel on, e.g. after its receiver answered 410 and its URL was replaced.")
_switch("disable", False, "Turn a channel off: no new events are queued for it, and what waits is held until it "
                          "is on.")


@command.command("quiet")
@click.argument("name")
@click.option("--days", required=True, help="The days it starts on: mon,tue,... or daily.")
@click.option("--from", "start", required=True, help="Local start time, HH:MM.")
@click.option("--to", "end", required=True, help="Local end time, HH:MM; at or before --from it runs into the next day.")
@click.option("--timezone", default="UTC", show_default=True, help="An IANA time zone, e.g. Europe/London.")
@reports_errors
def channels_quiet(name: str, days: str, start: str, end: str, timezone: str) -> None:
    """Add a quiet window: events are held, then sent as one summary when it ends."""
    window = parse(days, start, end, timezone)
    channels.add_window(open_runtime().engine, name, window, actor=shell())
    click.echo(f"'{name}' is quiet {window.describe()}.")


@command.command("unquiet")
@click.argument("name")
@click.argument("window_id", type=int)
@reports_errors
def channels_unquiet(name: str, window_id: int) -> None:
    """Remove a quiet window (its number is in `channels list`)."""
    channels.remove_window(open_runtime().engine, name, window_id, actor=shell())
    click.echo(f"Removed quiet window #{window_id} of '{name}'.")


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
                             "quiet_windows": [{"id": i, "window": w.describe()} for i, w in v.windows]}
                            for v in views]))
        return
    if not views:
        click.echo("No alert channels yet. Add one with: switchboard channels add --name N --kind webhook --url URL")
    for v in views:
        state = "on" if v.enabled else f"off ({v.disabled_reason or 'turned off'})"
        click.echo(f"{v.name:<24} {v.kind.value:<8} {v.url_hint:<40} {state}\n"
                   f"{'':<24} events: {', '.join(v.events)}; environments: {', '.join(v.environments) or 'all'}"
                   + "".join(f"\n{'':<24} quiet #{i}: {w.describe()}" for i, w in v.windows))


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

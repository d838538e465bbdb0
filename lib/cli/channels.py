"""``switchboard channels``: where alerts go (webhook, Slack, Teams, e-mail, … : lib.notify.kinds).

The options of ``add`` and ``edit`` for a channel's URL and secret are drawn from the kinds'
fields, so a new kind brings its own words to them: ``--NAME`` where some kind takes that field
in the open, ``--NAME-stdin`` for each (standard input, one line each, in the fields' order),
and for ``edit`` ``--new-NAME`` where Switchboard makes it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from pydantic import SecretStr

from lib.cli.common import invoked_as, read_hidden, reports_errors, to_json
from lib.notify import kinds
from lib.notify.spec import Field, Kind
from lib.services import alerts
from lib.services.alerts import channels
from lib.services.alerts.windows import parse
from lib.services.guard.access import shell
from lib.services.runtime import open_runtime

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
EVENTS = ", ".join(k.value for k in channels.ROUTABLE)


def _listed(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _either(names: Sequence[str]) -> str:
    return f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else "".join(names)


def _what(name: str) -> str:
    """A field in a sentence, as every kind calls it: "URL", or "webhook signing secret or email
    SMTP password" where they differ."""
    taking = kinds.fields(name)
    if len({field.label for _, field in taking}) == 1:
        return taking[0][1].in_sentence
    return _either([f"{kind.key} {field.in_sentence}" for kind, field in taking])


def _required(name: str) -> bool:
    return all(field.required for _, field in kinds.fields(name))


def _before(name: str) -> str | None:
    """The field read from the line of standard input before this one's, when both are piped."""
    slots = kinds.slots()
    return slots[slots.index(name) - 1] if slots.index(name) else None


def _line(name: str) -> str:
    before = _before(name)
    return f"the line after the {_what(before)}" if before else "the first line"


def _argument_help(name: str, editing: bool) -> str:
    taking = kinds.fields(name)
    what = _what(name)
    if editing:
        text = f"A new {what}, checked as when adding; e.g. after the receiver answered 410."
    else:
        text = (
            f"The channel's {what}: "
            + "; ".join(f"{kind.key}: {field.example}" for kind, field in taking if field.example)
            + "."
        )
    credentials = [kind.key for kind, field in taking if field.secret]
    if credentials:
        prompt = "" if editing or not _required(name) else " (or at the hidden prompt, without either option)"
        text += f" A {_either(credentials)} {what} is a credential: give it with --{name}-stdin{prompt}."
    return text


def _stdin_help(name: str, editing: bool) -> str:
    before = _before(name)
    with_before = f", with --{before}-stdin" if before else ""
    text = f"Read the {'new ' if editing else ''}{_what(name)} from standard input ({_line(name)}{with_before})."
    if not editing:
        text += "".join(
            f" A {kind.key} channel added without one gets a new one, printed once."
            for kind, field in kinds.fields(name)
            if field.made
        )
    lacking = [kind.key for kind in kinds.KINDS.values() if kind.field(name) is None]
    return text + (f" A {_either(lacking)} channel takes none." if lacking else "")


def _field_options(*, editing: bool) -> Decorator:
    """The options for every field some kind takes (see the module's docstring)."""
    options: list[Decorator] = []
    for name in kinds.slots():
        if not all(field.secret for _, field in kinds.fields(name)):
            options.append(click.option(f"--{name}", help=_argument_help(name, editing)))
        options.append(click.option(f"--{name}-stdin", is_flag=True, help=_stdin_help(name, editing)))
        made = [(kind, field) for kind, field in kinds.fields(name) if field.made]
        if editing and made:
            what = _either([f"{kind.key} {field.in_sentence}" for kind, field in made])
            options.append(
                click.option(
                    f"--new-{name}",
                    f"make_{name}",
                    is_flag=True,
                    help=f"Make a new {what}, printed once on standard output.",
                )
            )

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def _read(options: dict[str, Any], *, prompt: bool) -> dict[str, SecretStr | None]:
    """Each field's value, from its argument or its line of standard input (in the fields'
    order); with ``prompt``, a required one given neither way is asked for at a hidden prompt."""
    values: dict[str, SecretStr | None] = {}
    for name in kinds.slots():
        flag, argument, piped = f"--{name}-stdin", options.get(name), options[f"{name}_stdin"]
        if argument and piped:
            raise click.UsageError(f"Give --{name} or {flag}, not both.")
        value = SecretStr(argument) if argument else None
        if piped:
            value = read_hidden(True, _what(name), flag)
            if _required(name) and not value.get_secret_value().strip():
                raise click.UsageError(f"{flag} read an empty line; pipe the {_what(name)} in as {_line(name)}.")
        elif value is None and prompt and _required(name):
            value = read_hidden(False, _what(name), flag)
        values[name] = value
    return values


def _warn_if_credential(kind: Kind, options: dict[str, Any]) -> None:
    """A credential given as an argument is in the shell's history now: say so."""
    for field in kind.fields:
        if field.secret and options.get(field.name):
            click.echo(
                f"warning: a {kind.key} {field.in_sentence} is a credential, and --{field.name} left it in "
                f"your shell history and in what `ps` showed meanwhile; next time pipe it in with "
                f"--{field.name}-stdin.",
                err=True,
            )


def _print_made(field: Field | None, made: SecretStr | None) -> None:
    """A secret made for the channel: on standard output, once, for the receiver."""
    if field is not None and made is not None:
        click.echo(made.get_secret_value())
        click.echo(f"That is the channel's {field.in_sentence}, shown only now. {field.made_help}", err=True)


@click.group("channels")
def command() -> None:
    """Alert channels: add, edit, list, test, turn on and off, quiet windows, remove.

    Channel URLs and secrets are stored encrypted and never shown back: lists show the scheme
    and host only.
    """


@command.command("add")
@click.option("--name", required=True, help="What people call the channel, e.g. 'Ops Slack'.")
@click.option(
    "--kind",
    type=click.Choice(list(kinds.KINDS)),
    required=True,
    help=_either([f"{kind.key} ({kind.summary})" for kind in kinds.KINDS.values()]) + ".",
)
@_field_options(editing=False)
@click.option("--events", help=f"Comma-separated events to send (default: all): {EVENTS}.")
@click.option("--environments", help="Comma-separated connection environments to send about (default: all).")
@reports_errors
def channels_add(name: str, kind: str, events: str | None, environments: str | None, **fields: Any) -> None:
    """Add a channel. Prints a secret Switchboard makes for it (a webhook's) once, on standard output."""
    values = _read(fields, prompt=True)
    rt = open_runtime()
    view, made = channels.add(
        rt.engine,
        rt.vault,
        name,
        kind,
        values["url"] or SecretStr(""),
        actor=shell(),
        allow=channels.allowed(rt.settings),
        secret=values.get("secret"),
        events=_listed(events),
        environments=_listed(environments) or (),
    )
    _warn_if_credential(kinds.get(view.kind), fields)
    _print_made(kinds.get(view.kind).field("secret"), made)
    click.echo(f"Added {view.kind} channel '{view.name}' to {view.url_hint}.", err=True)


@command.command("edit")
@click.argument("name")
@_field_options(editing=True)
@click.option("--events", help=f"Comma-separated events to send: {EVENTS}.")
@click.option("--environments", help="Comma-separated connection environments to send about; '' for all.")
@reports_errors
def channels_edit(name: str, events: str | None, environments: str | None, **fields: Any) -> None:
    """Change a channel's URL, secret, events or environments; what is not given stays."""
    values = _read(fields, prompt=False)
    rt = open_runtime()
    view, made = channels.change(
        rt.engine,
        rt.vault,
        name,
        actor=shell(),
        allow=channels.allowed(rt.settings),
        url=values.get("url"),
        secret=values.get("secret"),
        make_secret=bool(fields.get("make_secret")),
        events=_listed(events),
        environments=_listed(environments),
    )
    _warn_if_credential(kinds.get(view.kind), fields)
    _print_made(kinds.get(view.kind).field("secret"), made)
    off = (
        ""
        if view.enabled
        else f" It is off ({view.disabled_reason or 'turned off'}): turn it on with "
        f"`{invoked_as()} channels enable '{view.name}'`."
    )
    click.echo(f"Changed '{view.name}': sends to {view.url_hint}.{off}", err=made is not None)  # stdout: the secret


def _switch(verb: str, enabled: bool, doc: str) -> None:
    @command.command(verb, help=doc)
    @click.argument("name")
    @reports_errors
    def switch(name: str) -> None:
        channels.set_enabled(open_runtime().engine, name, enabled, actor=shell())
        click.echo(f"Turned '{name}' {'on' if enabled else 'off'}.")


_switch("enable", True, "Turn a channel on, e.g. after its receiver answered 410 and its URL was replaced.")
_switch("disable", False, "Turn a channel off: no new events are queued for it, and what waits is held until it is on.")


@command.command("quiet")
@click.argument("name")
@click.option("--days", required=True, help="The days it starts on: mon,tue,... or daily.")
@click.option("--from", "start", required=True, help="Local start time, HH:MM.")
@click.option(
    "--to", "end", required=True, help="Local end time, HH:MM; at or before --from it runs into the next day."
)
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
        click.echo(
            to_json(
                [
                    {
                        "name": v.name,
                        "kind": v.kind,
                        "url_hint": v.url_hint,
                        "events": v.events,
                        "environments": v.environments,
                        "enabled": v.enabled,
                        "disabled_reason": v.disabled_reason,
                        "quiet_windows": [{"id": i, "window": w.describe()} for i, w in v.windows],
                    }
                    for v in views
                ]
            )
        )
        return
    if not views:
        click.echo("No alert channels yet. Add one with: switchboard channels add --name N --kind webhook --url URL")
    for v in views:
        state = "on" if v.enabled else f"off ({v.disabled_reason or 'turned off'})"
        click.echo(
            f"{v.name:<24} {v.kind:<8} {v.url_hint:<40} {state}\n"
            f"{'':<24} events: {', '.join(v.events)}; environments: {', '.join(v.environments) or 'all'}"
            + "".join(f"\n{'':<24} quiet #{i}: {w.describe()}" for i, w in v.windows)
        )


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

"""What the commands share: error reporting with the contract's exit codes, JSON output, secrets
from standard input, the prober, and the runtime."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click
from pydantic import SecretStr

from lib.kernel import collector
from lib.kernel.errors import (
    ConfigError,
    DatabaseNotReady,
    KeyringError,
    SwitchboardError,
    ValidationError,
)
from lib.kernel.words import iso

F = TypeVar("F", bound=Callable[..., Any])
P = ParamSpec("P")
R = TypeVar("R")
CONFIG_ERRORS = (ConfigError, KeyringError, DatabaseNotReady)

if TYPE_CHECKING:  # the prober pulls in httpx, which most commands never need
    from lib.eightbyeight.prober import Prober
    from lib.services.runtime import Runtime


def _option_for(field: str) -> str:
    """' (--flag)' when the running command has an option for this field, else ''."""
    context = click.get_current_context(silent=True)
    options = {p.name: p.opts[0] for p in context.command.params if isinstance(p, click.Option)} if context else {}
    return f" ({options[field]})" if field in options else ""


def reports_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn Switchboard's typed errors into a message on stderr and the contract's exit code."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ValidationError as exc:
            for error in exc.errors:
                click.echo(f"error: {error.label}{_option_for(error.field)}: {error.message}", err=True)
            sys.exit(1)
        except CONFIG_ERRORS as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except SwitchboardError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)

    return wrapper


def to_json(value: Any) -> str:
    """Every command's --json: moments in the machine form (lib.kernel.words.iso), whatever holds them."""
    return json.dumps(value, indent=2, default=_plain)


def _plain(value: object) -> str | None:
    return iso(value) if isinstance(value, datetime) else str(value)


def invoked_as() -> str:
    """How the user called us (``switchboard`` or ``python -m lib``), for hints to run a command."""
    return click.get_current_context().find_root().info_name or "switchboard"


def read_hidden(from_stdin: bool, what: str, flag: str, *, confirm: bool = False) -> SecretStr:
    """A secret from one line of standard input, or a hidden prompt; never an argument."""
    if from_stdin:
        return SecretStr(sys.stdin.readline().rstrip("\r\n"))
    if not sys.stdin.isatty():
        raise click.UsageError(f"Give {flag} and pipe the {what} in, or run in a terminal.")
    return SecretStr(click.prompt(what, hide_input=True, confirmation_prompt=confirm))


@contextmanager
def prober(rt: Runtime, *, skip: bool = False) -> Iterator[Prober | None]:
    """The 8x8 client for one command (None with ``skip``), closed when the command ends. The
    process is about to run checks, perhaps for a long time (``worker``): its cycle collector
    is settled first (lib.kernel.collector)."""
    if skip:
        yield None
        return
    from lib.eightbyeight.prober import Prober

    client = Prober(rt.settings.base_url)
    collector.settle()
    try:
        yield client
    finally:
        client.close()

"""Alert channel kinds are data (issue 23, section 1): each is one module of lib.notify.kinds,
and the service's checks, the options of `switchboard channels add/edit` and the Monitoring
page's inputs are drawn from its fields. Walking the registry: every kind's fields are in the
command line's help, in the add and edit forms, and validated (by the service, the command line
and again by every attempt to send). Then the claim itself: a kind written as one new module,
and nothing else, is offered, asked for, checked and sent to, by the console and the command line.

Real SQLite files, the app under AppTest, `switchboard` in a process of its own, and an HTTP
receiver on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr
from streamlit.testing.v1 import AppTest

from lib.cli import cli as root_command
from lib.kernel.errors import ValidationError
from lib.notify import kinds
from lib.notify.models import Destination
from lib.notify.send import deliver
from lib.notify.spec import SLOTS, Kind
from lib.services import alerts
from lib.services.alerts import channels
from lib.services.runtime import Runtime
from lib.ui.monitoring_view import edit_key, field_key, make_key
from tests.fixtures.alerts import WEBHOOK_SECRET
from tests.fixtures.console import PageOpener, plain
from tests.fixtures.notify import LOCAL, sample_event
from tests.fixtures.people import ADMIN
from tests.fixtures.receiver import Receiver
from tests.test_channel_fields import MAIL, SLACK, TEAMS, CliEnv, cli_env, rt  # noqa: F401 (fixtures)
from tests.test_cli import cli  # noqa: F401 (the fixture)
from tests.test_monitoring_console import local_receivers  # noqa: F401 (the fixture)
from tests.test_notify_smtp import PASSWORD

MONITORING = "pages/monitoring.py"
# Values each kind's fields accept when a channel is saved. A new kind adds its own here.
SAMPLES: dict[str, tuple[str, str | None]] = {
    "webhook": ("https://hooks.example.com/switchboard", WEBHOOK_SECRET),
    "slack": (SLACK, None),
    "teams": (TEAMS, None),
    "email": (MAIL, PASSWORD),
    "pagerduty": ("https://events.pagerduty.com/v2/enqueue", "e93facc04764012d7bfb002500d5d1a6"),
}
Run = Callable[..., tuple[int, str]]  # a `switchboard` command's exit code and standard error


def test_every_kind_has_a_sample_here() -> None:
    assert set(kinds.KINDS) <= set(SAMPLES), "give the new kind's sample values in SAMPLES"
    assert next(iter(kinds.KINDS)) == "webhook"  # the add form's default, as before kinds were data


# --- what every kind must show and check, whoever added it ----------------------------------------


def options(help_text: str) -> dict[str, str]:
    """Each option in a command's --help (rendered wide, so unwrapped), with its help."""
    found: dict[str, str] = {}
    name = None
    for line in help_text.splitlines():
        if line.startswith("  -"):
            name, _, rest = line.strip().partition(" ")
            found[name] = rest.strip()
        elif name and line.strip():
            found[name] += " " + line.strip()
    return found


def in_help(kind: Kind, help_of: Callable[..., str]) -> None:
    """The kind and each of its fields in `channels add --help` and `channels edit --help`."""
    add, edit = options(help_of("channels", "add", "--help")), options(help_of("channels", "edit", "--help"))
    assert kind.key in add["--kind"].split("]")[0]  # click's [webhook|slack|…]
    assert f"{kind.key} ({kind.summary})" in add["--kind"]
    for field in kind.fields:
        stdin, argument = f"--{field.name}-stdin", f"--{field.name}"
        assert field.in_sentence in add[stdin] and field.in_sentence in edit[stdin], (kind.key, field.name)
        if not field.secret:
            assert argument in add and argument in edit, (kind.key, field.name)
            assert field.example in add[argument], (kind.key, field.name)
        elif argument in add:  # other kinds take it in the open: this kind's is named as a credential
            assert kind.key in add[argument] and f"give it with {stdin}" in add[argument], (kind.key, field.name)
        if field.made:
            assert kind.key in edit[f"--new-{field.name}"], (kind.key, field.name)
    for name in SLOTS:
        if kind.field(name) is None and f"--{name}-stdin" in add:
            assert kind.key in add[f"--{name}-stdin"], (kind.key, name)  # "A slack … channel takes none."


def in_add_form(at: AppTest, kind: Kind) -> None:
    """For this kind, the add form asks for each of its fields and nothing else, in password inputs."""
    at.selectbox(key="channel_kind").set_value(kind.key).run()
    asked = {t.key: t for t in at.text_input if t.key in {field_key(name) for name in SLOTS}}
    assert set(asked) == {field_key(f.name) for f in kind.fields}, kind.key
    for field in kind.fields:
        shown = asked[field_key(field.name)]
        blank = "" if field.required else " (blank: make one)" if field.made else " (blank: none)"
        assert (shown.label, shown.placeholder) == (f"{field.label}{blank}", field.example), kind.key
        assert field.help in shown.help and shown.proto.type == shown.proto.PASSWORD, kind.key


def in_edit_form(at: AppTest, kind: Kind, view: channels.ChannelView) -> None:
    """The edit form of a channel of this kind asks for a new value of each of its fields."""
    at.selectbox(key="channel_chosen").set_value(view.name).run()
    key = edit_key(view)
    asked = {t.key: t for t in at.text_input if t.key in {field_key(name, key) for name in SLOTS}}
    assert {k: t.label for k, t in asked.items()} == {
        field_key(f.name, key): f"New {f.in_sentence} (blank: keep)" for f in kind.fields
    }, kind.key
    assert all(t.proto.type == t.proto.PASSWORD for t in asked.values())
    made = {c.key for c in at.checkbox if c.key.startswith("channel_make_")}
    assert made == {make_key(f.name, key) for f in kind.fields if f.made}, kind.key


def too_long(kind: Kind) -> dict[str, str]:
    """A value one character over each field's limit."""
    return {
        f.name: ("https://hooks.example.com/" if f.name == "url" else "") + "s" * (f.max_length + 1)
        for f in kind.fields
    }


def refusal(kind: Kind, values: dict[str, str]) -> list[tuple[str, str, str]]:
    """What refusing those values says: each field, its label, and the message."""
    return [
        (f.name, f.label, f"is {len(values[f.name])} characters long; at most {f.max_length}.") for f in kind.fields
    ]


def the_service_validates(rt: Runtime, kind: Kind, sample: tuple[str, str | None]) -> None:
    """Each field refused over its limit by the service (all at once, nothing saved) and by an
    attempt to send such a value from a store; then the sample saved."""
    values = too_long(kind)
    with pytest.raises(ValidationError) as caught:
        channels.add(
            rt.engine,
            rt.vault,
            "Too long",
            kind.key,
            SecretStr(values["url"]),
            actor=ADMIN,
            allow=LOCAL,
            secret=SecretStr(values["secret"]) if "secret" in values else None,
        )
    assert [(e.field, e.label, e.message) for e in caught.value.errors] == refusal(kind, values), kind.key
    attempt = deliver(Destination(kind.key, values["url"], values.get("secret")), sample_event(), allow=LOCAL)
    assert attempt.refused and attempt.error == " ".join(
        f"{label}: {message}" for _, label, message in refusal(kind, values)
    )
    assert not channels.list_channels(rt.engine, actor=ADMIN)
    url, secret = sample
    view, _ = channels.add(
        rt.engine,
        rt.vault,
        kind.label,
        kind.key,
        SecretStr(url),
        actor=ADMIN,
        allow=LOCAL,
        secret=SecretStr(secret) if secret else None,
    )
    assert view.kind == kind.key


def the_command_line_validates(run: Run, kind: Kind) -> None:
    """`channels add` refuses each field over its limit, naming it (and its option, if it has one)."""
    values = too_long(kind)
    piped = [name for name in SLOTS if name in values]
    code, stderr = run(
        "channels",
        "add",
        "--name",
        "Too long",
        "--kind",
        kind.key,
        *(f"--{name}-stdin" for name in piped),
        stdin="".join(f"{values[n]}\n" for n in piped),
    )
    said = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert code == 1 and len(said) == len(kind.fields), stderr
    for (name, label, message), line in zip(refusal(kind, values), said, strict=True):
        assert line in (f"error: {label}: {message}", f"error: {label} (--{name}): {message}"), line


def in_process_help(*args: str) -> str:
    result = CliRunner().invoke(root_command, list(args), terminal_width=10_000)
    assert result.exit_code == 0, result.output
    return result.output


# --- the registry walked ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(kinds.KINDS))
def test_each_kinds_fields_are_in_the_command_lines_help(key: str) -> None:
    in_help(kinds.KINDS[key], in_process_help)


@pytest.mark.parametrize("key", list(kinds.KINDS))
def test_each_kinds_fields_are_validated_by_the_service_the_command_line_and_the_sender(
    rt: Runtime, cli_env: CliEnv, key: str
) -> None:
    the_command_line_validates(cli_env.run, kinds.KINDS[key])
    the_service_validates(rt, kinds.KINDS[key], SAMPLES[key])


def test_each_kinds_fields_are_in_the_add_and_edit_forms(open_page: PageOpener, console_env: Runtime) -> None:
    views = {}
    for kind in kinds.KINDS.values():
        url, secret = SAMPLES[kind.key]
        views[kind.key], _ = channels.add(
            console_env.engine,
            console_env.vault,
            kind.label,
            kind.key,
            SecretStr(url),
            actor=ADMIN,
            allow=LOCAL,
            secret=SecretStr(secret) if secret else None,
        )
    at = open_page(MONITORING)
    assert not at.exception, at.exception
    for kind in kinds.KINDS.values():
        in_add_form(at, kind)
        in_edit_form(at, kind, views[kind.key])


# --- a new kind is one module ---------------------------------------------------------------------

PAGER = '''\
"""Pager: an incident to an events API, which takes a routing key in a header. A kind added
the way anyone would add one: this module, and nothing else."""

from __future__ import annotations

import re
from typing import Any

from lib.notify.models import Destination, Event
from lib.notify.posting import JsonPost
from lib.notify.spec import Field, Given, Kind
from lib.notify.urls import web_url


def _routing_key(key: str, given: Given) -> str | None:
    if not re.fullmatch(r"[0-9a-f]{32}", key):
        return "must be the 32 hexadecimal digits of the integration's routing key; copy it from its settings."
    return None


class Pager(JsonPost):
    def body(self, event: Event) -> dict[str, Any]:
        return {"summary": event.summary, "dedup_key": event.id}

    def headers(self, destination: Destination, event: Event, body: bytes) -> dict[str, str]:
        return {"Authorization": f"GenieKey {destination.secret}"}


KIND = Kind(
    key="pager", label="Pager", summary="an incident to an events API", listed=9,
    fields=(web_url("the pager's integration settings show it", "https://events.pager.example/v2/enqueue"),
            Field("secret", "Routing key", "The integration's routing key: 32 hexadecimal digits.", 32,
                  _routing_key, example="0123…cdef", required=True, secret=True)),
    sender=Pager(),
)
'''
ROUTING_KEY = "0123456789abcdef0123456789abcdef"
PAGER_SAMPLE = ("https://events.pager.example/v2/enqueue", ROUTING_KEY)


@pytest.fixture
def more_kinds(tmp_path: Path) -> Path:
    """A folder holding one new kind's module, to be found among lib.notify.kinds' own."""
    folder = tmp_path / "more_kinds"
    folder.mkdir()
    (folder / "pager.py").write_text(PAGER)
    return folder


@pytest.fixture
def pager(more_kinds: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Kind]:
    """This process's registry, found again with the new module among the package's."""
    monkeypatch.setattr(kinds, "__path__", [*kinds.__path__, str(more_kinds)])
    monkeypatch.setattr(kinds, "KINDS", kinds.discover())
    yield kinds.KINDS["pager"]
    sys.modules.pop(f"{kinds.__name__}.pager", None)


def test_a_new_kind_module_is_checked_asked_for_and_sent_to_by_the_console(
    pager: Kind, local_receivers: None, open_page: PageOpener, console_env: Runtime
) -> None:
    assert list(kinds.KINDS)[-1] == "pager"
    the_service_validates(console_env, pager, PAGER_SAMPLE)
    at = open_page(MONITORING)
    in_add_form(at, pager)
    with Receiver() as receiver:
        for key in ("not-a-key", ROUTING_KEY):
            at.text_input(key="channel_name").set_value("Incidents")
            at.selectbox(key="channel_kind").set_value("pager").run()
            at.text_input(key=field_key("url")).set_value(receiver.url("/v2/enqueue"))
            at.text_input(key=field_key("secret")).set_value(key)
            at.button(key="channel_add").click().run()
            assert not at.exception, at.exception
            if key != ROUTING_KEY:
                said = " ".join(plain(str(e.value)) for e in at.error)
                assert "Routing key: must be the 32 hexadecimal digits" in said, said
        view = channels.get(console_env.engine, "Incidents", actor=ADMIN)
        in_edit_form(at, pager, view)
        assert alerts.send_test(console_env, "Incidents", actor=ADMIN).delivered
        [request] = receiver.received
    assert request.path == "/v2/enqueue" and request.headers["authorization"] == f"GenieKey {ROUTING_KEY}"
    assert ROUTING_KEY not in " ".join(repr(at.session_state[k]) for k in at.session_state)


# `switchboard`, with the folder given first found among lib.notify.kinds' modules.
WITH_MORE_KINDS = """
import sys
from lib.notify import kinds
kinds.__path__.append(sys.argv[1])
kinds.KINDS = kinds.discover()
from lib.cli import cli
cli(sys.argv[2:], prog_name="switchboard", terminal_width=10_000)
"""


def test_a_new_kind_module_is_offered_checked_and_sent_to_by_the_command_line(  # type: ignore[no-untyped-def]
    pager: Kind, more_kinds: Path, cli
) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", WITH_MORE_KINDS, str(more_kinds), *args],
            env=cli.env,
            input=stdin,
            capture_output=True,
            text=True,
            cwd=cli.tmp_path,
            timeout=60,
            check=False,
        )

    def outcome(*args: str, stdin: str = "") -> tuple[int, str]:
        done = run(*args, stdin=stdin)
        return done.returncode, done.stderr

    in_help(pager, lambda *args: run(*args).stdout)
    the_command_line_validates(outcome, pager)
    cli.env["SWITCHBOARD_ALERT_ALLOW"] = "127.0.0.1"
    with Receiver() as receiver:
        added = run(
            "channels",
            "add",
            "--name",
            "Incidents",
            "--kind",
            "pager",
            "--url",
            receiver.url("/v2/enqueue"),
            "--secret-stdin",
            stdin=f"{ROUTING_KEY}\n",
        )
        assert added.returncode == 0, added.stderr
        tested = run("channels", "test", "Incidents")
        assert tested.returncode == 0, tested.stderr
        [request] = receiver.received
    assert request.headers["authorization"] == f"GenieKey {ROUTING_KEY}"
    [listed] = json.loads(run("channels", "list", "--json").stdout)
    assert (listed["kind"], listed["url_hint"]) == ("pager", receiver.url(""))
    assert ROUTING_KEY not in added.stdout + added.stderr + tested.stdout + tested.stderr

"""`switchboard channels`, run as a real subprocess against a real database file and a real
webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.fixtures.alerts import Receiver
from tests.test_cli import cli  # noqa: F401 (the fixture)


def test_list_remove_and_test_of_unknown_channels_and_usage_errors(cli) -> None:  # type: ignore[no-untyped-def]
    empty = cli("channels", "list")
    assert empty.returncode == 0 and "No alert channels yet" in empty.stdout
    assert json.loads(cli("channels", "list", "--json").stdout) == []
    for args in (("remove", "Nope"), ("test", "Nope")):
        done = cli("channels", *args)
        assert done.returncode == 1 and "No alert channel is named 'Nope'" in done.stderr, done
    bad_kind = cli("channels", "add", "--name", "X", "--kind", "pager", "--url", "https://example.com/")
    assert bad_kind.returncode == 2 and "--kind" in bad_kind.stderr


def test_add_list_test_remove_with_the_real_sender(cli, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    cli.env["SWITCHBOARD_ALERT_ALLOW"] = "127.0.0.1"
    url = f"{receiver.url}/hooks/ops-private-path"
    added = cli(
        "channels",
        "add",
        "--name",
        "Ops hook",
        "--kind",
        "webhook",
        "--url",
        url,
        "--events",
        "check.failed,check.recovered",
        "--environments",
        "prod",
    )
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "shown only now" in added.stderr
    receiver.secret = secret  # given to the receiver, which checks every signature with it
    listed = json.loads(cli("channels", "list", "--json").stdout)
    assert listed == [
        {
            "name": "Ops hook",
            "kind": "webhook",
            "url_hint": receiver.url,
            "events": ["check.failed", "check.recovered"],
            "environments": ["prod"],
            "enabled": True,
            "disabled_reason": None,
            "quiet_windows": [],
        }
    ]
    text = cli("channels", "list").stdout
    assert "ops-private-path" not in text and secret not in text
    tested = cli("channels", "test", "ops hook")
    assert tested.returncode == 0 and "Delivered" in tested.stdout, tested.stderr
    assert receiver.kinds() == ["channel.test"]
    receiver.answer(500)
    assert cli("channels", "test", "Ops hook").returncode == 1
    with_secret = cli(
        "channels",
        "add",
        "--name",
        "Given",
        "--kind",
        "webhook",
        "--url",
        url,
        "--secret-stdin",
        stdin="whsec_" + "QUJD" * 8 + "\n",
    )
    assert with_secret.returncode == 0 and with_secret.stdout == ""
    assert cli("channels", "remove", "Ops hook").returncode == 0
    assert [c["name"] for c in json.loads(cli("channels", "list", "--json").stdout)] == ["Given"]
    database = Path(cli.tmp_path) / "data" / "sb.db"
    with sqlite3.connect(database) as db:
        dumped = "\n".join(db.iterdump())
    assert "ops-private-path" not in dumped and secret not in dumped
    assert {row for row in dumped.splitlines() if "channel." in row and "audit_event" in row}


def test_edit_turn_off_and_on_and_quiet_windows_from_the_shell(cli, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]
    cli.env["SWITCHBOARD_ALERT_ALLOW"] = "127.0.0.1"
    assert (
        cli(
            "channels",
            "add",
            "--name",
            "Ops hook",
            "--kind",
            "webhook",
            "--url",
            f"{receiver.url}/old",
            "--secret-stdin",
            stdin="whsec_" + "QUJD" * 8 + "\n",
        ).returncode
        == 0
    )
    nothing = cli("channels", "edit", "Ops hook")
    assert nothing.returncode == 1 and "Nothing to change" in nothing.stderr
    edited = cli(
        "channels",
        "edit",
        "ops hook",
        "--url",
        f"{receiver.url}/moved-private",
        "--secret-stdin",
        "--events",
        "check.failed",
        "--environments",
        "prod,staging",
        stdin=receiver.secret + "\n",
    )
    assert edited.returncode == 0, edited.stderr
    assert edited.stdout.strip() == f"Changed 'Ops hook': sends to {receiver.url}."
    assert cli("channels", "test", "Ops hook").returncode == 0
    assert [r.path for r in receiver.received] == ["/moved-private"]  # with the new secret, verified
    off = cli("channels", "disable", "Ops hook")
    assert off.returncode == 0 and off.stdout.strip() == "Turned 'Ops hook' off."
    again = cli("channels", "edit", "Ops hook", "--environments", "")
    assert again.returncode == 0 and "It is off (turned off by" in again.stdout and "channels enable" in again.stdout
    assert cli("channels", "enable", "Ops hook").returncode == 0
    quiet = cli(
        "channels",
        "quiet",
        "Ops hook",
        "--days",
        "sat,sun",
        "--from",
        "22:00",
        "--to",
        "06:00",
        "--timezone",
        "Europe/Berlin",
    )
    assert quiet.returncode == 0 and quiet.stdout.strip() == "'Ops hook' is quiet sat,sun 22:00-06:00 Europe/Berlin."
    bad = cli("channels", "quiet", "Ops hook", "--days", "someday", "--from", "22:00", "--to", "06:00")
    assert bad.returncode == 1 and "Quiet window" in bad.stderr and "mon,tue,sun or daily" in bad.stderr
    [listed] = json.loads(cli("channels", "list", "--json").stdout)
    [window] = listed["quiet_windows"]
    assert (listed["events"], listed["environments"], listed["enabled"]) == (["check.failed"], [], True)
    assert window["window"] == "sat,sun 22:00-06:00 Europe/Berlin"
    assert f"quiet #{window['id']}: sat,sun" in cli("channels", "list").stdout
    assert cli("channels", "unquiet", "Ops hook", str(window["id"])).returncode == 0
    gone = cli("channels", "unquiet", "Ops hook", str(window["id"]))
    assert gone.returncode == 1 and "gone already" in gone.stderr
    assert json.loads(cli("channels", "list", "--json").stdout)[0]["quiet_windows"] == []
    assert "moved-private" not in cli("channels", "list").stdout + cli("audit", "--json").stdout


def test_a_slack_url_can_come_from_standard_input_and_on_the_command_line_is_warned_about(  # type: ignore[no-untyped-def]
    cli, receiver: Receiver
) -> None:
    cli.env["SWITCHBOARD_ALERT_ALLOW"] = "127.0.0.1"
    piped = cli(
        "channels",
        "add",
        "--name",
        "Team chat",
        "--kind",
        "slack",
        "--url-stdin",
        stdin=f"{receiver.url}/services/T0/B0/piped-secret-path\n",
    )
    assert piped.returncode == 0 and "warning" not in piped.stderr, piped.stderr
    both = cli(
        "channels",
        "add",
        "--name",
        "Other",
        "--kind",
        "slack",
        "--url",
        receiver.url,
        "--url-stdin",
        stdin=f"{receiver.url}/x\n",
    )
    assert both.returncode == 2 and "--url or --url-stdin, not both" in both.stderr
    for command in (("add", "--name", "Other", "--kind", "slack"), ("edit", "Team chat")):
        empty = cli("channels", *command, "--url-stdin", stdin="\n")
        assert empty.returncode == 2 and "--url-stdin read an empty line" in empty.stderr, command
    neither = cli("channels", "add", "--name", "Other", "--kind", "slack")
    assert neither.returncode == 2 and "--url-stdin" in neither.stderr  # no terminal to prompt in
    argued = cli("channels", "edit", "Team chat", "--url", f"{receiver.url}/services/T0/B0/argued")
    assert argued.returncode == 0 and "warning: a slack URL is a credential" in argued.stderr
    webhook = cli(
        "channels",
        "add",
        "--name",
        "Hook",
        "--kind",
        "webhook",
        "--url-stdin",
        "--secret-stdin",
        stdin=f"{receiver.url}/hook\n{receiver.secret}\n",
    )
    assert webhook.returncode == 0 and webhook.stdout == "" and "warning" not in webhook.stderr
    assert cli("channels", "test", "Hook").returncode == 0  # signed with the secret from the second line
    assert [r.path for r in receiver.received] == ["/hook"]
    listed = cli("channels", "list").stdout
    assert "piped-secret-path" not in listed and "argued" not in listed


def test_fields_are_checked_at_save_and_edit_makes_a_signing_secret_printed_once(  # type: ignore[no-untyped-def]
    cli, receiver: Receiver
) -> None:
    """Issue 21, item 6: `mysecret` and a Teams URL at example.com were saved (and failed at every delivery)."""
    cli.env["SWITCHBOARD_ALERT_ALLOW"] = "127.0.0.1"
    bad = cli(
        "channels",
        "add",
        "--name",
        "Hook",
        "--kind",
        "webhook",
        "--url",
        f"{receiver.url}/hook",
        "--secret-stdin",
        stdin="mysecret\n",
    )
    assert bad.returncode == 1 and bad.stderr.startswith("error: Signing secret: must be whsec_"), bad.stderr
    teams = cli(
        "channels", "add", "--name", "Teams", "--kind", "teams", "--url-stdin", stdin="https://example.com/not-teams\n"
    )
    assert teams.returncode == 1 and "error: URL (--url): must be the URL of a Teams workflow" in teams.stderr
    assert (
        cli(
            "channels",
            "add",
            "--name",
            "Hook",
            "--kind",
            "webhook",
            "--url",
            f"{receiver.url}/hook",
            "--secret-stdin",
            stdin=receiver.secret + "\n",
        ).returncode
        == 0
    )
    both = cli("channels", "edit", "Hook", "--new-secret", "--secret-stdin", stdin=receiver.secret + "\n")
    assert both.returncode == 1 and "not both" in both.stderr
    made = cli("channels", "edit", "Hook", "--new-secret")
    assert made.returncode == 0 and "shown only now" in made.stderr, made.stderr
    receiver.secret = made.stdout.strip()  # standard output holds the secret alone
    assert receiver.secret.startswith("whsec_") and len(made.stdout.splitlines()) == 1
    assert cli("channels", "test", "Hook").returncode == 0  # signed with it, as the receiver verified
    assert receiver.secret not in cli("channels", "list").stdout + cli("audit", "--json").stdout

"""`switchboard channels`, run as a real subprocess against a real database file and a real
webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.fixtures.alerts import Receiver
from tests.test_cli import cli  # noqa: F401 (the fixture)


def test_list_remove_and_test_of_unknown_channels_and_usage_errors(cli) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    empty = cli("channels", "list")
    assert empty.returncode == 0 and "No alert channels yet" in empty.stdout
    assert json.loads(cli("channels", "list", "--json").stdout) == []
    for args in (("remove", "Nope"), ("test", "Nope")):
        done = cli("channels", *args)
        assert done.returncode == 1 and "No alert channel is named 'Nope'" in done.stderr, done
    bad_kind = cli("channels", "add", "--name", "X", "--kind", "pager", "--url", "https://example.com/")
    assert bad_kind.returncode == 2 and "--kind" in bad_kind.stderr


def test_add_list_test_remove_with_the_real_sender(cli, receiver: Receiver) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    cli.env["SWITCHBOARD_ALERT_ALLOW"] = "127.0.0.1"
    url = f"{receiver.url}/hooks/ops-private-path"
    added = cli("channels", "add", "--name", "Ops hook", "--kind", "webhook", "--url", url,
                "--events", "check.failed,check.recovered", "--environments", "prod")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "shown only now" in added.stderr
    receiver.secret = secret  # given to the receiver, which checks every signature with it
    listed = json.loads(cli("channels", "list", "--json").stdout)
    assert listed == [{"name": "Ops hook", "kind": "webhook", "url_hint": receiver.url,
                       "events": ["check.failed", "check.recovered"], "environments": ["prod"], "enabled": True,
                       "disabled_reason": None, "quiet_windows": []}]
    text = cli("channels", "list").stdout
    assert "ops-private-path" not in text and secret not in text
    tested = cli("channels", "test", "ops hook")
    assert tested.returncode == 0 and "Delivered" in tested.stdout, tested.stderr
    assert receiver.kinds() == ["channel.test"]
    receiver.answer(500)
    assert cli("channels", "test", "Ops hook").returncode == 1
    with_secret = cli("channels", "add", "--name", "Given", "--kind", "webhook", "--url", url, "--secret-stdin",
                      stdin="whsec_" + "QUJD" * 8 + "\n")
    assert with_secret.returncode == 0 and with_secret.stdout == ""
    assert cli("channels", "remove", "Ops hook").returncode == 0
    assert [c["name"] for c in json.loads(cli("channels", "list", "--json").stdout)] == ["Given"]
    database = Path(cli.tmp_path) / "data" / "sb.db"
    with sqlite3.connect(database) as db:
        dumped = "\n".join(db.iterdump())
    assert "ops-private-path" not in dumped and secret not in dumped
    assert {row for row in dumped.splitlines() if "channel." in row and "audit_event" in row}

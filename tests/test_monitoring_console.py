"""AppTest: the Monitoring page by role (every role reads channels, the outbox and the delivery
log; admins change them), and the alerting mark on the Connections page."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from lib.services import alerts, connections
from lib.services.alerts import channels
from lib.services.checking import checks
from lib.services.guard import audit
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import utcnow
from lib.ui.monitoring_view import edit_key
from tests.fixtures.alerts import WEBHOOK_SECRET, Receiver
from tests.fixtures.console import PageOpener, plain
from tests.fixtures.notify import LOCAL
from tests.fixtures.people import ADMIN
from tests.test_checks import form_for

MONITORING = "pages/monitoring.py"
PRIVATE_PATH = "/hooks/private-path-of-the-receiver"


def seed(rt: Runtime, simulator: SimulatorServer, receiver: Receiver) -> None:
    """A channel, and an Everything connection whose chat failed twice (one check.failed queued)."""
    channels.add(
        rt.engine,
        rt.vault,
        "Ops hook",
        "webhook",
        SecretStr(receiver.url + PRIVATE_PATH),
        actor=ADMIN,
        secret=SecretStr("whsec_" + "QUJD" * 8),
        environments=["prod"],
        allow=LOCAL,
    )
    view = connections.create(rt.engine, rt.vault, form_for(simulator.scenario.apps[0], "Everything"), actor=ADMIN)
    for _ in range(2):
        with write_session(rt.engine) as session:
            checks.store(
                session,
                [CheckRecord(view.id, view.name, "cc_chat", "timeout", None, 30000, "", utcnow(), "r")],
                {},
                "test",
            )


def tables(at) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """The page's tables by what they are: open problems, channels, outbox, delivery log."""
    names = {"Channels told": "incidents", "Sends to": "channels", "Last error": "outbox", "Attempt": "log"}
    return {next(n for column, n in names.items() if column in d.value.columns): d.value for d in at.dataframe}


def texts(at) -> str:  # type: ignore[no-untyped-def]
    return " ".join(plain(str(e.value)) for e in (*at.markdown, *at.caption, *at.info, *at.success, *at.error))


def test_viewers_and_operators_read_and_change_nothing(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    seed(console_env, simulator, receiver)
    for who in ("anyone@example.com", "operator@example.com"):
        at = open_page(MONITORING, who)
        assert not at.exception, at.exception
        found = tables(at)
        channel_row = found["channels"].iloc[0].to_dict()  # type: ignore[attr-defined]
        assert (channel_row["Name"], channel_row["Sends to"], channel_row["Environments"], channel_row["State"]) == (
            "Ops hook",
            receiver.url,
            "prod",
            "on",
        )
        assert set(found) == {"incidents", "channels"} and "Nothing waiting, held or failed." in texts(at)  # prod only
        assert not [b for b in at.button if b.key in ("channel_add", "channel_edit", "channel_test", "channel_remove")]
        assert PRIVATE_PATH not in texts(at) and all(PRIVATE_PATH not in d.value.to_csv() for d in at.dataframe)


def test_admins_turn_a_channel_off_and_on_add_a_quiet_window_and_remove_it(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    seed(console_env, simulator, receiver)
    at = open_page(MONITORING)
    assert not at.exception
    at.button(key="channel_toggle").click().run()
    assert not channels.get(console_env.engine, "Ops hook", actor=ADMIN).enabled
    assert "Turned Ops hook off." in texts(at)
    at.button(key="channel_toggle").click().run()
    assert channels.get(console_env.engine, "Ops hook", actor=ADMIN).enabled
    at.multiselect(key="window_days").select("sat").select("sun").run()
    at.text_input(key="window_zone").set_value("Europe/Berlin").run()
    at.button(key="window_add").click().run()
    (window,) = channels.get(console_env.engine, "Ops hook", actor=ADMIN).windows
    assert window[1].describe() == "sat,sun 22:00-06:00 Europe/Berlin"
    at.text_input(key="window_zone").set_value("Mars/Olympus").run()
    at.button(key="window_add").click().run()
    assert "is not a time zone" in texts(at)
    at.button(key="channel_remove").click().run()
    at.button(key="channel_remove_cancel").click().run()  # a second thought: nothing removed
    assert [v.name for v in channels.list_channels(console_env.engine, actor=ADMIN)] == ["Ops hook"]
    assert not [b for b in at.button if b.key == "channel_remove_confirm"]
    at.button(key="channel_remove").click().run()
    at.button(key="channel_remove_confirm").click().run()
    assert channels.list_channels(console_env.engine, actor=ADMIN) == []
    actions = [e.action for e in audit.events(console_env.engine, ADMIN) if e.action.startswith("channel.")]
    assert actions == ["channel.add", "channel.disable", "channel.enable", "channel.window.add", "channel.remove"]


@pytest.fixture
def local_receivers(monkeypatch: pytest.MonkeyPatch) -> None:
    """SWITCHBOARD_ALERT_ALLOW for the test's receiver on 127.0.0.1 (request before console_env)."""
    monkeypatch.setenv("SWITCHBOARD_ALERT_ALLOW", "127.0.0.1")


def test_admins_edit_a_channel_in_place_and_its_new_url_is_never_shown(
    local_receivers: None, open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    seed(console_env, simulator, receiver)
    at = open_page(MONITORING)
    key = edit_key(channels.get(console_env.engine, "Ops hook", actor=ADMIN))
    at.button(key="channel_edit").click().run()
    assert "Nothing to change" in texts(at)
    moved = "/hooks/moved-private-path"
    at.text_input(key=f"channel_new_url_{key}").set_value("https://169.254.169.254/latest")
    at.button(key="channel_edit").click().run()
    assert "169.254.169.254" in texts(at)
    assert channels.get(console_env.engine, "Ops hook", actor=ADMIN).environments == ("prod",)
    at.text_input(key=f"channel_new_url_{key}").set_value(receiver.url + moved)
    at.text_input(key=f"channel_new_secret_{key}").set_value(WEBHOOK_SECRET)  # the one the receiver verifies with
    at.multiselect(key=f"channel_edit_events_{key}").set_value(["check.failed"])
    at.text_input(key=f"channel_edit_envs_{key}").set_value("")
    at.button(key="channel_edit").click().run()
    assert not at.exception, at.exception
    assert f"Saved Ops hook, sending to {receiver.url}." in texts(at)
    view = channels.get(console_env.engine, "Ops hook", actor=ADMIN)
    assert (view.events, view.environments, view.url_hint) == (("check.failed",), (), receiver.url)
    key = edit_key(view)  # the form starts again from what was saved
    assert (
        at.text_input(key=f"channel_new_url_{key}").value == at.text_input(key=f"channel_new_secret_{key}").value == ""
    )
    assert at.multiselect(key=f"channel_edit_events_{key}").value == ["check.failed"]
    assert moved not in texts(at) and all(moved not in d.value.to_csv() for d in at.dataframe)
    assert alerts.send_test(console_env, "Ops hook", actor=ADMIN).delivered
    assert receiver.received[-1].path == moved
    # Another admin changes the environments while this page is open; a new URL alone keeps theirs.
    channels.change(console_env.engine, console_env.vault, "Ops hook", actor=ADMIN, allow=LOCAL, environments=["ops"])
    at.text_input(key=f"channel_new_url_{key}").set_value(receiver.url + "/again")
    at.button(key="channel_edit").click().run()
    assert channels.get(console_env.engine, "Ops hook", actor=ADMIN).environments == ("ops",)
    actions = [e.action for e in audit.events(console_env.engine, ADMIN) if e.action.startswith("channel.")]
    assert actions == ["channel.add", "channel.change", "channel.test", "channel.change", "channel.change"]


def test_the_edit_form_asks_for_a_secret_only_where_the_kind_has_one(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    seed(console_env, simulator, receiver)
    channels.add(
        console_env.engine,
        console_env.vault,
        "Team chat",
        "slack",
        SecretStr("https://hooks.slack.com/services/T0/B0/x"),
        actor=ADMIN,
        allow=LOCAL,
    )
    at = open_page(MONITORING)
    for name, asked in (("Ops hook", ["New signing secret (blank: keep)"]), ("Team chat", [])):
        at.selectbox(key="channel_chosen").set_value(name).run()
        assert [t.label for t in at.text_input if t.key.startswith("channel_new_secret_")] == asked, name


def state_values(at) -> str:  # type: ignore[no-untyped-def]
    """Everything the page keeps in session state, as text."""
    return " ".join(repr(at.session_state[key]) for key in at.session_state)


def fill_add_form(at, name: str, kind: str, url: str, secret: str = "") -> None:  # type: ignore[no-untyped-def]
    at.text_input(key="channel_name").set_value(name)
    at.selectbox(key="channel_kind").set_value(kind).run()  # the form asks for what the kind takes
    at.text_input(key="channel_url").set_value(url)
    if secret:
        at.text_input(key="channel_secret").set_value(secret)
    at.button(key="channel_add").click().run()


def test_a_webhook_added_without_a_secret_gets_one_shown_once_and_kept_in_no_session_state(
    local_receivers: None, open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    """Issue 21, item 6: the console made no secret (it demanded one), so a webhook could only
    be added with one pasted in, in any form, and it was never checked."""
    at = open_page(MONITORING)
    fill_add_form(at, "Ops hook", "webhook", receiver.url + PRIVATE_PATH, "mysecret")
    assert "Signing secret: must be whsec_ followed by base64" in texts(at)
    assert channels.list_channels(console_env.engine, actor=ADMIN) == []  # nothing saved
    fill_add_form(at, "Ops hook", "webhook", receiver.url + PRIVATE_PATH)
    assert not at.exception, at.exception
    [made] = [c.value for c in at.code if c.value.startswith("whsec_")]
    assert "shown only now" in " ".join(str(w.value) for w in at.warning)
    assert made not in state_values(at) and PRIVATE_PATH not in state_values(at)
    receiver.secret = made  # given to the receiver, which checks every signature with it
    assert alerts.send_test(console_env, "Ops hook", actor=ADMIN).delivered
    at.run()  # the next run no longer shows it
    assert not [c for c in at.code if c.value == made] and made not in state_values(at)
    added = [e.detail for e in audit.events(console_env.engine, ADMIN) if e.action == "channel.add"]
    assert len(added) == 1 and added[0].endswith("; signing secret made") and made not in added[0]


def test_the_add_form_asks_for_the_secret_the_kind_takes_and_checks_the_url_shape(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer
) -> None:
    at = open_page(MONITORING)
    for kind, secret_label in (
        ("webhook", "Signing secret (blank: make one)"),
        ("slack", None),
        ("teams", None),
        ("email", "SMTP password (blank: none)"),
    ):
        at.selectbox(key="channel_kind").set_value(kind).run()
        assert [t.label for t in at.text_input if t.key == "channel_secret"] == ([secret_label] if secret_label else [])
    fill_add_form(at, "Teams", "teams", "https://example.com/not-teams")
    assert "URL: must be the URL of a Teams workflow" in texts(at)
    fill_add_form(
        at,
        "Teams",
        "teams",
        "https://prod-12.westus.logic.azure.com:443/workflows/0a1b/triggers/manual/"
        "paths/invoke?api-version=2016-06-01&sig=x",
    )
    assert [v.kind for v in channels.list_channels(console_env.engine, actor=ADMIN)] == ["teams"]


def test_an_edit_makes_a_new_signing_secret_and_shows_it_once(
    local_receivers: None, open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    seed(console_env, simulator, receiver)
    at = open_page(MONITORING)
    key = edit_key(channels.get(console_env.engine, "Ops hook", actor=ADMIN))
    at.checkbox(key=f"channel_make_secret_{key}").check()
    at.button(key="channel_edit").click().run()
    assert not at.exception, at.exception
    [made] = [c.value for c in at.code if c.value.startswith("whsec_")]
    assert made not in state_values(at) and made != "whsec_" + "QUJD" * 8
    receiver.secret = made
    assert alerts.send_test(console_env, "Ops hook", actor=ADMIN).delivered


def test_the_outbox_and_log_show_what_waits(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    channels.add(
        console_env.engine,
        console_env.vault,
        "All envs",
        "webhook",
        SecretStr(receiver.url + PRIVATE_PATH),
        actor=ADMIN,
        secret=SecretStr("whsec_" + "QUJD" * 8),
        allow=LOCAL,
    )
    seed(console_env, simulator, receiver)
    at = open_page(MONITORING, "anyone@example.com")
    outbox = tables(at)["outbox"]
    assert outbox[["Channel", "Event", "Status"]].values.tolist() == [["All envs", "check.failed", "pending"]]
    assert "No delivery attempted yet." in texts(at)


def test_the_connections_page_marks_an_alerting_product(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer, receiver: Receiver
) -> None:
    seed(console_env, simulator, receiver)
    at = open_page("pages/connections.py", "anyone@example.com")
    at.selectbox(key="conn_detail").set_value("Everything").run()
    alerting = [str(c.value) for c in at.caption if ":material/notifications_active:" in str(c.value)]
    assert len(alerting) == 1 and alerting[0].startswith("No product ticked")

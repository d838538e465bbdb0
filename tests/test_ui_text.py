"""Text people typed (or 8x8 sent) is shown as text: a connection named like a Markdown link
is not a link on anybody's screen, and what people copy from the page is what it shows."""

from __future__ import annotations

import re
import unicodedata
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from lib.kernel.errors import ValidationError
from lib.services import alerts, connections
from lib.services.accounts import api_tokens, first_run, sessions, users
from lib.services.alerts.events import channel_test_event
from lib.services.alerts.outbox import FAILED, HELD, PENDING
from lib.services.connections import ConnectionInput
from lib.services.guard.access import Role, schedule, shell
from lib.services.history.status import CheckRecord
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.models import AlertDelivery, AuditEvent
from lib.ui import audit_view, monitoring_view, tokens_view
from lib.ui.history_chart import history_frame
from lib.ui.text import literal
from lib.web import html
from tests.fixtures.console import PageOpener, plain
from tests.fixtures.people import ADMIN
from tests.test_checks import form_for

PHISH = "[Session expired - sign in again](https://evil.example/phish)"
TRICKS = (
    PHISH,
    "**bold** _it_ `code`",
    ":red[alarm] :material/warning:",
    "$x^2$",
    "<b>html</b>",
    "# heading",
    "> quote",
    "1. item",
    "https://evil.example/bare",
    "a|b|c",
    "~~gone~~",
    "\\[x]",
    "visit www.example.com or mail a@b.co http://x.test:8080/p",
    ":smile: :streamlit: :material_home:",
    "a -> b <-> c <- d -- e >= f <= g ~= h",
    "- item",
    "=== ---",
    "&#46; &amp;",
)

# literal()'s Markdown is made of three pieces: a character Markdown shows as it is, an escaped
# ASCII punctuation character, and one such character alone in a plain :color[...] span.
_PUNCTUATION = r"[!-/:-@\[-`{-~]"
_SPAN = re.compile(rf":color\[\\{_PUNCTUATION}\]")
_PIECES = re.compile(rf"(?:[^!-/:-@\[-`{{-~\r\n]|\\{_PUNCTUATION}|{_SPAN.pattern})*")
# Streamlit draws these as arrows and signs when a run of text holds one.
SIGNS = ("->", "<-", "--", ">=", "<=", "~=")


def _runs(markdown: str) -> list[str]:
    """The runs of text a reader sees between literal()'s spans: the text nodes that
    Streamlit searches for bare links, :shortcodes: and signs."""
    return [plain(run) for run in _SPAN.split(markdown)]


def _assert_plain_text(markdown: str) -> None:
    """One line of nothing but text: no link, emphasis, code, HTML, table, directive, maths,
    bare link, :shortcode: or drawn sign can form, and nothing invisible is in it."""
    assert _PIECES.fullmatch(markdown), markdown  # every Markdown character escaped or alone
    assert len(f"a{markdown}b".splitlines()) == 1, markdown
    assert markdown == markdown.strip(" \t"), markdown  # four leading spaces would be code
    assert not [c for c in markdown if unicodedata.category(c) == "Cf"], markdown
    for run in _runs(markdown):
        assert not set(run) & set(":.@"), run  # what a bare URL, www. name, e-mail or :code: needs
        assert not [sign for sign in SIGNS if sign in run], run


@pytest.mark.parametrize("text", TRICKS)
def test_literal_reads_back_as_the_same_characters(text: str) -> None:
    escaped = literal(text)
    assert plain(escaped) == text
    _assert_plain_text(escaped)


# Text with what Markdown and Streamlit act on in it, between any other characters.
_FRAGMENTS = st.sampled_from(
    [
        "www.",
        "http://",
        "https://",
        "@",
        ".",
        ":",
        "->",
        "<-",
        "--",
        ">=",
        "<=",
        "~=",
        "<->",
        ":smile:",
        ":material/home:",
        ":streamlit:",
        ":red[",
        "](",
        "**",
        "_",
        "`",
        "$",
        "|",
        "<b>",
        "&#46;",
        "\\",
        "#",
        "    ",
        "\t",
        " ",
        "\n",
        "\r\n",
        "\u2028",
        "\u2060",
        "\u200b",
        "\u202e",
        "\ufeff",
        "\u00ad",
    ]
)
TEXT = st.lists(st.one_of(_FRAGMENTS, st.text(st.characters(codec="utf-8"), max_size=4)), max_size=16).map("".join)
_VISIBLE = st.characters(codec="utf-8", exclude_categories=("Cc", "Cf", "Zl", "Zp"))


@given(TEXT)
@example("    indented like code")
@example("\u2060www.example.com\u200b")
def test_literal_is_always_one_line_of_plain_text(text: str) -> None:
    _assert_plain_text(literal(text))


@given(st.text(_VISIBLE, max_size=40).map(lambda text: text.strip(" \t")))
def test_one_line_of_visible_text_is_shown_as_it_is(text: str) -> None:
    assert plain(literal(text)) == text


def test_what_no_one_sees_is_left_out() -> None:
    """Line breaks read as spaces; spaces at either end and invisible characters are not shown,
    so they are not copied either."""
    assert plain(literal(" \tOps\r\nteam\n")) == "Ops team"
    assert plain(literal("a\u200bb\u2060c\u202ed\ufeff")) == "abcd"


def _markdown_shown(at: AppTest) -> list[str]:
    kinds = (at.title, at.subheader, at.markdown, at.caption, at.error, at.info, at.success, at.warning, at.toast)
    return [str(element.value) for kind in kinds for element in kind]


def test_names_environments_and_details_reach_the_page_escaped(
    open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer
) -> None:
    app = simulator.scenario.apps[0]
    connections.create(
        console_env.engine,
        console_env.vault,
        form_for(app, PHISH, environment="**prod** [x](https://evil.example)", expected_products=("cloud_storage",)),
        actor=ADMIN,
    )
    at = open_page("pages/connections.py")
    at.selectbox(key="conn_detail").select(PHISH).run()
    at.button(key="detail_test_all").click().run()
    shown = _markdown_shown(at)
    assert any(plain(value).find(PHISH) >= 0 for value in shown)  # the name is there, as text
    for value in shown:
        assert "](https://evil.example" not in value, value
        assert "**prod**" not in value, value


# --- words: messages name fields as people see them, and ask end users for no shell work -------

LIB = Path(__file__).resolve().parents[1] / "lib"
# Every key a refused input can carry, plus the account forms' own field names.
FIELD_KEYS = sorted({*connections.FIELD_LABELS, *users.FIELD_LABELS, "setup_code", "password_again", "product"})


def _sources() -> list[tuple[Path, str]]:
    """lib/'s source, but the simulator (its messages are about its scenario file's own keys)."""
    return [(path, path.read_text()) for path in sorted(LIB.rglob("*.py")) if "simulator" not in path.parts]


def test_no_message_in_lib_starts_with_an_internal_field_name() -> None:
    keys = "|".join(FIELD_KEYS)
    keyed = re.compile(rf"""["'](?:--)?(?:{keys}): """)
    formatted = re.compile(r"\{[\w.]*\.field\b[^}]*\}:")  # f"{error.field}: …"
    found = [
        f"{path.relative_to(LIB)}: {m.group(0)}"
        for path, text in _sources()
        for m in (*keyed.finditer(text), *formatted.finditer(text))
    ]
    assert found == []


def _refusals(engine: Engine) -> list[ValidationError]:
    """A refusal from every service that validates input."""
    caught: list[ValidationError] = []
    attempts = [
        lambda: connections.validate(
            ConnectionInput(
                name="",
                client_id="a:b",
                client_secret=SecretStr("***"),
                environment="e" * 99,
                expected_products=("cloud_storage", "quality_management", "cc_chat", "voice"),
                chat_region="xx",
                pbx="a b",
            ),
            creating=True,
        ),
        lambda: users.add(engine, "no spaces allowed", SecretStr("short"), "boss", actor=ADMIN),
        lambda: users.set_role(engine, "anyone", "boss", actor=ADMIN),
        lambda: users.change_password(
            engine, "anyone", SecretStr("x"), SecretStr("short"), address="", keep=sessions.Key.of("x")
        ),
        lambda: first_run.redeem(engine, SecretStr("AAAA-BBBB-CCCC-DDDD"), "root", SecretStr("x"), address=""),
    ]
    for attempt in attempts:
        with pytest.raises(ValidationError) as info:
            attempt()
        caught.append(info.value)
    return caught


def test_every_refusal_names_its_fields_by_their_labels(sqlite_engine: Engine) -> None:
    refusals = _refusals(sqlite_engine)
    fields = {e.field for exc in refusals for e in exc.errors}
    assert {"client_secret", "expected_products", "pbx", "password", "role", "setup_code", "new_password"} <= fields
    for exc in refusals:
        for error in exc.errors:
            assert error.label and error.label != error.field and error.label[0].isupper(), error
            assert f"{error.label}: {error.message}" in str(exc)
        assert not re.search(rf"(?:^|[.;] )(?:{'|'.join(FIELD_KEYS)}):", str(exc)), str(exc)


def test_the_sign_in_and_setup_pages_ask_for_no_shell_commands() -> None:
    for page in (html.sign_in("/"), html.setup(), html.sign_in("/", first_run.CODE_WRONG)):
        assert not re.search(r"python -m|<code>|\bmake \w|\.venv|\bsudo\b|\$ ", page), page
    assert "Ask a Switchboard admin to reset it." in html.sign_in("/")


def test_a_mistyped_setup_code_is_not_told_to_restart_the_server() -> None:
    assert "restart" not in first_run.CODE_WRONG.lower() and "type it again" in first_run.CODE_WRONG
    assert "restart" in first_run.CODE_SPENT.lower()  # only a spent code needs a new one


# --- Issue 22: every cell of a table in words, every moment in the one form people read ---------

SHOWN_MOMENT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")  # lib.kernel.words.shown
ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=-9, minutes=-30)), timezone(timedelta(hours=14))])
AT = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 30), timezones=ZONES)
MAYBE = st.one_of(st.none(), AT)


def in_words(frame: pd.DataFrame, moments: dict[str, tuple[str, ...]]) -> None:
    """No cell is blank, None, NaN or NaT; each moment column holds the shown form or its words."""
    for column in frame.columns:
        for value in frame[column]:
            assert not pd.isna(value) and str(value).strip() not in ("", "None", "NaN", "NaT", "nan"), (column, value)
    for column, words in moments.items():
        assert all(SHOWN_MOMENT.fullmatch(v) or v in words for v in frame[column]), (column, list(frame[column]))


@given(created=AT, used=MAYBE, revoked=MAYBE)
def test_the_tokens_table_says_never_and_a_dash_where_nothing_happened(
    created: datetime, used: datetime | None, revoked: datetime | None
) -> None:
    frame = tokens_view.table([api_tokens.TokenView("prometheus", Role.VIEWER, created, "cli:root", used, revoked)])
    in_words(frame, {"Created": (), "Last used": ("Never",), "Revoked": ("—",)})
    assert (frame["Last used"][0] == "Never") == (used is None) and (frame["Revoked"][0] == "—") == (revoked is None)


@given(status=st.sampled_from([PENDING, HELD, FAILED]), due=AT, error=st.sampled_from([None, "", "HTTP 500"]))
def test_each_outbox_row_says_when_it_is_tried_next(status: str, due: datetime, error: str | None) -> None:
    queued = alerts.Queued("Ops hook", channel_test_event("Ops hook", at=due, by="ada"), status, 1, due, error)
    frame = monitoring_view.outbox_table([queued])
    in_words(frame, {"Next attempt": ("When the quiet window ends", "No more attempts")})
    assert bool(SHOWN_MOMENT.fullmatch(frame["Next attempt"][0])) == (status == PENDING)


@given(
    at=AT,
    status=st.sampled_from([None, 204, 500]),
    error=st.sampled_from(["", "refused"]),
    worker=st.sampled_from(["", "vm:1:abc"]),
)
def test_each_delivery_attempt_is_in_words(at: datetime, status: int | None, error: str, worker: str) -> None:
    attempt = AlertDelivery(
        channel_id=uuid.uuid4(),
        channel="Ops hook",
        event_id="evt_1",
        kind="check.failed",
        attempt=1,
        at=at,
        http_status=status,
        outcome="retrying",
        error=error,
        duration_ms=5,
        worker=worker,
    )
    in_words(monitoring_view.log_table([attempt]), {"At": ()})


@pytest.mark.parametrize(
    ("actor", "address", "origin"),
    [
        ("ada", "203.0.113.9", "203.0.113.9"),
        (shell().name, None, "Command line"),
        (schedule().name, None, "Scheduled"),
        ("setup code", None, "—"),
    ],
)
def test_every_audit_row_says_where_it_came_from(actor: str, address: str | None, origin: str) -> None:
    event = AuditEvent(
        at=datetime(2026, 12, 7, 17, 9, 41),
        actor=actor,
        client_address=address,
        action="check.run",
        target="",
        result="ok",
        detail="",
    )
    row = audit_view.cells(event)
    assert row["client_address"] == origin and row["at"] == "2026-12-07 17:09 UTC"
    in_words(pd.DataFrame([row]), {"at": ()})


@given(at=AT)
def test_a_history_row_without_a_status_or_words_from_8x8_says_so(at: datetime) -> None:
    frame = history_frame([CheckRecord(uuid.uuid4(), "c", "cc_chat", "timeout", None, 30000, "", at, "r")])
    in_words(frame.drop(columns="Checked at"), {"When": ()})

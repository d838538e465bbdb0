"""Text people typed (or 8x8 sent) is shown as text: a connection named like a Markdown link
is not a link on anybody's screen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from lib import connections, first_run, sessions, users
from lib.connections import ConnectionInput
from lib.errors import ValidationError
from lib.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.ui.text import literal
from lib.web import html
from tests.fixtures.console import PageOpener, plain
from tests.fixtures.people import ADMIN
from tests.test_checks import form_for

PHISH = "[Session expired - sign in again](https://evil.example/phish)"
TRICKS = (PHISH, "**bold** _it_ `code`", ":red[alarm] :material/warning:", "$x^2$", "<b>html</b>",
          "# heading", "> quote", "1. item", "https://evil.example/bare", "a|b|c", "~~gone~~", "\\[x]")


@pytest.mark.parametrize("text", TRICKS)
def test_literal_reads_back_as_the_same_characters(text: str) -> None:
    escaped = literal(text)
    assert plain(escaped) == text
    assert not re.search(r"(?<!\\)[\[\]()*_`$<>|~]", escaped)  # every Markdown character is escaped
    assert not re.search(r"https?:|www\.|\w@\w", escaped)  # nothing an autolink would pick up


def _markdown_shown(at: AppTest) -> list[str]:
    kinds = (at.title, at.subheader, at.markdown, at.caption, at.error, at.info, at.success, at.warning, at.toast)
    return [str(element.value) for kind in kinds for element in kind]


def test_names_environments_and_details_reach_the_page_escaped(open_page: PageOpener, console_env: Runtime,
                                                               simulator: SimulatorServer) -> None:
    app = simulator.scenario.apps[0]
    connections.create(console_env.engine, console_env.vault,
                       form_for(app, PHISH, environment="**prod** [x](https://evil.example)",
                                expected_products=("cloud_storage",)), actor=ADMIN)
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
    found = [f"{path.relative_to(LIB)}: {m.group(0)}" for path, text in _sources()
             for m in (*keyed.finditer(text), *formatted.finditer(text))]
    assert found == []


def _refusals(engine: Engine) -> list[ValidationError]:
    """A refusal from every service that validates input."""
    caught: list[ValidationError] = []
    attempts = [
        lambda: connections.validate(ConnectionInput(
            name="", client_id="a:b", client_secret=SecretStr("***"), environment="e" * 99,
            expected_products=("cloud_storage", "quality_management", "cc_chat", "voice"), chat_region="xx",
            pbx="a b"), creating=True),
        lambda: users.add(engine, "no spaces allowed", SecretStr("short"), "boss", actor=ADMIN),
        lambda: users.set_role(engine, "anyone", "boss", actor=ADMIN),
        lambda: users.change_password(engine, "anyone", SecretStr("x"), SecretStr("short"), address="",
                                      keep=sessions.Key.of("x")),
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

"""Text people typed (or 8x8 sent) is shown as text: a connection named like a Markdown link
is not a link on anybody's screen."""

from __future__ import annotations

import re

import pytest
from streamlit.testing.v1 import AppTest

from lib import connections
from lib.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.ui.text import literal
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

"""The setup guide: every step, product and outcome anchor is rendered; nothing remote."""

from __future__ import annotations

import re
import xml.dom.minidom
from pathlib import Path

from streamlit.testing.v1 import AppTest

from lib.catalogue.outcomes import OUTCOMES
from lib.catalogue.products import PRODUCTS, SETTINGS
from lib.services.content.guide import ANCHORS, ILLUSTRATIONS, STEPS, anchor_url, product_sections

GUIDE = Path(__file__).resolve().parent.parent / "pages" / "guide.py"


def rendered() -> AppTest:
    at = AppTest.from_file(str(GUIDE), default_timeout=30).run()
    assert not at.exception
    return at


def _anchors(at: AppTest) -> set[str]:
    found = set()
    for heading in (*at.title, *at.header, *at.subheader):
        found.add(heading.proto.anchor)
    return found


def test_every_step_product_and_outcome_has_an_anchor() -> None:
    anchors = _anchors(rendered())
    assert {s.anchor for s in STEPS} <= anchors
    assert {p.guide_anchor for p in PRODUCTS.values()} <= anchors
    assert {o.guide_anchor for o in OUTCOMES.values()} <= anchors
    assert {s.guide_anchor for s in SETTINGS.values()} <= anchors
    assert ANCHORS <= anchors


def test_steps_are_numbered_in_order() -> None:
    headers = [h.value for h in rendered().header]
    assert headers[: len(STEPS)] == [f"{i}. {s.title}" for i, s in enumerate(STEPS, start=1)]
    assert headers[len(STEPS)] == "Troubleshooting"


def test_each_outcome_entry_says_cause_who_and_fix() -> None:
    text = " ".join(m.value for m in rendered().markdown)
    for outcome in OUTCOMES.values():
        assert outcome.cause in text and outcome.fix in text and outcome.actor.value in text


def test_the_secret_warning_and_what_to_do_when_lost() -> None:
    text = " ".join(m.value for m in rendered().markdown)
    assert "may be shown only once" in text and "Regenerate the secret" in text
    assert "Home > API Management" in text and "Create API App" in text


def test_nothing_is_loaded_from_the_internet() -> None:
    at = rendered()
    text = " ".join(m.value for m in at.markdown)
    assert not re.search(r"!\[[^\]]*\]\(https?://", text)  # no remote images
    for svg in ILLUSTRATIONS.glob("*.svg"):
        body = svg.read_text()
        assert "http://" not in body.replace("http://www.w3.org/2000/svg", "") and "https://" not in body


def test_illustrations_are_well_formed_and_titled() -> None:
    svgs = list(ILLUSTRATIONS.glob("*.svg"))
    assert len(svgs) == len([s for s in STEPS if s.illustration])
    for svg in svgs:
        document = xml.dom.minidom.parse(str(svg))
        assert document.getElementsByTagName("title")[0].firstChild.data.strip()
        assert document.documentElement.getAttribute("role") == "img"


def test_anchor_url_is_relative() -> None:
    assert anchor_url("outcome-ok") == "/guide#outcome-ok"


def test_every_link_into_the_guide_points_at_a_rendered_anchor() -> None:
    root = Path(__file__).resolve().parent.parent
    used = set()
    for source in [*root.glob("lib/**/*.py"), *root.glob("pages/*.py")]:
        used |= set(re.findall(r"anchor_url\(['\"]([a-z0-9-]+)['\"]\)", source.read_text()))
    used |= {p.guide_anchor for p in PRODUCTS.values()} | {o.guide_anchor for o in OUTCOMES.values()}
    assert used and used <= ANCHORS


def test_connect_is_a_link_and_the_shared_token_name_is_explained() -> None:
    text = " ".join(step.body for step in STEPS)
    assert "[Connect](/connect)" in text and "**Connect**" not in text
    sections = {title: body for _, title, body in product_sections()}
    historical = sections["CC Historical Analytics"]
    assert "`analytics realtime-api`" in historical and "same name for CC Realtime Analytics" in historical
    assert "same name" not in sections["Cloud Storage Service"]

"""Switchboard's entrypoint: page config and navigation only (pages live in pages/)."""

import streamlit as st

from lib.navigation import HOME, sections
from lib.ui.errors import error_boundary

st.set_page_config(page_title="Switchboard", page_icon=":material/hub:", layout="wide")


def home() -> None:
    st.switch_page(HOME)


registered = {
    section: [st.Page(p.script, title=p.title, icon=p.icon, url_path=p.url_path) for p in pages]
    for section, pages in sections().items()
}
first = next(iter(registered))
registered[first].append(st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"))
page = st.navigation(registered, position="top")
with error_boundary():
    page.run()

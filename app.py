"""Switchboard's entrypoint: page config and navigation only (pages live in pages/)."""

import streamlit as st

from lib.navigation import sections
from lib.ui.errors import error_boundary

st.set_page_config(page_title="Switchboard", page_icon=":material/hub:", layout="wide")

page = st.navigation(
    {
        section: [
            st.Page(p.script, title=p.title, icon=p.icon, url_path=p.url_path, default=p.default)
            for p in pages
        ]
        for section, pages in sections().items()
    },
    position="top",
)
with error_boundary():
    page.run()

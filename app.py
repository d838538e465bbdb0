"""Switchboard's entrypoint: page config and navigation only (pages live in pages/).

Each person sees only the pages their role allows; every page checks again for itself.
"""

import streamlit as st

from lib.navigation import HOME, sections, visible_to
from lib.ui.account import sign_out_page
from lib.ui.auth import sign_in_prompt
from lib.ui.errors import error_boundary
from lib.ui.favicon import FAVICON
from lib.ui.runtime import signed_in

st.set_page_config(page_title="Switchboard", page_icon=FAVICON, layout="wide")
me = signed_in()


def home() -> None:
    if me is None:
        sign_in_prompt()
    else:
        st.switch_page(HOME, query_params=st.query_params.to_dict())  # e.g. /?connection=NAME


registered = {
    section: [st.Page(p.script, title=p.title, icon=p.icon, url_path=p.url_path) for p in pages]
    for section, pages in sections(visible_to(me)).items()
}
first = next(iter(registered))
registered[first].append(st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"))
if me is not None:
    registered["Account"] = [st.Page(sign_out_page, title=f"Sign out ({me.name})", icon=":material/logout:",
                                     url_path="sign-out")]
page = st.navigation(registered, position="top")
with error_boundary():
    page.run()

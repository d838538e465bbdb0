"""Switchboard's entrypoint: page config and navigation only (pages live in pages/).

Each person's menu lists only the pages their role allows. The others are routed too, out of
the menu, so a link to one is answered by its own guard (the role it needs, who grants it).
"""

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from lib.services.content.navigation import HOME, PageSpec, hidden_from, sections, visible_to
from lib.ui.account import password_page, sign_out_page
from lib.ui.auth import sign_in_prompt
from lib.ui.context import signed_in
from lib.ui.errors import error_boundary
from lib.ui.favicon import FAVICON

st.set_page_config(page_title="Switchboard", page_icon=FAVICON, layout="wide")
me = signed_in()


def home() -> None:
    if me is None:
        sign_in_prompt()
    else:
        st.switch_page(HOME, query_params=st.query_params.to_dict())  # e.g. /?connection=NAME


def routed(spec: PageSpec, *, hidden: bool = False) -> StreamlitPage:
    return st.Page(
        spec.script,
        title=spec.title,
        icon=spec.icon,
        url_path=spec.url_path,
        visibility="hidden" if hidden else "visible",
    )


registered = {section: [routed(p) for p in pages] for section, pages in sections(visible_to(me)).items()}
first = next(iter(registered))
registered[first] += [
    st.Page(home, title="Home", url_path="home", default=True, visibility="hidden"),
    *(routed(p, hidden=True) for p in hidden_from(me)),
]
if me is not None:
    registered["Account"] = [
        st.Page(sign_out_page, title=f"Sign out ({me.name})", icon=":material/logout:", url_path="sign-out")
    ]
    if me.via == "local":  # a company account's password is changed at its identity provider
        registered["Account"].insert(
            0, st.Page(password_page, title="Change password", icon=":material/password:", url_path="password")
        )
page = st.navigation(registered, position="top")
with error_boundary():
    page.run()

"""Switchboard's server: Streamlit running app.py, plus our account routes (sign-in, setup),
the sign-in gate and security headers. ``make run`` starts it; so does ``python serve.py``."""

import streamlit as st

from lib.ui.server import message_kind, oidc_claims, oidc_configured
from lib.ui.streamlit_internals import navigation_only
from lib.web import server_options
from lib.web.hooks import StreamlitHooks

# app.py routes every page with st.navigation. Until a first visit to "/" has run it, Streamlit
# would serve a deep link such as /connections straight from pages/ (its legacy mode), with no
# menu and without app.py; say up front that this app does not use that mode. Each page
# still checks the sign-in itself.
navigation_only()

app = st.App("app.py", **server_options(StreamlitHooks(oidc_configured, message_kind, oidc_claims)))

if __name__ == "__main__":
    app.run()

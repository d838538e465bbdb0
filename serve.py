"""Switchboard's server: Streamlit running app.py, plus our account routes (sign-in, setup),
the sign-in gate and security headers. ``make run`` starts it; so does ``python serve.py``."""

import streamlit as st

from lib.ui.auth import oidc_configured
from lib.web import server_options

app = st.App("app.py", **server_options(oidc_configured))

if __name__ == "__main__":
    app.run()

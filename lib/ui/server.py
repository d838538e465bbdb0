"""What the server (lib.web) needs to know of Streamlit, read where Switchboard is allowed to
know Streamlit: whether OIDC signs people in, the kind of a WebSocket message and who the signed
identity cookie names. serve.py hands these to lib.web.hooks. The last two read Streamlit's
internals, through lib.ui.streamlit_internals (checked when imported, pinned in requirements.txt).
"""

from __future__ import annotations

import json

import streamlit as st
from starlette.requests import Request
from streamlit.errors import StreamlitSecretNotFoundError

from lib.ui.streamlit_internals import message_kind, signed_user_cookie

__all__ = ["message_kind", "oidc_claims", "oidc_configured"]


def oidc_configured() -> bool:
    """Whether people sign in with OIDC (``[auth]`` in secrets.toml) rather than local accounts."""
    try:
        return "auth" in st.secrets
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return False


def oidc_claims(request: Request) -> dict[str, object] | None:
    """The identity in Streamlit's signed user cookie, read with Streamlit's own reader."""
    raw = signed_user_cookie(request)
    try:
        claims = json.loads(raw) if raw else None
    except ValueError:
        return None
    return claims if isinstance(claims, dict) and claims.get("is_logged_in") else None

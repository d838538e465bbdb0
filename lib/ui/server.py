"""What the server (lib.web) needs to know of Streamlit, read where Switchboard is allowed to
know Streamlit: its 1.67 WebSocket messages and its signed identity cookie. serve.py hands
these to lib.web.hooks. Pinned in requirements.txt; the server tests fail if an upgrade moves
any of it."""

from __future__ import annotations

import json

import streamlit as st
from google.protobuf.message import DecodeError
from starlette.requests import Request
from streamlit.errors import StreamlitSecretNotFoundError
from streamlit.proto.BackMsg_pb2 import BackMsg


def oidc_configured() -> bool:
    """Whether people sign in with OIDC (``[auth]`` in secrets.toml) rather than local accounts."""
    try:
        return "auth" in st.secrets
    except (StreamlitSecretNotFoundError, FileNotFoundError):
        return False


def message_kind(data: bytes) -> str | None:
    """The kind of a BackMsg the browser sent ("kind" or "kind/payload"), or None."""
    message = BackMsg()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return None
    kind = message.WhichOneof("type")
    if kind == "backend_operation_request":
        return f"{kind}/{message.backend_operation_request.WhichOneof('payload')}"
    return kind


def oidc_claims(request: Request) -> dict[str, object] | None:
    """The identity in Streamlit's signed user cookie, read with Streamlit's own reader."""
    from streamlit.web.server.starlette.starlette_auth_routes import _get_cookie_value_from_request
    from streamlit.web.server.starlette.starlette_server_config import USER_COOKIE_NAME

    raw = _get_cookie_value_from_request(request, USER_COOKIE_NAME)
    try:
        claims = json.loads(raw) if raw else None
    except ValueError:
        return None
    return claims if isinstance(claims, dict) and claims.get("is_logged_in") else None


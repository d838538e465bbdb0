"""Everything Switchboard takes from inside Streamlit rather than from its documented ``st`` API,
in one place, checked when this module is imported (lib.kernel.internals): a Streamlit that moved any
of it stops the server at start, naming what moved.

- the signed identity cookie ``st.login`` sets, read with Streamlit's own reader (OIDC: the
  sign-in gate asks it who a request is from, lib.ui.server.oidc_claims);
- the kind of message a browser sends on the WebSocket (the protocol's BackMsg), so that
  lib.web.stream passes on only those the console uses;
- whether a widget callback is running (lib.ui.context.acting), the question Streamlit's own
  ``st.rerun`` asks;
- the switch that turns off the legacy pages/ mode (serve.py, ``navigation_only``).
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import DecodeError
from starlette.requests import Request

from lib.kernel.internals import Library

STREAMLIT = Library("streamlit", tested="1.67.0")

# The signed identity cookie (chunked when long), decoded with the cookie secret; None when absent,
# forged or expired.
_signed_cookie: Callable[[Request, str], bytes | None] = STREAMLIT.function(
    STREAMLIT.module("streamlit.web.server.starlette.starlette_auth_routes"),
    "_get_cookie_value_from_request",
    ("request", "cookie_name"),
)
USER_COOKIE: str = STREAMLIT.attribute(
    STREAMLIT.module("streamlit.web.server.starlette.starlette_server_config"), "USER_COOKIE_NAME", str
)

# Message kinds: the oneof "type" of a BackMsg, and of a backend operation the oneof "payload".
_TYPE, _OPERATION, _PAYLOAD = "type", "backend_operation_request", "payload"
BackMsg = STREAMLIT.attribute(STREAMLIT.module("streamlit.proto.BackMsg_pb2"), "BackMsg")
STREAMLIT.require(_TYPE in BackMsg.DESCRIPTOR.oneofs_by_name, f"BackMsg has no oneof {_TYPE!r}")
STREAMLIT.require(_OPERATION in BackMsg.DESCRIPTOR.fields_by_name, f"BackMsg has no field {_OPERATION!r}")
_operation = BackMsg.DESCRIPTOR.fields_by_name[_OPERATION].message_type
STREAMLIT.require(
    _operation is not None and _PAYLOAD in _operation.oneofs_by_name, f"BackMsg.{_OPERATION} has no oneof {_PAYLOAD!r}"
)

# Where the running code is: the script, a fragment or a widget callback.
_context = STREAMLIT.module("streamlit.runtime.scriptrunner_utils.script_run_context")
_thread_state = STREAMLIT.function(STREAMLIT.attribute(_context, "ThreadState", type), "get", ())
_CALLBACK = STREAMLIT.attribute(STREAMLIT.attribute(_context, "RunLocation", type), "CALLBACK")
_state = STREAMLIT.attribute(_context, "FragmentThreadState", type)
STREAMLIT.require(
    "run_location" in getattr(_state, "__dataclass_fields__", {}), "FragmentThreadState.run_location is gone"
)

# The legacy pages/ mode: a class attribute the script runner reads at each run.
_PagesManager = STREAMLIT.attribute(STREAMLIT.module("streamlit.runtime.pages_manager"), "PagesManager", type)
STREAMLIT.attribute(_PagesManager, "uses_pages_directory")
_ScriptRunner = STREAMLIT.attribute(
    STREAMLIT.module("streamlit.runtime.scriptrunner.script_runner"), "ScriptRunner", type
)
STREAMLIT.reads(_ScriptRunner, "_run_script", "uses_pages_directory")


def signed_user_cookie(request: Request) -> bytes | None:
    """The value of Streamlit's signed identity cookie, verified; None without a valid one."""
    return _signed_cookie(request, USER_COOKIE)


def message_kinds() -> frozenset[str]:
    """Every kind ``message_kind`` can name, in this Streamlit."""
    payloads = _operation.oneofs_by_name[_PAYLOAD].fields
    kinds = BackMsg.DESCRIPTOR.oneofs_by_name[_TYPE].fields
    return frozenset(
        {field.name for field in kinds if field.name != _OPERATION}
        | {f"{_OPERATION}/{field.name}" for field in payloads}
    )


def message_kind(data: bytes) -> str | None:
    """The kind of a BackMsg the browser sent ("kind" or "kind/payload"), or None."""
    message = BackMsg()
    try:
        message.ParseFromString(data)
    except DecodeError:
        return None
    kind: str | None = message.WhichOneof(_TYPE)
    if kind == _OPERATION:
        return f"{kind}/{message.backend_operation_request.WhichOneof(_PAYLOAD)}"
    return kind


def in_callback() -> bool:
    """Whether a widget callback is running, rather than a script, fragment or dialog body (the
    question Streamlit's own ``st.rerun`` asks)."""
    return _thread_state().run_location is _CALLBACK


def navigation_only() -> None:
    """Say up front that this app routes every page with ``st.navigation``: Streamlit would
    otherwise serve a deep link straight from pages/ until a first visit to "/" ran app.py."""
    _PagesManager.uses_pages_directory = False

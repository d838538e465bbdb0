"""What the server needs to know of Streamlit itself, handed in by serve.py from lib.ui (the
only part of Switchboard that imports Streamlit): whether OIDC signs people in, what kind of
message a WebSocket frame carries, and who Streamlit's signed identity cookie names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request


@dataclass(frozen=True)
class StreamlitHooks:
    oidc_configured: Callable[[], bool]
    # "rerun_script", "backend_operation_request/deferred_file", ...; None: not a message
    message_kind: Callable[[bytes], str | None]
    # The claims of the identity Streamlit's signed cookie carries (OIDC), or None.
    oidc_claims: Callable[[Request], dict[str, object] | None]

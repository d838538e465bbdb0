"""Whose X-Forwarded-For and X-Forwarded-Proto are believed: SWITCHBOARD_TRUSTED_PROXIES only.

uvicorn, which Streamlit's server runs on, believes them from 127.0.0.1 unless told
otherwise, so any local process or SSH tunnel could choose the client address that sign-in
throttling and the audit trail key on. ``streamlit run serve.py`` builds uvicorn's settings
before it imports serve.py, too early for an environment variable set there; what uvicorn
wraps the app in is looked up when the app is loaded, after the import. So serve.py swaps in
a ProxyHeadersMiddleware that trusts our list, through lib.web.uvicorn_internals (checked when
imported, uvicorn pinned exactly in requirements.txt; tests/test_web.py checks both the default
and a trusted proxy, tests/test_adapters.py that uvicorn builds ours).
"""

from __future__ import annotations

from typing import Any

from lib.kernel import config
from lib.kernel.errors import SwitchboardError
from lib.web.uvicorn_internals import ProxyHeadersMiddleware, wrap_proxy_headers_with


def trusted_proxies() -> list[str]:
    try:
        return list(config.trusted_proxies())
    except SwitchboardError:
        return []  # the server reports the bad setting when it starts; meanwhile trust nobody


# misc: its base is found (and checked) when lib.web.uvicorn_internals is imported, so untyped here.
class TrustedProxyHeaders(ProxyHeadersMiddleware):  # type: ignore[misc]
    """uvicorn's own middleware, with our list instead of the one uvicorn was given."""

    def __init__(self, app: Any, trusted_hosts: list[str] | str = "") -> None:
        super().__init__(app, trusted_hosts=trusted_proxies())


def trust_only_configured_proxies() -> None:
    wrap_proxy_headers_with(TrustedProxyHeaders)

"""What Switchboard takes from inside uvicorn, the server Streamlit's ``st.App`` runs on, checked
when this module is imported (lib.kernel.internals): a uvicorn that moved any of it stops the server at
start, naming what moved.

uvicorn wraps the app it loads in its ``ProxyHeadersMiddleware``, looking the class up by that
name in ``uvicorn.config`` when ``Config.load`` runs, that is after serve.py was imported.
``wrap_proxy_headers_with`` rebinds that name, so that the middleware uvicorn builds is the one
given (lib.web.proxies says why).
"""

from __future__ import annotations

from typing import Any

from lib.kernel.internals import Library

UVICORN = Library("uvicorn", tested="0.55.0")

_config = UVICORN.module("uvicorn.config")
ProxyHeadersMiddleware: Any = UVICORN.function(
    UVICORN.module("uvicorn.middleware.proxy_headers"), "ProxyHeadersMiddleware", ("app", "trusted_hosts")
)
_used = getattr(_config, "ProxyHeadersMiddleware", None)
UVICORN.require(
    isinstance(_used, type) and issubclass(_used, ProxyHeadersMiddleware),
    "uvicorn.config.ProxyHeadersMiddleware is gone",
)
_Config = UVICORN.attribute(_config, "Config", type)
UVICORN.reads(_Config, "load", "ProxyHeadersMiddleware")
UVICORN.require(
    getattr(_Config.load, "__globals__", None) is vars(_config),
    "Config.load no longer looks ProxyHeadersMiddleware up in uvicorn.config",
)


def wrap_proxy_headers_with(middleware: type) -> None:
    """Have uvicorn wrap the app it loads from now on in ``middleware`` (a ProxyHeadersMiddleware)."""
    vars(_config)["ProxyHeadersMiddleware"] = middleware  # the module's global, which Config.load reads

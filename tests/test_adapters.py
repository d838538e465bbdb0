"""The adapters over libraries' internals (lib.kernel.internals): lib/ui/streamlit_internals.py and
lib/web/uvicorn_internals.py. For each, (a) every reach exercised for real on the library as
installed, and (b) the check it makes when imported: whatever moved, the import stops with one
message naming the library, the version tested, the version found and what moved, and so does
the server's start."""

from __future__ import annotations

import hashlib
import importlib
import subprocess
import sys
from collections.abc import Callable
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import uvicorn.config
import uvicorn.middleware.proxy_headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from streamlit.proto import BackMsg_pb2
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.runtime.pages_manager import PagesManager
from streamlit.runtime.scriptrunner.script_runner import ScriptRunner
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState
from streamlit.testing.v1 import AppTest
from streamlit.web.server.starlette import starlette_auth_routes, starlette_server_config

from lib.kernel.internals import FIX, Library, UntestedLibrary
from lib.ui import streamlit_internals
from lib.ui.server import oidc_claims
from lib.ui.streamlit_internals import STREAMLIT, message_kind, message_kinds, navigation_only
from lib.web import uvicorn_internals
from lib.web.proxies import TrustedProxyHeaders, trust_only_configured_proxies
from lib.web.stream import ALLOWED_MESSAGES
from lib.web.uvicorn_internals import UVICORN
from tests.fixtures.server import free_port
from tests.fixtures.simulator import run_in_new_loop

ROOT = Path(__file__).resolve().parent.parent

# --- (a) Streamlit: each reach, for real -----------------------------------------------------


def signed_in_cookies(user: dict[str, Any]) -> dict[str, str]:
    """The cookies Streamlit's OIDC callback sets for ``user``, written by Streamlit itself
    (signed with its cookie secret, split into chunks when long)."""
    response = Response()
    run_in_new_loop(starlette_auth_routes._set_auth_cookie(response, user, {"id_token": "id-token"}))
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.getlist("set-cookie"):
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items() if morsel.value and morsel["max-age"] != "0"}


def request_with(cookies: dict[str, str]) -> Request:
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/media/report.csv",
            "headers": [(b"cookie", header.encode("latin-1"))] if header else [],
        }
    )


USER = {"is_logged_in": True, "email": "ada@example.com", "name": "Ada", "provider": "default"}
# A name that does not compress (Streamlit compresses before signing), to make the cookie chunked.
LONG_USER = USER | {"name": "".join(hashlib.sha256(b"%d" % i).hexdigest() for i in range(160))}


@pytest.mark.parametrize("user", [USER, LONG_USER], ids=["one-cookie", "chunked"])
def test_the_identity_streamlit_signed_is_read_back(user: dict[str, Any]) -> None:
    cookies = signed_in_cookies(user)
    assert streamlit_internals.USER_COOKIE == starlette_server_config.USER_COOKIE_NAME in cookies
    chunks = [name for name in cookies if name.startswith(streamlit_internals.USER_COOKIE)]
    assert (len(chunks) > 2) is (user is LONG_USER)  # the cookie, its chunk count, its chunks
    assert oidc_claims(request_with(cookies)) == user


def test_a_forged_or_missing_identity_cookie_names_nobody() -> None:
    cookies = signed_in_cookies(USER)
    value = cookies[streamlit_internals.USER_COOKIE]
    payload, _, signature = value.rpartition(".")
    forged = f"{payload}.{signature[::-1]}"
    assert oidc_claims(request_with(cookies | {streamlit_internals.USER_COOKIE: forged})) is None
    assert oidc_claims(request_with({})) is None
    assert streamlit_internals.signed_user_cookie(request_with({"other": "1"})) is None


def test_every_message_the_console_lets_through_is_one_streamlit_sends() -> None:
    assert ALLOWED_MESSAGES <= message_kinds()
    rerun = BackMsg_pb2.BackMsg()
    rerun.rerun_script.SetInParent()
    download = BackMsg_pb2.BackMsg()
    download.backend_operation_request.deferred_file.SetInParent()
    assert message_kind(rerun.SerializeToString()) == "rerun_script"
    assert message_kind(download.SerializeToString()) == "backend_operation_request/deferred_file"
    assert message_kind(b"\xff\xff\xff") is None


def _where_code_runs() -> None:
    import streamlit as st

    from lib.ui.streamlit_internals import in_callback

    def clicked() -> None:
        st.session_state["callback"] = in_callback()

    @st.fragment
    def fragment() -> None:
        st.session_state["fragment"] = in_callback()

    st.session_state["script"] = in_callback()
    fragment()
    st.button("Go", on_click=clicked)


def test_only_a_widget_callback_is_told_it_runs_in_one() -> None:
    at = AppTest.from_function(_where_code_runs, default_timeout=30).run()
    at.button[0].click().run()
    assert not at.exception
    assert (at.session_state["script"], at.session_state["fragment"], at.session_state["callback"]) == (
        False,
        False,
        True,
    )


def test_navigation_only_turns_the_legacy_pages_mode_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """This checkout has pages/ beside app.py: left alone (None), Streamlit turns the legacy mode
    on for it; set, the setting stands, and the script runner reads it at each run."""
    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)  # as a new process has it; undone after
    PagesManager(str(ROOT / "app.py"))
    assert PagesManager.uses_pages_directory is True
    navigation_only()
    PagesManager(str(ROOT / "app.py"))
    assert PagesManager.uses_pages_directory is False
    STREAMLIT.reads(ScriptRunner, "_run_script", "uses_pages_directory")


# --- (a) uvicorn ---------------------------------------------------------------------------


def test_uvicorn_wraps_the_app_it_loads_in_our_proxy_headers_middleware(monkeypatch: pytest.MonkeyPatch) -> None:
    """uvicorn is told to believe everyone (as with FORWARDED_ALLOW_IPS=*); what it builds
    believes SWITCHBOARD_TRUSTED_PROXIES only."""
    monkeypatch.setattr(uvicorn.config, "ProxyHeadersMiddleware", uvicorn.config.ProxyHeadersMiddleware)  # undone after
    monkeypatch.setenv("SWITCHBOARD_TRUSTED_PROXIES", "10.0.0.5")
    trust_only_configured_proxies()
    clients: list[tuple[str, int]] = []

    async def app(scope: Scope, _receive: Receive, _send: Send) -> None:
        clients.append(scope["client"])

    config = uvicorn.Config(app, forwarded_allow_ips="*", log_config=None)
    config.load()
    assert isinstance(config.loaded_app, TrustedProxyHeaders)
    for peer in ("127.0.0.1", "10.0.0.5"):
        scope = {
            "type": "http",
            "scheme": "http",
            "client": (peer, 50000),
            "headers": [(b"x-forwarded-for", b"198.51.100.7")],
        }
        run_in_new_loop(config.loaded_app(scope, None, None))
    assert clients == [("127.0.0.1", 50000), ("198.51.100.7", 0)]


# --- (b) the check at import ---------------------------------------------------------------


def fresh_import(module: str) -> None:
    """Import ``module`` anew (its check runs again); the module in use is left in place."""
    package, _, name = module.rpartition(".")
    kept = sys.modules.pop(module)
    try:
        importlib.import_module(module)
    finally:
        sys.modules[module] = kept
        setattr(sys.modules[package], name, kept)


Breakage = Callable[[pytest.MonkeyPatch], None]


def _other_parameters(patch: pytest.MonkeyPatch) -> None:
    patch.setattr(starlette_auth_routes, "_get_cookie_value_from_request", lambda request: None)


class _Middleware:
    def __init__(self, app: object, trusted: str = "") -> None:
        self.app = app


BREAKAGES: dict[str, tuple[Library, str, Breakage, str]] = {
    "cookie-reader-gone": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        lambda patch: patch.delattr(starlette_auth_routes, "_get_cookie_value_from_request"),
        "streamlit.web.server.starlette.starlette_auth_routes._get_cookie_value_from_request is gone",
    ),
    "cookie-reader-changed": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        _other_parameters,
        "_get_cookie_value_from_request takes (request), not (request, cookie_name)",
    ),
    "cookie-name-gone": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        lambda patch: patch.delattr(starlette_server_config, "USER_COOKIE_NAME"),
        "starlette_server_config.USER_COOKIE_NAME is gone",
    ),
    "message-changed": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        lambda patch: patch.setattr(BackMsg_pb2, "BackMsg", ForwardMsg),
        "BackMsg has no field 'backend_operation_request'",
    ),
    "run-location-gone": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        lambda patch: patch.delattr(ThreadState, "get"),
        "script_run_context.ThreadState.get is gone",
    ),
    "pages-flag-gone": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        lambda patch: patch.delattr(PagesManager, "uses_pages_directory"),
        "streamlit.runtime.pages_manager.PagesManager.uses_pages_directory is gone",
    ),
    "pages-flag-unread": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        lambda patch: patch.setattr(ScriptRunner, "_run_script", lambda self, request: None),
        "script_runner.ScriptRunner._run_script no longer reads uses_pages_directory",
    ),
    "module-gone": (
        STREAMLIT,
        "lib.ui.streamlit_internals",
        lambda patch: patch.setitem(sys.modules, "streamlit.runtime.pages_manager", None),
        "module streamlit.runtime.pages_manager is gone",
    ),
    "proxy-headers-gone": (
        UVICORN,
        "lib.web.uvicorn_internals",
        lambda patch: patch.delattr(uvicorn.config, "ProxyHeadersMiddleware"),
        "uvicorn.config.ProxyHeadersMiddleware is gone",
    ),
    "proxy-headers-unread": (
        UVICORN,
        "lib.web.uvicorn_internals",
        lambda patch: patch.setattr(uvicorn.config.Config, "load", lambda self: None),
        "uvicorn.config.Config.load no longer reads ProxyHeadersMiddleware",
    ),
    "proxy-headers-changed": (
        UVICORN,
        "lib.web.uvicorn_internals",
        lambda patch: patch.setattr(uvicorn.middleware.proxy_headers, "ProxyHeadersMiddleware", _Middleware),
        "ProxyHeadersMiddleware takes (app, trusted), not (app, trusted_hosts)",
    ),
}


@pytest.mark.parametrize("module", ["lib.ui.streamlit_internals", "lib.web.uvicorn_internals"])
def test_an_adapter_imports_when_nothing_moved(module: str) -> None:
    fresh_import(module)


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_the_check_at_import_names_the_library_the_versions_and_what_moved(
    breakage: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    library, module, apply, moved = BREAKAGES[breakage]
    apply(monkeypatch)
    with pytest.raises(UntestedLibrary) as caught:
        fresh_import(module)
    message = str(caught.value)
    assert message.startswith(
        f"Switchboard was tested with {library.name}=={library.tested}; this install "
        f"has {library.name} {library.installed()}: "
    ), message
    assert moved in message and message.endswith(FIX), message


@pytest.mark.parametrize(
    ("library", "breakage"),
    [
        (STREAMLIT, "from streamlit.runtime.pages_manager import PagesManager\ndel PagesManager.uses_pages_directory"),
        (UVICORN, "import uvicorn.config\ndel uvicorn.config.ProxyHeadersMiddleware"),
    ],
    ids=["streamlit", "uvicorn"],
)
def test_the_server_stops_at_start_when_a_library_moved(library: Library, breakage: str, tmp_path: Path) -> None:
    """``streamlit run serve.py`` in a process where the library lacks what the adapter checks:
    the server exits at once with the adapter's message (it would otherwise keep running)."""
    start = (
        f"{breakage}\nimport sys\nfrom streamlit.web.cli import main\n"
        f"sys.argv = ['streamlit', 'run', 'serve.py', '--server.headless', 'true', '--server.address',"
        f" '127.0.0.1', '--server.port', '{free_port()}', '--server.fileWatcherType', 'none']\nmain()\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT),
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'sb.db'}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keyring.json"),
    }
    done = subprocess.run(
        [sys.executable, "-c", start], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert f"UntestedLibrary: Switchboard was tested with {library.name}=={library.tested}" in done.stderr, done.stderr


def test_adapters_name_the_versions_they_were_tested_with() -> None:
    assert streamlit_internals.STREAMLIT is STREAMLIT and uvicorn_internals.UVICORN is UVICORN
    for library in (STREAMLIT, UVICORN):
        assert library.installed() == library.tested  # the suite runs on the tested versions

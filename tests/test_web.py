"""The server's own routes over real HTTP (``streamlit run serve.py`` on 127.0.0.1): the sign-in
gate, the first-admin setup code, the session cookie, throttling across fresh clients, no user
enumeration, login-CSRF refusal and the security headers."""

from __future__ import annotations

import html
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as hs
from sqlmodel import col, select
from starlette.requests import cookie_parser
from streamlit.proto.BackMsg_pb2 import BackMsg
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from lib.kernel.config import load_settings
from lib.services.accounts import users
from lib.services.accounts.sessions import COOKIE_NAME
from lib.services.content.navigation import protected_paths
from lib.simulator import SimulatorServer
from lib.store import db
from lib.store.db import read_session
from lib.store.keyring import new_keyring_notice
from lib.store.models import SignInAttempt
from lib.ui.server import message_kind
from lib.web import cookie, gate
from lib.web.account import NEXT_MAX, safe_next
from lib.web.cookie import HOST_COOKIE, PROBE
from lib.web.headers import SECURITY_HEADERS
from lib.web.health import health_routes
from lib.web.hooks import StreamlitHooks
from lib.web.open_server import guarded_routes
from lib.web.state import ServerState
from lib.web.stream import STREAM_PATH, wanted
from tests.fixtures.server import PASSWORD, ROOT, Server, start_server
from tests.fixtures.waiting import eventually

pytestmark = pytest.mark.slow


@pytest.fixture
def server(simulator: SimulatorServer) -> Iterator[Server]:
    started = start_server({}, simulator.url)
    yield started
    started.stop()


def sign_in(client: httpx.Client, username: str, password: str, next_path: str = "/") -> httpx.Response:
    return client.post("/account/sign-in", data={"username": username, "password": password, "next": next_path})


def setup(
    client: httpx.Client, code: str, username: str = "root", password: str = PASSWORD, again: str | None = None
) -> httpx.Response:
    return client.post(
        "/account/setup",
        data={
            "setup_code": code,
            "username": username,
            "password": password,
            "password_again": password if again is None else again,
        },
    )


def notice(response: httpx.Response) -> str:
    """The message an account page shows above its form."""
    found = re.search(r'data-testid="account-notice">([^<]*)</div>', response.text)
    return html.unescape(found.group(1)) if found else ""


def test_a_fresh_server_has_no_account_and_sends_everyone_to_setup(server: Server) -> None:
    with server.client() as client:
        for path in sorted(protected_paths()):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/account/setup", path
        assert client.get("/account/sign-in").headers["location"] == "/account/setup"
        assert client.get("/guide").status_code == 200  # the guide is public
        page = client.get("/account/setup").text
        assert "Setup code" in page and server.setup_code() not in page


def test_a_first_start_says_where_the_new_keyring_is_and_to_back_it_up(server: Server) -> None:
    keyring_file = Path(server.env["SWITCHBOARD_KEYRING_FILE"])
    assert keyring_file.exists()
    assert server.log.read_text().count(new_keyring_notice(keyring_file)) == 1, server.log.read_text()


def test_the_setup_code_creates_the_first_admin_once(server: Server) -> None:
    code = server.setup_code()
    with server.client() as client:
        wrong = setup(client, "AAAA-BBBB-CCCC-DDDD")  # a typo needs another look, not a restart
        assert wrong.status_code == 400 and notice(wrong).startswith("Setup code: This is not the setup code.")
        assert "restart" not in notice(wrong).lower()
        weak = setup(client, code, password="password1234")
        assert weak.status_code == 400 and notice(weak).startswith("Password: This password is on a list")
        differ = setup(client, code, again=PASSWORD + "x")
        assert (
            differ.status_code == 400
            and notice(differ) == "The two passwords differ: type the same password in both fields."
        )
        made = setup(client, code.lower())  # codes are read without regard to case
        assert made.status_code == 303 and made.headers["location"] == "/", made.text[-600:]
        assert COOKIE_NAME in client.cookies
        assert client.get("/connections").status_code == 200  # signed in at once
    with server.client() as other:
        again = setup(other, code, username="mallory")
        assert again.status_code == 400 and "set up already" in notice(again)  # spent, and setup is over
        assert other.get("/account/setup").headers["location"] == "/account/sign-in"
    users = server.cli("users", "list", "--json")
    assert '"root"' in users.stdout and "mallory" not in users.stdout


def test_sign_in_sets_a_lax_http_only_cookie_and_returns_to_the_page(server: Server) -> None:
    server.add_user("ann", "operator")
    with server.client() as client:
        assert client.get("/connect").headers["location"] == "/account/sign-in?next=/connect"
        response = sign_in(client, "ann", PASSWORD, "/connect")
        assert response.status_code == 303 and response.headers["location"] == "/connect"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Path=/" in cookie and "Max-Age=43200" in cookie
        assert PASSWORD not in cookie
        assert client.get("/connections").status_code == 200
        # Signed in already: the sign-in page passes straight on, and keeps the cookie.
        onward = client.get("/account/sign-in?next=/connections")
        assert onward.status_code == 303 and onward.headers["location"] == "/connections"
        assert "set-cookie" not in onward.headers
        # Another site's page cannot choose where we go next.
        assert sign_in(client, "ann", PASSWORD, "https://evil.example/").headers["location"] == "/"


def test_a_post_from_another_site_is_refused(server: Server) -> None:
    server.add_user("ann", "operator")
    with httpx.Client(base_url=server.url, headers={"Origin": "https://evil.example"}) as client:
        response = sign_in(client, "ann", PASSWORD)
        assert response.status_code == 403 and COOKIE_NAME not in client.cookies
    with httpx.Client(base_url=server.url) as client:  # no Origin at all
        assert sign_in(client, "ann", PASSWORD).status_code == 403


def test_throttling_holds_across_fresh_clients_and_never_names_the_account(server: Server) -> None:
    server.add_user("ann", "operator")
    answers = set()
    for _attempt in range(5):
        with server.client() as client:  # a new tab, a new browser: no shared state but the server's
            response = sign_in(client, "ann", "wrong password, again")
            assert response.status_code == 401
            answers.add(response.text)
    assert len(answers) == 1 and "The user name or password is not right." in answers.pop()
    with server.client() as client:
        refused = sign_in(client, "ann", PASSWORD)  # even the right password waits now
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        assert "Too many failed sign-in attempts" in refused.text and COOKIE_NAME not in client.cookies


def test_unknown_user_and_wrong_password_look_the_same(server: Server) -> None:
    server.add_user("ann", "viewer")
    timings: dict[str, list[float]] = {"ann": [], "nobody": []}
    bodies: dict[str, set[str]] = {"ann": set(), "nobody": set()}
    for round_ in range(2):
        for name, taken in timings.items():
            with server.client() as client:
                start = time.perf_counter()
                response = sign_in(client, name, f"not the password {round_}")
                taken.append(time.perf_counter() - start)
                assert response.status_code == 401
                bodies[name].add(response.text.replace(f'value="{name}"', 'value="?"'))
    assert bodies["ann"] == bodies["nobody"]
    # The quicker of each pair: a busy machine only ever adds time. Skipping argon2 for an
    # unknown name would make it ~10x quicker, far outside this margin.
    known, unknown = min(timings["ann"]), min(timings["nobody"])
    assert abs(known - unknown) < max(known, unknown) * 0.5  # both pay one argon2 verification


def test_every_response_carries_the_security_headers(server: Server) -> None:
    server.add_user("ann", "viewer")
    with server.client() as client:
        for path in ("/guide", "/account/sign-in", "/connections", "/_stcore/health"):
            response = client.get(path)
            for name, value in SECURITY_HEADERS.items():
                assert response.headers.get(name) == value, (path, name)
        policy = SECURITY_HEADERS["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


# --- Streamlit's own endpoints and WebSocket ------------------------------------------------


def stream(server: Server, origin: str | None, cookies: dict[str, str] | None = None) -> ClientConnection:
    """Open Streamlit's WebSocket the way a page of ``origin`` would (cookies included)."""
    headers = {"Origin": origin} if origin else {}
    if cookies:
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
    return connect(
        server.url.replace("http://", "ws://") + STREAM_PATH,
        additional_headers=headers,
        subprotocols=[Subprotocol("streamlit")],
        open_timeout=10,
    )


def test_the_websocket_opens_only_for_the_consoles_own_origin(server: Server) -> None:
    """A page on another port of the same host gets our cookies from the browser; with them it
    could open the socket and read any page as the signed-in admin."""
    server.add_user("ann", "admin")
    with server.client() as client:
        sign_in(client, "ann", PASSWORD)
        cookies = {COOKIE_NAME: client.cookies[COOKIE_NAME]}
    host, port = server.url.removeprefix("http://").split(":")
    for origin in (
        f"http://{host}:{int(port) + 1}",
        f"http://localhost:{port}",
        f"https://{host}:{port}",
        "null",
        None,
    ):
        with pytest.raises(InvalidStatus) as refused, stream(server, origin, cookies):
            pass
        assert refused.value.response.status_code == 403, origin
    with stream(server, server.url, cookies):  # the console's own pages still connect
        pass


def _frame(kind: str, operation: str | None = None) -> dict[str, object]:
    message = BackMsg()
    if kind == "backend_operation_request":
        getattr(message.backend_operation_request, operation or "deferred_file").SetInParent()
    elif kind == "rerun_script":
        message.rerun_script.query_string = ""
    else:
        setattr(message, kind, True)
    return {"type": "websocket.receive", "bytes": message.SerializeToString()}


@pytest.mark.parametrize(
    ("kind", "operation", "passes"),
    [
        ("rerun_script", None, True),
        ("stop_script", None, True),
        ("app_heartbeat", None, True),
        ("backend_operation_request", "deferred_file", True),
        ("backend_operation_request", "dataframe_chunk", True),
        ("backend_operation_request", "install_skills", False),
        ("clear_cache", None, False),
        ("set_run_on_save", None, False),
        ("debug_shutdown_runtime", None, False),
        ("debug_disconnect_websocket", None, False),
        ("load_git_info", None, False),
    ],
)
def test_only_messages_the_console_uses_reach_streamlit(kind: str, operation: str | None, passes: bool) -> None:
    """The browser-level proof (a run survives an anonymous clear_cache) is in
    tests/browser/test_console.py."""
    assert wanted(_frame(kind, operation), message_kind) is passes
    assert wanted({"type": "websocket.disconnect", "code": 1000}, message_kind)
    assert wanted({"type": "websocket.receive", "text": "not a BackMsg"}, message_kind)


def test_uploads_and_metrics_are_closed_and_media_needs_a_session(server: Server) -> None:
    server.add_user("ann", "viewer")
    with server.client() as client:
        assert client.put("/_stcore/upload_file/s/f", files={"file": ("x.csv", b"x")}).status_code == 404
        assert client.get("/_stcore/metrics").status_code == 404
        assert client.get("/media/0123456789abcdef.csv").status_code == 403
        sign_in(client, "ann", PASSWORD)
        assert client.get("/media/0123456789abcdef.csv").status_code == 404  # Streamlit's own answer
        assert client.get("/_stcore/metrics").status_code == 404


# --- Sign-in under attack -------------------------------------------------------------------


def _together(count: int, attempt: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(attempt, range(count)))


def _refused_rows(server: Server, detail: str) -> list[dict[str, object]]:
    rows = json.loads(server.cli("audit", "--json").stdout)
    return [row for row in rows if row["result"] == "refused" and str(row["detail"]).startswith(detail)]


def _failures_claimed_at(server: Server) -> list[datetime]:
    """When each failed sign-in was counted (claimed before its password was checked), in order."""
    engine = db.make_engine(server.env["SWITCHBOARD_DATABASE_URL"])
    try:
        with read_session(engine) as session:
            return list(
                session.exec(
                    select(SignInAttempt.at)
                    .where(col(SignInAttempt.success).is_(False))
                    .order_by(col(SignInAttempt.at))
                ).all()
            )
    finally:
        engine.dispose()


def test_concurrent_wrong_passwords_are_counted_before_they_are_checked(server: Server) -> None:
    """30 wrong passwords for one account at once: at most 5 are checked, the rest answered
    429, and throttling writes one audit row for the window, not one per attempt."""
    server.add_user("ann", "operator")

    def attempt(n: int) -> httpx.Response:
        with server.client() as client:
            return sign_in(client, "ann", f"wrong password number {n}")

    statuses = [r.status_code for r in _together(30, attempt)]
    assert set(statuses) <= {401, 429} and statuses.count(401) <= users.FAILURES_ALLOWED, statuses
    # One at a time from now on: past five failures, each further try waits out a doubling
    # back-off (1 s, 2 s, ...) from the failure before it; a slow machine may reach one more.
    later = [attempt(100 + n) for n in range(8)]
    checked = statuses.count(401) + [r.status_code for r in later].count(401)
    assert checked >= users.FAILURES_ALLOWED
    assert later[-1].status_code == 429 and "Too many failed sign-in attempts" in later[-1].text
    claimed = _failures_claimed_at(server)
    assert len(claimed) == checked
    for n in range(users.FAILURES_ALLOWED, len(claimed)):
        assert claimed[n] - claimed[n - 1] >= timedelta(seconds=2 ** (n - users.FAILURES_ALLOWED))
    assert len(_refused_rows(server, "wrong user name")) == checked
    assert len(_refused_rows(server, "throttled")) == 1


def test_argon2_verifications_are_capped(server: Server) -> None:
    """40 anonymous sign-ins at once (random names, so no throttle applies): beyond a few
    running verifications the answer is 429 at once, and the server's memory stays put."""
    peak_before = _peak_rss_mb(server)

    def attempt(n: int) -> httpx.Response:
        with server.client() as client:
            return sign_in(client, f"nobody-{n}", "some password or other")

    statuses = [r.status_code for r in _together(40, attempt)]
    assert set(statuses) <= {401, 429} and statuses.count(429) > 0, statuses
    assert _peak_rss_mb(server) - peak_before < 400  # each verification holds 64 MiB for a moment


def _peak_rss_mb(server: Server) -> float:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def test_requests_wait_while_the_server_opens_its_data_then_meet_the_gate(
    simulator: SimulatorServer, tmp_path: Path
) -> None:
    """The server listens before its data is open (here held back by another process locking
    the database): the health probes answer at once, /readyz with not ready, while a page
    request waits, and once the data opens it meets the sign-in gate like any other."""
    database = tmp_path / "data" / "sb.db"
    env = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{database}",
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "keyring.json"),
    }
    made = subprocess.run(
        [sys.executable, "-m", "lib", "db", "upgrade"],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    lock = sqlite3.connect(database)
    lock.execute("PRAGMA locking_mode=EXCLUSIVE")
    lock.execute("BEGIN EXCLUSIVE")  # every other connection now waits on its busy timeout
    server = start_server(env, simulator.url, wait_for_data=False)
    try:
        with server.client() as client, ThreadPoolExecutor(1) as pool:
            assert client.get("/healthz").text == "ok" and client.get("/_stcore/health").text == "ok"
            assert client.get("/readyz").status_code == 503
            sent = threading.Event()

            def trace(event: str, _info: object) -> None:
                if event == "http11.receive_response_headers.started":  # all sent, the answer awaited
                    sent.set()

            page = pool.submit(client.get, "/connections", extensions={"trace": trace})
            eventually(sent.is_set, what="the page request to be sent")
            assert client.get("/readyz").status_code == 503  # a request sent after it is answered...
            assert not page.done()  # ...while the page request waits
            lock.rollback()
            lock.close()
            answer = page.result(timeout=30)
            assert (answer.status_code, answer.headers["location"]) == (303, "/account/setup")
            assert client.get("/readyz").text == "ready"
    finally:
        lock.close()
        server.stop()


def test_forwarded_addresses_are_believed_only_from_trusted_proxies(simulator: SimulatorServer) -> None:
    """By default no X-Forwarded-For is believed, so a local process cannot dodge throttling by
    claiming a new address for each guess; behind a trusted proxy the real client is recorded."""
    untrusting = start_server({}, simulator.url)
    try:
        untrusting.add_user("ann", "viewer")
        statuses = []
        for n in range(users.FAILURES_ALLOWED + 1):  # believed, each would be a new address with its own count
            with untrusting.client() as client:
                client.headers["X-Forwarded-For"] = f"203.0.113.{n}"
                statuses.append(sign_in(client, "ann", f"wrong guess {n}").status_code)
        assert statuses == [401] * users.FAILURES_ALLOWED + [429]
        addresses = {
            row["client_address"]
            for row in json.loads(untrusting.cli("audit", "--json").stdout)
            if row["action"] == "sign_in"
        }
        assert addresses == {"127.0.0.1"}
    finally:
        untrusting.stop()
    behind_proxy = start_server({"SWITCHBOARD_TRUSTED_PROXIES": "127.0.0.1"}, simulator.url)
    try:
        behind_proxy.add_user("ann", "viewer")
        with behind_proxy.client() as client:
            client.headers["X-Forwarded-For"] = "198.51.100.7"
            assert sign_in(client, "ann", PASSWORD).status_code == 303
        https = behind_proxy.url.replace("http://", "https://")  # the proxy terminates TLS
        with httpx.Client(
            base_url=behind_proxy.url,
            headers={"X-Forwarded-Proto": "https", "Origin": https, "X-Forwarded-For": "198.51.100.7"},
        ) as client:
            assert sign_in(client, "ann", PASSWORD).headers["set-cookie"].startswith(f"{HOST_COOKIE}=")
        rows = json.loads(behind_proxy.cli("audit", "--json").stdout)
        assert [r["client_address"] for r in rows if r["action"] == "sign_in"] == ["198.51.100.7"] * 2
    finally:
        behind_proxy.stop()


def test_a_public_https_url_makes_cookies_secure_and_names_the_origin(simulator: SimulatorServer) -> None:
    public = start_server({"SWITCHBOARD_PUBLIC_URL": "https://switchboard.example.com"}, simulator.url)
    try:
        public.add_user("ann", "viewer")
        with httpx.Client(base_url=public.url, headers={"Origin": "https://switchboard.example.com"}) as client:
            response = sign_in(client, "ann", PASSWORD)
            set_cookie = response.headers["set-cookie"]
            assert response.status_code == 303 and set_cookie.startswith(f"{HOST_COOKIE}=")
            assert "Secure" in set_cookie and "Path=/" in set_cookie
            token = set_cookie.split(";")[0].partition("=")[2]
        with httpx.Client(base_url=public.url) as browser:  # only the name it set is read
            assert browser.get("/connections", headers=_cookie_header(**{HOST_COOKIE: token})).status_code == 200
            assert browser.get("/connections", headers=_cookie_header(**{COOKIE_NAME: token})).status_code == 303
        with public.client() as client:  # our own http origin is not the public one
            assert sign_in(client, "ann", PASSWORD).status_code == 403
    finally:
        public.stop()


# --- Changing one's own password --------------------------------------------------------------

OWN = "a password of my very own 7"


def change_password(
    client: httpx.Client, current: str, new: str, again: str | None = None, next_path: str = "/"
) -> httpx.Response:
    return client.post(
        "/account/password",
        data={
            "current_password": current,
            "new_password": new,
            "new_password_again": new if again is None else again,
            "next": next_path,
        },
    )


def test_someone_an_admin_added_chooses_their_own_password_before_anything_else(server: Server) -> None:
    server.add_user("newbie", "operator", set_by_admin=True)  # `switchboard users add`, as an admin does
    with server.client() as elsewhere, server.client() as client:
        assert sign_in(elsewhere, "newbie", PASSWORD).status_code == 303  # another browser, before the change
        signed_in = sign_in(client, "newbie", PASSWORD, "/connect")
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/account/password?next=/connect"
        for path in sorted(protected_paths()):  # every console page leads there until it is done
            response = client.get(path)
            assert response.status_code == 303, path
            assert response.headers["location"] == f"/account/password?next={path}", path
        media = client.get("/media/0123456789abcdef.csv")
        assert media.status_code == 403 and media.text == "Change your password first."
        page = client.get("/account/password?next=/connect")
        assert page.status_code == 200 and "An admin chose your password" in page.text
        assert 'name="next" value="/connect"' in page.text and "password-back" not in page.text

        wrong = change_password(client, "not my password at all", OWN, next_path="/connect")
        assert wrong.status_code == 400 and notice(wrong).startswith("Current password: This is not your current")
        differ = change_password(client, PASSWORD, OWN, OWN + "x")
        assert differ.status_code == 400 and notice(differ).startswith("The two new passwords differ")
        weak = change_password(client, PASSWORD, "password1234")
        assert weak.status_code == 400 and notice(weak).startswith("New password: This password is on a list")
        same = change_password(client, PASSWORD, PASSWORD)
        assert same.status_code == 400 and notice(same).startswith("New password: Choose a password other than")
        assert client.get("/connections").status_code == 303  # still nothing else opens

        done = change_password(client, PASSWORD, OWN, next_path="/connect")
        assert done.status_code == 303 and done.headers["location"] == "/account/password?next=/connect&changed=1"
        assert done.headers["set-cookie"].startswith(f"{COOKIE_NAME}=")  # this browser goes on, renewed
        changed = client.get(done.headers["location"])
        assert "Password changed" in changed.text and 'href="/connect"' in changed.text
        assert client.get("/connections").status_code == 200
        assert client.get("/connect").status_code == 200
        # The other browser's session ended with the change.
        assert elsewhere.get("/connections").headers["location"] == "/account/sign-in?next=/connections"
    with server.client() as later:
        assert sign_in(later, "newbie", PASSWORD).status_code == 401
        assert sign_in(later, "newbie", OWN).headers["location"] == "/"  # no change asked any more
    rows = json.loads(server.cli("audit", "--json").stdout)[::-1]  # oldest first
    assert [(r["actor"], r["result"], r["detail"]) for r in rows if r["action"] == "user.password_change"] == [
        ("newbie", "refused", "wrong current password"),
        ("newbie", "ok", "every session ended; this browser's renewed"),
    ]
    said = server.log.read_text() + json.dumps(rows)
    assert PASSWORD not in said and OWN not in said and "password1234" not in said


def test_changing_ones_password_needs_our_page_the_session_and_the_current_password(server: Server) -> None:
    server.add_user("ann", "viewer")  # her own password: no change asked
    with server.client() as client:
        assert sign_in(client, "ann", PASSWORD).headers["location"] == "/"
        page = client.get("/account/password")
        assert page.status_code == 200 and "An admin chose" not in page.text and "password-back" in page.text
        with httpx.Client(
            base_url=server.url, cookies=client.cookies, headers={"Origin": "https://evil.example"}
        ) as other_site:
            assert change_password(other_site, PASSWORD, OWN).status_code == 403
        for _guess in range(users.FAILURES_ALLOWED):
            assert change_password(client, "not the password at all", OWN).status_code == 400
        throttled = change_password(client, PASSWORD, OWN)  # even the right one waits now
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) >= 1
        assert "Too many failed" in notice(throttled)
    with server.client() as stranger:
        assert (
            sign_in(stranger, "ann", OWN).status_code == 429
        )  # nothing changed, and the account waits  # no session: the way to it is the sign-in page
        assert stranger.get("/account/password").headers["location"] == "/account/sign-in?next=/account/password"
        assert change_password(stranger, PASSWORD, OWN).headers["location"] == "/account/sign-in?next=/account/password"


def test_the_change_password_page_has_a_way_out(server: Server) -> None:
    """Someone who must change a password an admin chose can still sign out (the console's
    Sign out page waits behind the change); only Switchboard's own pages may send that form."""
    server.add_user("leaver", "viewer", set_by_admin=True)
    with server.client() as client:
        assert sign_in(client, "leaver", PASSWORD).status_code == 303
        page = client.get("/account/password")
        assert 'action="/account/sign-out"' in page.text and "Sign out instead" in page.text
        with httpx.Client(
            base_url=server.url, headers={"Origin": "https://evil.example"}, cookies=client.cookies
        ) as evil:
            assert evil.post("/account/sign-out").status_code == 403
        assert client.get("/account/password").status_code == 200  # still signed in
        out = client.post("/account/sign-out")
        assert out.status_code == 303 and out.headers["location"] == "/account/sign-in?signed_out=1"
        assert client.get("/connections").headers["location"] == "/account/sign-in?next=/connections"
    rows = json.loads(server.cli("audit", "--json").stdout)
    assert [(r["actor"], r["action"]) for r in rows if r["action"] == "sign_out"] == [("leaver", "sign_out")]


# --- Issue 21, item 11: a password change renews the session ----------------------------------


def test_a_password_change_ends_the_old_cookie_and_this_browser_goes_on_with_a_new_one(server: Server) -> None:
    server.add_user("ann", "operator")
    with server.client() as client:
        assert sign_in(client, "ann", PASSWORD).status_code == 303
        old = client.cookies[COOKIE_NAME]
        with server.client() as thief:  # a copy of the cookie, taken before the change
            thief.cookies.set(COOKIE_NAME, old)
            assert thief.get("/connections").status_code == 200
            done = change_password(client, PASSWORD, OWN)
            assert done.status_code == 303
            new = client.cookies[COOKIE_NAME]
            assert new != old and new in done.headers["set-cookie"] and "HttpOnly" in done.headers["set-cookie"]
            assert thief.get("/connections").headers["location"] == "/account/sign-in?next=/connections"
        assert client.get("/connections").status_code == 200
        assert "Password changed" in client.get(done.headers["location"]).text


# --- Issue 21, item 10: wrong methods and bad forms on our own routes ---------------------------

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND")


def our_routes() -> dict[str, set[str]]:
    """Every route the server adds to Streamlit's, from the functions that make them: each path
    with the methods its routes take."""
    state = ServerState(StreamlitHooks(lambda: False, lambda _frame: None, lambda _request: None))
    table: dict[str, set[str]] = {}
    for route in [*health_routes(state), *guarded_routes(state)]:
        table.setdefault(re.sub(r"\{[^}]*\}", "Acme", route.path), set()).update(route.methods or ())
    return table


def log_lines(server: Server) -> list[str]:
    return server.log.read_text().splitlines()


def test_every_route_of_ours_answers_a_wrong_method_405_with_allow_and_logs_nothing(server: Server) -> None:
    table = our_routes()
    assert {"/healthz", "/readyz", "/metrics", "/api/v1/status", "/account/sign-in", "/account/password"} <= set(table)
    before = log_lines(server)
    asked = 0
    with server.client() as client:
        for path, allowed in table.items():
            for method in sorted(set(METHODS) - allowed):
                response = client.request(method, path)
                asked += 1
                assert response.status_code == 405, (method, path, response.text[:200])
                assert set(response.headers["allow"].split(", ")) == allowed, (method, path)
        for _ in range(200):  # the review's 200 DELETE /metrics added 418 KB of log
            assert client.delete("/metrics").status_code == 405
    assert asked > 40
    after = log_lines(server)
    assert after[: len(before)] == before and len(after) == len(before), after[len(before) :]


def _chunked(size: int) -> Iterator[bytes]:
    for _ in range(size // 65536):
        yield b"a" * 65536


URLENCODED = {"Content-Type": "application/x-www-form-urlencoded"}
# What each bad form is sent with (made afresh for each request: a generator is read once) and
# the answer it gets.
BAD_FORMS: dict[str, tuple[Callable[[], dict[str, Any]], int]] = {
    "10 MB body": (lambda: {"content": b"username=" + b"a" * 10_000_000, "headers": URLENCODED}, 413),
    "10 MB, no Content-Length": (lambda: {"content": _chunked(10_000_000), "headers": URLENCODED}, 413),
    "10,000 fields": (lambda: {"data": {f"f{n}": "1" for n in range(10_000)}}, 413),
    "11 small fields": (lambda: {"data": {f"f{n}": "1" for n in range(11)}}, 400),
    "10,000 multipart fields": (lambda: {"files": {f"f{n}": (None, "1") for n in range(10_000)}}, 400),
    "a JSON body": (lambda: {"json": {"username": "ann"}}, 400),
    "no content type": (lambda: {"content": b"username=ann"}, 400),
    "bad UTF-8 escapes": (lambda: {"content": b"username=%ff%fe&password=x", "headers": URLENCODED}, 400),
    "raw bytes": (lambda: {"content": b"username=\xc3\xa9&password=\xff", "headers": URLENCODED}, 400),
    "a field twice": (lambda: {"content": b"username=ann&username=root", "headers": URLENCODED}, 400),
}


@pytest.mark.parametrize("path", ["/account/sign-in", "/account/setup", "/account/password"])
def test_an_oversized_over_full_or_malformed_form_is_refused_with_one_log_line(server: Server, path: str) -> None:
    for case, (request, status) in BAD_FORMS.items():
        before = log_lines(server)
        with server.client() as client:
            response = client.post(path, **request())
        assert response.status_code == status, (case, response.text[:200])
        added = log_lines(server)[len(before) :]
        assert len(added) == 1 and f"Refused POST {path} with {status}" in added[0], (case, added)
    assert "Traceback" not in server.log.read_text()
    with server.client() as client:  # and the server goes on as before
        assert client.get("/healthz").text == "ok" and client.get(path).status_code in (200, 303)


# --- Issue 21, item 12: the __Host- session cookie --------------------------------------------


def _scope(host: str, *, scheme: str = "http", cookie: str = "") -> dict[str, object]:
    headers = [(b"host", host.encode())] + ([(b"cookie", cookie.encode())] if cookie else [])
    return {"type": "http", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    ("host", "scheme", "cookies", "public", "expected"),
    [
        ("switchboard.example.com", "https", "", None, HOST_COOKIE),  # TLS here or a trusted proxy's Proto
        ("10.0.0.5:8501", "http", "", "https://switchboard.example.com", HOST_COOKIE),
        ("switchboard.lan:8501", "http", f"{PROBE}=1", None, COOKIE_NAME),  # a browser drops Secure here
        ("localhost:8501", "http", "", None, COOKIE_NAME),  # the browser has not shown it keeps one
        ("localhost:8501", "http", f"{PROBE}=1", None, HOST_COOKIE),
        ("127.0.0.1:8501", "http", f"{PROBE}=1", None, HOST_COOKIE),
        ("[::1]:8501", "http", f"{PROBE}=1", None, HOST_COOKIE),
        ("app.localhost", "http", f"{PROBE}=1", None, HOST_COOKIE),
        ("127.0.0.1.example.com", "http", f"{PROBE}=1", None, COOKIE_NAME),
    ],
)
def test_the_session_cookie_is_host_prefixed_wherever_the_browser_keeps_it(
    host: str, scheme: str, cookies: str, public: str | None, expected: str
) -> None:
    settings = load_settings({"SWITCHBOARD_PUBLIC_URL": public} if public else {})
    assert cookie.name_for(_scope(host, scheme=scheme, cookie=cookies), settings) == expected


def test_only_the_cookie_of_the_requests_name_reaches_whatever_reads_it() -> None:
    settings = load_settings({})
    both = f"{COOKIE_NAME}=planted; theme=dark; {HOST_COOKIE}=mine; {PROBE}=1"
    seen = cookie.only_the_session_cookie(_scope("localhost:8501", cookie=both), settings)
    assert cookie_parser(dict(seen["headers"])[b"cookie"].decode()) == {
        "theme": "dark",
        PROBE: "1",
        COOKIE_NAME: "mine",
    }
    planted = cookie.only_the_session_cookie(
        _scope("localhost:8501", cookie=f"{PROBE}=1; {COOKIE_NAME}=planted"), settings
    )
    assert COOKIE_NAME not in cookie_parser(dict(planted["headers"])[b"cookie"].decode())
    plain = cookie.only_the_session_cookie(
        _scope("switchboard.lan", cookie=f"{HOST_COOKIE}=x; {COOKIE_NAME}=y"), settings
    )
    assert cookie_parser(dict(plain["headers"])[b"cookie"].decode()) == {COOKIE_NAME: "y"}


def _cookie_header(**cookies: str) -> dict[str, str]:
    """Cookies a browser would send (httpx keeps a Secure cookie from going over plain http)."""
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


def test_on_loopback_a_browser_that_keeps_the_probe_gets_and_is_read_by_the_host_cookie_only(server: Server) -> None:
    server.add_user("ann", "viewer")
    with server.client() as client:
        offered = client.get("/account/sign-in").headers["set-cookie"]
        assert offered.startswith(f"{PROBE}=1;") and "Secure" in offered and "Path=/" in offered
        answer = client.post(
            "/account/sign-in",
            data={"username": "ann", "password": PASSWORD, "next": "/"},
            headers=_cookie_header(**{PROBE: "1"}),
        )
        set_cookie = answer.headers["set-cookie"]
        assert set_cookie.startswith(f"{HOST_COOKIE}=") and "Secure" in set_cookie and "Path=/" in set_cookie
        assert "HttpOnly" in set_cookie and "SameSite=lax" in set_cookie and "Domain" not in set_cookie
        token = set_cookie.split(";")[0].partition("=")[2]
    with httpx.Client(base_url=server.url) as browser:
        assert (
            browser.get("/connections", headers=_cookie_header(**{PROBE: "1", HOST_COOKIE: token})).status_code == 200
        )
        # Another port of this host can set the plain name; a browser keeping __Host- is never read by it.
        swapped = browser.get("/connections", headers=_cookie_header(**{PROBE: "1", COOKIE_NAME: token}))
        assert swapped.headers["location"] == "/account/sign-in?next=/connections"
        signed_out = browser.post(
            "/account/sign-out", headers={"Origin": server.url, **_cookie_header(**{PROBE: "1", HOST_COOKIE: token})}
        )
        assert f"{HOST_COOKIE}=" in signed_out.headers["set-cookie"] and "Secure" in signed_out.headers["set-cookie"]


def test_plain_http_to_a_host_name_keeps_the_plain_cookie(server: Server) -> None:
    server.add_user("ann", "viewer")
    port = server.url.rpartition(":")[2]
    named = {"Host": f"switchboard.lan:{port}", "Origin": f"http://switchboard.lan:{port}"}
    with httpx.Client(base_url=server.url, headers=named) as client:
        assert "set-cookie" not in client.get("/account/sign-in").headers  # no probe: no Secure cookie is kept here
        answer = client.post(
            "/account/sign-in",
            data={"username": "ann", "password": PASSWORD, "next": "/"},
            headers=_cookie_header(**{PROBE: "1"}),
        )
        assert (
            answer.headers["set-cookie"].startswith(f"{COOKIE_NAME}=") and "Secure" not in answer.headers["set-cookie"]
        )


# --- Issue 22: links from outside land where they point -----------------------------------------

ALERT_LINK = "/connections?connection=My%20Acme"  # as lib/notify/payloads.py writes it
OUR_PAGES = sorted(protected_paths() | {"/guide", "/sign-out", "/password", "/account/password"})


def _hidden_next(page: httpx.Response) -> str:
    """Where an account form goes on to after it is sent."""
    found = re.search(r'name="next" value="([^"]*)"', page.text)
    assert found, page.text[-600:]
    return html.unescape(found.group(1))


def test_a_link_keeps_its_query_through_sign_in(server: Server) -> None:
    """The gate passes on path and query, the form keeps them, the sign-in goes there. Both
    cookies are Lax: a link from another site (a top-level GET) arrives signed in."""
    server.add_user("ann", "operator")
    with server.client() as client:
        gated = client.get(ALERT_LINK)
        assert gated.status_code == 303
        assert gated.headers["location"] == "/account/sign-in?next=/connections%3Fconnection%3DMy%2520Acme"
        form = client.get(gated.headers["location"])
        assert _hidden_next(form) == ALERT_LINK
        assert form.headers["set-cookie"].startswith(f"{PROBE}=") and "SameSite=lax" in form.headers["set-cookie"]
        signed_in = sign_in(client, "ann", PASSWORD, _hidden_next(form))
        assert signed_in.status_code == 303 and signed_in.headers["location"] == ALERT_LINK
        assert "SameSite=lax" in signed_in.headers["set-cookie"]
        assert client.get(ALERT_LINK).status_code == 200
        for elsewhere in (
            "//evil.example/connections",
            "/\\evil.example",
            "https://evil.example/?x=1",
            "/connections?x=1#frag",
            "/connections?x=\r\nSet-Cookie:a=b",
            "/connections?" + "a" * NEXT_MAX,
        ):
            assert sign_in(client, "ann", PASSWORD, elsewhere).headers["location"] == "/", elsewhere


def test_a_forced_password_change_goes_on_to_the_link(server: Server) -> None:
    server.add_user("newbie", "operator", set_by_admin=True)
    with server.client() as client:
        onward = sign_in(client, "newbie", PASSWORD, ALERT_LINK).headers["location"]
        assert onward == gate.password_path(ALERT_LINK)
        assert client.get(ALERT_LINK).headers["location"] == onward  # the gate sends there too
        assert _hidden_next(client.get(onward)) == ALERT_LINK
        done = change_password(client, PASSWORD, OWN, next_path=ALERT_LINK)
        assert done.status_code == 303
        assert f'href="{html.escape(ALERT_LINK)}"' in client.get(done.headers["location"]).text
        assert client.get(ALERT_LINK).status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", "/connections"),
        (b"connection=My%20Acme", "/connections?connection=My%20Acme"),
        (b"connection=a|b c{}", "/connections?connection=a%7Cb%20c%7B%7D"),  # sent raw by some browsers
        ("connection=Zürich".encode(), "/connections?connection=Z%C3%BCrich"),
    ],
)
def test_the_gate_passes_on_path_and_query_in_the_form_next_accepts(query: bytes, expected: str) -> None:
    assert gate.page_address({"path": "/connections", "query_string": query}) == expected
    assert safe_next(expected) == expected


_QUERIES = hs.lists(hs.tuples(hs.text(max_size=20), hs.text(max_size=80)), max_size=8).map(
    lambda pairs: urlencode(pairs, quote_via=quote)
)
OURS = hs.builds(lambda path, query: f"{path}?{query}" if query else path, hs.sampled_from(OUR_PAGES), _QUERIES)
_SPELLS = ("//", "/\\", "\\\\", "https://", "http:", "javascript:", " /", "\t/", "/\t/", "/%2f", "/.", "#", "?")
ANYTHING = hs.one_of(
    OURS,
    hs.text(max_size=120),
    hs.builds(lambda spell, rest: spell + rest, hs.sampled_from(_SPELLS), hs.text(max_size=60)),
    hs.builds(
        lambda ours, at, extra: ours[:at] + extra + ours[at:],
        OURS,
        hs.integers(0, 200),
        hs.sampled_from(["#", "\n", "\x00", " ", "\\", "//evil.example", "\u2028", "é"]),
    ),
)


def _same_origin_page(value: str) -> bool:
    """Read apart from the pattern: a relative reference that can only resolve to our origin
    (starts with one "/", printable ASCII without space, backslash or '#', which browsers strip,
    reinterpret or keep to themselves) and a path of ours."""
    plain = all(33 <= ord(c) < 127 for c in value) and not set(value) & {"\\", "#"}
    path = value.partition("?")[0]
    return (
        plain
        and len(value) <= NEXT_MAX
        and value.startswith("/")
        and not value.startswith("//")
        and (path == "/account/password" or re.fullmatch(r"/[a-z0-9-]*", path) is not None)
    )


@given(ANYTHING)
@example("/connections?" + "a" * (NEXT_MAX - len("/connections?")))
@example("/connections?" + "a" * (NEXT_MAX + 1 - len("/connections?")))
@example("/connect\n")
def test_next_is_exactly_kept_for_our_pages_and_else_home(value: str) -> None:
    kept = safe_next(value)
    assert kept in (value, "/")
    assert kept == "/" or _same_origin_page(value)


@given(OURS)
def test_every_address_of_our_pages_is_kept(value: str) -> None:
    assert safe_next(value) == (value if len(value) <= NEXT_MAX else "/")


def test_next_round_trips_the_real_server_exactly_or_goes_home(server: Server) -> None:
    """Through HTTP as a browser sends it: the sign-in form's hidden field (signed out) and the
    redirect (signed in) carry every value unchanged, or "/"."""
    server.add_user("ann", "viewer")
    with server.client() as signed_out, server.client() as signed_in:
        sign_in(signed_in, "ann", PASSWORD)

        @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
        @given(ANYTHING)
        def check(value: str) -> None:
            asked = "/account/sign-in?next=" + quote(value, safe="")
            expected = safe_next(value)
            assert expected in (value, "/")
            assert _hidden_next(signed_out.get(asked)) == expected
            onward = signed_in.get(asked)
            assert onward.status_code == 303 and onward.headers["location"] == expected

        check()


def test_no_get_of_ours_changes_anything_and_sign_out_is_a_post(server: Server) -> None:
    """What makes the Lax cookie safe: another site can make a signed-in browser send GETs
    only, and none of them acts (pages act on clicks, over the WebSocket, own origin only)."""
    server.add_user("ann", "admin")
    with server.client() as client:
        sign_in(client, "ann", PASSWORD)
        before = server.cli("audit", "--json").stdout
        for path, methods in our_routes().items():
            if "GET" in methods:
                client.get(path)
        for path in [*OUR_PAGES, "/account/sign-out", "/account/setup", "/account/password?changed=1"]:
            client.get(path)
        assert client.get("/account/sign-out").status_code == 405
        assert client.get("/connections").status_code == 200  # still signed in
    assert server.cli("audit", "--json").stdout == before

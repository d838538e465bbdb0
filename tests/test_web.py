"""The server's own routes over real HTTP (``streamlit run serve.py`` on 127.0.0.1): the sign-in
gate, the first-admin setup code, the session cookie, throttling across fresh clients, no user
enumeration, login-CSRF refusal and the security headers."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from lib.navigation import protected_paths
from lib.sessions import COOKIE_NAME
from lib.simulator import SimulatorServer
from lib.web.headers import SECURITY_HEADERS
from tests.fixtures.server import PASSWORD, Server, start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(simulator: SimulatorServer) -> Iterator[Server]:
    started = start_server({}, simulator.url)
    yield started
    started.stop()


def sign_in(client: httpx.Client, username: str, password: str, next_path: str = "/") -> httpx.Response:
    return client.post("/account/sign-in", data={"username": username, "password": password, "next": next_path})


def setup(client: httpx.Client, code: str, username: str = "root", password: str = PASSWORD,
          again: str | None = None) -> httpx.Response:
    return client.post("/account/setup", data={"setup_code": code, "username": username, "password": password,
                                               "password_again": password if again is None else again})


def test_a_fresh_server_has_no_account_and_sends_everyone_to_setup(server: Server) -> None:
    with server.client() as client:
        for path in sorted(protected_paths()):
            response = client.get(path)
            assert response.status_code == 303 and response.headers["location"] == "/account/setup", path
        assert client.get("/account/sign-in").headers["location"] == "/account/setup"
        assert client.get("/guide").status_code == 200  # the guide is public
        page = client.get("/account/setup").text
        assert "Setup code" in page and server.setup_code() not in page


def test_the_setup_code_creates_the_first_admin_once(server: Server) -> None:
    code = server.setup_code()
    with server.client() as client:
        wrong = setup(client, "AAAA-BBBB-CCCC-DDDD")
        assert wrong.status_code == 400 and "setup_code" in wrong.text and "not valid" in wrong.text
        weak = setup(client, code, password="password1234")
        assert weak.status_code == 400 and "commonly used" in weak.text
        differ = setup(client, code, again=PASSWORD + "x")
        assert differ.status_code == 400 and "password_again" in differ.text
        made = setup(client, code.lower())  # codes are read without regard to case
        assert made.status_code == 303 and made.headers["location"] == "/", made.text[-600:]
        assert COOKIE_NAME in client.cookies
        assert client.get("/connections").status_code == 200  # signed in at once
    with server.client() as other:
        again = setup(other, code, username="mallory")
        assert again.status_code == 400 and "not valid" in again.text  # spent, and setup is over
        assert other.get("/account/setup").headers["location"] == "/account/sign-in"
    users = server.cli("users", "list", "--json")
    assert '"root"' in users.stdout and "mallory" not in users.stdout


def test_sign_in_sets_a_strict_http_only_cookie_and_returns_to_the_page(server: Server) -> None:
    server.add_user("ann", "operator")
    with server.client() as client:
        assert client.get("/connect").headers["location"] == "/account/sign-in?next=/connect"
        response = sign_in(client, "ann", PASSWORD, "/connect")
        assert response.status_code == 303 and response.headers["location"] == "/connect"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
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
        for name in timings:
            with server.client() as client:
                start = time.perf_counter()
                response = sign_in(client, name, f"not the password {round_}")
                timings[name].append(time.perf_counter() - start)
                assert response.status_code == 401
                bodies[name].add(response.text.replace(f'value="{name}"', 'value="?"'))
    assert bodies["ann"] == bodies["nobody"]
    known, unknown = statistics.median(timings["ann"]), statistics.median(timings["nobody"])
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

"""Status badges for wikis (issue 25), over real HTTP (``streamlit run serve.py``) with the
simulator: the verdict they show, that a badge URL opens only its own badge, that a new active
key revokes them, that nothing else leaks, and that any name makes a well-formed SVG."""

from __future__ import annotations

import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.catalogue.limits import NAME_MAX
from lib.services.guard.access import NotAllowed, Principal, Role
from lib.services.reporting import badges
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from tests.fixtures.server import Server, start_server
from tests.fixtures.simulator import default_scenario
from tests.test_api import assert_no_credential, audit_rows, bearer, token_for

pytestmark = pytest.mark.slow
SVG = "{http://www.w3.org/2000/svg}"
# Every element a badge has, in document order: nothing a name can add to.
ELEMENTS = ["svg", "title", "rect", "rect", "g", "text", "text"]
NASTY = """</text><script>alert(1)</script><text x="0">&amp;'"]]>"""  # printable: a valid name
COMMON = ("--storage-region", "uk", "--chat-region", "us", "--tenant-id", "tenant-us-1")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer(default_scenario()) as started:
        yield started


def add(server: Server, sim: SimulatorServer, name: str, environment: str, *, storage_only: bool = False) -> None:
    everything, _, only_storage = sim.scenario.apps
    app = only_storage if storage_only else everything
    region = ("--storage-region", "ap") if storage_only else ()
    added = server.cli(
        "connections",
        "add",
        "--name",
        name,
        "--client-id",
        app.client_id,
        "--secret-stdin",
        "--products",
        "cloud_storage,cc_chat",
        "--environment",
        environment,
        *COMMON,
        *region,
        stdin=app.client_secret + "\n",
    )
    assert added.returncode == 0, added.stderr


@pytest.fixture(scope="module")
def server(sim: SimulatorServer) -> Iterator[Server]:
    """Prod (production, ok), Fresh (production, never tested), Broken (Staging, one product
    failing) and a connection whose name is markup."""
    started = start_server({}, sim.url)
    add(started, sim, "Prod", "production")
    add(started, sim, "Fresh", "production")
    add(started, sim, "Broken", "Staging", storage_only=True)
    add(started, sim, NASTY, "qa")
    assert started.cli("check", "Prod").returncode == 0
    assert started.cli("check", "Broken").returncode == 1  # 8x8 grants it storage only: chat fails
    assert started.cli("check", NASTY).returncode == 0
    yield started
    started.stop()


def url_of(server: Server, *option: str) -> str:
    issued = server.cli("badges", "url", *option)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


def words(response: httpx.Response) -> tuple[str, str, str]:
    """(label, message, message colour) of a badge, after checking it is one and holds only
    the elements every badge has."""
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["cache-control"] == "no-store"
    root = ET.fromstring(response.text)
    assert [e.tag.removeprefix(SVG) for e in root.iter()] == ELEMENTS
    label, message = (e.text or "" for e in root.iter(f"{SVG}text"))
    return label, message, root.findall(f"{SVG}rect")[1].get("fill", "")


def test_a_badge_says_what_the_apis_verdict_says(server: Server) -> None:
    viewer = token_for(server, "wiki-check", "viewer")
    expected = {
        "Prod": ("ok", badges.GREEN),
        "Fresh": ("never tested", badges.GREY),
        "Broken": ("failing 1", badges.RED),
    }
    with server.client() as client:
        for name, (message, colour) in expected.items():
            found = client.get(url_of(server, "--connection", name.lower()))
            assert found.status_code == 200, found.text
            assert words(found) == (f"8x8 {name.lower()}", message, colour)
            verdict = client.get(f"/api/v1/connections/{name}", headers=bearer(viewer)).json()
            assert badges.message(verdict) == (message, colour)


def test_an_environment_badge_counts_that_environment_only(server: Server) -> None:
    with server.client() as client:
        production = client.get(url_of(server, "--environment", "Production"))
        staging = client.get(url_of(server, "--environment", "staging"))
    # Production holds Prod (ok) and Fresh (never tested): ok; Broken fails in Staging only.
    assert words(production) == ("8x8 Production", "ok", badges.GREEN)
    assert words(staging) == ("8x8 staging", "failing 1", badges.RED)
    assert "Broken" not in production.text and "Prod" not in staging.text
    assert all("Fresh" not in r.text and "qa" not in r.text for r in (production, staging))


def test_a_badge_url_opens_its_own_badge_and_nothing_else(server: Server, sim: SimulatorServer) -> None:
    prod = url_of(server, "--connection", "Prod")
    token = prod.partition("?badge=")[2]
    other_paths = [
        "/api/v1/badges/connections/Broken.svg",
        "/api/v1/badges/connections/Nope.svg",
        "/api/v1/badges/environments/production.svg",
        "/api/v1/badges/environments/Prod.svg",
        f"/api/v1/badges/connections/{'x' * (NAME_MAX + 1)}.svg",
    ]
    with server.client() as client:
        assert client.get(f"/api/v1/badges/connections/%20PROD%20.svg?badge={token}").status_code == 200  # same name
        refused = [client.get(path, params={"badge": token}) for path in other_paths]
        refused += [
            client.get(prod.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))),
            client.get(prod.replace(token, "k1." + token)),
            client.get(prod.partition("?")[0] + "?badge="),
        ]
        opened = client.get(prod)
    # A bad token and a name that does not exist get the very same answer: no existence oracle.
    assert {(r.status_code, r.text) for r in refused} == {(404, badges.unknown().svg)}
    assert words(refused[0]) == ("8x8", "unknown", badges.GREY)
    # No other connection's name, and no credential, in any answer.
    for response in (*refused, opened):
        assert not any(name in response.text for name in ("Broken", "Fresh", "production", "Staging"))
    assert_no_credential(server, sim, opened, *refused)
    missing = server.cli("badges", "url", "--connection", "Nope")
    assert missing.returncode == 1 and missing.stderr.strip() == "error: No connection is named 'Nope'."
    empty = server.cli("badges", "url", "--environment", "none such")
    assert empty.returncode == 1 and "No connection has the environment 'none such'" in empty.stderr
    both = server.cli("badges", "url", "--connection", "Prod", "--environment", "production")
    assert both.returncode == 2 and "one of them" in both.stderr


def test_an_api_token_is_never_taken_from_the_url_or_a_header(server: Server) -> None:
    viewer = token_for(server, "pasted-in-wiki", "viewer")
    path = "/api/v1/badges/connections/Prod.svg"
    token = url_of(server, "--connection", "Prod").partition("?badge=")[2]
    with server.client() as client:
        answers = {
            "api token as the badge": client.get(path, params={"badge": viewer}),
            "api token as ?token=": client.get(path, params={"token": viewer}),
            "api token as ?access_token=": client.get(path, params={"access_token": viewer}),
            "api token beside the badge": client.get(path, params={"badge": token, "token": viewer}),
            "badge twice": client.get(path, params=[("badge", token), ("badge", token)]),
            "bearer header alone": client.get(path, headers=bearer(viewer)),
        }
    assert {k: r.status_code for k, r in answers.items()} == {
        "api token as the badge": 404,
        "api token as ?token=": 400,
        "api token as ?access_token=": 400,
        "api token beside the badge": 400,
        "badge twice": 400,
        "bearer header alone": 400,
    }
    for response in answers.values():
        assert words(response) == ("8x8", "unknown", badges.GREY)


def test_issuing_a_badge_is_for_admins_and_audited_without_the_token(server: Server, runtime: Runtime) -> None:
    url = url_of(server, "--environment", "Staging")
    rows = [r for r in audit_rows(server) if r["action"] == "badge.issue"]
    assert ("environment:Staging", "ok", "key k1") in {(r["target"], r["result"], r["detail"]) for r in rows}
    assert all(url.partition("?badge=")[2].partition(".")[2] not in str(r) for r in audit_rows(server))
    viewer = Principal("cli:viewer", Role.VIEWER, via="cli")
    with pytest.raises(NotAllowed):
        badges.issue(runtime.engine, runtime.vault.keyring, badges.Subject(badges.Kind.CONNECTION, "x"), actor=viewer)


def test_a_new_active_key_revokes_every_badge_url(sim: SimulatorServer, tmp_path: Path) -> None:
    """Badge URLs are revoked by making a new active key (``keys add``) and restarting: the old
    URL then gets the unknown badge, and a URL issued afresh works."""
    own = {
        "SWITCHBOARD_DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'sb.db'}",  # kept over the restart
        "SWITCHBOARD_KEYRING_FILE": str(tmp_path / "keys" / "keyring.json"),
    }
    first = start_server(own, sim.url)
    try:
        add(first, sim, "Prod", "production")
        old = url_of(first, "--connection", "Prod")
        assert httpx.get(first.url + old).status_code == 200
        assert first.cli("keys", "add").returncode == 0
    finally:
        first.stop()
    second = start_server(own, sim.url)
    try:
        new = url_of(second, "--connection", "Prod")
        assert new.partition("?badge=")[2].startswith("k2.")
        revoked, fresh = httpx.get(second.url + old), httpx.get(second.url + new)
    finally:
        second.stop()
    assert (revoked.status_code, revoked.text) == (404, badges.unknown().svg)
    assert words(fresh)[1] == "never tested"


def test_a_name_that_is_markup_is_shown_as_text(server: Server) -> None:
    with server.client() as client:
        found = client.get(url_of(server, "--connection", NASTY))
    label, message, _ = words(found)  # parses, with no element the name tried to add
    assert (label, message) == (f"8x8 {NASTY}"[: badges.LABEL_MAX - 1] + "…", "ok")
    assert "<script" not in found.text


def test_a_badge_has_a_policy_that_runs_nothing(server: Server) -> None:
    with server.client() as client:
        found = client.get(url_of(server, "--connection", "Prod"))
    assert found.headers["content-security-policy"] == "default-src 'none'; sandbox"


@given(st.text(max_size=120), st.sampled_from(["ok", "failing 3", "never tested", "unknown"]))
def test_any_name_makes_a_well_formed_badge_with_only_its_own_elements(name: str, message: str) -> None:
    svg = badges.render(f"8x8 {name}", message, badges.GREY)
    root = ET.fromstring(svg)
    assert [e.tag.removeprefix(SVG) for e in root.iter()] == ELEMENTS
    label, said = (e.text or "" for e in root.iter(f"{SVG}text"))
    shown = "".join("\ufffd" if unicodedata.category(c).startswith("C") else c for c in f"8x8 {name}")
    assert said == message
    assert label == (shown if len(shown) <= badges.LABEL_MAX else shown[: badges.LABEL_MAX - 1] + "…")
    assert root.get("aria-label") == root.findtext(f"{SVG}title") == f"{label}: {message}"


def test_a_badge_path_holds_the_name_as_one_segment() -> None:
    subject = badges.Subject(badges.Kind.CONNECTION, " Acme/test?x#y.svg ")
    assert subject.path() == f"/api/v1/badges/connections/{quote('Acme/test?x#y.svg', safe='')}.svg"
    assert subject.key == "acme/test?x#y.svg"

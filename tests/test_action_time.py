"""Authorization when an action runs, not when its page was drawn.

Streamlit runs widget callbacks before the page script, reruns fragments and dialogs without
it, and makes deferred downloads outside any script run. The first test reads lib/ui/ and
holds every such function to the rule (so a future button cannot forget it); the others
draw a page, then end or change the sign-in behind it, then click: nothing is done and the
audit trail shows no such action. Browser versions of the same, for fragments, dialogs and
downloads, are in tests/browser/test_action_time.py.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from streamlit.testing.v1 import AppTest

from lib.services import connections
from lib.services.accounts import sessions
from lib.services.guard import audit
from lib.services.guard.access import Principal, Role
from lib.services.runtime import Runtime
from lib.simulator import SimulatorServer
from lib.store.db import write_session
from lib.store.models import WebSession, utcnow
from tests.fixtures.console import ACCESS, PageOpener
from tests.fixtures.people import ADMIN
from tests.fixtures.prober import control
from tests.test_pages import everything, fill, seed

UI = Path(__file__).resolve().parent.parent / "lib" / "ui"
CALLBACK_KEYWORDS = {"on_click", "on_change", "on_dismiss", "on_submit", "on_select"}
# Streamlit's own sign-in and sign-out with the identity provider: what someone who may not
# act is sent to do, so they need no authorization.
IDENTITY_PROVIDER_CALLS = {"st.login", "st.logout"}
# What a callback may do before ``acting``: take a password out of session state, so that a
# refused click leaves none behind.
BEFORE_ACTING = {"take_secret"}


@dataclass(frozen=True)
class Site:
    file: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line} {self.what}"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Call):
        return _dotted(node.func)
    return type(node).__name__


def _called(node: ast.AST) -> set[str]:
    return {_dotted(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}


def _starts_by_acting(function: ast.FunctionDef) -> bool:
    """Its first statement (after a docstring and ``take_secret`` calls) calls ``acting``."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]
    for statement in body:
        calls = _called(statement)
        if "acting" in calls:
            return True
        if not calls or not calls <= BEFORE_ACTING:
            return False
    return False


def _takes_a_principal(function: ast.FunctionDef) -> bool:
    params = [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]
    return any(
        p.arg in ("me", "console", "principal")
        or (p.annotation is not None and _dotted(p.annotation).split(".")[-1] in ("Principal", "Console"))
        for p in params
    )


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(UI.glob("*.py")):
        yield path.name, ast.parse(path.read_text(), str(path))


def broken_sites() -> tuple[list[Site], int]:
    """Every callback, fragment, dialog and download in lib/ui/ that does not decide who may
    act when it runs; and how many were looked at."""
    broken: list[Site] = []
    seen = 0
    for name, module in _modules():
        functions = {f.name: f for f in module.body if isinstance(f, ast.FunctionDef)}
        for node in ast.walk(module):
            if isinstance(node, ast.FunctionDef) and any(
                _dotted(d) in ("st.fragment", "st.dialog") for d in node.decorator_list
            ):
                seen += 1
                if not _starts_by_acting(node) or _takes_a_principal(node):
                    broken.append(Site(name, node.lineno, f"{node.name}: fragment/dialog body"))
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg in CALLBACK_KEYWORDS:
                    value = keyword.value
                    if isinstance(value, ast.Constant) or _dotted(value) in IDENTITY_PROVIDER_CALLS:
                        continue
                    seen += 1
                    target = functions.get(value.id) if isinstance(value, ast.Name) else None
                    if target is None or not _starts_by_acting(target) or _takes_a_principal(target):
                        broken.append(Site(name, node.lineno, f"{keyword.arg}={_dotted(value)}"))
                if keyword.arg == "data" and _dotted(node.func).endswith("download_button"):
                    seen += 1
                    if not (isinstance(keyword.value, ast.Call) and _dotted(keyword.value.func) == "deferred"):
                        broken.append(Site(name, node.lineno, "download data= is not deferred(...)"))
    return broken, seen


def test_every_callback_fragment_dialog_and_download_decides_when_it_runs() -> None:
    broken, seen = broken_sites()
    assert seen >= 11, f"the scan found only {seen} sites; did the UI move?"
    assert not broken, "\n".join(map(str, broken))


def test_the_scan_catches_a_callback_that_trusts_what_the_page_drew(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.py").write_text("""
import streamlit as st

def _remove(me, name):
    users.remove(engine, name, actor=me)

@st.fragment
def _row(rt, me):
    st.button("Test")

def render(console):
    st.button("Remove", on_click=_remove, args=(console.me, "x"))
    st.download_button("Export", data=lambda: export(console.me))
    st.button("Later", on_click=lambda: None)
""")
    monkeypatch.setattr("tests.test_action_time.UI", tmp_path)
    broken, seen = broken_sites()
    assert seen == 4 and len(broken) == 4, broken


# --- Behaviour: draw, make the sign-in stale, then click ------------------------------------


Staleness = Callable[[Runtime, AppTest, dict[str, object]], None]


def identity_of(at: AppTest) -> dict[str, object]:
    """The claims the console keys this tab's OIDC session by."""
    return {key: at.user.get(key) for key in ("iss", "sub", "iat", "nonce", "email")}  # type: ignore[attr-defined]


def _signed_out(rt: Runtime, _at: AppTest, claims: dict[str, object]) -> None:
    sessions.end(rt.engine, sessions.oidc_key(claims), Principal(str(claims["email"]), Role.ADMIN, via="oidc"))


def _demoted(_rt: Runtime, at: AppTest, claims: dict[str, object]) -> None:
    at.secrets["access"] = {**ACCESS, str(claims["email"]): "viewer"}


def _removed(_rt: Runtime, at: AppTest, claims: dict[str, object]) -> None:
    at.secrets["access"] = {k: v for k, v in ACCESS.items() if k != claims["email"] and not k.startswith("@")}


def _idle(rt: Runtime, _at: AppTest, _claims: dict[str, object]) -> None:
    with write_session(rt.engine) as session:
        session.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=44)))


STALENESS: dict[str, Staleness] = {"signed out": _signed_out, "demoted": _demoted, "removed": _removed, "idle": _idle}


@pytest.mark.parametrize("stale", list(STALENESS))
def test_a_save_clicked_after_the_sign_in_changed_does_nothing(
    stale: str, open_page: PageOpener, console_env: Runtime, simulator: SimulatorServer
) -> None:
    """The connect form's submit is a callback: Streamlit runs it before the page's guard."""
    seed(console_env, simulator)
    at = fill(open_page("pages/connect.py"), everything(simulator), name="Fresh")
    before = len(audit.events(console_env.engine, ADMIN))
    STALENESS[stale](console_env, at, identity_of(at))
    at.button(key="connect_submit").click().run()
    assert not at.exception, at.exception
    assert sorted(v.name for v in connections.list_connections(console_env.engine)) == ["Archive", "Everything"]
    assert not [
        e.action for e in audit.events(console_env.engine, ADMIN)[before:] if e.action.startswith("connection.")
    ]
    assert "Nothing was done" in " ".join(w.value for w in at.warning)
    assert control(simulator, "GET", "stats")["requests"]["token"] == 0  # not even verified

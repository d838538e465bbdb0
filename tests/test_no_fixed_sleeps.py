"""No test waits for a fixed time: it waits for the condition it needs (tests/fixtures/waiting.py's
``eventually``, Playwright's ``expect``) or moves an injected clock on. A fixed sleep is a guess
at how long something takes: too short and the test fails on a busy machine, too long and every
run pays for it.

What counts as a fixed wait, read from the syntax tree of every file under tests/:
- ``time.sleep(x)`` and ``asyncio.sleep(x)`` (however imported) unless ``x`` is the literal 0,
  which yields to other threads or tasks and waits for nothing;
- Playwright's ``wait_for_timeout``;
- ``Event().wait(x)`` on an event made on the spot, which nothing can set: a sleep by another name.

A few pauses are not waits but the behaviour under test, scripted into a fake server or client
(an answer that comes late, a request sent after the connection idled). They are listed in
ALLOWED by file and function, each with its reason."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

ALLOWED = {
    (
        "tests/fixtures/waiting.py",
        "eventually",
    ): "the back-off between two checks of a condition: the one place a test pauses",
    (
        "tests/test_transport.py",
        "send.run",
    ): "the pause between two requests is the scenario: a connection left idle that long",
    (
        "tests/test_transport.py",
        "silent",
    ): "a scripted server that reads the request and never answers: the client's read timeout is under test",
}

SLEEP_MODULES = {"time", "asyncio", "anyio", "trio"}


@dataclass(frozen=True)
class Wait:
    path: str
    line: int
    function: str
    call: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function or '<module>'}: {self.call}"


def _is_zero(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and type(node.value) in (int, float) and node.value == 0


class _Finder(ast.NodeVisitor):
    """The fixed waits of one module, with the function each is in (``outer.inner``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.found: list[Wait] = []
        self._scope: list[str] = []
        self._sleeps: set[str] = set()  # names bound by `from time import sleep` and the like

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module in SLEEP_MODULES:
            self._sleeps |= {alias.asname or alias.name for alias in node.names if alias.name == "sleep"}

    def _scoped(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._scope.append(node.name)
        self.generic_visit(node)
        self._scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit_Call(self, node: ast.Call) -> None:
        if self._is_fixed_wait(node):
            self.found.append(Wait(self.path, node.lineno, ".".join(self._scope), ast.unparse(node)))
        self.generic_visit(node)

    def _is_fixed_wait(self, node: ast.Call) -> bool:
        func = node.func
        waits_for_zero = len(node.args) == 1 and not node.keywords and _is_zero(node.args[0])
        if isinstance(func, ast.Name) and func.id in self._sleeps:
            return not waits_for_zero
        if not isinstance(func, ast.Attribute):
            return False
        if func.attr == "sleep" and isinstance(func.value, ast.Name) and func.value.id in SLEEP_MODULES:
            return not waits_for_zero
        if func.attr == "wait_for_timeout":
            return True
        made_here = func.value
        return (
            func.attr == "wait"
            and isinstance(made_here, ast.Call)
            and ast.unparse(made_here.func).split(".")[-1] == "Event"
        )


def fixed_waits(source: str, path: str = "<test>") -> list[Wait]:
    finder = _Finder(path)
    finder.visit(ast.parse(source))
    return finder.found


def all_fixed_waits() -> list[Wait]:
    return [
        wait
        for file in sorted(TESTS.rglob("*.py"))
        for wait in fixed_waits(file.read_text(), file.relative_to(ROOT).as_posix())
    ]


def test_no_test_waits_for_a_fixed_time() -> None:
    unexplained = [str(w) for w in all_fixed_waits() if (w.path, w.function) not in ALLOWED]
    assert not unexplained, (
        "Wait for the condition instead (tests/fixtures/waiting.py's eventually, "
        "Playwright's expect) or inject a clock:\n" + "\n".join(unexplained)
    )


def test_every_allowed_pause_is_still_there() -> None:
    """An entry whose pause is gone would let a new sleep in that function pass unseen."""
    found = {(w.path, w.function) for w in all_fixed_waits()}
    assert set(ALLOWED) <= found, set(ALLOWED) - found


@pytest.mark.parametrize(
    "source",
    [
        "import time\ntime.sleep(1)",
        "import time\ntime.sleep(0.05)",
        "import time\ndef f(s):\n    time.sleep(s)",
        "from time import sleep\nsleep(2)",
        "from time import sleep as nap\nnap(2)",
        "import asyncio\nasync def f():\n    await asyncio.sleep(0.1)",
        "page.wait_for_timeout(200)",
        "tab.wait_for_timeout(0)",
        "import threading\nthreading.Event().wait(5)",
        "from threading import Event\nEvent().wait(timeout=5)",
    ],
)
def test_the_checker_finds_a_planted_sleep(source: str) -> None:
    assert len(fixed_waits(source)) == 1, source


@pytest.mark.parametrize(
    "source",
    [
        "import time\ntime.sleep(0)",
        "import asyncio\nasync def f():\n    await asyncio.sleep(0)",
        "stop.wait(5)",  # an event another thread sets: a wait for a condition, with a deadline
        "process.wait(10)",
        "expect(page.get_by_text('Done')).to_be_visible()",
        "from tests.fixtures.waiting import eventually\neventually(lambda: True, what='it')",
    ],
)
def test_the_checker_lets_waits_for_a_condition_pass(source: str) -> None:
    assert fixed_waits(source) == [], source


def test_the_checker_names_the_function_a_sleep_is_in() -> None:
    [wait] = fixed_waits(
        "import time\nclass A:\n    def b(self):\n        def c():\n            time.sleep(1)\n", "tests/x.py"
    )
    assert (wait.path, wait.line, wait.function, wait.call) == ("tests/x.py", 5, "A.b.c", "time.sleep(1)")

"""Every test the documents (README.md and docs/**/*.md) name exists, so a promise never cites a
test that is gone.

The documents tie each promise to the test that proves it: a file (`tests/test_x.py`), a function
in it (`tests/test_x.py::test_y`, possibly a method `::TestZ::test_y` or a parametrised
`::test_y[case]`), or a bare `` `test_y` `` after the file it belongs to: a bare name must be
defined in a file its section (since the last heading) has already cited, or in any test file
when the section cites none. This reads the markdown and the test files' syntax trees only; it
imports no test module.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# tests/…/name.py, optionally followed by ::name(::name)* and a [parameter id].
FILE_REFERENCE = re.compile(r"\b(tests/[\w./-]*?\w\.py)((?:::\w+)*)(?:\[[^\]\s]*\])?")
# A bare test name in backticks (the documents name a function beside its file this way).
BARE_REFERENCE = re.compile(r"`(test_\w+)(?:\[[^\]`]*\])?`")


@dataclass(frozen=True)
class Reference:
    """One citation of a test: where it is written and what it names."""

    document: str
    line: int
    path: str | None  # None for a bare name: it lives in one of `cited`
    names: tuple[str, ...]
    cited: tuple[str, ...] = ()  # the files the section cited before a bare name

    def __str__(self) -> str:
        target = "::".join(([self.path] if self.path else []) + list(self.names))
        return f"{self.document}:{self.line}: {target}"


def documents(root: Path) -> list[Path]:
    """README.md and every markdown file under docs/."""
    found = [root / "README.md"] if (root / "README.md").is_file() else []
    docs = root / "docs"
    if docs.is_dir():
        found += sorted(docs.rglob("*.md"))
    return found


def references(text: str, document: str) -> Iterator[Reference]:
    """Each test the text cites, file references and bare names alike."""
    cited: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("#"):
            cited = []
        for match in FILE_REFERENCE.finditer(line):
            names = tuple(name for name in match.group(2).split("::") if name)
            cited.append(match.group(1))
            yield Reference(document, number, match.group(1), names)
        for match in BARE_REFERENCE.finditer(line):
            yield Reference(document, number, None, (match.group(1),), tuple(dict.fromkeys(cited)))


@cache
def definitions(path: Path) -> frozenset[tuple[str, ...]]:
    """Every function and class in a test file, as name paths: ("test_x",), ("TestY", "test_z")."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, ...]] = set()

    def visit(node: ast.AST, prefix: tuple[str, ...]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                found.add((*prefix, child.name))
                if isinstance(child, ast.ClassDef):
                    visit(child, (*prefix, child.name))

    visit(tree, ())
    return frozenset(found)


def defines(path: Path, names: tuple[str, ...]) -> bool:
    """Whether the file defines that name path; a lone name may also be a method of a class."""
    known = definitions(path)
    if names in known:
        return True
    return len(names) == 1 and any(path_[-1] == names[0] for path_ in known)


def broken(reference: Reference, root: Path) -> str | None:
    """Why the reference names nothing, or None when it names a test that exists."""
    if reference.path is None:
        if reference.cited:
            candidates = [root / cited for cited in reference.cited if (root / cited).is_file()]
            where = "none of " + ", ".join(reference.cited) + " defines it"
        else:
            candidates = sorted((root / "tests").rglob("test_*.py"))
            where = "no test file defines it"
        return None if any(defines(path, reference.names) for path in candidates) else f"{reference}: {where}"
    path = root / reference.path
    if not path.is_file():
        return f"{reference}: no such file"
    if reference.names and not defines(path, reference.names):
        return f"{reference}: not defined in {reference.path}"
    return None


def problems(root: Path) -> list[str]:
    """Every broken reference in the project's documents."""
    found = []
    for document in documents(root):
        text = document.read_text(encoding="utf-8")
        for reference in references(text, str(document.relative_to(root))):
            problem = broken(reference, root)
            if problem:
                found.append(problem)
    return found


def test_every_test_the_docs_name_exists() -> None:
    found = problems(ROOT)
    assert not found, "The documents cite tests that do not exist:\n" + "\n".join(found)


def test_the_docs_cite_tests_at_all() -> None:
    """Guards the pattern itself: documents that cite nothing would pass the test above. Each
    document for a reader cites the tests behind its promises."""
    cited = {
        path.relative_to(ROOT).as_posix(): sum(1 for _ in references(path.read_text(encoding="utf-8"), ""))
        for path in documents(ROOT)
    }
    assert sum(cited.values()) > 250, cited
    assert all(cited[name] > 5 for name in ("README.md", "docs/using.md", "docs/developing.md")), cited


def test_a_missing_file_function_or_bare_name_is_named(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_here.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.parametrize('x', [1])\n"
        "def test_present(x):\n    pass\n\n"
        "class TestGroup:\n    def test_method(self):\n        pass\n",
        encoding="utf-8",
    )
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "Fine: (`tests/test_here.py::test_present[1]`), `tests/test_here.py::TestGroup::test_method`,\n"
        "tests/test_here.py::test_method, `test_present`, proved by `tests/test_here.py`.\n",
        encoding="utf-8",
    )
    (tmp_path / "tests" / "test_there.py").write_text("def test_elsewhere():\n    pass\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "Gone: `tests/test_gone.py`, (`tests/test_here.py::test_absent`),\n"
        "`tests/test_here.py::TestGroup::test_other`, and `test_elsewhere`, cited beside the wrong file.\n"
        "## A section that cites no file\n"
        "`test_elsewhere` is somewhere; `test_renamed` is nowhere.\n",
        encoding="utf-8",
    )
    assert problems(tmp_path) == [
        "README.md:1: tests/test_gone.py: no such file",
        "README.md:1: tests/test_here.py::test_absent: not defined in tests/test_here.py",
        "README.md:2: tests/test_here.py::TestGroup::test_other: not defined in tests/test_here.py",
        "README.md:2: test_elsewhere: none of tests/test_gone.py, tests/test_here.py defines it",
        "README.md:4: test_renamed: no test file defines it",
    ]

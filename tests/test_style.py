"""The checkout passes ruff (its rules and version: pyproject.toml, requirements-dev.txt), is
laid out as `ruff format` lays it out, and builds its SQL with one `select`."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing() -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def test_ruff_format_would_change_nothing() -> None:
    """One layout, made by the formatter: `make format` (ruff format .) before committing."""
    done = subprocess.run(
        [str(Path(sys.executable).parent / "ruff"), "format", "--check", "--no-cache", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


# One `select` for SQL: SQLAlchemy's, under its own name. SQLModel's returns scalars or rows
# through session.exec depending on how many entities it is given, and types four at most.
_CODE = ("lib", "bench", "scripts", "migrations")


def _other_selects(source: str) -> list[str]:
    """The imports or uses of a `select` other than SQLAlchemy's, imported as `select`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            package = node.module.split(".")[0]
            for alias in node.names:
                if alias.name == "select" and (package != "sqlalchemy" or alias.asname not in (None, "select")):
                    found.append(
                        f"line {node.lineno}: from {node.module} import select"
                        + (f" as {alias.asname}" if alias.asname else "")
                    )
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "select"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sqlmodel"
        ):
            found.append(f"line {node.lineno}: sqlmodel.select")
    return found


def test_one_select_for_sql() -> None:
    wrong = {
        str(path.relative_to(ROOT)): found
        for folder in _CODE
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (found := _other_selects(path.read_text(encoding="utf-8")))
    }
    assert not wrong, f"Use `from sqlalchemy import select` (docs/developing.md, Style): {wrong}"


def test_other_selects_are_found() -> None:
    assert _other_selects("from sqlmodel import Session, col, select\n") == ["line 1: from sqlmodel import select"]
    assert _other_selects("from sqlalchemy import select as sql_select\n") == [
        "line 1: from sqlalchemy import select as sql_select"
    ]
    assert _other_selects("import sqlmodel\nq = sqlmodel.select(1)\n") == ["line 2: sqlmodel.select"]
    assert _other_selects("from sqlalchemy import func, select\n") == []

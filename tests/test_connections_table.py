"""The status read model (lib.services.history.status) holds no words for people: how a state
reads (labels, marks, causes, column titles) is lib.services.reporting.connections_table's, so
the Connections page, every export and the status API say it alike, from one place."""

from __future__ import annotations

import ast
import inspect

from lib.services.history import status
from lib.services.reporting import connections_table


def _view_words() -> set[str]:
    """Every text the view model gives people: labels, names, causes, column titles, marks."""
    table = connections_table
    return {
        *table.NAMES.values(),
        *table.LABELS.values(),
        *table.UNTESTED_CAUSES.values(),
        table.NOT_TICKED_LABEL,
        *table.WIDE_COLUMNS,
        *(mark for mark, _ in table.MARKS),
        "All OK",
    }


def display_text(source: str) -> list[str]:
    """The string literals of ``source`` (docstrings aside) that are text for people: any with a
    character beyond ASCII (an emoji, a mark, a dash) or holding one of the view model's words."""
    tree = ast.parse(source)
    docstrings = {
        id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
    }
    words = _view_words()
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and (not node.value.isascii() or any(word in node.value for word in words))
    ]


def test_the_read_model_holds_no_display_text() -> None:
    assert display_text(inspect.getsource(status)) == []


def test_the_words_live_in_the_view_model_only() -> None:
    """One place for each: the read model keeps no copy of the view's words or its overview."""
    moved = (
        "NAMES",
        "LABELS",
        "MARKS",
        "UNTESTED_CAUSES",
        "NOT_TICKED_LABEL",
        "WIDE_COLUMNS",
        "summaries",
        "Selection",
        "ANY_PROBLEM",
        "Overview",
        "LatestOverview",
    )
    assert [name for name in moved if hasattr(status, name)] == []
    assert all(hasattr(connections_table, name) for name in moved)

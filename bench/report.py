"""One way for every bench to print what it measured: a line per figure, next to its goal.

``make bench`` and the suite's smoke run (tests/test_bench.py) read the same lines.
"""

from __future__ import annotations

from collections.abc import Callable

PREFIX = "RESULT"


def line(name: str, value: float, unit: str, goal: str, meets: Callable[[float], bool]) -> None:
    """``RESULT <name>: <value><unit>  (goal <goal>: met|not met)``."""
    verdict = "met" if meets(value) else "NOT met"
    print(f"{PREFIX} {name}: {value:.2f}{unit}  (goal {goal}: {verdict})", flush=True)


def at_most(limit: float) -> Callable[[float], bool]:
    return lambda value: value <= limit


def at_least(limit: float) -> Callable[[float], bool]:
    return lambda value: value >= limit

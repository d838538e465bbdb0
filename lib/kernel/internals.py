"""The check each library adapter makes when it is imported (lib/ui/streamlit_internals.py,
lib/web/uvicorn_internals.py): that the library still has, in the shape Switchboard uses it,
everything Switchboard takes from inside it rather than from its documented API.

Those libraries are pinned exactly (requirements.txt, constraints.txt) and the suite exercises
each reach for real (tests/test_adapters.py). This check is for an install that differs anyway:
the server then stops at start with one message naming the library, the version tested, the
version found and what moved, where it would otherwise quietly do nothing (a class attribute
set that nothing reads any more) or fail later, on someone's request.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from types import CodeType, ModuleType
from typing import Any

from lib.kernel.errors import SwitchboardError

FIX = "Install the tested versions: pip install -r requirements.txt -c constraints.txt"


class UntestedLibrary(SwitchboardError):
    """A library lacks, or has changed, something Switchboard reaches for inside it."""


def _where(owner: object) -> str:
    """``owner``'s dotted name: a module's, or a class's with its module."""
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}"
    return getattr(owner, "__name__", repr(owner))


def _names(code: CodeType) -> Iterator[str]:
    """The names a function's code looks up, in the functions defined inside it too."""
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _names(const)


@dataclass(frozen=True)
class Library:
    """A library Switchboard reaches into: its distribution name and the version the suite ran with."""

    name: str
    tested: str

    def installed(self) -> str:
        try:
            return metadata.version(self.name)
        except metadata.PackageNotFoundError:
            return "no recorded version"

    def changed(self, what: str) -> UntestedLibrary:
        return UntestedLibrary(
            f"Switchboard was tested with {self.name}=={self.tested}; this install has "
            f"{self.name} {self.installed()}: {what}. {FIX}"
        )

    def require(self, holds: bool, what: str) -> None:
        """Stop the import, saying ``what`` moved, unless ``holds``."""
        if not holds:
            raise self.changed(what)

    def module(self, name: str) -> ModuleType:
        """The library's module ``name``."""
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not f"{name}.".startswith(f"{exc.name}."):
                raise  # something it imports is missing, not the module itself
            raise self.changed(f"module {name} is gone") from None

    def attribute(self, owner: object, name: str, kind: type | None = None) -> Any:
        """``owner.name`` (of ``kind`` when given)."""
        if not hasattr(owner, name):
            raise self.changed(f"{_where(owner)}.{name} is gone")
        found = getattr(owner, name)
        self.require(
            kind is None or isinstance(found, kind),
            f"{_where(owner)}.{name} is no longer a {getattr(kind, '__name__', kind)}",
        )
        return found

    def function(self, owner: object, name: str, parameters: Sequence[str]) -> Callable[..., Any]:
        """``owner.name``, callable with ``parameters`` (in this order; any others have defaults)."""
        found: Callable[..., Any] = self.attribute(owner, name)
        self.require(callable(found), f"{_where(owner)}.{name} is no longer callable")
        signature = list(inspect.signature(found).parameters.values())
        takes = [p.name for p in signature]
        rest = signature[len(parameters) :]
        optional = all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in rest)
        self.require(
            takes[: len(parameters)] == list(parameters) and optional,
            f"{_where(owner)}.{name} takes ({', '.join(takes)}), not ({', '.join(parameters)})",
        )
        return found

    def reads(self, owner: object, function: str, name: str) -> None:
        """That ``owner.function`` still looks ``name`` up when it runs, so that setting ``name``
        changes what it does (rather than setting something nothing reads)."""
        code = getattr(self.attribute(owner, function), "__code__", None)
        self.require(
            code is not None and name in set(_names(code)), f"{_where(owner)}.{function} no longer reads {name}"
        )

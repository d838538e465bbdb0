"""The alert channel kinds: one module each in this package, every one holding its ``KIND``
(lib.notify.spec: its key, label, fields and sender). Adding a kind is adding a module here.

The service checks a channel's values against its kind's fields (lib.services.alerts.channels),
every delivery attempt checks them again (lib.notify.send), and the command line's options and
the Monitoring page's inputs are drawn from them.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from types import MappingProxyType

from lib.kernel.errors import FieldError, ValidationError
from lib.notify.spec import SLOTS, Field, Kind


def discover() -> Mapping[str, Kind]:
    """Every module's ``KIND``, by key, in their ``listed`` order. A module without one, or a
    key used twice, stops the start: a kind must not go missing silently."""
    found: dict[str, Kind] = {}
    for module in pkgutil.iter_modules(__path__, prefix=f"{__name__}."):
        kind = getattr(importlib.import_module(module.name), "KIND", None)
        if not isinstance(kind, Kind) or kind.key in found:
            raise RuntimeError(f"{module.name} must define KIND, a lib.notify.spec.Kind with a key of its own.")
        found[kind.key] = kind
    return MappingProxyType(dict(sorted(found.items(), key=lambda item: (item[1].listed, item[0]))))


KINDS: Mapping[str, Kind] = discover()


def get(key: str) -> Kind:
    """The kind called ``key``; :class:`ValidationError` on the kind field, naming the choices."""
    try:
        return KINDS[key]
    except KeyError:
        raise ValidationError([FieldError("kind", "Kind", f"Choose one of {', '.join(KINDS)}.")]) from None


def fields(name: str) -> list[tuple[Kind, Field]]:
    """The kinds that take a field called ``name``, each with its own version of it."""
    return [(kind, field) for kind in KINDS.values() if (field := kind.field(name)) is not None]


def slots() -> list[str]:
    """The fields some kind takes, in the order the command line reads them from standard input."""
    return [name for name in SLOTS if fields(name)]

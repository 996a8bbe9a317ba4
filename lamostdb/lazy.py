"""Package attributes imported on first use (layer 0).

A package whose ``__init__`` re-exports names from heavy submodules (astropy, DuckDB, the
engine) makes everyone who imports any of its modules pay for all of them; a classify worker
or the command line's parser then starts seconds slower. Such a package sets
``__getattr__ = lazy_attributes(__name__, {name: submodule, ...})`` instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, homes: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__``: ``name`` comes from ``package.<homes[name]>``, imported then.

    >>> getattr_ = lazy_attributes("lamostdb", {"VERSION": "version"})
    >>> getattr_("VERSION") == __import__("lamostdb.version").version.VERSION
    True
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{home}"), name)

    return __getattr__

"""The catalogue's error type, at the bottom of ``catalog/`` so that every module can raise it.

:mod:`lamostdb.catalog.store` re-exports it: ``from lamostdb.catalog.store import
CatalogError`` keeps working.
"""

from __future__ import annotations


class CatalogError(RuntimeError):
    """The catalogue folder is missing, damaged or busy; the message says what to do."""

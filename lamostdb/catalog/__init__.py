"""The on-disk catalogue: layout, ledger, atomic commits, ingest, views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamostdb.catalog.store import Catalog, CatalogError, open_catalog


def __getattr__(name: str) -> Any:
    # lazy: a classify worker imports lamostdb.catalog.commit and must not pay for the store
    # (DuckDB, astropy coordinates through the HEALPix macros: 0.4 s per process start)
    if name in __all__:
        from lamostdb.catalog import store

        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Catalog", "CatalogError", "open_catalog"]

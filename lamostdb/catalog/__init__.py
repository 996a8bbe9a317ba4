"""The on-disk catalogue: layout, ledger, atomic commits, ingest, views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamostdb.lazy import lazy_attributes

if TYPE_CHECKING:
    from lamostdb.catalog.store import Catalog, CatalogError, open_catalog


# lazy: a classify worker imports lamostdb.catalog.commit and must not pay for the store
# (DuckDB, astropy coordinates through the HEALPix macros: 0.4 s per process start)
__all__ = ["Catalog", "CatalogError", "open_catalog"]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "store"))

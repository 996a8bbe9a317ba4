"""The on-disk catalogue: layout, ledger, atomic commits, ingest, views."""

from lamostdb.catalog.store import Catalog, CatalogError, open_catalog

__all__ = ["Catalog", "CatalogError", "open_catalog"]

"""Reference catalogues (Gaia, Pan-STARRS1): read any common table format, map the columns
by ``column_map.json``, store them as the HATS tables ``gaia`` and ``ps1``.
"""

from lamostdb.refcat.readers import (
    KINDS,
    SUPPORTED_FORMATS,
    RefcatError,
    accepted_names,
    column_map,
    read_source,
    resolve_columns,
)
from lamostdb.refcat.stage import FileReport, RefcatReport, ingest_refcat

__all__ = [
    "KINDS",
    "SUPPORTED_FORMATS",
    "FileReport",
    "RefcatError",
    "RefcatReport",
    "accepted_names",
    "column_map",
    "ingest_refcat",
    "read_source",
    "resolve_columns",
]

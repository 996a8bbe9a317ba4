"""Reference catalogues (Gaia, Pan-STARRS1): read any common table format, map the columns
by ``column_map.json``, store them as the HATS tables ``gaia`` and ``ps1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamostdb.lazy import lazy_attributes

if TYPE_CHECKING:
    from lamostdb.refcat.kinds import KINDS, SUPPORTED_FORMATS, RefcatError
    from lamostdb.refcat.readers import (
        accepted_names,
        column_map,
        read_source,
        resolve_columns,
    )
    from lamostdb.refcat.stage import FileReport, RefcatReport, ingest_refcat

_HOME = {
    "KINDS": "kinds",
    "SUPPORTED_FORMATS": "kinds",
    "RefcatError": "kinds",
    "accepted_names": "readers",
    "column_map": "readers",
    "read_source": "readers",
    "resolve_columns": "readers",
    "FileReport": "stage",
    "RefcatReport": "stage",
    "ingest_refcat": "stage",
}


# lazy: the command line lists the kinds and formats in its help at every start, without
# importing the readers (astropy tables) and the stage
__getattr__ = lazy_attributes(__name__, _HOME)


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

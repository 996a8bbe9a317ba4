"""Which table HDU of a spectrum file is the spectrum, and which the metadata.

FITS names (EXTNAME, TTYPEn) are case-insensitive, and real files carry tables whose
EXTNAME is blank or unexpected. So a table's role is decided by its columns first and
its name second, in one place shared by the fast reader and the astropy readers:

- ``sdss_coadd``: an SDSS/BOSS coadded spectrum (columns flux, loglam, ivar);
- ``lamost_coadd``: a LAMOST DR9+ coadded spectrum (columns FLUX, WAVELENGTH, IVAR);
- ``sdss_meta``: the SDSS SPECOBJ / SPALL row (columns PLUG_RA, Z, CLASS).

>>> table_role(["FLUX", "LogLam", "ivar", "AND_MASK"])
'sdss_coadd'
>>> table_role(["flux", "ivar", "wavelength", "andmask"])
'lamost_coadd'
>>> table_role(["PLATE", "plug_ra", "Z", "Class"])
'sdss_meta'
>>> table_role(["FLUX", "IVAR"]) is None  # e.g. a table named COADD without a wavelength
True
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "LAMOST_COADD_COLUMNS",
    "SDSS_COADD_COLUMNS",
    "SDSS_META_COLUMNS",
    "TableInfo",
    "astropy_tables",
    "column_lookup",
    "describe_tables",
    "find_meta_table",
    "find_spectrum_table",
    "table_role",
]

V = TypeVar("V")
#: One table HDU as the finders see it: (HDU index, EXTNAME or None, column names).
TableInfo = tuple[int, str | None, tuple[str, ...]]

#: Columns (upper case) that identify each table, whatever its EXTNAME.
SDSS_COADD_COLUMNS = frozenset({"FLUX", "LOGLAM", "IVAR"})
LAMOST_COADD_COLUMNS = frozenset({"FLUX", "WAVELENGTH", "IVAR"})
SDSS_META_COLUMNS = frozenset({"PLUG_RA", "Z", "CLASS"})


def table_role(column_names: Iterable[str]) -> str | None:
    """Role of a binary table from its column names (any case).

    The EXTNAME is not consulted: the columns alone decide, so a blank or unusual name
    changes nothing and a table named ``COADD`` without the columns is still unusable.

    Parameters
    ----------
    column_names
        The table's TTYPEn values.

    Returns
    -------
    str or None
        ``sdss_coadd``, ``lamost_coadd``, ``sdss_meta`` or None (no recognisable role).
    """
    cols = {str(c).strip().upper() for c in column_names}
    if SDSS_COADD_COLUMNS <= cols:
        return "sdss_coadd"
    if LAMOST_COADD_COLUMNS <= cols:
        return "lamost_coadd"
    if SDSS_META_COLUMNS <= cols:
        return "sdss_meta"
    return None


def column_lookup(columns: Mapping[str, V]) -> dict[str, V]:
    """The same mapping keyed by upper-case, stripped column name.

    >>> column_lookup({"loglam": 1, "Flux ": 2})
    {'LOGLAM': 1, 'FLUX': 2}
    """
    return {str(k).strip().upper(): v for k, v in columns.items()}


def describe_tables(tables: Iterable[tuple[int, str | None, Iterable[str]]]) -> str:
    """Short text listing each table HDU (index, EXTNAME, columns) for error messages.

    >>> describe_tables([(1, "", ["A", "B"])])
    'HDU 1 (EXTNAME blank) has columns A, B'
    """
    parts = []
    for index, extname, cols in tables:
        name = f"EXTNAME {extname.strip()!r}" if extname and extname.strip() else "EXTNAME blank"
        parts.append(f"HDU {index} ({name}) has columns {', '.join(map(str, cols)) or 'none'}")
    return "; ".join(parts) if parts else "no table HDU"


def _name_is(extname: str | None, *names: str) -> bool:
    return (extname or "").strip().upper() in names


def find_spectrum_table(tables: Iterable[TableInfo]) -> tuple[int, str] | None:
    """The table holding the coadded spectrum, and its role.

    Tables are recognised by their columns whatever their name. SDSS files also hold
    one per-exposure table with the same columns (flux, loglam, ivar) per exposure after
    the coadd, so among recognised tables one named ``COADD`` (any case) wins, then the
    first in file order (the coadd comes first). Failing all that, a table named
    ``COADD`` without the columns is taken as a LAMOST one (its reader then says which
    columns it lacks). None when no table qualifies.

    >>> find_spectrum_table([(1, "", ("LOGLAM", "FLUX", "IVAR")), (2, "SPALL", ("Z",)),
    ...                      (4, "B1-0001", ("flux", "loglam", "ivar", "mask"))])
    (1, 'sdss_coadd')
    >>> find_spectrum_table([(1, "R1-0001", ("FLUX", "LOGLAM", "IVAR")),
    ...                      (2, "Coadd", ("FLUX", "LOGLAM", "IVAR"))])
    (2, 'sdss_coadd')
    >>> find_spectrum_table([(1, "coadd", ("FLUX", "IVAR"))])
    (1, 'lamost_coadd')
    """
    tables = list(tables)
    recognised = [
        (index, extname, role)
        for index, extname, cols in tables
        if (role := table_role(cols)) in ("sdss_coadd", "lamost_coadd")
    ]
    for index, extname, role in recognised:
        if _name_is(extname, "COADD"):
            return index, str(role)
    if recognised:
        return recognised[0][0], str(recognised[0][2])
    for index, extname, _cols in tables:
        if _name_is(extname, "COADD"):
            return index, "lamost_coadd"
    return None


def find_meta_table(tables: Iterable[TableInfo]) -> int | None:
    """Index of the SDSS SPECOBJ / SPALL table: by its columns, else by its name (any case).

    >>> find_meta_table([(1, "COADD", ("FLUX",)), (2, "", ("PLUG_RA", "Z", "CLASS"))])
    2
    >>> find_meta_table([(2, "specobj", ("PLATE",))])
    2
    """
    tables = list(tables)
    for index, _extname, cols in tables:
        if table_role(cols) == "sdss_meta":
            return index
    for index, extname, _cols in tables:
        if _name_is(extname, "SPECOBJ", "SPALL"):
            return index
    return None


def astropy_tables(hdul: Any) -> list[TableInfo]:
    """The binary/ASCII table HDUs of an open astropy HDUList as :data:`TableInfo`."""
    out: list[TableInfo] = []
    for index, hdu in enumerate(hdul):
        if index == 0 or not hasattr(hdu, "columns"):
            continue
        out.append((index, hdu.header.get("EXTNAME"), tuple(hdu.columns.names)))
    return out

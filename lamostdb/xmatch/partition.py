"""The xmatch partition function: one partition's spectra + nearby reference rows in,
``xmatch`` rows out. It touches no files.

:func:`xmatch_partition` takes the spectra of one partition (or a bounded group of
partitions) and, per reference table, the reference rows that can match them: those of the
overlapping reference partitions plus their margin (a HATS margin cache, or the
neighbouring partitions). It returns one ``xmatch`` row per spectrum, in the contract's
columns, sorted by ``(_healpix_29, specid)``.

Ambiguity rule: a match is ambiguous when there are two or more candidates within the
radius and the second nearest is within ``max(1.5 x best, best + 1 arcsec)`` — close
enough that position alone cannot tell which one the fibre saw (LAMOST fibres are 3.3"
wide). Ambiguous matches keep the nearest candidate; nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa

from lamostdb.catalog.schema import empty_table, load_schema
from lamostdb.healpix.join import crossmatch_pairs
from lamostdb.healpix.join import registered as _registered
from lamostdb.io.sqlfiles import statement

#: Reference tables matched, in the order of the xmatch columns.
REFERENCES = ("gaia", "ps1")
AMBIGUOUS_RATIO = 1.5
AMBIGUOUS_DELTA_ARCSEC = 1.0
#: Columns of the spectra input (the ``todo`` statement of ``sql/xmatch.sql``).
SPECTRA_COLUMNS = (
    "specid",
    "source_sha256",
    "obsid",
    "ra",
    "dec",
    "mjd",
    "_healpix_29",
    "epoch_jyear",
)


@dataclass(frozen=True)
class XmatchConfig:
    """What one xmatch run asks of every partition.

    Parameters
    ----------
    radius_arcsec
        Match radius.
    run_id
        Stored in every output row.
    """

    radius_arcsec: float = 3.0
    run_id: str = ""

    def __post_init__(self) -> None:
        if not (np.isfinite(self.radius_arcsec) and self.radius_arcsec > 0):
            raise ValueError(f"radius_arcsec must be a positive number, got {self.radius_arcsec}")


def best_matches(con: duckdb.DuckDBPyConnection, pairs: pa.Table) -> pa.Table:
    """Nearest pair per ``left_id`` of :func:`crossmatch_pairs` output, with ``n_within``
    and ``ambiguous`` (second nearest within max(1.5 x best, best + 1 arcsec)).

    Ties in separation go to the smaller ``right_id``.
    """
    with _registered(con, xm_pairs=pairs):
        return con.sql(
            statement("xmatch.sql", "best"),
            params={
                "ambiguous_ratio": AMBIGUOUS_RATIO,
                "ambiguous_delta_arcsec": AMBIGUOUS_DELTA_ARCSEC,
            },
        ).to_arrow_table()


def _best(
    con: duckdb.DuckDBPyConnection, kind: str, left: pa.Table, ref: pa.Table, radius_arcsec: float
) -> pa.Table:
    """Best-match columns of ``kind`` for each left row (``row`` plus the xmatch columns)."""
    with _registered(con, xm_ref_files=ref):
        right = con.sql(statement("xmatch.sql", f"{kind}_source"))
        pairs = crossmatch_pairs(
            con, left, right, radius_arcsec=radius_arcsec, proper_motion=(kind == "gaia")
        )
        best = best_matches(con, pairs)
        with _registered(con, xm_best=best):
            return con.sql(statement("xmatch.sql", f"{kind}_best")).to_arrow_table()


def reference_rows(kind: str, table: pa.Table | None) -> pa.Table:
    """``table`` in the stored columns of ``kind`` (absent columns null); ``None``: no rows."""
    schema = load_schema(kind).arrow_schema()
    if table is None:
        return empty_table(schema)
    cols = {
        f.name: (
            table.column(f.name).cast(f.type)
            if f.name in table.column_names
            else pa.nulls(table.num_rows, f.type)
        )
        for f in schema
    }
    return pa.table(cols, schema=schema)


def xmatch_partition(
    spectra: pa.Table,
    refs: Mapping[str, pa.Table | None],
    config: XmatchConfig,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Best Gaia and PS1 counterpart of every spectrum of ``spectra``.

    Parameters
    ----------
    spectra
        Rows with :data:`SPECTRA_COLUMNS` (``epoch_jyear`` may be null: no motion).
    refs
        Per reference table (``"gaia"``, ``"ps1"``): the rows that may match these spectra
        (their partitions plus the margin), in the stored columns (``schemas/gaia.json``,
        ``schemas/ps1.json``; missing optional columns are read as null). A table that is
        absent or ``None`` leaves its match columns null. Rows outside the radius of every
        spectrum are harmless: the pixel join ignores them.
    config
        Radius and run id.
    con
        DuckDB connection to run the joins on (default: a new in-memory one).

    Returns
    -------
    pyarrow.Table
        One row per spectrum in the ``xmatch`` contract, sorted by ``(_healpix_29, specid)``.

    Examples
    --------
    >>> import pyarrow as pa
    >>> from lamostdb.healpix import healpix_29
    >>> spec = pa.table({"specid": ["s1"], "source_sha256": ["ab"], "obsid": [1],
    ...                  "ra": [10.0], "dec": [20.0], "mjd": [58000],
    ...                  "_healpix_29": healpix_29([10.0], [20.0]), "epoch_jyear": [2016.0]})
    >>> gaia = pa.table({"source_id": [7, 8], "ra": [10.0002, 10.5], "dec": [20.0, 20.0],
    ...                  "pmra": [0.0, 0.0], "pmdec": [0.0, 0.0], "ref_epoch": [2016.0, 2016.0],
    ...                  "_healpix_29": healpix_29([10.0002, 10.5], [20.0, 20.0])})
    >>> out = xmatch_partition(spec, {"gaia": gaia}, XmatchConfig(3.0, "run1"))
    >>> out.column("gaia_source_id").to_pylist(), out.column("ps1_objid").to_pylist()
    ([7], [None])
    """
    missing = [c for c in SPECTRA_COLUMNS if c not in spectra.column_names]
    if missing:
        raise KeyError(
            f"spectra lack column(s) {missing}; xmatch_partition needs {list(SPECTRA_COLUMNS)}"
        )
    own = con is None
    con = duckdb.connect() if con is None else con
    try:
        rows = pa.array(np.arange(spectra.num_rows, dtype=np.int64))
        left = pa.table(
            {
                "id": rows,
                "ra": spectra.column("ra"),
                "dec": spectra.column("dec"),
                "_healpix_29": spectra.column("_healpix_29"),
                "epoch_jyear": spectra.column("epoch_jyear"),
            }
        )
        best = {
            kind: _best(
                con, kind, left, reference_rows(kind, refs.get(kind)), float(config.radius_arcsec)
            )
            for kind in REFERENCES
        }
        part = spectra.select(list(SPECTRA_COLUMNS)).append_column("row", rows)
        with _registered(con, xm_spectra=part, xm_gaia=best["gaia"], xm_ps1=best["ps1"]):
            out = con.sql(
                statement("xmatch.sql", "assemble"),
                params={"radius_arcsec": float(config.radius_arcsec), "run_id": config.run_id},
            ).to_arrow_table()
    finally:
        if own:
            con.close()
    return out.cast(load_schema("xmatch").arrow_schema())

"""Materialised HATS tables of the catalogue's *current* rows, for LSDB and hats users.

A catalogue's HATS folders (``<catalogue>/spectra``, ``results``, ``candidates``, ``xmatch``,
``objects``) hold each table's whole history: every stored spectrum version and every
stage run, appended by each commit and never rewritten. ``lsdb.read_hats`` opens them as
they are; their rows are those of SQL's ``<table>_history``. The SQL views of the same
names (``sql/views*.sql``) show the current rows: the current version of each spectrum
less withdrawn ones, and the latest run of each stage for those. A view is a filter over
the history that plain Parquet readers cannot apply (it joins the ledger and ranks runs),
so :func:`write_current_hats` writes what the views show as separate HATS tables::

    <out>/<table>/properties, hats.properties, partition_info.csv
    <out>/<table>/dataset/_metadata, _common_metadata
    <out>/<table>/dataset/Norder=K/Dir=D/Npix=N/part-current.parquet

with the partitions of the catalogue's own table (the same ``Norder``/``Npix`` leaves,
whatever order each leaf has), one file per leaf. ``lsdb.read_hats(out / table)`` then
gives exactly ``SELECT * FROM <table>``. It is a copy as of the snapshot it was written
from: run it again after a commit to refresh it (each table's folder is replaced whole).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from lamostdb.catalog.errors import CatalogError
from lamostdb.catalog.hats import TableFile, leaf_relpath, write_table_metadata
from lamostdb.catalog.schema import load_schema
from lamostdb.catalog.store import Catalog
from lamostdb.healpix import pixel_at_order
from lamostdb.io.parquet import SPECTRA_ENCODING, ParquetEncoding, write_parquet
from lamostdb.io.sqlfiles import statement

#: Tables whose SQL name is a view over a history table (the same HATS folder name).
CURRENT_TABLES = ("spectra", "results", "candidates", "xmatch", "objects")
#: Name of the one Parquet file of each leaf.
LEAF_FILE = "part-current.parquet"
BATCH_ROWS = 8192


@dataclass(frozen=True)
class CurrentTable:
    """One materialised table: its folder, row count and leaves."""

    table: str
    path: Path
    n_rows: int
    n_leaves: int


def _leaf_of(
    hp29: np.ndarray, leaves: dict[int, set[int]], default_order: int
) -> tuple[np.ndarray, np.ndarray]:
    """(Norder, Npix) of the catalogue leaf holding each ``_healpix_29`` value.

    Leaves do not overlap (a HATS table), so a row's leaf is the one of the orders that
    contains its pixel at that order; a row in no leaf (none: the view reads these same
    files) would go to ``default_order``.
    """
    norder = np.full(hp29.size, default_order, dtype=np.int64)
    npix = pixel_at_order(hp29, default_order)
    found = np.zeros(hp29.size, dtype=bool)
    for order, pixels in sorted(leaves.items()):
        at = pixel_at_order(hp29, order)
        hit = ~found & np.isin(at, np.fromiter(pixels, dtype=np.int64, count=len(pixels)))
        norder[hit], npix[hit] = order, at[hit]
        found |= hit
    return norder, npix


def leaf_runs(
    batches: Iterator[pa.RecordBatch], leaves: dict[int, set[int]], default_order: int
) -> Iterator[tuple[tuple[int, int], pa.Table]]:
    """Whole leaves, in pixel order, from batches sorted by ``_healpix_29``.

    Parameters
    ----------
    batches
        Rows sorted by ``_healpix_29`` (a leaf's rows are then contiguous, whatever its
        order, since nested pixels are ranges of ``_healpix_29``).
    leaves
        The table's leaves: order -> pixels at that order.
    default_order
        Order of the leaf of a row that no leaf holds.

    Yields
    ------
    ((Norder, Npix), pyarrow.Table)
        Each leaf once, with all its rows.
    """
    key: tuple[int, int] | None = None
    pending: list[pa.Table] = []
    for batch in batches:
        if batch.num_rows == 0:
            continue
        tbl = pa.Table.from_batches([batch])
        norder, npix = _leaf_of(tbl.column("_healpix_29").to_numpy(), leaves, default_order)
        cuts = np.flatnonzero((norder[1:] != norder[:-1]) | (npix[1:] != npix[:-1])) + 1
        for a, b in zip(np.r_[0, cuts], np.r_[cuts, tbl.num_rows], strict=True):
            here = (int(norder[a]), int(npix[a]))
            if key is not None and here != key:
                yield key, pa.concat_tables(pending)
                pending = []
            key = here
            pending.append(tbl.slice(int(a), int(b - a)))
    if key is not None:
        yield key, pa.concat_tables(pending)


def _replace_dir(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final``, removing what was there."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def write_current_table(cat: Catalog, table: str, out: Path) -> CurrentTable:
    """Write the current rows of ``table`` (the SQL view) as the HATS table ``out/table``."""
    if table not in CURRENT_TABLES:
        raise ValueError(f"no current view for {table!r}; choose one of {CURRENT_TABLES}")
    schema = load_schema(table)
    arrow_schema = schema.arrow_schema()
    default_order = cat.partition_order
    history = cat.table_files(table)
    leaves: dict[int, set[int]] = {}
    for f in history:
        leaves.setdefault(f.norder, set()).add(f.npix)
    encoding: ParquetEncoding = SPECTRA_ENCODING if table == "spectra" else {}
    tmp = out / f".tmp-{table}-{os.getpid()}"  # holds tmp/<table> until it is complete
    shutil.rmtree(tmp, ignore_errors=True)
    files: list[TableFile] = []
    reader = cat.con.sql(statement("hats.sql", f"current_{table}")).to_arrow_reader(BATCH_ROWS)
    for (norder, npix), rows in leaf_runs(iter(reader), leaves, default_order):
        rel = f"{leaf_relpath(table, norder, npix)}/{LEAF_FILE}"
        data = rows.select(arrow_schema.names).cast(arrow_schema)
        write_parquet(data, tmp / rel, **encoding)
        files.append(TableFile(rel, norder, npix, data.num_rows))
    write_table_metadata(
        tmp, table, files, arrow_schema, ra_column=schema.ra_column, dec_column=schema.dec_column
    )
    _replace_dir(tmp / table, out / table)
    shutil.rmtree(tmp, ignore_errors=True)
    return CurrentTable(table, out / table, sum(f.n_rows for f in files), len(files))


def write_current_hats(
    cat: Catalog, out: str | Path, tables: Sequence[str] = CURRENT_TABLES
) -> list[CurrentTable]:
    """Write the current rows of each of ``tables`` as HATS tables under ``out``.

    Parameters
    ----------
    cat
        The catalogue (a reader is enough: the rows are those of its snapshot).
    out
        Folder to write ``out/<table>`` into (created if needed). Not the catalogue's
        own folder, whose HATS tables are the histories.
    tables
        Which views to materialise (default: all of :data:`CURRENT_TABLES`).

    Returns
    -------
    list of CurrentTable
        One per table, in the order asked.
    """
    out = Path(out).resolve()
    if out == cat.root:
        raise CatalogError(
            f"{out} is the catalogue itself, whose HATS tables are the "
            "histories; write the current tables to another folder"
        )
    unknown = [t for t in tables if t not in CURRENT_TABLES]
    if unknown:
        raise ValueError(f"no current view for {unknown}; choose among {CURRENT_TABLES}")
    out.mkdir(parents=True, exist_ok=True)
    return [write_current_table(cat, t, out) for t in tables]

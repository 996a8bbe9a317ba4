"""Catalogue views (``lrs``, ``mec``) to FITS binary tables, streamed in Arrow batches.

Two passes over the view's query, each holding one batch at a time: the first measures
what the FITS layout needs (row count, string widths, heap size), the second writes the
rows. The view's columns are checked against its contract in ``schemas/``, which gives
each column its unit, description and display format.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
from tqdm import tqdm

from lamostdb.catalog.schema import load_schema
from lamostdb.export.columns import ColumnStats, contract_columns, fits_column, prepare_batch
from lamostdb.export.errors import ExportError
from lamostdb.export.header import ReleaseInfo
from lamostdb.io.fits_bintable import write_table_file
from lamostdb.io.sqlfiles import statement

#: view -> its statement in sql/export.sql
TABLE_STATEMENTS = {"lrs": "lrs_rows", "mec": "mec_rows"}


@dataclass(frozen=True)
class TableExport:
    """One exported catalogue table."""

    view: str
    path: Path
    nrows: int
    max_batch_rows: int


def _batches(
    con: duckdb.DuckDBPyConnection, query: str, batch_size: int
) -> Iterator[pa.RecordBatch]:
    yield from con.sql(query).to_arrow_reader(batch_size)


def export_table(
    con: duckdb.DuckDBPyConnection,
    view: str,
    path: Path,
    *,
    release: ReleaseInfo,
    batch_size: int,
    progress: bool = False,
) -> TableExport:
    """Write the release's rows of ``view`` (``lrs`` or ``mec``) to the FITS file ``path``.

    ``con`` must hold the ``export_selection`` temp table (``sql/export.sql``).
    """
    if view not in TABLE_STATEMENTS:
        raise ValueError(f"no export for view {view!r}; choose one of {sorted(TABLE_STATEMENTS)}")
    query = statement("export.sql", TABLE_STATEMENTS[view])
    columns = contract_columns(load_schema(view), con.sql(query).columns)
    stats = ColumnStats()
    for batch in _batches(con, query, batch_size):
        stats.update(batch, columns)
    fits_columns = [fits_column(c, stats) for c in columns]
    nrows_card = ("NROWS", stats.nrows, "rows in the table")
    primary = [*release.cards(), ("TABLE", view, "lamostdb view exported"), nrows_card]
    seen = {"max_batch_rows": 0}
    bar = tqdm(total=stats.nrows, unit="row", desc=f"export {view}", disable=not progress)

    def prepared() -> Iterator[pa.RecordBatch]:
        for batch in _batches(con, query, batch_size):
            seen["max_batch_rows"] = max(seen["max_batch_rows"], batch.num_rows)
            yield prepare_batch(batch, columns)
            bar.update(batch.num_rows)

    try:
        nrows = write_table_file(
            path,
            primary_cards=primary,
            columns=fits_columns,
            batches=prepared(),
            extname=view.upper(),
            cards=release.cards(),
        )
    finally:
        bar.close()
    if nrows != stats.nrows:
        raise ExportError(
            f"view {view} gave {stats.nrows} rows, then {nrows}: the catalogue "
            "changed during the export; run it again"
        )
    return TableExport(view, path, nrows, seen["max_batch_rows"])

"""The refcat partition function: a batch of mapped reference rows -> one Arrow table per
HEALPix partition. It touches no files.

:func:`partition_rows` adds the order-29 pixel and the run id to rows already in the
``gaia`` / ``ps1`` contract columns (:func:`lamostdb.refcat.readers.map_rows`), sorts them by
``(_healpix_29, id)`` and splits them by partition pixel. :func:`merge_pieces` joins the
pieces of one partition (from several batches) into the stored order again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from lamostdb.catalog.schema import empty_table, load_schema
from lamostdb.healpix import healpix_29, pixel_at_order
from lamostdb.refcat.readers import KINDS, column_map


@dataclass(frozen=True)
class RefcatConfig:
    """What every batch of one refcat run shares: the table, its partition order, the run."""

    kind: str
    partition_order: int
    run_id: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")


def _sorted(table: pa.Table, kind: str) -> pa.Table:
    id_col = column_map()[kind]["id"]
    order = np.lexsort((table.column(id_col).to_numpy(), table.column("_healpix_29").to_numpy()))
    return table.take(pa.array(order))


def partition_rows(rows: pa.Table, config: RefcatConfig) -> dict[int, pa.Table]:
    """Rows to store, by partition pixel, each in the contract schema and stored order.

    Parameters
    ----------
    rows
        Contract columns of ``config.kind`` without ``_healpix_29`` and ``ingest_run``
        (duplicates already removed).
    config
        Table, partition order, run id.

    Examples
    --------
    >>> import pyarrow as pa
    >>> rows = pa.table({"objID": [2, 1], "raMean": [10.0, 200.0], "decMean": [5.0, -5.0]})
    >>> parts = partition_rows(rows, RefcatConfig("ps1", 0, "r1"))
    >>> sorted((pix, t.column("objID").to_pylist()) for pix, t in parts.items())
    [(4, [2]), (6, [1])]
    """
    schema = load_schema(config.kind).arrow_schema()
    spec = column_map()[config.kind]
    ra = rows.column(spec["ra"]).to_numpy(zero_copy_only=False)
    dec = rows.column(spec["dec"]).to_numpy(zero_copy_only=False)
    cols = {
        f.name: (
            rows.column(f.name) if f.name in rows.column_names else pa.nulls(rows.num_rows, f.type)
        )
        for f in schema
    }
    cols["_healpix_29"] = pa.array(healpix_29(ra, dec), pa.int64())
    cols["ingest_run"] = pa.array(np.full(rows.num_rows, config.run_id, dtype=object), pa.string())
    table = _sorted(pa.table(cols).cast(schema), config.kind)
    if table.num_rows == 0:
        return {}
    pix = pixel_at_order(table.column("_healpix_29").to_numpy(), config.partition_order)
    bounds = np.flatnonzero(np.r_[True, pix[1:] != pix[:-1], True])
    return {
        int(pix[a]): table.slice(int(a), int(b - a))
        for a, b in zip(bounds[:-1], bounds[1:], strict=True)
    }


def merge_pieces(pieces: Sequence[pa.Table], kind: str) -> pa.Table:
    """The pieces of one partition as one table in the stored order ``(_healpix_29, id)``."""
    schema = load_schema(kind).arrow_schema()
    if not pieces:
        return empty_table(schema)
    table = pa.concat_tables([p.select(schema.names).cast(schema) for p in pieces])
    return _sorted(table, kind).combine_chunks()

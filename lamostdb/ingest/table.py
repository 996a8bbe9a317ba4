"""Spectrum records to an Arrow table that follows ``schemas/spectra.json``.

No per-pixel Python: the list columns are built from one concatenated numpy buffer
and an offsets array per column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from lamostdb.catalog.schema import load_schema
from lamostdb.healpix import healpix_29
from lamostdb.io.record import SpectrumRecord

_LIST_COLUMNS = {"flux": np.float32, "ivar": np.float32, "andmask": np.int32, "ormask": np.int32}


def _list_array(
    arrays: Sequence[np.ndarray | None], dtype: type, arrow_type: pa.DataType
) -> pa.Array:
    lengths = np.array([0 if a is None else len(a) for a in arrays], dtype=np.int32)
    offsets = np.zeros(len(arrays) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [a for a in arrays if a is not None]
    values: np.ndarray = (
        np.concatenate(present).astype(dtype, copy=False) if present else np.zeros(0, dtype=dtype)
    )
    mask = pa.array([a is None for a in arrays]) if any(a is None for a in arrays) else None
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(values, type=arrow_type.value_type), type=arrow_type, mask=mask
    )


def records_healpix(records: Sequence[SpectrumRecord]) -> np.ndarray:
    """``_healpix_29`` of each record."""
    if not records:
        return np.zeros(0, dtype=np.int64)
    return healpix_29(np.array([r.ra for r in records]), np.array([r.dec for r in records]))


def records_to_table(
    records: Sequence[SpectrumRecord], *, ingest_run: str, hp: np.ndarray | None = None
) -> pa.Table:
    """Build the ``spectra`` Arrow table, rows sorted by ``_healpix_29``.

    Records are put in order before the columns are built: reordering a finished
    table would copy every list column once more.
    """
    schema = load_schema("spectra").arrow_schema()
    n = len(records)
    if hp is None:
        hp = records_healpix(records)
    order = np.argsort(hp, kind="stable")
    records = [records[i] for i in order]
    hp = hp[order]
    columns: dict[str, pa.Array] = {}
    for field in schema:
        name = field.name
        if name in _LIST_COLUMNS:
            columns[name] = _list_array(
                [getattr(r, name) for r in records], _LIST_COLUMNS[name], field.type
            )
        elif name == "wavelength":
            columns[name] = _list_array([r.wavelength for r in records], np.float64, field.type)
        elif name == "_healpix_29":
            columns[name] = pa.array(hp, type=pa.int64())
        elif name == "ingest_run":
            columns[name] = pa.array([ingest_run] * n, type=pa.string())
        else:
            columns[name] = pa.array([getattr(r, name) for r in records], type=field.type)
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)

"""The ingest partition function: parsed spectrum records in, one table per partition out.

:func:`spectra_partitions` is pure: it places each record in its HEALPix partition at the
catalogue's order (``_healpix_29`` shifted, :func:`lamostdb.healpix.pixel_at_order`) and
builds that partition's ``spectra`` rows (``schemas/spectra.json``). A record the table
cannot hold is refused alone, with the reason, and the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from lamostdb.healpix import pixel_at_order
from lamostdb.ingest.table import records_healpix, records_to_table
from lamostdb.io.record import SpectrumRecord


@dataclass(frozen=True)
class SpectraPartitions:
    """What :func:`spectra_partitions` returns."""

    #: partition (nested pixel at the catalogue's order) -> its rows
    tables: dict[int, pa.Table] = field(default_factory=dict)
    #: position in the input of each refused record -> the reason
    refused: dict[int, str] = field(default_factory=dict)


def spectra_partitions(
    records: Sequence[SpectrumRecord], *, run_id: str, order: int
) -> SpectraPartitions:
    """The ``spectra`` rows of ``records``, one Arrow table per partition at ``order``.

    Parameters
    ----------
    records
        Parsed and validated spectra.
    run_id
        The ingest run, written into every row.
    order
        The catalogue's partition order.
    """
    out = SpectraPartitions()
    if not records:
        return out
    hp = records_healpix(records)
    pix = pixel_at_order(hp, order)
    for p in np.unique(pix):
        idx = np.flatnonzero(pix == p)
        part, refused = _table_or_refuse([records[int(i)] for i in idx], run_id, hp[idx])
        for j, reason in refused.items():
            out.refused[int(idx[j])] = reason
        if part is not None:
            out.tables[int(p)] = part
    return out


def _table_or_refuse(
    records: list[SpectrumRecord], run_id: str, hp: np.ndarray
) -> tuple[pa.Table | None, dict[int, str]]:
    """The rows of ``records``; a record the table cannot hold is refused alone.

    Returns the table (None when every record is refused) and, by position in
    ``records``, the reason of each refused one. Validation makes refusals rare: this
    is the last guard that one file cannot fail its chunk.
    """
    try:
        return records_to_table(records, ingest_run=run_id, hp=hp), {}
    except Exception:  # find the culprit(s), keep the rest
        pass
    keep, refused = [], {}
    for i, rec in enumerate(records):
        try:
            records_to_table([rec], ingest_run=run_id, hp=hp[i : i + 1])
            keep.append(i)
        except Exception as exc:
            refused[i] = (
                f"a value does not fit the spectra table ({type(exc).__name__}: "
                f"{exc}); report the file to the lamostdb maintainers"
            )
    if not keep:
        return None, refused
    return records_to_table([records[i] for i in keep], ingest_run=run_id, hp=hp[keep]), refused

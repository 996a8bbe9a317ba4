"""The ids stage's partition function: friends-of-friends links of one group of partitions.

Linking is global (a group of spectra may straddle a partition edge), so the work is
split in two: every group of whole HEALPix partitions (its *core* rows) is joined, with
the one pixel join (:func:`lamostdb.ids.fof.link_pairs`), to itself plus a *margin*: the
rows of the neighbouring partitions that lie in the 3x3 pixel blocks (at the link order)
of the core rows, which holds every row that can be within the radius of a core row. A
pair ``(i, j)``, ``i < j`` in global row numbers, is kept by the group whose core holds
``i``, so the union of all groups' links is the pair set of one join over all rows, each
pair once. The driver (:mod:`lamostdb.ids.stage`) then takes the connected components
and assigns the identifiers centrally (:func:`lamostdb.ids.assign.ids_from_links`).

:func:`link_partition` is pure (Arrow in, Arrow out, no files); :func:`plan_link_groups`
cuts the global position table into (core, margin) inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from lamostdb.healpix import match_order, neighbours, pixel_at_order, pixel_block
from lamostdb.ids.fof import link_pairs

#: Columns of a core or margin table: global row number, position, order-29 pixel.
POINT_COLUMNS = ("id", "ra", "dec", "_healpix_29")
#: Core rows per group (whole partitions): bounds the memory of one join.
GROUP_ROWS = 200_000


@dataclass(frozen=True)
class LinkConfig:
    """Friends-of-friends parameters of one ids run."""

    radius_arcsec: float = 3.0


@dataclass(frozen=True, eq=False)
class LinkGroup:
    """One unit of work: the partitions ``npix`` (at ``order``), their rows and margin."""

    order: int
    npix: tuple[int, ...]
    core: pa.Table
    margin: pa.Table


def link_partition(
    core: pa.Table,
    margin: pa.Table,
    config: LinkConfig,
    *,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pa.Table:
    """Friends-of-friends links ``(i, j)``, ``i < j``, with ``i`` a core row.

    Parameters
    ----------
    core
        The partition's rows: ``id`` (global row number), ``ra``, ``dec``, ``_healpix_29``.
    margin
        Rows of neighbouring partitions that may be within the radius of a core row
        (same columns; more rows are harmless, fewer lose links).
    config
        The linking radius.
    con
        DuckDB connection for the join (a private in-memory one by default).

    Returns
    -------
    pyarrow.Table
        ``i, j`` (int64), sorted.
    """
    right = pa.concat_tables(
        [
            core.select(list(POINT_COLUMNS)),
            margin.select(list(POINT_COLUMNS)).cast(core.select(list(POINT_COLUMNS)).schema),
        ]
    )
    return link_pairs(
        con if con is not None else duckdb.connect(),
        core,
        right,
        radius_arcsec=config.radius_arcsec,
    )


def _group_bounds(npix_sorted: npt.NDArray[np.int64], rows: int) -> list[tuple[int, int]]:
    """``[begin, end)`` of groups of whole partitions of about ``rows`` rows each."""
    starts = np.flatnonzero(np.r_[True, npix_sorted[1:] != npix_sorted[:-1]])
    out, begin = [], 0
    for s in starts[1:].tolist():
        if s - begin >= rows:
            out.append((begin, s))
            begin = s
    if npix_sorted.size > begin:
        out.append((begin, int(npix_sorted.size)))
    return out


def plan_link_groups(
    points: pa.Table, *, partition_order: int, config: LinkConfig, group_rows: int = GROUP_ROWS
) -> list[LinkGroup]:
    """Cut ``points`` (``id, ra, dec, _healpix_29``) into groups of whole partitions at
    ``partition_order`` with their margins (see the module docstring)."""
    if not 0 < group_rows:
        raise ValueError(f"group_rows must be > 0, got {group_rows}")
    k = match_order(config.radius_arcsec)
    if k < partition_order:
        raise ValueError(
            f"a {config.radius_arcsec} arcsec linking radius needs pixels coarser "
            f"than the partitions (order {partition_order}); use a smaller radius"
        )
    hp = points.column("_healpix_29").to_numpy().astype(np.int64, copy=False)
    by_pixel = np.argsort(hp, kind="stable")
    hp_sorted = hp[by_pixel]
    npix = pixel_at_order(hp_sorted, partition_order)
    link_pix = pixel_at_order(hp_sorted, k)
    groups = []
    for begin, end in _group_bounds(npix, group_rows):
        own = np.unique(npix[begin:end])
        around = np.setdiff1d(neighbours(own, partition_order), own)
        lo = np.searchsorted(npix, around, side="left")
        hi = np.searchsorted(npix, around, side="right")
        cand = np.concatenate(
            [np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)]
            or [np.zeros(0, np.int64)]
        )
        _, block = pixel_block(hp_sorted[begin:end], k, threads=1)
        cand = cand[np.isin(link_pix[cand], np.unique(block))]
        groups.append(
            LinkGroup(
                partition_order,
                tuple(own.tolist()),
                points.take(by_pixel[begin:end]),
                points.take(by_pixel[np.sort(cand)]),
            )
        )
    return groups

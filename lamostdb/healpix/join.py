"""All pairs of two position tables within a radius: the one HEALPix pixel join, in DuckDB.

The cross-match (:mod:`lamostdb.xmatch`) and the friends-of-friends of the ids stage
(:mod:`lamostdb.ids.fof`) both use it. Each left row is expanded (numpy,
astropy-healpix) to its pixel and neighbours at the match order
(:mod:`lamostdb.healpix.blocks`); DuckDB joins that block to the right rows' pixel
(``pixel_at_order(_healpix_29, K)``) and keeps the pairs whose separation
(``sep_arcsec``, the haversine macro) is within the radius (``sql/healpix.sql``). The
result is the pair set of astropy's ``search_around_sky`` (up to float ties at exactly the
radius), at a fraction of its time and memory.

The module sits in layer 0 (it imports only :mod:`lamostdb.healpix` and
:mod:`lamostdb.resources`, which reads the SQL): every stage can use it, and it touches
no files (its inputs are Arrow tables or DuckDB relations the caller made).

With ``proper_motion=True`` the right rows are moved to the left row's epoch before the
separation is measured. A fast-moving source may then be far from its catalogued pixel,
so each right row is joined at a coarser order chosen from radius + its largest possible
motion (|pm| times the largest epoch difference), and each left row is expanded at every
order that occurs: slow sources keep the fine order, the few fast ones use coarse pixels.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeAlias

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from lamostdb.healpix.blocks import PIXEL_MARGIN, RES0_ARCSEC, match_order, pixel_block
from lamostdb.healpix.macros import create_macros
from lamostdb.resources import statement

#: Columns the left and right inputs must have.
POSITION_COLUMNS = ("id", "ra", "dec", "_healpix_29")
#: Extra right columns for proper-motion propagation (pmra includes cos dec; mas/yr).
MOTION_COLUMNS = ("pmra", "pmdec", "ref_epoch")

#: An input: an Arrow table or a DuckDB relation.
Source: TypeAlias = pa.Table | duckdb.DuckDBPyRelation


def _left_table(left: Source, columns: tuple[str, ...]) -> pa.Table:
    tbl = left.to_arrow_table() if isinstance(left, duckdb.DuckDBPyRelation) else left
    missing = [c for c in columns if c not in tbl.column_names]
    if missing:
        raise KeyError(f"left input lacks column(s) {missing}; it needs {list(columns)}")
    for c in ("ra", "dec", "_healpix_29"):
        if tbl.column(c).null_count:
            raise ValueError(f"left column {c!r} has nulls; positions are required")
    return tbl


def _check_right(right: Source, columns: tuple[str, ...]) -> None:
    names = right.columns if isinstance(right, duckdb.DuckDBPyRelation) else right.column_names
    missing = [c for c in columns if c not in names]
    if missing:
        raise KeyError(f"right input lacks column(s) {missing}; it needs {list(columns)}")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **objects: object) -> Iterator[None]:
    """Register inputs under the fixed names the SQL uses; always unregister them."""
    try:
        for name, obj in objects.items():
            con.register(name, obj)
        yield
    finally:
        for name in objects:
            try:
                con.unregister(name)
            except duckdb.Error:
                pass


def _block_table(hp29: np.ndarray, orders: range) -> pa.Table:
    rows, ks, pixels = [], [], []
    for k in orders:
        row, pix = pixel_block(hp29, k)
        rows.append(row)
        pixels.append(pix)
        ks.append(np.full(row.size, k, dtype=np.int32))
    return pa.table(
        {"row": np.concatenate(rows), "k": np.concatenate(ks), "pix": np.concatenate(pixels)}
    )


def crossmatch_pairs(
    con: duckdb.DuckDBPyConnection,
    left: Source,
    right: Source,
    *,
    radius_arcsec: float,
    order: int | None = None,
    proper_motion: bool = False,
) -> pa.Table:
    """Every (left, right) pair within ``radius_arcsec`` of each other.

    Parameters
    ----------
    con
        DuckDB connection that runs the join (and that ``right`` belongs to, if it is
        a relation). The names ``xm_left``, ``xm_block`` and ``xm_right`` are used
        while it runs, so run one match at a time per connection.
    left
        Arrow table or relation with ``id, ra, dec, _healpix_29`` (degrees; nested
        order-29 pixel), plus ``epoch_jyear`` (Julian year, may be null) for proper
        motion. It is read into memory: it should be the smaller side.
    right
        Arrow table or DuckDB relation (e.g. over Parquet files) with ``id, ra, dec,
        _healpix_29``, plus ``pmra, pmdec`` (mas/yr, pmra with cos dec, null: none) and
        ``ref_epoch`` (Julian year) for proper motion. It is scanned, never copied.
    radius_arcsec
        Match radius; pairs with separation <= radius are returned.
    order
        Match order; default :func:`~lamostdb.healpix.blocks.match_order` of the radius.
        A coarser order is allowed (more candidates), a finer one is refused.
    proper_motion
        Move right rows by their proper motion from ``ref_epoch`` to the left row's
        ``epoch_jyear`` before measuring; rows without one (either side) stay put.

    Returns
    -------
    pyarrow.Table
        ``left_id, right_id, sep_arcsec, right_ra_obs, right_dec_obs`` (the right
        position used, i.e. propagated), in no particular order.

    Examples
    --------
    >>> import duckdb, pyarrow as pa
    >>> from lamostdb.healpix import healpix_29
    >>> def tab(ids, ra, dec):
    ...     return pa.table({"id": ids, "ra": ra, "dec": dec, "_healpix_29": healpix_29(ra, dec)})
    >>> left = tab([1], [359.9999], [0.0])
    >>> right = tab([7, 8], [0.0004, 10.0], [0.0, 0.0])  # 7 is 1.8" away across RA = 0
    >>> out = crossmatch_pairs(duckdb.connect(), left, right, radius_arcsec=3.0)
    >>> out.column("right_id").to_pylist(), round(out.column("sep_arcsec")[0].as_py(), 3)
    ([7], 1.8)
    """
    if not (math.isfinite(radius_arcsec) and radius_arcsec > 0):
        raise ValueError(f"radius_arcsec must be a positive number, got {radius_arcsec}")
    k_base = match_order(radius_arcsec)
    if order is not None:
        if not 0 <= order <= k_base:
            raise ValueError(
                f"order {order} is too fine for a {radius_arcsec} arcsec radius "
                f"(pixels must be >= {PIXEL_MARGIN:g}x the radius: order <= "
                f"{k_base})"
            )
        k_base = order
    left_cols = POSITION_COLUMNS + (("epoch_jyear",) if proper_motion else ())
    tbl = _left_table(left, left_cols)
    _check_right(right, POSITION_COLUMNS + (MOTION_COLUMNS if proper_motion else ()))
    n = tbl.num_rows
    xm_left = pa.table(
        {
            "row": np.arange(n, dtype=np.int64),
            "ra": tbl.column("ra").cast(pa.float64()),
            "dec": tbl.column("dec").cast(pa.float64()),
            **(
                {"epoch_jyear": tbl.column("epoch_jyear").cast(pa.float64())}
                if proper_motion
                else {}
            ),
        }
    )
    hp29 = tbl.column("_healpix_29").to_numpy().astype(np.int64, copy=False)
    create_macros(con)
    with registered(con, xm_left=xm_left, xm_right=right):
        if proper_motion:
            pm_max, ref_min, ref_max = con.sql(statement("healpix.sql", "pm_extent")).fetchall()[0]
            epochs = pc.drop_null(xm_left.column("epoch_jyear")).to_numpy()
            if epochs.size and ref_min is not None:
                e_min, e_max = float(epochs.min()), float(epochs.max())
                dt_max = max(abs(e_max - float(ref_min)), abs(e_min - float(ref_max)))
            else:  # nothing can move: no left epoch, or no right rows
                e_min = e_max = 2000.0
                dt_max = 0.0
            k_min = min(k_base, match_order(radius_arcsec + float(pm_max) / 1000.0 * dt_max))
            block = _block_table(hp29, range(k_min, k_base + 1))
            params: dict[str, object] = {
                "k_min": k_min,
                "k_base": k_base,
                "radius_arcsec": float(radius_arcsec),
                "epoch_min": e_min,
                "epoch_max": e_max,
                "res0_arcsec": RES0_ARCSEC,
                "pixel_margin": PIXEL_MARGIN,
            }
            sql = statement("healpix.sql", "pairs_pm")
        else:
            block = _block_table(hp29, range(k_base, k_base + 1))
            params = {"order": k_base, "radius_arcsec": float(radius_arcsec)}
            sql = statement("healpix.sql", "pairs")
        with registered(con, xm_block=block):
            del block
            out = con.sql(sql, params=params).to_arrow_table()
    left_id = tbl.column("id").take(out.column("left_row"))
    return pa.table(
        {
            "left_id": left_id,
            "right_id": out.column("right_id"),
            "sep_arcsec": out.column("sep_arcsec"),
            "right_ra_obs": out.column("right_ra_obs"),
            "right_dec_obs": out.column("right_dec_obs"),
        }
    )

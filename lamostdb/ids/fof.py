"""Friends-of-friends linking of positions: pairs within a radius, then components.

Pairs come from the project's one pixel join, :func:`lamostdb.healpix.join.crossmatch_pairs`,
run as a self-join: every point is binned into a HEALPix pixel at an order whose pixels are
much wider than the radius, so that any pair within the radius lies in the same or in
neighbouring pixels; the join on pixel and neighbour pixel is followed by the exact
(haversine, ``sep_arcsec``) separation. Components are the connected components of the
pair graph (``scipy.sparse.csgraph``), so linking is transitive: A-B and B-C within the
radius put A, B and C together even when A-C is not.
"""

from __future__ import annotations

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lamostdb.healpix import healpix_29, match_order
from lamostdb.healpix.join import crossmatch_pairs


def link_order(radius_arcsec: float) -> int:
    """Deepest HEALPix order whose pixels are wide enough for ``radius_arcsec``
    (:func:`lamostdb.healpix.blocks.match_order`).

    >>> link_order(3.0)
    14
    """
    if not radius_arcsec > 0:
        raise ValueError(f"radius_arcsec must be > 0, got {radius_arcsec}")
    return match_order(radius_arcsec)


def link_pairs(
    con: duckdb.DuckDBPyConnection, left: pa.Table, right: pa.Table, *, radius_arcsec: float
) -> pa.Table:
    """Pairs ``(i, j)``, ``i < j``, of a row of ``left`` and a row of ``right`` within
    ``radius_arcsec``, each found once.

    Both tables have ``id, ra, dec, _healpix_29`` with ``id`` a global row number; a
    pair is kept when its smaller id is a left row, so running it over partitions (left:
    a partition's rows; right: those rows plus their margin of neighbours) finds every
    pair exactly once. Returns ``i, j`` (int64) sorted by ``i, j``.
    """
    pairs = crossmatch_pairs(con, left, right, radius_arcsec=radius_arcsec)
    i = pairs.column("left_id").cast(pa.int64())
    j = pairs.column("right_id").cast(pa.int64())
    out = pa.table({"i": i, "j": j}).filter(pc.less(i, j))
    return out.sort_by([("i", "ascending"), ("j", "ascending")])


def fof_pairs(
    ra_deg: npt.ArrayLike,
    dec_deg: npt.ArrayLike,
    *,
    radius_arcsec: float = 3.0,
    con: duckdb.DuckDBPyConnection | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Index pairs ``(i, j)``, ``i < j``, of positions within ``radius_arcsec``.

    >>> i, j = fof_pairs([10.0, 10.0, 10.1], [0.0, 0.0005, 0.0])
    >>> i.tolist(), j.tolist()
    ([0], [1])
    """
    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    if ra.shape != dec.shape or ra.ndim != 1:
        raise ValueError("ra_deg and dec_deg must be 1-d arrays of one length")
    if ra.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    link_order(radius_arcsec)  # the radius is checked before any work
    points = pa.table(
        {
            "id": np.arange(ra.size, dtype=np.int64),
            "ra": ra,
            "dec": dec,
            "_healpix_29": healpix_29(ra, dec),
        }
    )
    out = link_pairs(
        con if con is not None else duckdb.connect(), points, points, radius_arcsec=radius_arcsec
    )
    return (
        out.column("i").to_numpy().astype(np.int64, copy=False),
        out.column("j").to_numpy().astype(np.int64, copy=False),
    )


def components(n: int, i: npt.NDArray[np.int64], j: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Connected-component label of each of ``n`` points linked by the pairs ``(i, j)``.

    >>> components(4, np.array([0, 1]), np.array([1, 2])).tolist()
    [0, 0, 0, 1]
    """
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)

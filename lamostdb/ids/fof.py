"""Friends-of-friends linking of positions: pairs within a radius, then components.

Pairs come from DuckDB (``sql/ids.sql``, statement ``fof_pairs``): every point is binned
into a HEALPix pixel at an order whose pixels are much wider than the radius, so that any
pair within the radius lies in the same or in neighbouring pixels; the join on pixel and
neighbour pixel is followed by the exact (haversine) separation. Components are the
connected components of the pair graph (``scipy.sparse.csgraph``), so linking is
transitive: A-B and B-C within the radius put A, B and C together even when A-C is not.
"""

from __future__ import annotations

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from astropy import units as u
from astropy_healpix import core
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from lamostdb.healpix import SPATIAL_INDEX_ORDER, healpix_29, pixel_at_order
from lamostdb.io.sqlfiles import statement

#: Pixels must be this many times wider (in mean resolution) than the linking radius:
#: HEALPix pixels are not squares, and their narrowest width is well above a quarter of
#: the mean resolution at every order, so a pair within the radius can never skip a pixel.
_PIXEL_MARGIN = 4.0
_POINTS = "ids_points"
_NEIGHBOURS = "ids_neighbours"


def link_order(radius_arcsec: float) -> int:
    """Deepest HEALPix order whose pixels are wide enough for ``radius_arcsec``.

    >>> link_order(3.0)
    14
    """
    if not radius_arcsec > 0:
        raise ValueError(f"radius_arcsec must be > 0, got {radius_arcsec}")
    for order in range(SPATIAL_INDEX_ORDER, -1, -1):
        res_arcsec = core.nside_to_pixel_resolution(2**order).to_value(u.arcsec)
        if res_arcsec >= _PIXEL_MARGIN * radius_arcsec:
            return order
    return 0


def _neighbour_table(pixels: npt.NDArray[np.int64], order: int) -> pa.Table:
    """(pix, nb) for each pixel and each of its neighbours, itself included."""
    pix = np.unique(pixels)
    nb = np.asarray(core.neighbours(pix, 2**order, order="nested"), dtype=np.int64)  # (8, n)
    allnb = np.vstack([pix[None, :], nb])
    src = np.broadcast_to(pix, allnb.shape).ravel()
    dst = allnb.ravel()
    keep = dst >= 0  # -1 marks a missing neighbour (8 corners of the base pixels)
    return pa.table({"pix": src[keep], "nb": dst[keep]})


def fof_pairs(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike, *, radius_arcsec: float = 3.0,
              con: duckdb.DuckDBPyConnection | None = None
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
    order = link_order(radius_arcsec)
    pix = pixel_at_order(healpix_29(ra, dec), order)
    con = con if con is not None else duckdb.connect()
    points = pa.table({"idx": np.arange(ra.size, dtype=np.int64), "ra": ra, "dec": dec,
                       "pix": pix})
    con.register(_POINTS, points)
    con.register(_NEIGHBOURS, _neighbour_table(pix, order))
    try:
        out = con.execute(statement("ids.sql", "fof_pairs"),
                          {"radius_arcsec": float(radius_arcsec)}).fetchnumpy()
    finally:
        con.unregister(_POINTS)
        con.unregister(_NEIGHBOURS)
    return (np.asarray(out["i"], dtype=np.int64), np.asarray(out["j"], dtype=np.int64))


def components(n: int, i: npt.NDArray[np.int64], j: npt.NDArray[np.int64]
               ) -> npt.NDArray[np.int64]:
    """Connected-component label of each of ``n`` points linked by the pairs ``(i, j)``.

    >>> components(4, np.array([0, 1]), np.array([1, 2])).tolist()
    [0, 0, 0, 1]
    """
    graph = coo_matrix((np.ones(i.size, dtype=np.int8), (i, j)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)

"""Pixel arithmetic of the pixel join: the match order and each row's 3x3 pixel block.

Used by :mod:`lamostdb.healpix.join` (cross-match and friends-of-friends alike) and by
stage drivers that choose which neighbouring partitions to read.

A pair within ``r`` of each other lies in the same pixel or in neighbouring pixels as long
as every pixel is wider than ``r``. HEALPix pixels are not squares (they thin out near
the poles and the corners of the base pixels), so the order is chosen with a wide margin:
the pixel resolution (square root of its area) is at least :data:`PIXEL_MARGIN` times the
search radius. Sampling millions of offsets at every latitude shows the 3x3 block first
misses a partner at about 0.7 resolution, so a factor 4 leaves room to spare.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt
from astropy_healpix import core

from lamostdb.healpix.pixels import SPATIAL_INDEX_ORDER, pixel_at_order

#: Resolution (square root of the pixel area) of an order-0 pixel, in arcsec.
RES0_ARCSEC = math.degrees(math.sqrt(4.0 * math.pi / 12.0)) * 3600.0
#: Pixel resolution / search radius at the chosen match order (at least).
PIXEL_MARGIN = 4.0
_THREAD_CHUNK = 250_000


def match_order(search_radius_arcsec: float) -> int:
    """Finest HEALPix order whose pixels are at least 4x wider than the search radius.

    >>> match_order(3.0), match_order(30.0)
    (14, 10)
    """
    if not search_radius_arcsec > 0:
        raise ValueError(f"search radius must be > 0 arcsec, got {search_radius_arcsec}")
    ratio = RES0_ARCSEC / (PIXEL_MARGIN * search_radius_arcsec)
    if ratio < 1.0:
        raise ValueError(
            f"search radius {search_radius_arcsec} arcsec is too large for a "
            f"pixel join (at most {RES0_ARCSEC / PIXEL_MARGIN:.0f} arcsec)"
        )
    return min(int(math.floor(math.log2(ratio))), SPATIAL_INDEX_ORDER)


def _block(own: npt.NDArray[np.int64], order: int) -> npt.NDArray[np.int64]:
    # astropy-healpix warns on the -1 entries it returns for missing neighbours
    with np.errstate(invalid="ignore"):
        nb = core.neighbours(own, 2**order, order="nested")
    return np.concatenate([own[:, None], np.asarray(nb, dtype=np.int64).T], axis=1)


def pixel_block(
    hp29: npt.NDArray[np.int64], order: int, *, threads: int | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each row's pixel at ``order`` and its (up to 8) neighbours.

    Returns ``(row, pixel)``: row indices into ``hp29`` and one pixel each. Missing
    neighbours (-1 from astropy-healpix, at the 8 corners where only 7 pixels meet) are
    left out; the 9 pixels of a block are otherwise distinct at every order (tested).

    >>> row, pix = pixel_block(np.array([0], dtype=np.int64), 0)  # base pixel 0
    >>> row.tolist(), sorted(pix.tolist())
    ([0, 0, 0, 0, 0, 0, 0], [0, 1, 2, 3, 4, 5, 8])
    """
    own = pixel_at_order(hp29, order)
    n_threads = threads or os.cpu_count() or 1
    if n_threads > 1 and own.size >= 2 * _THREAD_CHUNK:
        # the neighbour ufunc releases the GIL: threads split the work without copies
        parts = np.array_split(own, max(n_threads, own.size // _THREAD_CHUNK))
        with ThreadPoolExecutor(n_threads) as pool:
            block = np.concatenate(list(pool.map(lambda a: _block(a, order), parts)))
    else:
        block = _block(own, order)
    keep = block >= 0
    row = np.nonzero(keep)[0]  # C order: the row index of each kept entry
    return row, block[keep]

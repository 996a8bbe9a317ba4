"""Nested HEALPix indices, as the HATS convention uses them.

Every row carries ``_healpix_29``, its nested pixel at order 29 (~0.4 milliarcsec);
the pixel at any coarser order K is that index shifted right by 2*(29-K) bits, so
partition keys and neighbour look-ups never recompute trigonometry.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

# astropy (units, astropy_healpix) is imported by the functions that need it: the classify
# workers use partition_dir only, and astropy's import costs them 0.25 s at every start

SPATIAL_INDEX_ORDER = 29


def healpix_29(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Nested order-29 pixel of each position.

    >>> int(pixel_at_order(healpix_29([0.0], [90.0]), 0)[0])
    0
    """
    from astropy import units as u
    from astropy_healpix import core

    ra = np.asarray(ra_deg, dtype=np.float64)
    dec = np.asarray(dec_deg, dtype=np.float64)
    pix = core.lonlat_to_healpix(ra * u.deg, dec * u.deg, 2**SPATIAL_INDEX_ORDER, order="nested")
    return np.asarray(pix, dtype=np.int64)


def pixel_at_order(
    hp29: npt.ArrayLike, order: int, *, from_order: int = SPATIAL_INDEX_ORDER
) -> npt.NDArray[np.int64]:
    """The nested pixel at ``order`` containing each pixel of ``from_order`` (default 29).

    The one place the nested bit shift is written in Python (``sql/healpix.sql`` has the
    SQL macro of the same name).

    >>> pixel_at_order([1023], 0, from_order=5).tolist()
    [0]
    """
    if not 0 <= order <= from_order <= SPATIAL_INDEX_ORDER:
        raise ValueError(
            f"HEALPix orders must satisfy 0 <= order <= from_order <= 29, got "
            f"order={order}, from_order={from_order}"
        )
    return np.asarray(hp29, dtype=np.int64) >> np.int64(2 * (from_order - order))


def partition_dir(npix: int) -> int:
    """HATS ``Dir=`` value of a pixel: groups pixels by ten thousands."""
    return int(npix) // 10_000 * 10_000


def _pixel_radius_deg(order: int) -> float:
    from astropy import units as u
    from astropy_healpix import core

    # Largest centre-to-corner distance of a HEALPix pixel is below ~1.4x the mean
    # resolution at every order; padding the cone by it keeps the pixel list complete.
    res = core.nside_to_pixel_resolution(2**order).to_value(u.deg)
    return 1.5 * float(res)


def cone_pixels(
    ra_deg: float, dec_deg: float, radius_arcsec: float, order: int
) -> npt.NDArray[np.int64]:
    """All nested pixels at ``order`` that may hold points within the cone.

    The list is a superset (pixels touching the padded cone); callers filter rows by
    exact angular separation.
    """
    from astropy import units as u
    from astropy_healpix import core

    if radius_arcsec < 0:
        raise ValueError(f"radius_arcsec must be >= 0, got {radius_arcsec}")
    radius_deg = min(radius_arcsec / 3600.0 + _pixel_radius_deg(order), 180.0)
    pix = core.healpix_cone_search(
        ra_deg * u.deg, dec_deg * u.deg, radius_deg * u.deg, 2**order, order="nested"
    )
    return np.unique(np.asarray(pix, dtype=np.int64))


def neighbours(pixels: npt.ArrayLike, order: int) -> npt.NDArray[np.int64]:
    """The pixels plus their (up to 8) neighbours, unique and sorted."""
    from astropy_healpix import core

    pix = np.atleast_1d(np.asarray(pixels, dtype=np.int64))
    with np.errstate(invalid="ignore"):  # the 8 corner pixels have 7 neighbours: -1 entries
        nb = core.neighbours(pix, 2**order, order="nested")
    allp = np.concatenate([pix, np.asarray(nb, dtype=np.int64).ravel()])
    return np.unique(allp[allp >= 0])


def pixel_start(pix: npt.ArrayLike, order: int) -> npt.NDArray[np.int64]:
    """The first order-29 pixel inside each pixel ``pix`` of ``order`` (inverse of
    :func:`pixel_at_order` for the pixel's first child).

    >>> int(pixel_at_order(pixel_start([7], 3), 3)[0])
    7
    """
    if not 0 <= order <= SPATIAL_INDEX_ORDER:
        raise ValueError(f"HEALPix order must be in 0..29, got {order}")
    return np.asarray(pix, dtype=np.int64) << np.int64(2 * (SPATIAL_INDEX_ORDER - order))


def parent_pixel(npix: int, order: int, to_order: int) -> int:
    """The pixel at ``to_order`` (<= ``order``) containing pixel ``npix`` of ``order``: the
    scalar form of :func:`pixel_at_order`, for loops over leaves.

    >>> parent_pixel(1023, 5, 0)
    0
    """
    if not 0 <= to_order <= order <= SPATIAL_INDEX_ORDER:
        raise ValueError(
            f"HEALPix orders must satisfy 0 <= to_order <= order <= 29, got "
            f"order={order}, to_order={to_order}"
        )
    return int(npix) >> (2 * (order - to_order))

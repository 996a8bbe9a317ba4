"""HEALPix helpers against astropy-healpix computed directly at each order."""

from __future__ import annotations

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy_healpix import HEALPix
from hypothesis import given, settings
from hypothesis import strategies as st

from lamostdb.healpix import cone_pixels, healpix_29, neighbours, partition_dir, pixel_at_order

ra_st = st.floats(min_value=0, max_value=360, exclude_max=True, allow_nan=False)
dec_st = st.floats(min_value=-90, max_value=90, allow_nan=False)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(ra=ra_st, dec=dec_st, order=st.integers(min_value=0, max_value=12))
def test_pixel_at_order_equals_direct_computation(ra: float, dec: float, order: int) -> None:
    direct = HEALPix(nside=2**order, order="nested").lonlat_to_healpix(ra * u.deg, dec * u.deg)
    assert int(pixel_at_order(healpix_29([ra], [dec]), order)[0]) == int(direct)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(ra=ra_st, dec=dec_st, radius=st.floats(min_value=0.1, max_value=20000),
       order=st.integers(min_value=2, max_value=7))
def test_cone_pixels_cover_every_point_in_the_cone(ra: float, dec: float, radius: float,
                                                   order: int) -> None:
    rng = np.random.default_rng(1)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    pts = centre.directional_offset_by(rng.uniform(0, 360, 300) * u.deg,
                                       rng.uniform(0, radius, 300) * u.arcsec)
    pix = pixel_at_order(healpix_29(pts.ra.deg, pts.dec.deg), order)
    assert set(pix.tolist()) <= set(cone_pixels(ra, dec, radius, order).tolist())


def test_neighbours_include_the_pixel_and_wrap_at_ra_zero() -> None:
    order = 5
    p_east = int(pixel_at_order(healpix_29([0.01], [10.0]), order)[0])
    p_west = int(pixel_at_order(healpix_29([359.99], [10.0]), order)[0])
    nb = neighbours([p_east], order)
    assert p_east in nb and p_west in nb and len(nb) == 9


def test_partition_dir() -> None:
    assert partition_dir(9999) == 0 and partition_dir(10000) == 10000
    assert partition_dir(123456) == 120000

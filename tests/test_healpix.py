"""HEALPix helpers against astropy-healpix computed directly at each order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
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
@given(
    ra=ra_st,
    dec=dec_st,
    radius=st.floats(min_value=0.1, max_value=20000),
    order=st.integers(min_value=2, max_value=7),
)
def test_cone_pixels_cover_every_point_in_the_cone(
    ra: float, dec: float, radius: float, order: int
) -> None:
    rng = np.random.default_rng(1)
    centre = SkyCoord(ra * u.deg, dec * u.deg)
    pts = centre.directional_offset_by(
        rng.uniform(0, 360, 300) * u.deg, rng.uniform(0, radius, 300) * u.arcsec
    )
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


# -- the SQL macros (sql/healpix.sql) --------------------------------------------------------
def test_sep_arcsec_macro_equals_astropy_separation() -> None:
    import duckdb

    from lamostdb.healpix.macros import create_macros

    rng = np.random.default_rng(5)
    ra1, dec1 = rng.uniform(0, 360, 500), rng.uniform(-90, 90, 500)
    ra2 = (ra1 + rng.normal(0, 0.01, 500)) % 360
    dec2 = np.clip(dec1 + rng.normal(0, 0.01, 500), -90, 90)
    ra2[0], dec2[0] = (ra1[0] + 180) % 360, -dec1[0]  # the antipode
    ra2[2], dec2[2] = ra1[2], dec1[2]  # the same position
    con = duckdb.connect()
    create_macros(con)
    create_macros(con)  # idempotent
    got = np.array(
        [
            r[0]
            for r in con.execute(
                "SELECT sep_arcsec(a, b, c, d) FROM (SELECT unnest($a) AS a, unnest($b) AS b, "
                "unnest($c) AS c, unnest($d) AS d)",
                {"a": ra1.tolist(), "b": dec1.tolist(), "c": ra2.tolist(), "d": dec2.tolist()},
            ).fetchall()
        ]
    )
    want = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(SkyCoord(ra2 * u.deg, dec2 * u.deg))
    assert np.allclose(got[1:], want.to_value(u.arcsec)[1:], rtol=1e-9, atol=1e-6)
    # haversine is exact where matches happen (small angles); at the antipode it keeps ~1e-8
    assert got[2] == 0.0 and abs(got[0] - 180 * 3600) < 0.01


def test_pixel_at_order_macro_equals_python_and_from_order() -> None:
    import duckdb

    from lamostdb.healpix.macros import create_macros

    rng = np.random.default_rng(6)
    hp = healpix_29(rng.uniform(0, 360, 200), rng.uniform(-90, 90, 200))
    con = duckdb.connect()
    create_macros(con)
    for k in (0, 4, 11, 29):
        got = [
            r[0]
            for r in con.execute(
                "SELECT pixel_at_order(h, $k) FROM (SELECT unnest($h) AS h)",
                {"h": hp.tolist(), "k": k},
            ).fetchall()
        ]
        assert got == pixel_at_order(hp, k).tolist()
    # coarsening from another order goes through order 29 unchanged
    p7 = pixel_at_order(hp, 7)
    assert pixel_at_order(p7, 3, from_order=7).tolist() == pixel_at_order(hp, 3).tolist()
    with pytest.raises(ValueError, match="from_order"):
        pixel_at_order(p7, 8, from_order=7)


def test_catalogue_connections_have_the_macros(tmp_path: Path) -> None:
    """The writer's, the reader's and the user-query connection all know sep_arcsec."""
    import lamostdb
    from lamostdb.catalog.store import Catalog

    sql = "SELECT round(sep_arcsec(10.0, 0.0, 10.0, 0.001), 6) AS s, pixel_at_order(4096, 23) AS p"
    with Catalog.create(tmp_path / "cat") as cat:
        assert cat.con.execute(sql).fetchall() == [(3.6, 1)]
    with lamostdb.open(tmp_path / "cat") as cat:
        assert cat.con.execute(sql).fetchall() == [(3.6, 1)]
        assert cat.sql(sql).rows() == [(3.6, 1)]

"""Simulated skies for testing and benchmarking the cross-match against astropy.

Sources sit in plate-like fields (discs of 2.5 deg radius, like LAMOST plates), with
fields forced onto both celestial poles and across RA = 0/360; the left side holds
spectrum-like targets offset a little from a right (reference) source, random
positions in the fields, and positions on HEALPix pixel corners at the match order and
on the RA = 0/360 seam with reference sources scattered around them, so that many pairs
straddle pixel edges or the seam.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from astropy import units as u
from astropy_healpix import core

from lamostdb.healpix import healpix_29
from lamostdb.healpix.blocks import match_order
from lamostdb.sim.refcat import offset

F64 = npt.NDArray[np.float64]
#: Field centres that every mock sky includes: both poles and both sides of RA = 0.
SPECIAL_FIELDS = ((0.0, 89.6), (137.0, -89.9), (0.3, 12.0), (359.8, -35.0), (0.0, 0.0))


def _in_discs(rng: np.random.Generator, ra0: F64, dec0: F64, r_deg: float | F64) -> tuple[F64, F64]:
    """Uniform points in discs around (ra0, dec0)."""
    r = np.asarray(r_deg) * np.sqrt(rng.uniform(size=ra0.shape))
    theta = rng.uniform(0.0, 2.0 * np.pi, size=ra0.shape)
    return offset(ra0, dec0, r * np.sin(theta), r * np.cos(theta))


def position_table(ids: npt.ArrayLike, ra: F64, dec: F64) -> pa.Table:
    """``id, ra, dec, _healpix_29`` table (the kernel's input layout)."""
    ra = np.asarray(ra, dtype=np.float64) % 360.0
    dec = np.clip(np.asarray(dec, dtype=np.float64), -90.0, 90.0)
    return pa.table(
        {
            "id": pa.array(np.asarray(ids), pa.int64()),
            "ra": ra,
            "dec": dec,
            "_healpix_29": healpix_29(ra, dec),
        }
    )


def mock_sky(
    n_left: int,
    n_right: int,
    *,
    seed: int,
    field_radius_deg: float = 2.5,
    n_fields: int | None = None,
    radius_arcsec: float = 3.0,
) -> tuple[pa.Table, pa.Table]:
    """Left (spectra-like) and right (reference-like) position tables.

    ``n_fields`` defaults to about 40 000 reference sources per field.
    """
    rng = np.random.default_rng(seed)
    n_fields = n_fields or max(len(SPECIAL_FIELDS), n_right // 40_000)
    n_random = n_fields - len(SPECIAL_FIELDS)
    f_ra = np.concatenate([[f[0] for f in SPECIAL_FIELDS], rng.uniform(0, 360, n_random)])
    f_dec = np.concatenate(
        [[f[1] for f in SPECIAL_FIELDS], np.degrees(np.arcsin(rng.uniform(-1, 1, n_random)))]
    )
    n_corner = n_left // 10
    n_seam = n_left // 100
    n_near = 2 * n_corner + n_seam  # reference sources around the corners and the seam
    field = rng.integers(0, n_fields, size=n_right - n_near)
    r_ra, r_dec = _in_discs(rng, f_ra[field], f_dec[field], field_radius_deg)
    # Targets: 70 % of the left side, within 1.5" of a reference source.
    n_target = (7 * n_left) // 10
    host = rng.choice(r_ra.size, size=n_target, replace=False)
    t_ra, t_dec = _in_discs(rng, r_ra[host], r_dec[host], 1.5 / 3600.0)
    # Random positions in the fields: mostly unmatched, some chance neighbours.
    n_rand = n_left - n_target - n_corner - n_seam
    field = rng.integers(0, n_fields, size=n_rand)
    x_ra, x_dec = _in_discs(rng, f_ra[field], f_dec[field], field_radius_deg)
    # Pixel corners at the match order, each with two reference sources within 4".
    order = match_order(radius_arcsec)
    nside = 2**order
    pix = core.lonlat_to_healpix(
        r_ra[:n_corner] * u.deg, r_dec[:n_corner] * u.deg, nside, order="nested"
    )
    lon, lat = core.boundaries_lonlat(pix, 1, nside, order="nested")
    which = rng.integers(0, 4, size=n_corner)
    c_ra = lon.to_value(u.deg)[np.arange(n_corner), which]
    c_dec = lat.to_value(u.deg)[np.arange(n_corner), which]
    n_ra, n_dec = _in_discs(
        rng, np.repeat(c_ra, 2), np.repeat(c_dec, 2), 4.0 * radius_arcsec / 3.0 / 3600.0
    )
    # The RA = 0/360 seam: positions within 2" of it, each with a source within 3 radii.
    s_ra = rng.uniform(-2.0, 2.0, n_seam) / 3600.0 % 360.0
    s_dec = np.degrees(np.arcsin(rng.uniform(-0.9, 0.9, n_seam)))
    m_ra, m_dec = _in_discs(rng, s_ra, s_dec, 3.0 * radius_arcsec / 3600.0)
    left_ra = np.concatenate([t_ra, x_ra, c_ra, s_ra])
    left_dec = np.concatenate([t_dec, x_dec, c_dec, s_dec])
    right_ra = np.concatenate([r_ra, n_ra, m_ra])
    right_dec = np.concatenate([r_dec, n_dec, m_dec])
    perm_l = rng.permutation(n_left)
    perm_r = rng.permutation(n_right)
    left = position_table(np.arange(n_left), left_ra[perm_l], left_dec[perm_l])
    right = position_table(10**9 + np.arange(n_right), right_ra[perm_r], right_dec[perm_r])
    return left, right

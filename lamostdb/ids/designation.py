"""LAMOST designations, ``LAMOST Jhhmmss.ss+ddmmss.s``, from (ra, dec).

LAMOST *truncates* each sexagesimal field (it does not round): the shipped files carry
RA=332.202274, DEC=-2.056767 as ``LAMOST J220848.54-020324.3`` although the seconds are
48.5458 and 24.36. ``sql/views_catalog.sql`` computes the same string in SQL for the
``lrs`` view; the tests hold both to the real headers.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Guard against positions such as 10.5 s stored as 10.4999999999 in binary: header
#: coordinates have 6 decimals (0.024 centiseconds of RA), far above this.
_EPS = 1e-7
_RA_UNITS_PER_DEG = 24_000  # centiseconds of time per degree (86400 s * 100 / 360)
_DEC_UNITS_PER_DEG = 36_000  # deciarcseconds per degree


def designation(ra_deg: npt.ArrayLike, dec_deg: npt.ArrayLike) -> npt.NDArray[np.str_]:
    """LAMOST designation of each position (J2000 degrees), fields truncated.

    >>> str(designation([332.202274], [-2.056767])[0])
    'LAMOST J220848.54-020324.3'
    """
    ra = np.mod(np.atleast_1d(np.asarray(ra_deg, dtype=np.float64)), 360.0)
    dec = np.atleast_1d(np.asarray(dec_deg, dtype=np.float64))
    if ra.shape != dec.shape:
        raise ValueError(f"ra and dec differ in shape: {ra.shape} vs {dec.shape}")
    if not (np.all(np.isfinite(ra)) and np.all(np.abs(dec) <= 90.0)):
        raise ValueError("positions must be finite degrees with |dec| <= 90")
    ra_cs = np.floor(ra * _RA_UNITS_PER_DEG + _EPS).astype(np.int64) % (360 * _RA_UNITS_PER_DEG)
    dec_ds = np.floor(np.abs(dec) * _DEC_UNITS_PER_DEG + _EPS).astype(np.int64)
    hh, rem = np.divmod(ra_cs, 360_000)
    mm, cs = np.divmod(rem, 6_000)
    dd, rem = np.divmod(dec_ds, 36_000)
    dm, ds = np.divmod(rem, 600)
    sign = np.where(dec < 0, "-", "+")
    fields = zip(
        hh.tolist(),
        mm.tolist(),
        cs.tolist(),
        sign.tolist(),
        dd.tolist(),
        dm.tolist(),
        ds.tolist(),
        strict=True,
    )
    out = [
        f"LAMOST J{h:02d}{m:02d}{c // 100:02d}.{c % 100:02d}"
        f"{s}{d:02d}{am:02d}{a // 10:02d}.{a % 10:d}"
        for h, m, c, s, d, am, a in fields
    ]
    return np.array(out, dtype=np.str_)

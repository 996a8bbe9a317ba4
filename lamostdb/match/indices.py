"""Line-strength indices of stellar spectra: band fluxes over a local pseudo-continuum.

A spectral type is read from line strengths, the way a classifier by eye (or MKCLASS, or
Kesseli et al.'s PyHammer) reads it: Ca II H and K, the Balmer lines, the G band, Fe and Mg b
blends, TiO bands, the Ca II triplet. Each index is the mean flux in a feature band divided
by the mean of a blue and a red side band a few tens of Angstrom away, in the star's rest
frame. Being local ratios, they do not see the flux calibration or the step where the blue and
red arms meet, which fool a whole-spectrum fit (the paper's problem).

Bands are vacuum Angstrom, after the Lick/IDS system (Worthey et al. 1994; Trager et al. 1998)
for the blends, and centred on the lines themselves for Balmer, Ca II and the triplet.
No band crosses the arm join (5700-5950 A) or the A and B telluric bands.

>>> import numpy as np
>>> wave = np.linspace(3700.0, 9000.0, 5000)
>>> flat = np.ones((1, wave.size))
>>> bool(np.allclose(line_indices(wave, flat, np.ones_like(flat), np.zeros(1)), 1.0))
True
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]

#: name: (feature band, blue side band, red side band), each (lo, hi) vacuum Angstrom, rest.
INDEX_BANDS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "CaII_K": ((3926.0, 3942.0), (3900.0, 3920.0), (3990.0, 4010.0)),
    "CaII_H_Heps": ((3963.0, 3976.0), (3950.0, 3960.0), (3990.0, 4010.0)),
    "Hdelta": ((4092.0, 4112.0), (4060.0, 4080.0), (4125.0, 4145.0)),
    "CaI_4227": ((4220.0, 4236.0), (4211.0, 4219.0), (4241.0, 4251.0)),
    "G_band": ((4282.0, 4318.0), (4267.0, 4283.0), (4320.0, 4336.0)),
    "Hgamma": ((4330.0, 4352.0), (4310.0, 4325.0), (4355.0, 4370.0)),
    "Fe4383": ((4370.0, 4420.0), (4360.0, 4370.0), (4445.0, 4455.0)),
    "Ca4455": ((4453.0, 4475.0), (4446.0, 4456.0), (4478.0, 4493.0)),
    "Fe4531": ((4515.0, 4560.0), (4506.0, 4516.0), (4561.0, 4580.0)),
    "C2_4668": ((4635.0, 4721.0), (4612.0, 4632.0), (4742.0, 4757.0)),
    "Hbeta": ((4848.0, 4877.0), (4828.0, 4848.0), (4877.0, 4892.0)),
    "Fe5015": ((4979.0, 5055.0), (4947.0, 4979.0), (5055.0, 5066.0)),
    "Mg1": ((5070.0, 5136.0), (4896.0, 4960.0), (5302.0, 5367.0)),
    "Mg_b": ((5161.0, 5194.0), (5143.0, 5161.0), (5193.0, 5208.0)),
    "Fe5270": ((5247.0, 5287.0), (5235.0, 5245.0), (5286.0, 5318.0)),
    "Fe5335": ((5314.0, 5354.0), (5305.0, 5317.0), (5356.0, 5368.0)),
    "Fe5406": ((5389.0, 5416.0), (5379.0, 5389.0), (5416.0, 5427.0)),
    "TiO_6200": ((6192.0, 6274.0), (6046.0, 6088.0), (6376.0, 6418.0)),
    "CaI_6495": ((6490.0, 6502.0), (6480.0, 6490.0), (6505.0, 6515.0)),
    "Halpha": ((6553.0, 6575.0), (6530.0, 6550.0), (6580.0, 6600.0)),
    "CaT_8498": ((8490.0, 8510.0), (8470.0, 8488.0), (8565.0, 8585.0)),
    "CaT_8542": ((8533.0, 8553.0), (8470.0, 8488.0), (8565.0, 8585.0)),
    "CaT_8662": ((8653.0, 8673.0), (8630.0, 8650.0), (8690.0, 8710.0)),
}
INDEX_NAMES: tuple[str, ...] = tuple(INDEX_BANDS)


def _band_mean(wave: F64, csum: F64, ccount: F64, scale: F64, lo: float, hi: float) -> F64:
    """Mean flux of the good pixels with rest wavelength in [lo, hi) per spectrum (NaN with
    fewer than 2), from running sums along the pixels."""
    rows = np.arange(csum.shape[0])
    a = np.searchsorted(wave, lo * scale)  # first pixel at or above lo, observed frame
    b = np.searchsorted(wave, hi * scale)
    n = ccount[rows, b] - ccount[rows, a]
    total = csum[rows, b] - csum[rows, a]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 2, total / n, np.nan)


def line_indices(
    wave_angstrom: F64, flux: npt.ArrayLike, ivar: npt.ArrayLike, z: npt.ArrayLike
) -> F64:
    """Indices (S, len(INDEX_NAMES)) of spectra (S, P) on ``wave_angstrom`` at redshifts z.

    Pixels with ivar <= 0 or non-finite flux are not used. An index whose bands have fewer
    than two good pixels, or whose pseudo-continuum is not positive, is NaN.
    """
    f = np.atleast_2d(np.asarray(flux, dtype=np.float64))
    w = np.atleast_2d(np.asarray(ivar, dtype=np.float64))
    scale = 1.0 + np.atleast_1d(np.asarray(z, dtype=np.float64))
    good = (w > 0) & np.isfinite(f)
    # running sums with a leading 0: the sum over pixels [a, b) is csum[b] - csum[a]
    csum = np.zeros((f.shape[0], f.shape[1] + 1))
    np.cumsum(np.where(good, f, 0.0), axis=1, out=csum[:, 1:])
    ccount = np.zeros_like(csum)
    np.cumsum(good, axis=1, out=ccount[:, 1:])
    out = np.full((f.shape[0], len(INDEX_NAMES)), np.nan)
    for k, (feature, blue, red) in enumerate(INDEX_BANDS.values()):  # 23 bands, not pixels
        cont = 0.5 * (
            _band_mean(wave_angstrom, csum, ccount, scale, *blue)
            + _band_mean(wave_angstrom, csum, ccount, scale, *red)
        )
        line = _band_mean(wave_angstrom, csum, ccount, scale, *feature)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, k] = np.where(cont > 0, line / cont, np.nan)
    return out

"""Noise-free and noisy model spectra on the LAMOST grid (numpy kernels only).

Everything here takes arrays and returns arrays for a whole batch of spectra at
once: no file I/O, no Python loop over spectra in the hot path.
"""

from __future__ import annotations

import re

import numpy as np
import numpy.typing as npt

from lamostdb.templates import TemplateSet
from lamostdb.templates.subclass import subclass_of_template

F64 = npt.NDArray[np.float64]

LOGLAM0 = 3.5682
DLOGLAM = 1e-4
NPIX = 3909

# LAMOST's SNRU..SNRZ bands (Angstrom); the g band also defines snr_g.
BANDS: dict[str, tuple[float, float]] = {
    "U": (3700.0, 4000.0),
    "G": (4000.0, 5500.0),
    "R": (5600.0, 6900.0),
    "I": (6900.0, 8400.0),
    "Z": (8400.0, 9100.0),
}
SKY_LINES_ANGSTROM = (5577.34, 5891.58, 6300.30, 6363.78)
# Bits of the SDSS/LAMOST pixel mask: which ones mean "no usable data".
MASK_BITS_DEAD = (1 << 18, 1 << 24, 1 << 25, (1 << 16) | (1 << 18))  # FULLREJECT, NODATA, ...
MASK_BIT_PARTIAL = 1 << 19  # PARTIALREJECT: flagged but still usable
MASK_BIT_BRIGHTSKY = 1 << 23

# Relative weights of the star families in a LAMOST-like target mix.
STAR_FAMILY_WEIGHTS: dict[str, float] = {
    "O": 0.003,
    "B": 0.03,
    "A": 0.08,
    "F": 0.25,
    "G": 0.30,
    "K": 0.25,
    "M": 0.07,
    "WD": 0.01,
    "Carbon": 0.003,
}
EXCLUDED_STARS = frozenset({"Ldwarf"})  # far too red for the LAMOST optical window

_MK_RE = re.compile(r"^(?:sd:?)?([OBAFGKM])(\d)?")


def wave_angstrom(npix: int = NPIX) -> F64:
    """Observed-frame vacuum wavelength of the LAMOST log-linear grid."""
    return 10.0 ** (LOGLAM0 + DLOGLAM * np.arange(npix, dtype=np.float64))


def band_mask(wave: F64, band: str) -> npt.NDArray[np.bool_]:
    """Pixels of ``wave`` inside one of :data:`BANDS`."""
    lo, hi = BANDS[band]
    return (wave >= lo) & (wave < hi)


def star_family(name: str) -> str:
    """``O``..``M``, ``WD`` or ``Carbon`` for a spEigenStar template name."""
    if "WD" in name:
        return "WD"
    if name.startswith("Carbon"):
        return "Carbon"
    match = _MK_RE.match(name)
    if match is None:
        raise ValueError(f"cannot tell the spectral type of template {name!r}")
    return match.group(1)


def subclass_of(name: str) -> str:
    """LAMOST-style subclass of a spEigenStar template name.

    The packaged table decides, so the truth table says what the classifier
    reports for the same template.

    >>> [subclass_of(n) for n in ("K3V (32147)", "B2.5V (175426)", "O8e (188001)",
    ...                          "sdF3 (140283)", "WDhotter", "Carbon")]
    ['K3', 'B2', 'O8', 'F3', 'WD', 'Carbon']
    """
    return subclass_of_template(name)


def star_pool(stars: TemplateSet) -> tuple[npt.NDArray[np.intp], F64]:
    """Rows of the star templates we draw from and the probability of each."""
    rows = [i for i, n in enumerate(stars.names) if n not in EXCLUDED_STARS]
    families = [star_family(stars.names[i]) for i in rows]
    counts = {f: families.count(f) for f in set(families)}
    # Spread each family's weight evenly over its templates.
    p = np.array([STAR_FAMILY_WEIGHTS[f] / counts[f] for f in families])
    return np.asarray(rows, dtype=np.intp), p / p.sum()


def _shift_index(tset: TemplateSet, z: F64, wave: F64) -> tuple[npt.NDArray[np.intp], F64]:
    """Template pixel left of each ``wave / (1 + z)`` and the linear-lambda weight."""
    wave_t = tset.wave_angstrom
    log_rest = np.log10(wave)[None, :] - np.log10(1.0 + np.asarray(z, np.float64))[:, None]
    # The template grid is log-linear, so its pixel index is arithmetic, not a search.
    left = np.floor((log_rest - tset.loglam0) / tset.dloglam).astype(np.intp)
    np.clip(left, 0, wave_t.size - 2, out=left)
    rest = 10.0**log_rest
    # Weights in linear wavelength, as np.interp; the clip makes values outside
    # the template hold the end value, also as np.interp.
    lo = wave_t[left]
    frac = np.clip((rest - lo) / (wave_t[left + 1] - lo), 0.0, 1.0)
    return left, frac


def shift_templates(tset: TemplateSet, rows: npt.NDArray[np.intp], z: F64, wave: F64) -> F64:
    """``vectors[rows[j]]`` redshifted by ``z[j]`` and sampled at ``wave``.

    Same numbers as ``np.interp(wave / (1 + z[j]), tset.wave_angstrom,
    tset.vectors[rows[j]])`` for every ``j``, for the whole batch at once.
    """
    left, frac = _shift_index(tset, z, wave)
    flat = tset.vectors.ravel()
    start = (np.asarray(rows, dtype=np.intp) * tset.vectors.shape[1])[:, None] + left
    return flat[start] * (1.0 - frac) + flat[start + 1] * frac


def eigen_model(tset: TemplateSet, coeffs: F64, z: F64, wave: F64) -> F64:
    """``sum_k coeffs[j, k] * e_k(wave / (1 + z[j]))`` for a batch of objects."""
    coeffs = np.atleast_2d(coeffs)
    left, frac = _shift_index(tset, z, wave)
    out = np.zeros(left.shape)
    for k in range(coeffs.shape[1]):
        vec = tset.vectors[k]
        out += coeffs[:, k, None] * (vec[left] * (1.0 - frac) + vec[left + 1] * frac)
    return out


def draw_eigen_coeffs(
    rng: np.random.Generator,
    tset: TemplateSet,
    z: F64,
    rel_sigma: tuple[float, ...],
    wave: F64,
    *,
    max_negative: float = 0.05,
    tries: int = 20,
) -> F64:
    """Coefficients ``(1, c1, c2, ...)`` whose model is mostly positive.

    ``c_k ~ N(0, rel_sigma[k-1] * rms(e_0) / rms(e_k))``, so each extra vector
    changes the mean spectrum by about ``rel_sigma`` of its amplitude. Objects
    whose model is negative on more than ``max_negative`` of the observed
    pixels are redrawn; after ``tries`` failures they keep the mean spectrum.
    """
    n = np.asarray(z).size
    rms = np.sqrt(np.mean(tset.vectors**2, axis=1))
    scale = np.asarray(rel_sigma) * rms[0] / rms[1 : len(rel_sigma) + 1]
    coeffs = np.zeros((n, len(rel_sigma) + 1))
    coeffs[:, 0] = 1.0
    todo = np.arange(n)
    for _ in range(tries):
        if todo.size == 0:
            break
        coeffs[todo, 1:] = rng.normal(0.0, scale, size=(todo.size, scale.size))
        model = eigen_model(tset, coeffs[todo], np.asarray(z)[todo], wave)
        todo = todo[np.mean(model < 0.0, axis=1) > max_negative]
    coeffs[todo, 1:] = 0.0  # e_0 alone is positive everywhere for the SDSS bases
    return coeffs


def legendre_basis(npix: int = NPIX, degree: int = 3) -> F64:
    """Legendre polynomials P_1..P_degree on x in [-1, 1] across the grid."""
    x = np.linspace(-1.0, 1.0, npix)
    return np.stack([np.polynomial.legendre.Legendre.basis(k)(x) for k in range(1, degree + 1)])


def draw_tilts(rng: np.random.Generator, m: int, tilt_max: float, basis: F64) -> F64:
    """Coefficients ``a_k`` with ``max |sum_k a_k P_k| `` uniform in [0, tilt_max]."""
    raw = rng.normal(size=(m, basis.shape[0]))
    peak = np.max(np.abs(raw @ basis), axis=1)
    target = rng.uniform(0.0, tilt_max, size=m)
    return raw * (target / np.where(peak > 0, peak, 1.0))[:, None]


def noise_profile(wave: F64, edge_blue: F64, edge_red: F64) -> F64:
    """Relative noise per pixel: 1 mid-spectrum, ``edge_*`` at the two ends.

    Detector QE and dichroic throughput fall at both ends of each LAMOST arm,
    so sigma rises there; sky-line residuals add noise at the bright lines.
    """
    x = np.linspace(-1.0, 1.0, wave.size)
    # Lowest noise a little blue-ward of the middle (the g band region).
    centre = -0.2
    blue = np.clip((centre - x) / (1.0 + centre), 0.0, None) ** 2
    red = np.clip((x - centre) / (1.0 - centre), 0.0, None) ** 2
    prof = 1.0 + (edge_blue[:, None] - 1.0) * blue + (edge_red[:, None] - 1.0) * red
    sky = np.zeros(wave.size)
    for line in SKY_LINES_ANGSTROM:
        sky += 0.8 * np.exp(-0.5 * ((wave - line) / 2.0) ** 2)
    return prof * (1.0 + sky)


def sky_residuals(amplitudes: F64, wave: F64, width_angstrom: float = 1.6) -> F64:
    """Residual spikes at the bright sky lines (one amplitude per line per spectrum)."""
    lines = np.asarray(SKY_LINES_ANGSTROM)
    shapes = np.exp(-0.5 * ((wave[None, :] - lines[:, None]) / width_angstrom) ** 2)
    return amplitudes @ shapes


def band_flux_mags(models: F64, wave: F64) -> F64:
    """Relative AB-like g, r, i, z magnitudes (columns) of noise-free models.

    Mean f_nu in each LAMOST band, up to one common zero point: only colours
    are meaningful.
    """
    f_nu = np.clip(models, 1e-30, None) * wave[None, :] ** 2
    cols = [np.mean(f_nu[:, band_mask(wave, b)], axis=1) for b in ("G", "R", "I", "Z")]
    return -2.5 * np.log10(np.clip(np.stack(cols, axis=1), 1e-30, None))


def masked_median(values: F64, valid: npt.NDArray[np.bool_]) -> F64:
    """Row-wise median of ``values`` over ``valid`` pixels (0 where none are)."""
    v = np.where(valid, values, np.inf)  # invalid pixels sort to the end of each row
    v.sort(axis=1)
    count = valid.sum(axis=1)
    rows = np.arange(v.shape[0])
    lo = v[rows, np.maximum(count - 1, 0) // 2]
    hi = v[rows, np.minimum(count // 2, v.shape[1] - 1)]
    return np.where(count > 0, 0.5 * (lo + hi), 0.0)


def measured_snr(
    flux: npt.NDArray[np.floating], ivar: npt.NDArray[np.floating], wave: F64
) -> dict[str, F64]:
    """Median per-pixel S/N (``flux * sqrt(ivar)``) in each band, as LAMOST's SNRx."""
    out = {}
    for band in BANDS:
        sel = band_mask(wave, band)
        f = flux[:, sel].astype(np.float64)
        iv = ivar[:, sel].astype(np.float64)
        out[band] = masked_median(f * np.sqrt(iv), iv > 0)
    return out

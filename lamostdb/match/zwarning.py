"""ZWARNING: a bitmask of reasons to doubt a classification or redshift.

Bits 0-7 have the meaning and numbers of the SDSS/BOSS ``ZWARNING`` (and DESI redrock's
first eight bits), so a query written for those catalogues reads ours the same way; bits
8-13 are this pipeline's (the confidence estimate, the polynomial re-match, the candidate
reordering, the blue/red arm join, the class decision). ``ZWARNING = 0`` means no warning.

>>> ZWarning.SMALL_DELTA_CHI2 | ZWarning.LOW_CONFIDENCE
<ZWarning.SMALL_DELTA_CHI2|LOW_CONFIDENCE: 260>
>>> describe(260)
['SMALL_DELTA_CHI2', 'LOW_CONFIDENCE']
"""

from __future__ import annotations

import enum

import numpy as np


class ZWarning(enum.IntFlag):
    """The bits (value = 2**bit)."""

    #: The fibre was a sky fibre (FIB_TYPE / OBJTYPE says Sky): not an astronomical target.
    SKY = 1 << 0
    #: Too little usable wavelength coverage: fewer than half of the working-grid pixels
    #: carry weight (masked, outside the observed range, or ivar = 0).
    LITTLE_COVERAGE = 1 << 1
    #: The best fit's reduced chi-square is within 0.01 of the next candidate that is a
    #: different answer (another class, or a redshift more than 1000 km/s away), degenerate
    #: neighbours (see DEGENERATE_CANDIDATES) not counted.
    SMALL_DELTA_CHI2 = 1 << 2
    #: The best-fit model is negative on more than 1 % of the weighted pixels.
    NEGATIVE_MODEL = 1 << 3
    #: More than 5 % of the weighted pixels lie more than 5 sigma from the best-fit model.
    MANY_OUTLIERS = 1 << 4
    #: The chi-square minimum is at the edge of the class's redshift grid.
    Z_FITLIMIT = 1 << 5
    #: A QSO fit with a broad line (C IV, C III], Mg II, H beta, H alpha) whose measured
    #: flux above the local continuum is negative by more than 3 sigma.
    NEGATIVE_EMISSION = 1 << 6
    #: No pixel carries weight (broken or unplugged fibre, or a fully masked spectrum).
    UNPLUGGED = 1 << 7
    #: The confidence estimate is below the threshold (default 0.8) after any re-match.
    LOW_CONFIDENCE = 1 << 8
    #: The polynomial re-match replaced the first match.
    POLY_REFINED = 1 << 9
    #: A re-match was rejected because its continuum came out inverted (negative leading
    #: coefficient), or the best fit itself has a negative leading coefficient.
    INVERTED_CONTINUUM = 1 << 10
    #: The best fit's degenerate neighbours (chi-square within 1 %, subclass within 5 steps;
    #: moved to the end of the candidate list) include another spectral letter: G9 and K0
    #: fit equally well, so the letter itself is undecided. Same-letter neighbours (G2, G3),
    #: the usual case, set no bit.
    DEGENERATE_CANDIDATES = 1 << 11
    #: The fitted continuum jumps by more than 10 % across the blue/red arm join.
    ARM_MISMATCH = 1 << 12
    #: The class decision (``lamostdb.match.decide``) found the chosen class ahead of the
    #: next class by less than its ``marginal`` threshold of rchi2-scaled chi-square, on a
    #: common continuum footing; the confidence is capped below 0.8 accordingly.
    CLASS_MARGINAL = 1 << 13


#: Bit number of every flag, by name (for SQL users: ``zwarning & (1 << bit) != 0``).
ZWARNING_BITS: dict[str, int] = {
    f.name: f.value.bit_length() - 1 for f in ZWarning if f.name is not None
}


def describe(value: int) -> list[str]:
    """Names of the bits set in ``value``, lowest bit first."""
    return [name for name, bit in ZWARNING_BITS.items() if value >> bit & 1]


#: Rest-frame vacuum wavelengths (Angstrom) of the broad QSO lines checked for NEGATIVE_EMISSION.
QSO_LINES = {"CIV": 1549.06, "CIII]": 1908.73, "MgII": 2798.75, "Hbeta": 4862.68, "Halpha": 6564.61}
LINE_HALF_WIDTH = 0.01  # +-1 % of the line wavelength (3,000 km/s)
SIDEBAND = (0.015, 0.03)  # continuum from 1.5-3 % either side


def negative_emission(
    flux: np.ndarray, ivar: np.ndarray, wave: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """(S,) True where a broad line in coverage has flux + 3 sigma < 0 above its continuum.

    The continuum is the weighted mean of the two sidebands; the line flux is the sum of
    (flux - continuum) over the line window, its error from ivar.
    """
    out = np.zeros(flux.shape[0], dtype=bool)
    good = ivar > 0
    for rest in QSO_LINES.values():  # five lines, not a loop over spectra
        centre = rest * (1.0 + z)[:, None]
        d = np.abs(wave[None, :] - centre) / centre
        line = good & (d <= LINE_HALF_WIDTH)
        side = good & (d >= SIDEBAND[0]) & (d <= SIDEBAND[1])
        n_line, n_side = line.sum(axis=1), side.sum(axis=1)
        ok = (n_line >= 5) & (n_side >= 5)
        with np.errstate(divide="ignore", invalid="ignore"):
            cont = np.where(side, ivar * flux, 0).sum(axis=1) / np.where(side, ivar, 0).sum(axis=1)
            resid = np.where(line, flux - cont[:, None], 0.0).sum(axis=1)
            err = np.sqrt(np.where(line, 1.0 / np.where(good, ivar, 1.0), 0.0).sum(axis=1))
        out |= ok & (resid + 3.0 * err < 0)
    return out

"""Shared steps of the empirical stellar library importers (Kesseli 2017, STELIB).

Both end on LAMOST's log10 grid ``log10(lambda) = 3.5682 + 1e-4 * k`` (vacuum Angstrom)
and must never hand the engine a NaN: pixels without data (NaN, or exactly zero flux,
which these libraries use for "not observed") are trimmed at the ends and filled by
linear interpolation in the interior. Every importer reports the templates it could
not use, by name and reason, as :class:`LeftOut` rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lamostdb.templates.subclass import LETTER_BASE, parse_subclass
from lamostdb.templates.templateset import TemplateSet

__all__ = [
    "LAMOST_DLOGLAM",
    "LAMOST_LOGLAM0",
    "ImportedLibrary",
    "LeftOut",
    "air_to_vacuum_angstrom",
    "vacuum_to_air_angstrom",
    "fill_gaps",
    "grid_index",
    "lamost_subclass",
]

#: LAMOST's log10-wavelength grid (DESIGN.md section 4).
LAMOST_LOGLAM0 = 3.5682
LAMOST_DLOGLAM = 1e-4


@dataclass(frozen=True)
class LeftOut:
    """A template an importer did not use: its name, file, and why."""

    name: str
    source: str
    reason: str


@dataclass(frozen=True)
class ImportedLibrary:
    """What an importer built (``templates``) and what it left out (``left_out``)."""

    templates: TemplateSet
    left_out: tuple[LeftOut, ...]


def on_lamost_grid(
    names: tuple[str, ...],
    subclasses: tuple[str, ...],
    notes: list[str],
    vectors: npt.NDArray[np.float64],
    k_lo: int,
    files: list,
) -> TemplateSet:
    """An imported single STAR set whose first pixel is grid index ``k_lo``."""
    source = str(files[0]) if len(files) == 1 else str(files[0].parent)
    return TemplateSet(
        objclass="STAR",
        kind="single",
        names=names,
        loglam0=LAMOST_LOGLAM0 + LAMOST_DLOGLAM * k_lo,
        dloglam=LAMOST_DLOGLAM,
        vectors=vectors,
        source=source,
        subclasses=subclasses,
        notes=tuple(notes),
    )


def grid_index(loglam: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Integer ``k`` with ``loglam = 3.5682 + 1e-4 * k`` (rounded to the nearest pixel).

    >>> grid_index([3.5624, 3.5682, 4.0085]).tolist()
    [-58, 0, 4403]
    """
    k = (np.asarray(loglam, dtype=np.float64) - LAMOST_LOGLAM0) / LAMOST_DLOGLAM
    return np.round(k).astype(np.int64)


def air_to_vacuum_angstrom(wave_air_angstrom: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Vacuum wavelength of air wavelengths (Angstrom), Morton (2000) / IAU standard air.

    The refractive index of standard air as a function of the air wavelength is the
    inversion of Morton's (2000, ApJS 130, 403, eq. 8) formula given by N. Piskunov for
    VALD; it agrees with the iterative inversion to better than 1e-4 Angstrom over
    2000-20000 Angstrom (the test checks a round trip).

    >>> round(float(air_to_vacuum_angstrom(6562.80)), 2)  # H-alpha
    6564.61
    """
    lam = np.asarray(wave_air_angstrom, dtype=np.float64)
    s2 = (1e4 / lam) ** 2
    n = (
        1.0
        + 8.336624212083e-5
        + 2.408926869968e-2 / (130.1065924522 - s2)
        + 1.599740894897e-4 / (38.92568793293 - s2)
    )
    return lam * n


def vacuum_to_air_angstrom(wave_vacuum_angstrom: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Air wavelength of vacuum wavelengths (Angstrom), Morton (2000, eq. 8).

    >>> round(float(vacuum_to_air_angstrom(6564.61)), 2)
    6562.8
    """
    lam = np.asarray(wave_vacuum_angstrom, dtype=np.float64)
    s2 = (1e4 / lam) ** 2
    n = 1.0 + 8.34254e-5 + 2.406147e-2 / (130.0 - s2) + 1.5998e-4 / (38.9 - s2)
    return lam / n


def fill_gaps(
    flux: npt.NDArray[np.float64], valid: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.float64], int]:
    """Replace invalid interior pixels by linear interpolation between valid neighbours.

    The caller has already trimmed the ends, so the first and last pixels are valid.

    Returns
    -------
    (filled flux, number of pixels filled)

    >>> fill_gaps(np.array([1.0, np.nan, 3.0]), np.array([True, False, True]))
    (array([1., 2., 3.]), 1)
    """
    out = np.array(flux, dtype=np.float64)
    bad = ~valid
    n_bad = int(bad.sum())
    if n_bad:
        idx = np.arange(out.size)
        out[bad] = np.interp(idx[bad], idx[valid], out[valid])
    return out, n_bad


def lamost_subclass(mk_type: str) -> str | None:
    """LAMOST's spelling of the subclass of an MK type, None when it has none.

    LAMOST writes an MK letter and one digit (``'G7'``, ``'K5'``, ``'M2'``), ``'WD'`` for
    white dwarfs; half subtypes are rounded down and the earlier type of a range is kept,
    as in ``star_subclasses.md``; the luminosity class goes to the notes, not the subclass.
    Types with no subtype (``'M'``, ``'WN'``) and non-stellar labels give None.

    >>> [lamost_subclass(t) for t in ("B9.5Vn", "G8/K0IIIw.", "sdF5", "DA:", "L3", "WC")]
    ['B9', 'G8', 'F5', 'WD', 'L3', None]
    >>> lamost_subclass("DC:")
    'WD'

    """
    # ':' marks an uncertain type ("DA:", "K3Iab:"); the type itself is what we map.
    letter, ordinal = parse_subclass(mk_type.replace(":", "").strip())
    if letter == "WD":
        return "WD"
    if letter is None or ordinal is None or letter == "Carbon":
        return None
    return f"{letter}{ordinal - LETTER_BASE[letter]}"

"""STELIB v3.2 stellar spectra (Le Borgne et al. 2003) as LAMOST-grid templates.

Each file is a 1-D primary image on a linear grid (``CRVAL1``, ``CDELT1``, ``CRPIX1``,
~1 Angstrom) with the MK type in ``SPECTYPE``. The headers do not say air or vacuum
(``CTYPE1 = 'LINEAR'``, no AIRORVAC key); the Balmer line centres of the A stars sit at
their air wavelengths (median offset from air: H-alpha -0.10, H-gamma -0.06 Angstrom;
vacuum would be +1.8 and +1.2), as the STELIB paper states, so the wavelengths are taken
as standard air and converted to vacuum (Morton 2000) before a flux-conserving rebin
onto LAMOST's log10 grid ``3.5682 + 1e-4 k``.

Zero flux marks pixels the star was not observed at (ends of the range, gaps between
set-ups). They get zero weight in the rebin; the set keeps the wavelength range that
every kept star covers, and gaps inside it are filled by linear interpolation (counted
in ``notes``). Stars that do not cover ``wave_range_angstrom`` (LAMOST's range at the
star redshift limits), Wolf-Rayet stars and types without a LAMOST subclass are left
out and returned by name with the reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits

from lamostdb.templates.empirical import (
    LAMOST_DLOGLAM,
    LAMOST_LOGLAM0,
    ImportedLibrary,
    LeftOut,
    air_to_vacuum_angstrom,
    fill_gaps,
    lamost_subclass,
    on_lamost_grid,
)
from lamostdb.templates.subclass import subclass_ordinal

__all__ = ["STELIB_SOURCE", "is_stelib_header", "load_stelib", "load_stelib_dir"]

STELIB_SOURCE = (
    "STELIB v3.2, Le Borgne et al. 2003, A&A 402, 433 (via sdss/mangadap, BSD-3-Clause licence)"
)
#: Rest-frame range a kept star must cover with data: LAMOST's 3700-9100 A widened by the
#: star redshift grid (|z| <= 0.004) and a few pixels of margin.
DEFAULT_WAVE_RANGE_ANGSTROM = (3680.0, 9140.0)


def is_stelib_header(header: fits.Header) -> bool:
    """True for a 1-D linear-grid spectrum with an MK type in ``SPECTYPE``."""
    return (
        "SPECTYPE" in header
        and int(header.get("NAXIS", 0)) == 1
        and "CRVAL1" in header
        and "CDELT1" in header
    )


def _read_one(path: Path) -> tuple[str, str, np.ndarray, np.ndarray, str]:
    """(star, MK type, air wavelength of pixel centres, flux, Teff/[Fe/H] text)."""
    with warnings.catch_warnings():
        # STELIB headers carry IRAF cards astropy fixes on reading (APNUM1 = '1 0'):
        # harmless for us, reported as warnings.
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        with fits.open(path, memmap=False) as hdul:
            header = hdul[0].header
            if not is_stelib_header(header):
                raise ValueError(
                    f"{path}: not a STELIB spectrum (1-D image with SPECTYPE, CRVAL1, CDELT1)"
                )
            flux = np.asarray(hdul[0].data, dtype=np.float64)
            star = str(header.get("OBJECT") or header.get("STARIDEN") or path.stem).strip()
            mk = str(header["SPECTYPE"]).strip()
            crpix = float(header.get("CRPIX1", 1.0))
            wave = float(header["CRVAL1"]) + float(header["CDELT1"]) * (
                np.arange(flux.size) + 1.0 - crpix
            )
            params = ", ".join(
                f"{k} = {str(header[k]).strip()}"
                for k in ("TEFF", "FE_H")
                if k in header and str(header[k]).strip() not in ("", "-")
            )
    return star, mk, wave, flux, params


def _edges(centres: np.ndarray) -> np.ndarray:
    mid = 0.5 * (centres[1:] + centres[:-1])
    return np.concatenate([[2 * centres[0] - mid[0]], mid, [2 * centres[-1] - mid[-1]]])


def load_stelib(
    paths: Path | str | list[Path] | list[str],
    *,
    wave_range_angstrom: tuple[float, float] = DEFAULT_WAVE_RANGE_ANGSTROM,
) -> ImportedLibrary:
    """Load STELIB files into one STAR TemplateSet on LAMOST's log10 grid (vacuum).

    Parameters
    ----------
    paths
        One file or a list of files; templates are ordered by spectral ordinal, then name.
    wave_range_angstrom
        Vacuum rest-frame range every kept star must cover with data.

    Returns
    -------
    ImportedLibrary
        ``templates`` and ``left_out`` (Wolf-Rayet stars, types without a LAMOST
        subclass, stars that do not cover ``wave_range_angstrom``).
    """
    from lamostdb.templates.rebin import rebin_flux_conserving_batch

    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    lo_want, hi_want = wave_range_angstrom
    kept = []
    left_out = []
    for path in files:
        star, mk, wave_air, flux, params = _read_one(path)
        name = f"{mk} ({star})"
        sub = lamost_subclass(mk)
        if mk.upper().startswith("W"):
            left_out.append(
                LeftOut(name, str(path), f"Wolf-Rayet star ({mk}): LAMOST has no such subclass")
            )
            continue
        if sub is None:
            left_out.append(
                LeftOut(
                    name, str(path), f"MK type {mk!r} gives no LAMOST subclass (no subtype digit)"
                )
            )
            continue
        edges = air_to_vacuum_angstrom(_edges(wave_air))
        valid = np.isfinite(flux) & (flux != 0)
        cover = edges[:-1][valid][0], edges[1:][valid][-1]
        if cover[0] > lo_want or cover[1] < hi_want:
            left_out.append(
                LeftOut(
                    name,
                    str(path),
                    f"covers {cover[0]:.0f}-{cover[1]:.0f} A "
                    f"(vacuum), not {lo_want:.0f}-{hi_want:.0f} A",
                )
            )
            continue
        kept.append((subclass_ordinal(sub), name, sub, edges, flux, valid, mk, params, str(path)))
    if not kept:
        raise ValueError(
            f"no usable STELIB star among {len(files)} file(s): "
            + "; ".join(f"{x.name}: {x.reason}" for x in left_out)
        )
    kept.sort(key=lambda r: (r[0], r[1]))
    # Output pixels whose whole width lies inside every kept star's coverage with data.
    half = LAMOST_DLOGLAM / 2
    lo = max(float(np.log10(r[3][:-1][r[5]][0])) for r in kept)
    hi = min(float(np.log10(r[3][1:][r[5]][-1])) for r in kept)
    k_lo = int(np.ceil((lo - LAMOST_LOGLAM0 + half) / LAMOST_DLOGLAM - 1e-9))
    k_hi = int(np.floor((hi - LAMOST_LOGLAM0 - half) / LAMOST_DLOGLAM + 1e-9))
    k = np.arange(k_lo, k_hi + 1)
    dst_edges = 10.0 ** (LAMOST_LOGLAM0 + LAMOST_DLOGLAM * np.append(k - 0.5, k[-1] + 0.5))
    vectors = np.empty((len(kept), k.size))
    notes = []
    for i, (_o, _name, _sub, edges, flux, valid, mk, params, _src) in enumerate(kept):
        out, weight = rebin_flux_conserving_batch(
            edges, np.where(valid, flux, 0.0)[None, :], valid.astype(np.float64)[None, :], dst_edges
        )
        good = weight[0] > 0
        vectors[i], n_filled = fill_gaps(np.where(good, out[0], 0.0), good)
        parts = [STELIB_SOURCE, f"MK type {mk}"]
        if params:
            parts.append(params)
        parts.append("air wavelengths converted to vacuum")
        if n_filled:
            parts.append(f"{n_filled} pixels without data interpolated")
        notes.append("; ".join(parts))
    ts = on_lamost_grid(
        tuple(r[1] for r in kept), tuple(r[2] for r in kept), notes, vectors, k_lo, files
    )
    return ImportedLibrary(ts, tuple(left_out))


def load_stelib_dir(
    folder: Path | str, *, wave_range_angstrom: tuple[float, float] = DEFAULT_WAVE_RANGE_ANGSTROM
) -> ImportedLibrary:
    """Load every ``*.fits`` STELIB spectrum of a folder as one set."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".fits", ".fits.gz")))
    if not files:
        raise ValueError(f"{folder}: no .fits or .fits.gz file")
    return load_stelib(files, wave_range_angstrom=wave_range_angstrom)

"""Kesseli et al. (2017) empirical stellar templates, in PyHammer's layout.

Each file (``A3_+0.0_Dwarf.fits``, ``M2_-1.0_Dwarf.fits``, ``L3.fits``, optionally
gzipped) holds in HDU 1 a table ``LogLam`` (float64, vacuum), ``Flux``, ``PropErr``,
``Std``. The copies in ``shared/data/templates/kesseli2017`` were rebinned onto LAMOST's
log10 grid ``3.5682 + 1e-4 k``; the loader checks that (every pixel within 1e-6 dex of the
grid, consecutive) and rebuilds ``loglam0`` as ``3.5682 + k0 * 1e-4`` so the phase is
exact. Files on any other sampling are refused with the reason.

Subclasses follow LAMOST's spelling: MK letter and digit (``A3``, ``M2``, ``O5``, ``L3``);
the dwarf class and [Fe/H] go to ``notes``. LAMOST writes plain ``M0``-``M2`` for most M
stars in the real headers we have (one ``dM5``); the plain form is used, as in
``star_subclasses.md``, and parses to the same ordinal.

Pixels without data (NaN or zero flux) are trimmed at the ends of the common grid and
filled by linear interpolation inside it, so no template has a NaN; the real files have
none, and the notes count any filled pixel.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.io import fits

from lamostdb.templates.empirical import (
    LAMOST_DLOGLAM,
    LAMOST_LOGLAM0,
    ImportedLibrary,
    LeftOut,
    fill_gaps,
    grid_index,
    lamost_subclass,
    on_lamost_grid,
)
from lamostdb.templates.subclass import subclass_ordinal

__all__ = ["KESSELI_SOURCE", "is_kesseli_file", "load_kesseli", "load_kesseli_dir"]

KESSELI_SOURCE = (
    "Kesseli et al. 2017, ApJS 230, 16 (PyHammer templates, mveyette/PyHammer, MIT licence)"
)
_NAME_RE = re.compile(r"^(?P<type>[OBAFGKML]\d(?:\.\d)?)(?:_(?P<feh>[+-]\d+\.\d+)_(?P<lum>\w+))?$")
_GRID_TOL_DEX = 1e-6


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".fits", ".fit"):
        name = name.removesuffix(suffix)
    return name


def is_kesseli_file(hdul: fits.HDUList) -> bool:
    """True when HDU 1 is a table with LogLam and Flux columns (any case)."""
    if len(hdul) < 2 or not hasattr(hdul[1], "columns"):
        return False
    cols = {c.upper() for c in hdul[1].columns.names}
    return {"LOGLAM", "FLUX"} <= cols


def _read_one(path: Path) -> tuple[int, np.ndarray, str]:
    """(grid index of the first pixel, flux, co-addition comment) of one file."""
    with fits.open(path, memmap=False) as hdul:
        if not is_kesseli_file(hdul):
            raise ValueError(
                f"{path}: HDU 1 is not a table with LogLam and Flux columns; "
                "not a Kesseli/PyHammer template"
            )
        cols = {c.upper(): c for c in hdul[1].columns.names}
        loglam = np.asarray(hdul[1].data[cols["LOGLAM"]], dtype=np.float64)
        flux = np.asarray(hdul[1].data[cols["FLUX"]], dtype=np.float64)
        comments = [str(c) for c in hdul[0].header.get("COMMENT", [])]
    k = grid_index(loglam)
    off = np.abs(loglam - (LAMOST_LOGLAM0 + LAMOST_DLOGLAM * k))
    if off.max() > _GRID_TOL_DEX or not np.all(np.diff(k) == 1):
        raise ValueError(
            f"{path}: LogLam is not on the log10 grid 3.5682 + 1e-4 k (largest offset "
            f"{off.max():.2e} dex); rebin the template onto it first"
        )
    made = next((c for c in comments if c.startswith("Template made from")), "")
    return int(k[0]), flux, made


def load_kesseli(paths: Path | str | list[Path] | list[str]) -> ImportedLibrary:
    """Load Kesseli/PyHammer template files into one STAR TemplateSet.

    Parameters
    ----------
    paths
        One file or a list of files. Templates are ordered by spectral ordinal, then
        [Fe/H], then name, whatever the order given.

    Returns
    -------
    ImportedLibrary
        ``templates`` (objclass ``STAR``, kind ``single``, ``subclasses`` and ``notes``
        filled) and ``left_out``: files whose name gives no LAMOST subclass.
    """
    files = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    rows = []
    left_out = []
    for path in files:
        name = _stem(path)
        m = _NAME_RE.match(name)
        sub = lamost_subclass(m["type"]) if m else None
        if m is None or sub is None:
            left_out.append(
                LeftOut(
                    name, str(path), "file name gives no MK type (expected e.g. A3_+0.0_Dwarf, L3)"
                )
            )
            continue
        k0, flux, made = _read_one(path)
        feh = float(m["feh"]) if m["feh"] else None
        rows.append(
            (
                subclass_ordinal(sub),
                feh if feh is not None else 0.0,
                name,
                sub,
                k0,
                flux,
                m["lum"],
                feh,
                made,
                str(path),
            )
        )
    if not rows:
        raise ValueError(
            f"no Kesseli template among {len(files)} file(s): "
            + "; ".join(f"{x.name}: {x.reason}" for x in left_out)
        )
    rows.sort(key=lambda r: (r[0], r[1], r[2]))
    # Common grid: the pixels every template covers with data.
    starts, stops, valids = [], [], []
    for r in rows:
        k0, flux = r[4], r[5]
        valid = np.isfinite(flux) & (flux != 0)
        if not valid.any():
            raise ValueError(f"{r[9]}: no pixel with finite, non-zero flux")
        idx = np.flatnonzero(valid)
        starts.append(k0 + idx[0])
        stops.append(k0 + idx[-1] + 1)
        valids.append(valid)
    k_lo, k_hi = max(starts), min(stops)
    if k_hi <= k_lo:
        raise ValueError("the Kesseli templates given share no wavelength range")
    vectors = np.empty((len(rows), k_hi - k_lo))
    notes = []
    for i, (r, valid) in enumerate(zip(rows, valids, strict=True)):
        k0, flux = r[4], r[5]
        sl = slice(k_lo - k0, k_hi - k0)
        vectors[i], n_filled = fill_gaps(np.nan_to_num(flux[sl]), valid[sl])
        lum, feh, made = r[6], r[7], r[8]
        parts = [KESSELI_SOURCE, f"type {r[2].split('_')[0]}"]
        if lum:
            parts.append(f"{lum.lower()}, [Fe/H] = {feh:+.1f}")
        if made:
            parts.append(made.rstrip("."))
        if n_filled:
            parts.append(f"{n_filled} pixels without data interpolated")
        notes.append("; ".join(parts))
    ts = on_lamost_grid(
        tuple(r[2] for r in rows), tuple(r[3] for r in rows), notes, vectors, k_lo, files
    )
    return ImportedLibrary(ts, tuple(left_out))


def load_kesseli_dir(folder: Path | str) -> ImportedLibrary:
    """Load every ``*.fits`` / ``*.fits.gz`` Kesseli template of a folder as one set."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.name.endswith((".fits", ".fits.gz")))
    if not files:
        raise ValueError(f"{folder}: no .fits or .fits.gz file")
    return load_kesseli(files)

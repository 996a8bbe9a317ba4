"""The lamostdb star-library file: many single star templates on one rest log10 grid.

Layout (FITS):

- primary HDU, no data: ``LIBFMT = 'lamostdb-library'``, ``LIBVERS``, ``LIBNAME``, and the
  provenance (how the library was made) as ``HISTORY`` cards;
- binary table ``EXTNAME = 'TEMPLATES'``, one row per template: ``NAME``, ``CLASS`` (STAR),
  ``SUBCLASS`` (LAMOST spelling), ``SOURCE``, ``LICENCE``, ``NOTES``, ``N_SPECTRA`` (-1:
  unknown), ``MEDIAN_SNR`` and ``SCATTER`` (NaN: unknown), ``LOGLAM0``, ``DLOGLAM`` and
  ``FLUX`` (float32, fixed length; every row on the same grid).

Sets of different origins (one built by ``lamostdb templates build``, others imported from
empirical libraries) are put on one grid by `write_library`: the grid of the first set,
widened to cover them all. A set whose start lies a whole number of pixels away (same step)
is placed by slicing; any other is rebinned flux-conservingly. Pixels of the common grid a
template does not cover take its nearest covered value (stated in the row's ``NOTES``), so
that no row holds NaN.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import polars as pl
from astropy.io import fits

from lamostdb.templates.subclass import spectral_letter, subclass_of_template
from lamostdb.templates.templateset import TemplateSet

LIBFMT = "lamostdb-library"
LIBVERS = 1
EXTNAME = "TEMPLATES"
#: Largest distance (in pixels) of a start from a whole pixel for slicing instead of rebinning.
PHASE_TOL_PIXEL = 1e-6
_COLUMNS = (
    "NAME",
    "CLASS",
    "SUBCLASS",
    "SOURCE",
    "LICENCE",
    "NOTES",
    "N_SPECTRA",
    "MEDIAN_SNR",
    "SCATTER",
    "LOGLAM0",
    "DLOGLAM",
    "FLUX",
)

__all__ = [
    "LIBFMT",
    "TemplateStats",
    "is_library_file",
    "library_table",
    "load_library",
    "write_library",
]


@dataclass(frozen=True)
class TemplateStats:
    """What went into one template (None: not known, e.g. an imported library)."""

    n_spectra: int | None
    median_snr: float | None
    scatter: float | None


def _subclass_of(ts: TemplateSet, i: int) -> str:
    if ts.subclasses is not None:
        return ts.subclasses[i]
    try:
        return subclass_of_template(ts.names[i])
    except KeyError:
        label = ts.subclass or ts.names[i]
        return label if spectral_letter(label) is not None else "Non"


def _common_grid(sets: Sequence[TemplateSet]) -> tuple[float, float, int]:
    step = sets[0].dloglam
    base = sets[0].loglam0
    lo = min(ts.loglam0 for ts in sets)
    hi = max(ts.loglam0 + ts.dloglam * (ts.vectors.shape[1] - 1) for ts in sets)
    start = base - math.ceil((base - lo) / step - PHASE_TOL_PIXEL) * step
    npix = math.floor((hi - start) / step + PHASE_TOL_PIXEL) + 1
    return start, step, npix


def _on_grid(
    ts: TemplateSet, loglam0: float, dloglam: float, npix: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """``ts.vectors`` on the common grid and the mask of covered pixels."""
    from lamostdb.templates.rebin import rebin_flux_conserving_batch

    n_t, n_p = ts.vectors.shape
    offset_f = (ts.loglam0 - loglam0) / dloglam
    k = round(offset_f)
    out = np.zeros((n_t, npix))
    covered = np.zeros((n_t, npix), dtype=bool)
    if abs(ts.dloglam - dloglam) <= 1e-12 and abs(offset_f - k) <= PHASE_TOL_PIXEL:
        a, b = max(0, k), min(npix, k + n_p)
        out[:, a:b] = ts.vectors[:, a - k : b - k]
        covered[:, a:b] = np.isfinite(out[:, a:b])
    else:
        src = 10.0 ** (ts.loglam0 + ts.dloglam * (np.arange(n_p + 1) - 0.5))
        dst = 10.0 ** (loglam0 + dloglam * (np.arange(npix + 1) - 0.5))
        vec = np.nan_to_num(ts.vectors, nan=0.0)
        flux, ivar = rebin_flux_conserving_batch(src, vec, np.isfinite(ts.vectors) * 1.0, dst)
        out, covered = flux, ivar > 0
    return out, covered


def _fill_nearest(
    row: npt.NDArray[np.float64], covered: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    idx = np.arange(row.size)
    return np.interp(idx, idx[covered], row[covered])


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")


def write_library(
    path: str | Path,
    sets: Sequence[TemplateSet],
    *,
    name: str,
    provenance: str,
    stats: Sequence[Sequence[TemplateStats | None]] | None = None,
    licences: Sequence[str] | None = None,
) -> None:
    """Write single STAR template sets as one library file, atomically.

    Parameters
    ----------
    path
        The ``.fits`` file to write (replaced if it exists; written beside, then renamed).
    sets
        Single-kind STAR template sets; put on one common grid (see the module docstring).
    name
        Library name (``LIBNAME``).
    provenance
        How the library was made (free text, kept as HISTORY cards).
    stats
        Per set, per template: spectra used, median S/N, scatter (None: unknown).
    licences
        Per set: the licence of its source (e.g. ``'CC-BY-4.0'``); default ``'unknown'``.
    """
    if not sets:
        raise ValueError("write_library needs at least one template set")
    for ts in sets:
        if ts.objclass != "STAR" or ts.kind != "single":
            raise ValueError(
                f"{ts.source}: a library holds single STAR templates, not {ts.objclass}/{ts.kind}"
            )
    if stats is not None and (
        len(stats) != len(sets)
        or any(len(st) != ts.vectors.shape[0] for st, ts in zip(stats, sets, strict=True))
    ):
        raise ValueError("stats must give one entry per template of every set")
    if licences is not None and len(licences) != len(sets):
        raise ValueError(f"licences must give one entry per set ({len(sets)})")
    loglam0, dloglam, npix = _common_grid(sets)
    rows: dict[str, list[object]] = {c: [] for c in _COLUMNS}
    for si, ts in enumerate(sets):
        vectors, covered = _on_grid(ts, loglam0, dloglam, npix)
        for i in range(ts.vectors.shape[0]):
            if not covered[i].any():
                raise ValueError(f"{ts.source}: template {ts.names[i]!r} has no finite value")
            note = ts.notes[i] if ts.notes is not None else ""
            if not covered[i].all():
                lo, hi = 10.0 ** (loglam0 + dloglam * np.flatnonzero(covered[i])[[0, -1]])
                pad = f"padded with its edge values outside {lo:.1f}-{hi:.1f} A"
                note = f"{note}; {pad}" if note else pad
            st = stats[si][i] if stats is not None else None
            rows["NAME"].append(_ascii(ts.names[i]))
            rows["CLASS"].append("STAR")
            rows["SUBCLASS"].append(_ascii(_subclass_of(ts, i)))
            rows["SOURCE"].append(
                _ascii(Path(ts.source).name if os.sep in ts.source else ts.source)
            )
            rows["LICENCE"].append(_ascii(licences[si] if licences is not None else "unknown"))
            rows["NOTES"].append(_ascii(note))
            n_sp = st.n_spectra if st is not None else None
            rows["N_SPECTRA"].append(-1 if n_sp is None else int(n_sp))
            for key, val in (
                ("MEDIAN_SNR", st.median_snr if st else None),
                ("SCATTER", st.scatter if st else None),
            ):
                rows[key].append(math.nan if val is None else float(val))
            rows["LOGLAM0"].append(loglam0)
            rows["DLOGLAM"].append(dloglam)
            rows["FLUX"].append(_fill_nearest(vectors[i], covered[i]).astype(np.float32))
    _write_fits(Path(path), rows, npix, name=name, provenance=provenance)


def _text_column(name: str, values: list[object]) -> fits.Column:
    width = max(1, *(len(str(v)) for v in values))
    return fits.Column(name=name, format=f"{width}A", array=np.array(values, dtype=f"U{width}"))


def _write_fits(
    path: Path, rows: dict[str, list[object]], npix: int, *, name: str, provenance: str
) -> None:
    primary = fits.PrimaryHDU()
    hdr = primary.header
    hdr["LIBFMT"] = (LIBFMT, "lamostdb star-template library")
    hdr["LIBVERS"] = (LIBVERS, "version of the library layout")
    hdr["LIBNAME"] = _ascii(name)
    hdr["NTEMPL"] = (len(rows["NAME"]), "number of templates")
    hdr.add_comment(
        "Templates: HDU TEMPLATES, one row each; log10(lambda/A) = LOGLAM0 + "
        "DLOGLAM*i, vacuum, rest frame."
    )
    for line in provenance.splitlines() or [""]:
        for piece in textwrap.wrap(_ascii(line), 70) or [""]:
            hdr.add_history(piece)
    cols = [
        _text_column(c, rows[c])
        for c in ("NAME", "CLASS", "SUBCLASS", "SOURCE", "LICENCE", "NOTES")
    ]
    cols += [
        fits.Column(
            name="N_SPECTRA", format="J", null=-1, array=np.array(rows["N_SPECTRA"], dtype=np.int32)
        ),
        fits.Column(
            name="MEDIAN_SNR", format="D", array=np.array(rows["MEDIAN_SNR"], dtype=np.float64)
        ),
        fits.Column(name="SCATTER", format="D", array=np.array(rows["SCATTER"], np.float64)),
        fits.Column(name="LOGLAM0", format="D", array=np.array(rows["LOGLAM0"], np.float64)),
        fits.Column(name="DLOGLAM", format="D", array=np.array(rows["DLOGLAM"], np.float64)),
        fits.Column(
            name="FLUX", format=f"{npix}E", array=np.stack([np.asarray(f) for f in rows["FLUX"]])
        ),
    ]
    table = fits.BinTableHDU.from_columns(cols, name=EXTNAME)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fits.HDUList([primary, table]).writeto(tmp, overwrite=True, checksum=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def is_library_file(path: str | Path) -> bool:
    """True when the primary header of the FITS file says ``LIBFMT = 'lamostdb-library'``."""
    with fits.open(path, memmap=False) as hdul:
        return str(hdul[0].header.get("LIBFMT", "")).strip() == LIBFMT


def _read_rows(path: str | Path) -> tuple[fits.Header, fits.FITS_rec]:
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header.copy()
        if str(header.get("LIBFMT", "")).strip() != LIBFMT:
            raise ValueError(
                f"{path}: primary header has no LIBFMT = '{LIBFMT}'; not a "
                "lamostdb library file (make one with `lamostdb templates build`)"
            )
        if EXTNAME not in hdul:
            raise ValueError(
                f"{path}: no {EXTNAME} table HDU; the library file is damaged, write it again"
            )
        data = hdul[EXTNAME].data
        missing = [c for c in _COLUMNS if c not in data.columns.names]
        if missing:
            raise ValueError(
                f"{path}: {EXTNAME} lacks column(s) {missing}; write the library "
                "again with this lamostdb version"
            )
        data = data.copy()
    if len(data) == 0:
        raise ValueError(f"{path}: the {EXTNAME} table has no rows")
    for key in ("LOGLAM0", "DLOGLAM"):
        if np.unique(np.asarray(data[key])).size != 1:
            raise ValueError(f"{path}: rows differ in {key}; every row must be on one grid")
    return header, data


def _strings(data: fits.FITS_rec, key: str) -> tuple[str, ...]:
    return tuple(str(v).strip() for v in data[key])


def load_library(path: str | Path) -> TemplateSet:
    """Read a library file as a single-kind STAR `TemplateSet` (float64 vectors)."""
    header, data = _read_rows(path)
    classes = set(_strings(data, "CLASS"))
    if classes != {"STAR"}:
        raise ValueError(f"{path}: CLASS must be STAR in every row, found {sorted(classes)}")
    vectors = np.asarray(data["FLUX"], dtype=np.float32).astype(np.float64)
    if not np.all(np.isfinite(vectors)):
        raise ValueError(f"{path}: FLUX holds non-finite values; write the library again")
    return TemplateSet(
        "STAR",
        "single",
        _strings(data, "NAME"),
        float(data["LOGLAM0"][0]),
        float(data["DLOGLAM"][0]),
        vectors,
        str(path),
        subclass=None,
        subclasses=_strings(data, "SUBCLASS"),
        notes=_strings(data, "NOTES"),
    )


def library_table(path: str | Path) -> pl.DataFrame:
    """One row per template: name, subclass, source, licence, n_spectra, median_snr, scatter.

    Unknown statistics are null.
    """
    _, data = _read_rows(path)
    n_sp = np.asarray(data["N_SPECTRA"], dtype=np.int64)
    snr = np.asarray(data["MEDIAN_SNR"], dtype=np.float64)
    scat = np.asarray(data["SCATTER"], dtype=np.float64)
    return pl.DataFrame(
        {
            "name": list(_strings(data, "NAME")),
            "subclass": list(_strings(data, "SUBCLASS")),
            "source": list(_strings(data, "SOURCE")),
            "licence": list(_strings(data, "LICENCE")),
            "n_spectra": pl.Series([None if v < 0 else int(v) for v in n_sp], dtype=pl.Int64),
            "median_snr": pl.Series(
                [float(v) if np.isfinite(v) else None for v in snr], dtype=pl.Float64
            ),
            "scatter": pl.Series(
                [float(v) if np.isfinite(v) else None for v in scat], dtype=pl.Float64
            ),
        }
    )

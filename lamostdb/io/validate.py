"""Validation at ingest: what a spectrum must satisfy before it is stored.

Pure functions, no files: the readers call :func:`header_int`, :func:`header_float`
and :func:`header_text` to type header values, and :func:`validate_record` checks a
finished :class:`SpectrumRecord` (lengths, grid, pixel values, identifier ranges) and
returns it with bad pixels masked. Every refusal is a :class:`SpectrumReadError` whose
reason names the card or column, says what is wrong and what to do; the ingest turns
it into a quarantine row. The rule for each case is the table in ``NOTES-ingestval.md``.

Masking rule: a pixel whose flux is not finite (or ``|flux| >= 1e20``), or whose ivar
is not finite, negative or ``>= 1e30``, gets ``ivar = 0`` (a non-finite flux also
becomes 0) and bit :data:`BADPIX_BIT` (2**30) in both ANDMASK and ORMASK. Neither
LAMOST nor SDSS uses that bit, so a stored spectrum says which pixels lamostdb masked.

Examples
--------
>>> header_int(lambda k: " 12", "SPID", "f.fits", lo=1, hi=16)
12
>>> try:
...     safe_token("../../x", "PLANID", "f.fits")
... except SpectrumReadError as exc:
...     print(exc.reason[:37])
header card PLANID = '../../x' is not
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lamostdb.io.fits_read import UnsupportedFits
from lamostdb.io.record import SpectrumReadError, SpectrumRecord

#: Mask bit lamostdb sets (in ANDMASK and ORMASK) on pixels it masked at ingest.
BADPIX_BIT = 1 << 30
#: LAMOST's "no value" marker in header cards; read as NULL.
MISSING = -9999.0
_FLUX_ABSURD = 1e20
_IVAR_ABSURD = 1e30
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+.-]{0,63}$")
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_INT_TEXT = re.compile(r"^[+-]?\d+$")
_INT16, _INT32, _INT64 = 2**15 - 1, 2**31 - 1, 2**63 - 1
#: Plausible (MJD) nights: 1968 to 2132. Below or above is a damaged card.
NIGHT_RANGE = (40_000, 99_999)
_DAMAGED = "the header is damaged (a bit flip?): get a fresh copy of the file"
MiB = 1 << 20


@dataclass(frozen=True)
class ReadLimits:
    """Caps and thresholds the ingest applies to every file (passed down, never global).

    Parameters
    ----------
    max_file_bytes
        Largest file read at all (size on disk; a sparse file counts its full size).
    max_fits_bytes
        Largest FITS content after decompression, and largest data unit any HDU may
        declare; a gzip stream is inflated in chunks and refused as soon as it passes this.
    max_hdus
        Most HDUs looked at in one file.
    min_pixels
        Fewest pixels a spectrum may have.
    min_usable_pixels, min_usable_fraction
        A spectrum needs ``ivar > 0`` (after masking) at no fewer than
        ``max(min_usable_pixels, min_usable_fraction * npix)`` pixels.
    """

    max_file_bytes: int = 64 * MiB
    max_fits_bytes: int = 64 * MiB
    max_hdus: int = 256
    min_pixels: int = 100
    min_usable_pixels: int = 100
    min_usable_fraction: float = 0.1


DEFAULT_LIMITS = ReadLimits()


def _safe_get(get: Callable[[str], Any], key: str, path: str) -> Any:
    try:
        return get(key)
    except UnsupportedFits:
        raise  # the fast reader hands the file to astropy, which reads more card forms
    except Exception as exc:  # a reader's header lookup failing is a damaged card
        raise SpectrumReadError(
            path, f"header card {key} cannot be read ({type(exc).__name__}: {exc}); {_DAMAGED}"
        ) from None


def header_int(
    get: Callable[[str], Any],
    key: str,
    path: str,
    *,
    lo: int = -_INT64,
    hi: int = _INT64,
    required: bool = False,
) -> int | None:
    """The integer value of header card ``key``, checked against ``[lo, hi]``.

    Absent, blank or ``-9999``: None (an error when ``required``). Present but not an
    integer, or out of range: :class:`SpectrumReadError` naming the card.
    """
    v = _safe_get(get, key, path)
    out: int | None = None
    if isinstance(v, str) and _INT_TEXT.match(v.strip()):
        out = int(v.strip())
    elif isinstance(v, int) and not isinstance(v, bool):
        out = int(v)
    elif isinstance(v, float) and v.is_integer():
        out = int(v)
    elif v is not None and not (isinstance(v, str) and not v.strip()):
        raise SpectrumReadError(
            path, f"header card {key} = {str(v)[:40]!r} is not an integer; {_DAMAGED}"
        )
    if out == MISSING:
        out = None
    if out is None:
        if required:
            raise SpectrumReadError(
                path,
                f"header card {key} is missing; the ingest needs it "
                "to name the spectrum (add it or get a complete file)",
            )
        return None
    if not lo <= out <= hi:
        raise SpectrumReadError(
            path, f"header card {key} = {out} is outside {lo}..{hi}; {_DAMAGED}"
        )
    return out


def header_float(
    get: Callable[[str], Any], key: str, path: str, *, lo: float = -math.inf, hi: float = math.inf
) -> float | None:
    """The real value of header card ``key`` (None when absent, blank or ``-9999``).

    Present but not a finite number, or outside ``[lo, hi]``: :class:`SpectrumReadError`
    naming the card (never a silent NULL).
    """
    v = _safe_get(get, key, path)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    x: float | None = None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v.strip().replace("D", "E"))
        except ValueError:
            x = None
    if x is None or not math.isfinite(x):
        raise SpectrumReadError(
            path, f"header card {key} = {str(v)[:40]!r} is not a finite number; {_DAMAGED}"
        )
    if x == MISSING:
        return None
    if not lo <= x <= hi:
        raise SpectrumReadError(path, f"header card {key} = {x} is outside {lo}..{hi}; {_DAMAGED}")
    return x


def printable(s: str) -> str:
    """``s`` with characters outside printable ASCII replaced by ``?``.

    >>> printable("M31\\x00\\u00e9")
    'M31??'
    """
    return _NOT_PRINTABLE.sub("?", s)


def header_text(get: Callable[[str], Any], key: str, path: str) -> str | None:
    """A header string value, stripped and reduced to printable ASCII (None when blank)."""
    v = _safe_get(get, key, path)
    if v is None or isinstance(v, bool):
        return None
    s = printable(str(v)).strip()
    return s or None


def safe_token(value: str, key: str, path: str) -> str:
    """``value`` if it can be part of a file name (letters, digits, ``_+.-``), else refuse.

    A PLANID becomes part of the specid, and the specid part of exported file names, so
    ``../``, ``;``, ``$(...)``, blanks and the like are refused rather than rewritten:
    a rewritten id would name a different plan.
    """
    if not _TOKEN.match(value) or ".." in value:
        raise SpectrumReadError(
            path,
            f"header card {key} = {value[:40]!r} is not a safe name "
            "(letters, digits, _ + . - only, at most 64, no '..'); it "
            "becomes part of file names, so the file is refused: fix the "
            "card or report the file",
        )
    return value


def _check(cond: bool, path: str, reason: str) -> None:
    if not cond:
        raise SpectrumReadError(path, reason)


def _check_identity(r: SpectrumRecord, path: str) -> None:
    """Ranges of the identifiers and of every integer stored in a narrow column."""
    lamost = r.survey == "LAMOST"
    night_key = "LMJD" if lamost else "MJD"
    for key, v, lo, hi in (
        (night_key, r.lmjd, *NIGHT_RANGE),
        ("MJD", r.mjd, *NIGHT_RANGE),
        ("SPID", r.spid, 1, 16),
        ("FIBERID", r.fiberid, 1, 250 if lamost else 1000),
        ("OBSID", r.obsid, 1, _INT64),
        ("FIBERMASK", r.fibermask, -_INT32 - 1, _INT32),
    ):
        if v is not None and not lo <= v <= hi:
            raise SpectrumReadError(
                path, f"header card {key} = {v} is outside {lo}..{hi}; {_DAMAGED}"
            )
    if lamost:
        _check(
            r.lmjd is not None or r.mjd is not None,
            path,
            "header card LMJD (and MJD) missing: the night is unknown",
        )
        _check(
            r.spid is not None and r.fiberid is not None and r.planid is not None,
            path,
            "header cards PLANID, SPID and FIBERID are needed to name the spectrum",
        )
    if r.planid is not None:
        safe_token(r.planid, "PLANID", path)
    _check(
        math.isfinite(r.ra) and 0 <= r.ra <= 360 and math.isfinite(r.dec) and -90 <= r.dec <= 90,
        path,
        f"header RA={r.ra} DEC={r.dec} are not positions in degrees; {_DAMAGED}",
    )
    for name in (
        "snru",
        "snrg",
        "snrr",
        "snri",
        "snrz",
        "helio_rv",
        "lasp_z",
        "lasp_z_err",
        "ra_obs",
        "dec_obs",
    ):
        v = getattr(r, name)
        _check(
            v is None or math.isfinite(v),
            path,
            f"header value {name.upper()} = {v} is not finite; {_DAMAGED}",
        )


def _check_grid(r: SpectrumRecord, path: str) -> None:
    if r.wavelength is None:  # 10**(COEFF0 + COEFF1*i): increasing and finite iff these are
        ok = (
            r.coeff0 is not None
            and r.coeff1 is not None
            and math.isfinite(r.coeff0)
            and math.isfinite(r.coeff1)
            and r.coeff1 > 0
        )
        _check(
            ok,
            path,
            f"wavelength grid from COEFF0={r.coeff0} COEFF1={r.coeff1} is not "
            "increasing; COEFF1 must be a positive log10 step (fix the cards or report "
            "the file)",
        )
        assert r.coeff0 is not None and r.coeff1 is not None
        first, last = r.coeff0, r.coeff0 + r.coeff1 * (r.npix - 1)
        _check(
            math.log10(300.0) <= first and last <= 5.0,
            path,
            f"COEFF0={r.coeff0} COEFF1={r.coeff1} give wavelengths 10**{first:.4g}.."
            f"10**{last:.4g}, not Angstrom of an optical spectrum (300..100000); the "
            "file is damaged: get a fresh copy",
        )
        return
    wave = r.wavelength
    _check(
        bool(np.all(np.isfinite(wave))),
        path,
        f"WAVELENGTH has {int(np.sum(~np.isfinite(wave)))} non-finite value(s); the grid "
        "must be finite everywhere (the file is damaged: get a fresh copy)",
    )
    _check(
        bool(np.all(np.diff(wave) > 0)),
        path,
        "WAVELENGTH is not strictly increasing (first fault at pixel "
        f"{int(np.argmax(np.diff(wave) <= 0)) + 1}); the file is damaged: get a fresh copy",
    )
    _check(
        bool(300.0 <= wave[0] and wave[-1] <= 100_000.0),
        path,
        f"WAVELENGTH runs {wave[0]:.6g}..{wave[-1]:.6g}, not Angstrom of an optical "
        "spectrum (300..100000); the file is damaged or not a spectrum",
    )


def validate_record(r: SpectrumRecord, limits: ReadLimits = DEFAULT_LIMITS) -> SpectrumRecord:
    """Check a record read from ``r.source_path``; return it with bad pixels masked.

    Raises
    ------
    SpectrumReadError
        When the record must not be stored (the reason names the column or card).
    """
    path = r.source_path
    npix = r.npix
    arrays: dict[str, np.ndarray] = {
        "FLUX": r.flux,
        "IVAR": r.ivar,
        "ANDMASK": r.andmask,
        "ORMASK": r.ormask,
    }
    if r.wavelength is not None:
        arrays["WAVELENGTH"] = r.wavelength
    for name, a in arrays.items():
        _check(
            np.ndim(a) == 1 and len(a) == npix,
            path,
            f"column {name} has {np.size(a)} values but FLUX has {npix} pixels; all pixel "
            "arrays must have one length (the file is damaged: get a fresh copy)",
        )
    _check(
        npix >= limits.min_pixels,
        path,
        f"the spectrum has {npix} pixels, fewer than {limits.min_pixels} "
        "(ReadLimits.min_pixels); a truncated or test file: get the full spectrum",
    )
    _check_identity(r, path)
    _check_grid(r, path)
    flux = np.asarray(r.flux, dtype=np.float32)
    ivar = np.asarray(r.ivar, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # NaN compares False: caught by the negations
        bad = ~(np.abs(flux) < _FLUX_ABSURD) | ~((ivar >= 0) & (ivar < _IVAR_ABSURD))
    checked = r
    if bad.any():
        flux = np.where(~np.isfinite(flux), np.float32(0), flux).astype(np.float32)
        ivar = np.where(bad, np.float32(0), ivar).astype(np.float32)
        checked = dataclasses.replace(
            r,
            flux=flux,
            ivar=ivar,
            andmask=np.where(bad, r.andmask | BADPIX_BIT, r.andmask).astype(np.int32),
            ormask=np.where(bad, r.ormask | BADPIX_BIT, r.ormask).astype(np.int32),
        )
    usable = ivar > 0
    need = max(limits.min_usable_pixels, math.ceil(limits.min_usable_fraction * npix))
    n_usable = int(usable.sum())
    _check(
        n_usable >= need,
        path,
        f"only {n_usable} of {npix} pixels are usable (finite flux, 0 < IVAR < 1e30; "
        f"{int(bad.sum())} masked as bad values), fewer than {need}: nothing to measure "
        "(ReadLimits.min_usable_pixels / min_usable_fraction)",
    )
    _check(
        bool(np.any(flux[usable] != 0)),
        path,
        "FLUX is 0 at every usable pixel (IVAR > 0): an empty spectrum; the file is "
        "damaged or a placeholder",
    )
    return checked

"""One call for any spectrum file: :func:`read_spectrum`.

Dispatch: LAMOST files go through the fast FITS subset (``fits_read``) and fall back
to astropy for anything it does not handle; SDSS/BOSS files and unusual LAMOST files
are read with astropy. Tables are found by their columns (any case), not by an exact
EXTNAME (``hdu_roles``), on both paths. Every failure is a :class:`SpectrumReadError`
naming the file and the reason, so a batch can quarantine the file and go on.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path

from astropy.io import fits

from lamostdb.io.bounded import check_structure, read_bounded, storable_path
from lamostdb.io.lamost import read_lamost_astropy, read_lamost_fast
from lamostdb.io.record import SpectrumReadError, SpectrumRecord
from lamostdb.io.sdss import is_sdss, read_sdss_astropy
from lamostdb.io.validate import DEFAULT_LIMITS, ReadLimits, validate_record


def read_file_bytes(path: str | Path, limits: ReadLimits = DEFAULT_LIMITS) -> tuple[bytes, bytes]:
    """Return (raw file bytes, decompressed FITS bytes) of a plain or gzipped file.

    Within ``limits``: a file or decompressed content over the caps is refused
    (:class:`SpectrumReadError`) without being read or inflated in full.
    """
    return read_bounded(path, limits)


def parse_spectrum_bytes(
    raw: bytes, data: bytes, path: str, *, fast: bool = True, limits: ReadLimits = DEFAULT_LIMITS
) -> SpectrumRecord:
    """Parse and validate a spectrum already in memory (``raw``: file bytes; ``data``: FITS).

    The HDU structure is checked first (:func:`~lamostdb.io.bounded.check_structure`),
    the finished record last (:func:`~lamostdb.io.validate.validate_record`, which masks
    bad pixels). Every failure is a :class:`SpectrumReadError`.
    """
    sha = hashlib.sha256(raw).hexdigest()
    if not data:
        raise SpectrumReadError(
            path,
            "file is empty (no FITS content): an interrupted "
            "transfer or a placeholder; get a fresh copy",
        )
    if data[:9] != b"SIMPLE  =":
        raise SpectrumReadError(
            path,
            "not a FITS file (no SIMPLE card at the start); "
            "only LAMOST and SDSS spectrum files can be ingested",
        )
    scanned = check_structure(data, path, limits)
    rec = None
    if fast:
        first = scanned[:2]
        hdus = None if None in first else first
        try:
            rec = read_lamost_fast(data, path, sha, len(raw), hdus)  # type: ignore[arg-type]
        except SpectrumReadError:
            raise
        except Exception:  # UnsupportedFits or a surprise: astropy decides
            rec = None  # fall through to astropy, which knows the whole standard
    if rec is None:
        rec = _read_astropy(data, path, sha, len(raw))
    return validate_record(rec, limits)


def _read_astropy(data: bytes, path: str, sha: str, nbytes: int) -> SpectrumRecord:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # damaged cards are reported below, not warned
            with fits.open(io.BytesIO(data), memmap=False, lazy_load_hdus=False) as hdul:
                hdul.verify("silentfix")
                if is_sdss(hdul):
                    return read_sdss_astropy(hdul, path, sha, nbytes)
                if hdul[0].data is not None and hdul[0].data.ndim != 2:
                    raise SpectrumReadError(
                        path,
                        f"primary image is {hdul[0].data.ndim}-D with shape "
                        f"{hdul[0].data.shape}: not a LAMOST LRS spectrum (5 x N image or "
                        "COADD table) nor an SDSS spec file",
                    )
                return read_lamost_astropy(hdul, path, sha, nbytes)
    except SpectrumReadError:
        raise
    except Exception as exc:  # astropy raises many types for damaged files
        raise SpectrumReadError(
            path, f"FITS structure unreadable: {type(exc).__name__}: {exc}"
        ) from None


def read_spectrum(
    path: str | Path, *, fast: bool = True, limits: ReadLimits = DEFAULT_LIMITS
) -> SpectrumRecord:
    """Read any LAMOST LRS (DR1-DR9+, plain or gzipped) or SDSS/BOSS spec file.

    Parameters
    ----------
    path
        The file.
    fast
        Use the fast FITS subset reader when it applies (default); ``False`` forces
        astropy (the reference; the tests check both agree).
    limits
        Size caps and validation thresholds.

    Raises
    ------
    SpectrumReadError
        With the file name and what could not be read.
    """
    p = storable_path(str(path))
    raw, data = read_bounded(path, limits, p)
    return parse_spectrum_bytes(raw, data, p, fast=fast, limits=limits)

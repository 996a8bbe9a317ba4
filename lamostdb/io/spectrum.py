"""One call for any spectrum file: :func:`read_spectrum`.

Dispatch: LAMOST files go through the fast FITS subset (``fits_read``) and fall back
to astropy for anything it does not handle; SDSS/BOSS files and unusual LAMOST files
are read with astropy. Tables are found by their columns (any case), not by an exact
EXTNAME (``hdu_roles``), on both paths. Every failure is a :class:`SpectrumReadError`
naming the file and the reason, so a batch can quarantine the file and go on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import warnings
import zlib
from pathlib import Path

from astropy.io import fits

from lamostdb.io import fits_read as fr
from lamostdb.io.lamost import read_lamost_astropy, read_lamost_fast
from lamostdb.io.record import SpectrumReadError, SpectrumRecord
from lamostdb.io.sdss import is_sdss, read_sdss_astropy

GZIP_MAGIC = b"\x1f\x8b"


def read_file_bytes(path: str | Path) -> tuple[bytes, bytes]:
    """Return (raw file bytes, decompressed FITS bytes) of a plain or gzipped file."""
    raw = Path(path).read_bytes()
    if raw[:2] == GZIP_MAGIC:
        try:
            return raw, gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise SpectrumReadError(str(path), f"gzip stream is damaged ({exc})") from None
    return raw, raw


def parse_spectrum_bytes(raw: bytes, data: bytes, path: str, *, fast: bool = True
                         ) -> SpectrumRecord:
    """Parse a spectrum already in memory (``raw``: file bytes; ``data``: FITS bytes)."""
    sha = hashlib.sha256(raw).hexdigest()
    if not data:
        raise SpectrumReadError(path, "file is empty")
    if data[:9] != b"SIMPLE  =":
        raise SpectrumReadError(path, "not a FITS file (no SIMPLE card at the start)")
    if fast:
        try:
            return read_lamost_fast(data, path, sha, len(raw))
        except fr.UnsupportedFits:
            pass  # fall through to astropy, which knows the whole standard
    return _read_astropy(data, path, sha, len(raw))


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
                        path, f"primary image is {hdul[0].data.ndim}-D with shape "
                        f"{hdul[0].data.shape}: not a LAMOST LRS spectrum (5 x N image or "
                        "COADD table) nor an SDSS spec file")
                return read_lamost_astropy(hdul, path, sha, nbytes)
    except SpectrumReadError:
        raise
    except Exception as exc:  # astropy raises many types for damaged files
        raise SpectrumReadError(path, f"FITS structure unreadable: {type(exc).__name__}: {exc}"
                                ) from None


def read_spectrum(path: str | Path, *, fast: bool = True) -> SpectrumRecord:
    """Read any LAMOST LRS (DR1-DR9+, plain or gzipped) or SDSS/BOSS spec file.

    Parameters
    ----------
    path
        The file.
    fast
        Use the fast FITS subset reader when it applies (default); ``False`` forces
        astropy (the reference; the tests check both agree).

    Raises
    ------
    SpectrumReadError
        With the file name and what could not be read.
    """
    p = str(path)
    try:
        raw, data = read_file_bytes(path)
    except OSError as exc:
        raise SpectrumReadError(p, f"cannot read file: {exc.strerror or exc}") from None
    return parse_spectrum_bytes(raw, data, p, fast=fast)

"""LAMOST LRS spectrum files (DR1 to DR9+) into :class:`SpectrumRecord`.

Layouts (DESIGN.md section 4):

- DR1: primary image 5 x N = flux, ivar, continuum-subtracted flux, andmask, ormask;
  no wavelength row, the grid is rebuilt from COEFF0/COEFF1.
- DR2-DR8: primary image 5 x N = flux, ivar, wavelength, andmask, ormask.
- DR9+: empty primary HDU with the keys, binary table ``COADD`` (one row) with FLUX,
  IVAR, WAVELENGTH, ANDMASK, ORMASK, NORMALIZATION. FITS names are case-insensitive
  and some files have a blank EXTNAME, so the table is found by its columns (any
  case) first and by its name second (``hdu_roles``).

What is not kept: DR1's continuum-subtracted row and DR9's NORMALIZATION column
(both are derived products); the full primary header text is kept verbatim.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from lamostdb.io import fits_read as fr
from lamostdb.io.hdu_roles import (
    astropy_tables,
    column_lookup,
    describe_tables,
    find_spectrum_table,
)
from lamostdb.io.record import SpectrumReadError, SpectrumRecord, log_linear_wave

MISSING = -9999.0
# Header keys that changed name between releases: first present wins.
FIBERTYPE_KEYS = ("FIBERTYP", "FIB_TYPE")  # DR1-DR8 vs DR9+
FIBERMASK_KEYS = ("FIBERMAS", "FIB_MASK")
SNR_KEYS = {
    "snru": ("SNRU", "SN_U"),
    "snrg": ("SNRG", "SN_G"),
    "snrr": ("SNRR", "SN_R"),
    "snri": ("SNRI", "SN_I"),
    "snrz": ("SNRZ", "SN_Z"),
}


def _float_or_none(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, str):
        try:
            v = float(v)
        except ValueError:
            return None
    x = float(v)
    if not np.isfinite(x) or x == MISSING:
        return None
    return x


def _int_or_none(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("+-").isdigit():
        return int(v.strip())
    return None


def _str_or_none(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _as_float32(arr: np.ndarray, name: str, path: str) -> np.ndarray:
    a = np.asarray(arr)
    out = a.astype(np.float32)
    if a.dtype.itemsize == 8 and not np.array_equal(out.astype(np.float64), a, equal_nan=True):
        raise SpectrumReadError(
            path, f"{name} holds float64 values that float32 cannot represent exactly; "
            "storing them as float32 would lose information (convert the file or report it)")
    return out


def _as_mask(arr: np.ndarray, name: str, path: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or np.any(np.abs(a) > 2**31 - 1):
            raise SpectrumReadError(path, f"{name} is not an integer bit mask")
    return a.astype(np.int32)


def _first(get: Callable[[str], Any], keys: tuple[str, ...]) -> Any:
    """Value of the first of ``keys`` present in the header (release spellings differ)."""
    for key in keys:
        value = get(key)
        if value is not None:
            return value
    return None


def _looks_like_wavelength(row: np.ndarray) -> bool:
    r = np.asarray(row, dtype=np.float64)
    return bool(np.all(np.isfinite(r)) and r[0] > 1000 and r[-1] < 30000 and np.all(np.diff(r) > 0))


def build_record(
    path: str,
    get: Callable[[str], Any],
    header_text: str,
    *,
    file_format: str,
    flux: np.ndarray,
    ivar: np.ndarray,
    wave: np.ndarray | None,
    andmask: np.ndarray,
    ormask: np.ndarray,
    sha256: str,
    nbytes: int,
) -> SpectrumRecord:
    """Map LAMOST header values and pixel rows to a record (shared by both readers)."""
    lmjd = _int_or_none(get("LMJD"))
    mjd = _int_or_none(get("MJD"))
    planid = _str_or_none(get("PLANID"))
    spid = _int_or_none(get("SPID"))
    fiberid = _int_or_none(get("FIBERID"))
    for key, val in (("LMJD", lmjd if lmjd is not None else mjd), ("PLANID", planid),
                     ("SPID", spid), ("FIBERID", fiberid)):
        if val is None:
            raise SpectrumReadError(path, f"header key {key} is missing or not readable; "
                                    "a LAMOST spectrum needs LMJD, PLANID, SPID and FIBERID")
    ra = _float_or_none(get("RA"))
    dec = _float_or_none(get("DEC"))
    if ra is None or dec is None or not (0 <= ra <= 360 and -90 <= dec <= 90):
        raise SpectrumReadError(path, f"header RA={get('RA')!r} DEC={get('DEC')!r} are not "
                                "positions in degrees")
    night = lmjd if lmjd is not None else mjd
    specid = f"{night}-{planid}_sp{spid:02d}-{fiberid:03d}"
    coeff0 = _float_or_none(get("COEFF0"))
    coeff1 = _float_or_none(get("COEFF1"))
    npix = int(np.asarray(flux).shape[-1])
    f32 = _as_float32(flux, "FLUX", path)
    iv = _as_float32(ivar, "IVAR", path)
    wavelength: np.ndarray | None = None
    if wave is not None:
        w = np.asarray(wave)
        if coeff0 is not None and coeff1 is not None and w.dtype.itemsize == 4 and \
                np.array_equal(w, log_linear_wave(coeff0, coeff1, npix)):
            wavelength = None
        else:
            wavelength = w.astype(np.float64)
    elif coeff0 is None or coeff1 is None:
        raise SpectrumReadError(path, "no wavelength row and no COEFF0/COEFF1 to rebuild it")
    snr = {name: _float_or_none(_first(get, keys)) for name, keys in SNR_KEYS.items()}
    return SpectrumRecord(
        specid=specid,
        obsid=_int_or_none(get("OBSID")),
        survey="LAMOST",
        file_format=file_format,
        lmjd=lmjd,
        mjd=mjd,
        planid=planid,
        spid=spid,
        fiberid=fiberid,
        ra=ra,
        dec=dec,
        ra_obs=_float_or_none(get("RA_OBS")),
        dec_obs=_float_or_none(get("DEC_OBS")),
        obsdate=_str_or_none(get("DATE-OBS")),
        designation=_str_or_none(get("DESIG")),
        objname=_str_or_none(get("OBJNAME")),
        objtype=_str_or_none(get("OBJTYPE")),
        tsource=_str_or_none(get("TSOURCE")),
        fibertype=_str_or_none(_first(get, FIBERTYPE_KEYS)),
        fibermask=_int_or_none(_first(get, FIBERMASK_KEYS)),
        helio_rv=_float_or_none(get("HELIO_RV")),
        lasp_class=_str_or_none(get("CLASS")),
        lasp_subclass=_str_or_none(get("SUBCLASS")),
        lasp_z=_float_or_none(get("Z")),
        lasp_z_err=_float_or_none(get("Z_ERR")),
        data_v=_str_or_none(get("DATA_V")),
        verspipe=_str_or_none(get("VERSPIPE")),
        coeff0=coeff0,
        coeff1=coeff1,
        npix=npix,
        wavelength=wavelength,
        flux=f32,
        ivar=iv,
        andmask=_as_mask(andmask, "ANDMASK", path),
        ormask=_as_mask(ormask, "ORMASK", path),
        header=header_text,
        source_path=path,
        source_sha256=sha256,
        source_bytes=nbytes,
        **snr,
    )


def _image_rows(path: str, image: np.ndarray) -> tuple[str, dict[str, np.ndarray | None]]:
    if image.ndim != 2 or image.shape[0] < 5:
        raise SpectrumReadError(path, f"primary image has shape {image.shape}; a LAMOST "
                                "spectrum has 5 rows (flux, ivar, wavelength, andmask, ormask)")
    if _looks_like_wavelength(image[2]):
        fmt, wave = "lamost_image", image[2]
    else:  # DR1: third row is the continuum-subtracted flux
        fmt, wave = "lamost_dr1_image", None
    return fmt, {"flux": image[0], "ivar": image[1], "wave": wave,
                 "andmask": image[3], "ormask": image[4]}


def _coadd_rows(path: str, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    upper = column_lookup(cols)
    missing = [c for c in ("FLUX", "IVAR", "ANDMASK", "ORMASK") if c not in upper]
    if missing:
        raise SpectrumReadError(path, f"COADD table lacks column(s) {', '.join(missing)} "
                                f"(it has {', '.join(cols) or 'none'})")
    return {"flux": upper["FLUX"], "ivar": upper["IVAR"], "wave": upper.get("WAVELENGTH"),
            "andmask": upper["ANDMASK"], "ormask": upper["ORMASK"]}


def read_lamost_fast(buf: bytes, path: str, sha256: str, nbytes: int) -> SpectrumRecord:
    """Read a LAMOST file from its (decompressed) bytes with the fast FITS subset."""
    hdus = fr.scan_hdus(buf, max_hdus=2)
    primary = hdus[0]

    def get(key: str) -> Any:
        return fr.header_value(primary, key)

    if int(primary.struct.get("NAXIS", 0) or 0) == 0:  # type: ignore[arg-type]
        tables = [(i, _str_or_none(h.struct.get("EXTNAME")), fr.table_column_names(h))
                  for i, h in enumerate(hdus) if i > 0]
        found = find_spectrum_table(tables)
        if found is None:  # astropy looks at every HDU and says what is missing
            raise fr.UnsupportedFits("no COADD table among the first HDUs")
        index, role = found
        if role == "sdss_coadd":  # an SDSS/BOSS spec file: its reader needs the SPECOBJ HDU
            raise fr.UnsupportedFits("SDSS spec file")
        fmt, rows = "lamost_coadd", _coadd_rows(path, fr.table_row_arrays(buf, hdus[index]))
    else:
        fmt, rows = _image_rows(path, fr.image_data(buf, primary))
    return build_record(path, get, primary.header_text, file_format=fmt, sha256=sha256,
                        nbytes=nbytes, **rows)  # type: ignore[arg-type]


def read_lamost_astropy(hdul: Any, path: str, sha256: str, nbytes: int) -> SpectrumRecord:
    """Read an open astropy HDUList holding a LAMOST spectrum (the reference reader)."""
    header = hdul[0].header

    def get(key: str) -> Any:
        return header.get(key)

    if hdul[0].data is None:
        tables = astropy_tables(hdul)
        found = find_spectrum_table(tables)
        if found is None:
            raise SpectrumReadError(
                path, "primary HDU has no data and no table is a COADD spectrum (named COADD, "
                "or with columns FLUX, WAVELENGTH, IVAR in any case): "
                + describe_tables(tables))
        data = hdul[found[0]].data
        cols = {name: np.asarray(data[name][0]) for name in data.columns.names}
        fmt, rows = "lamost_coadd", _coadd_rows(path, cols)
    else:
        fmt, rows = _image_rows(path, np.asarray(hdul[0].data))
    return build_record(path, get, header.tostring(padding=False).rstrip(), file_format=fmt,
                        sha256=sha256, nbytes=nbytes, **rows)  # type: ignore[arg-type]

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
from lamostdb.io.validate import NIGHT_RANGE, header_float, header_int, safe_token
from lamostdb.io.validate import header_text as text_value

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
#: String header keys stored as they are (reduced to printable ASCII).
TEXT_KEYS = (
    "DATE-OBS",
    "DESIG",
    "OBJNAME",
    "OBJTYPE",
    "TSOURCE",
    "CLASS",
    "SUBCLASS",
    "DATA_V",
    "VERSPIPE",
)


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
            path,
            f"{name} holds float64 values that float32 cannot represent exactly; "
            "storing them as float32 would lose information (convert the file or report it)",
        )
    return out


def _as_mask(arr: np.ndarray, name: str, path: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)) or np.any(np.abs(a) > 2**31 - 1):
            raise SpectrumReadError(path, f"{name} is not an integer bit mask")
    return a.astype(np.int32)


def _present(get: Callable[[str], Any], keys: tuple[str, ...]) -> tuple[str, Callable[[str], Any]]:
    """The first of ``keys`` present in the header (release spellings differ), else the
    first key; and a lookup that returns its value without parsing it again."""
    for key in keys:
        value = get(key)
        if value is not None:
            return key, lambda _key, v=value: v
    return keys[0], lambda _key: None


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
    lmjd = header_int(get, "LMJD", path, lo=NIGHT_RANGE[0], hi=NIGHT_RANGE[1])
    mjd = header_int(get, "MJD", path, lo=NIGHT_RANGE[0], hi=NIGHT_RANGE[1])
    planid = text_value(get, "PLANID", path)
    spid = header_int(get, "SPID", path, lo=1, hi=16, required=True)
    fiberid = header_int(get, "FIBERID", path, lo=1, hi=250, required=True)
    for key, val in (("LMJD", lmjd if lmjd is not None else mjd), ("PLANID", planid)):
        if val is None:
            raise SpectrumReadError(
                path,
                f"header key {key} is missing or not readable; "
                "a LAMOST spectrum needs LMJD, PLANID, SPID and FIBERID",
            )
    planid = safe_token(str(planid), "PLANID", path)
    ra = header_float(get, "RA", path)
    dec = header_float(get, "DEC", path)
    if ra is None or dec is None or not (0 <= ra <= 360 and -90 <= dec <= 90):
        raise SpectrumReadError(
            path, f"header RA={get('RA')!r} DEC={get('DEC')!r} are not positions in degrees"
        )
    night = lmjd if lmjd is not None else mjd
    specid = f"{night}-{planid}_sp{spid:02d}-{fiberid:03d}"
    coeff0 = header_float(get, "COEFF0", path)
    coeff1 = header_float(get, "COEFF1", path)
    npix = int(np.asarray(flux).shape[-1])
    f32 = _as_float32(flux, "FLUX", path)
    iv = _as_float32(ivar, "IVAR", path)
    wavelength: np.ndarray | None = None
    if wave is not None:
        w = np.asarray(wave)
        if (
            coeff0 is not None
            and coeff1 is not None
            and w.dtype.itemsize == 4
            and np.array_equal(w, log_linear_wave(coeff0, coeff1, npix))
        ):
            wavelength = None
        else:
            wavelength = w.astype(np.float64)
    elif coeff0 is None or coeff1 is None:
        raise SpectrumReadError(path, "no wavelength row and no COEFF0/COEFF1 to rebuild it")
    snr = {
        name: header_float(one, key, path)
        for name, (key, one) in ((n, _present(get, k)) for n, k in SNR_KEYS.items())
    }
    fibertype_key, fibertype = _present(get, FIBERTYPE_KEYS)
    fibermask_key, fibermask = _present(get, FIBERMASK_KEYS)
    text = {key: text_value(get, key, path) for key in TEXT_KEYS}
    return SpectrumRecord(
        specid=specid,
        obsid=header_int(get, "OBSID", path, lo=1),
        survey="LAMOST",
        file_format=file_format,
        lmjd=lmjd,
        mjd=mjd,
        planid=planid,
        spid=spid,
        fiberid=fiberid,
        ra=ra,
        dec=dec,
        ra_obs=header_float(get, "RA_OBS", path),
        dec_obs=header_float(get, "DEC_OBS", path),
        obsdate=text["DATE-OBS"],
        designation=text["DESIG"],
        objname=text["OBJNAME"],
        objtype=text["OBJTYPE"],
        tsource=text["TSOURCE"],
        fibertype=text_value(fibertype, fibertype_key, path),
        fibermask=header_int(fibermask, fibermask_key, path, lo=-(2**31), hi=2**31 - 1),
        helio_rv=header_float(get, "HELIO_RV", path),
        lasp_class=text["CLASS"],
        lasp_subclass=text["SUBCLASS"],
        lasp_z=header_float(get, "Z", path),
        lasp_z_err=header_float(get, "Z_ERR", path),
        data_v=text["DATA_V"],
        verspipe=text["VERSPIPE"],
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
        raise SpectrumReadError(
            path,
            f"primary image has shape {image.shape}; a LAMOST "
            "spectrum has 5 rows (flux, ivar, wavelength, andmask, ormask)",
        )
    if _looks_like_wavelength(image[2]):
        fmt, wave = "lamost_image", image[2]
    else:  # DR1: third row is the continuum-subtracted flux
        fmt, wave = "lamost_dr1_image", None
    return fmt, {
        "flux": image[0],
        "ivar": image[1],
        "wave": wave,
        "andmask": image[3],
        "ormask": image[4],
    }


def _coadd_rows(path: str, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray | None]:
    upper = column_lookup(cols)
    missing = [c for c in ("FLUX", "IVAR", "ANDMASK", "ORMASK") if c not in upper]
    if missing:
        raise SpectrumReadError(
            path,
            f"COADD table lacks column(s) {', '.join(missing)} "
            f"(it has {', '.join(cols) or 'none'})",
        )
    return {
        "flux": upper["FLUX"],
        "ivar": upper["IVAR"],
        "wave": upper.get("WAVELENGTH"),
        "andmask": upper["ANDMASK"],
        "ormask": upper["ORMASK"],
    }


def read_lamost_fast(
    buf: bytes, path: str, sha256: str, nbytes: int, hdus: list[fr.RawHDU] | None = None
) -> SpectrumRecord:
    """Read a LAMOST file from its (decompressed) bytes with the fast FITS subset.

    ``hdus``: its first HDUs already scanned (``bounded.check_structure``), if at hand.
    """
    if hdus is None:
        hdus = fr.scan_hdus(buf, max_hdus=2)
    primary = hdus[0]

    def get(key: str) -> Any:
        return fr.header_value(primary, key)

    if fr.as_int(primary.struct.get("NAXIS", 0) or 0) == 0:
        tables = [
            (i, _str_or_none(h.struct.get("EXTNAME")), fr.table_column_names(h))
            for i, h in enumerate(hdus)
            if i > 0
        ]
        found = find_spectrum_table(tables)
        if found is None:  # astropy looks at every HDU and says what is missing
            raise fr.UnsupportedFits("no COADD table among the first HDUs")
        index, role = found
        if role == "sdss_coadd":  # an SDSS/BOSS spec file: its reader needs the SPECOBJ HDU
            raise fr.UnsupportedFits("SDSS spec file")
        fmt, rows = "lamost_coadd", _coadd_rows(path, fr.table_row_arrays(buf, hdus[index]))
    else:
        fmt, rows = _image_rows(path, fr.image_data(buf, primary))
    return build_record(
        path,
        get,
        primary.header_text,
        file_format=fmt,
        sha256=sha256,
        nbytes=nbytes,
        **rows,  # type: ignore[arg-type]
    )


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
                path,
                "primary HDU has no data and no table is a COADD spectrum (named COADD, "
                "or with columns FLUX, WAVELENGTH, IVAR in any case): " + describe_tables(tables),
            )
        data = hdul[found[0]].data
        cols = {name: np.asarray(data[name][0]) for name in data.columns.names}
        fmt, rows = "lamost_coadd", _coadd_rows(path, cols)
    else:
        fmt, rows = _image_rows(path, np.asarray(hdul[0].data))
    return build_record(
        path,
        get,
        header.tostring(padding=False).rstrip(),
        file_format=fmt,
        sha256=sha256,
        nbytes=nbytes,
        **rows,  # type: ignore[arg-type]
    )

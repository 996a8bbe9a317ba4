"""SDSS/BOSS ``spec-PLATE-MJD-FIBER.fits`` files into :class:`SpectrumRecord`.

HDU 1 ``COADD`` holds flux, loglam, ivar, and_mask, or_mask; HDU 2 (``SPECOBJ`` in
SDSS-I/II, ``SPALL`` in BOSS) holds the pipeline's CLASS/SUBCLASS/Z/Z_ERR and the
fibre position PLUG_RA/PLUG_DEC (primary RA/DEC is the plate centre, not the object).
Column and HDU names are matched in any case, and both tables are found by their
columns when the EXTNAME is blank or different (``hdu_roles``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lamostdb.io.hdu_roles import (
    SDSS_META_COLUMNS,
    astropy_tables,
    column_lookup,
    describe_tables,
    find_meta_table,
    find_spectrum_table,
)
from lamostdb.io.record import SpectrumReadError, SpectrumRecord

#: Pixel columns of the COADD table (upper case; the file may use any case).
COADD_COLUMNS = ("FLUX", "LOGLAM", "IVAR", "AND_MASK", "OR_MASK")


def _col(table: Any, name: str) -> Any:
    if table is None:
        return None
    names = {n.strip().upper(): n for n in table.columns.names}
    if name not in names:
        return None
    v = table[names[name]][0]
    if isinstance(v, bytes):
        v = v.decode("ascii", errors="replace")
    if isinstance(v, str):
        return v.strip() or None
    return v.item() if hasattr(v, "item") else v


def is_sdss(hdul: Any) -> bool:
    """True when an open HDUList has an SDSS/BOSS coadd table (flux, loglam, ivar in any case)."""
    found = find_spectrum_table(astropy_tables(hdul))
    return found is not None and found[1] == "sdss_coadd"


def read_sdss_astropy(hdul: Any, path: str, sha256: str, nbytes: int) -> SpectrumRecord:
    """Read an open SDSS spec HDUList."""
    header = hdul[0].header
    tables = astropy_tables(hdul)
    found = find_spectrum_table(tables)
    if found is None or found[1] != "sdss_coadd":
        raise SpectrumReadError(
            path, "no SDSS COADD table (columns flux, loglam, ivar): " + describe_tables(tables)
        )
    coadd_data = hdul[found[0]].data
    coadd = column_lookup({n: n for n in coadd_data.columns.names})
    missing = [c for c in COADD_COLUMNS if c not in coadd]
    if missing:
        raise SpectrumReadError(
            path, f"SDSS COADD table (HDU {found[0]}) lacks column(s) {', '.join(missing)}"
        )
    meta_index = find_meta_table(tables)
    meta = None if meta_index is None else hdul[meta_index].data
    plate = _col(meta, "PLATE") or header.get("PLATEID")
    mjd = _col(meta, "MJD") or header.get("MJD")
    fiber = _col(meta, "FIBERID") or header.get("FIBERID")
    ra = _col(meta, "PLUG_RA") if _col(meta, "PLUG_RA") is not None else header.get("PLUG_RA")
    dec = _col(meta, "PLUG_DEC") if _col(meta, "PLUG_DEC") is not None else header.get("PLUG_DEC")
    if None in (plate, mjd, fiber, ra, dec):
        where = (
            "no SPECOBJ/SPALL table (columns "
            + ", ".join(sorted(SDSS_META_COLUMNS))
            + ") and the primary header lacks them"
            if meta is None
            else f"neither HDU {meta_index} nor the primary header has them"
        )
        raise SpectrumReadError(
            path, f"SDSS file lacks PLATE/MJD/FIBERID/PLUG_RA/PLUG_DEC: {where}"
        )
    loglam = np.asarray(coadd_data[coadd["LOGLAM"]], dtype=np.float64)
    flux = np.asarray(coadd_data[coadd["FLUX"]], dtype=np.float32)
    z = _col(meta, "Z")
    zerr = _col(meta, "Z_ERR")
    return SpectrumRecord(
        specid=f"sdss-{int(plate):04d}-{int(mjd)}-{int(fiber):04d}",
        obsid=None,
        survey="SDSS",
        file_format="sdss_spec",
        lmjd=int(mjd),
        mjd=int(mjd),
        planid=str(int(plate)),
        spid=None,
        fiberid=int(fiber),
        ra=float(ra),
        dec=float(dec),
        ra_obs=float(ra),
        dec_obs=float(dec),
        obsdate=header.get("DATE-OBS"),
        designation=None,
        objname=None,
        objtype=_col(meta, "OBJTYPE"),
        tsource=None,
        fibertype=None,
        fibermask=None,
        helio_rv=None,
        snru=None,
        snrg=None,
        snrr=None,
        snri=None,
        snrz=None,
        lasp_class=_col(meta, "CLASS"),
        lasp_subclass=_col(meta, "SUBCLASS"),
        lasp_z=None if z is None else float(z),
        lasp_z_err=None if zerr is None else float(zerr),
        data_v=header.get("RUN2D"),
        verspipe=header.get("RUN2D"),
        coeff0=float(loglam[0]),
        coeff1=float(header.get("COEFF1", 1e-4)),
        npix=int(flux.size),
        wavelength=10.0**loglam,
        flux=flux,
        ivar=np.asarray(coadd_data[coadd["IVAR"]], dtype=np.float32),
        andmask=np.asarray(coadd_data[coadd["AND_MASK"]], dtype=np.int32),
        ormask=np.asarray(coadd_data[coadd["OR_MASK"]], dtype=np.int32),
        header=header.tostring(padding=False).rstrip(),
        source_path=path,
        source_sha256=sha256,
        source_bytes=nbytes,
    )

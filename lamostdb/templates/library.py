"""Read SDSS ``spEigen*`` template files.

Each file is a 2-D image (n_vectors x n_pixels) on a rest-frame log10-wavelength
grid ``log10(lambda) = COEFF0 + COEFF1 * i`` (vacuum Angstrom). Star files name each
row in header cards ``NAME0 .. NAMEn``; eigen-bases (galaxy, QSO, CV) have no names.
"""

from __future__ import annotations

import logging
import warnings
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits

from lamostdb.templates.templateset import TemplateSet

if TYPE_CHECKING:
    from lamostdb.templates.empirical import LeftOut

DEFAULT_TEMPLATE_FILES: dict[str, str] = {
    "STAR": "spEigenStar-55734.fits",
    "GALAXY": "spEigenGal-56436.fits",
    "QSO": "spEigenQSO-55732.fits",
    "CV": "spEigenCVstar-55734.fits",
}


def default_template_dir() -> Path:
    """Folder of the templates shipped inside the package."""
    return Path(str(resources.files("lamostdb.templates") / "data"))


def load_sdss_eigen(path: str | Path, objclass: str) -> TemplateSet:
    """Load one SDSS ``spEigen*`` file.

    Parameters
    ----------
    path
        The FITS file.
    objclass
        Class the vectors describe (``STAR``, ``GALAXY``, ``QSO``, ``CV``).
    """
    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header
        data = hdul[0].data
        if data is None or data.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D template image in the primary HDU")
        for key in ("COEFF0", "COEFF1"):
            if key not in header:
                raise ValueError(f"{path}: header key {key} missing; not an SDSS spEigen file")
        vectors = np.asarray(data, dtype=np.float64)
        loglam0 = float(header["COEFF0"])
        dloglam = float(header["COEFF1"])
        n = vectors.shape[0]
        if objclass == "STAR":
            names = tuple(str(header.get(f"NAME{i}", f"star{i}")).strip() for i in range(n))
            kind = "single"
        else:
            names = tuple(f"eigen{i}" for i in range(n))
            kind = "eigen"
    return TemplateSet(objclass, kind, names, loglam0, dloglam, vectors, str(path))


def load_redrock(path: str | Path) -> TemplateSet:
    """Load a DESI redrock ``rrtemplate-*.fits`` file.

    The basis vectors are in the primary HDU (RRTYPE, RRSUBTYP). Files on a log10 grid
    (LOGLAM = 1) are used as they are; files on a linear grid (CRVAL1/CDELT1 in Angstrom,
    e.g. 0.1 A) are averaged flux-conservingly onto a log10 grid of step 1e-4, the working
    step. A ``REDSHIFTS`` HDU gives the redshift range the template was built for.
    """
    from lamostdb.templates.rebin import rebin_flux_conserving_batch

    path = Path(path)
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header
        if "RRTYPE" not in header:
            raise ValueError(f"{path}: no RRTYPE header key; not a redrock template file")
        data = np.atleast_2d(np.asarray(hdul[0].data, dtype=np.float64))
        objclass = str(header["RRTYPE"]).strip().upper()
        subtype = str(header.get("RRSUBTYP", "")).strip() or None
        z_range = None
        if "REDSHIFTS" in hdul:
            z = np.asarray(hdul["REDSHIFTS"].data, dtype=np.float64)
            z_range = (float(z.min()), float(z.max()))
        crval, cdelt = float(header["CRVAL1"]), float(header["CDELT1"])
    if int(header.get("LOGLAM", 0) or 0) == 1:
        loglam0, dloglam, vectors = crval, cdelt, data
    else:
        wave = crval + cdelt * np.arange(data.shape[1])
        edges = np.concatenate([[wave[0] - cdelt / 2], wave + cdelt / 2])
        dloglam = 1e-4
        loglam0 = float(np.ceil(np.log10(edges[0]) / dloglam) * dloglam + dloglam / 2)
        n_out = int((np.log10(edges[-1]) - loglam0) / dloglam)
        dst_loglam = loglam0 + dloglam * (np.arange(n_out + 1) - 0.5)
        vectors, _ = rebin_flux_conserving_batch(edges, data, np.ones_like(data), 10.0**dst_loglam)
    n = vectors.shape[0]
    names: tuple[str, ...]
    if objclass == "STAR" and n == 1:
        kind, names = "single", (subtype or path.stem,)
    else:
        kind = "eigen"
        names = tuple(f"{subtype or objclass}:eigen{i}" for i in range(n))
    return TemplateSet(
        objclass, kind, names, loglam0, dloglam, np.asarray(vectors), str(path), subtype, z_range
    )


def _report_left_out(left_out: tuple[LeftOut, ...]) -> None:
    log = logging.getLogger("lamostdb.templates")
    for row in left_out:
        log.warning("template left out: %s (%s): %s", row.name, row.source, row.reason)


def load_template_file(path: str | Path, objclass: str | None = None) -> TemplateSet:
    """Load a template file or folder, its format detected from the content.

    Files: a lamostdb library (``LIBFMT = 'lamostdb-library'``, from ``lamostdb templates
    build``), SDSS ``spEigen*``, redrock ``rrtemplate-*``, a Kesseli 2017 / PyHammer template
    (HDU 1 table with LogLam and Flux), a STELIB spectrum (1-D image with SPECTYPE). A
    folder loads every Kesseli or STELIB file in it as one set (the format of its first
    FITS file decides). Templates an importer leaves out are logged by name and reason
    on the ``lamostdb.templates`` logger; use the importers directly to get them as data.
    """
    from lamostdb.templates.kesseli import load_kesseli, load_kesseli_dir
    from lamostdb.templates.stelib import load_stelib, load_stelib_dir

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith((".fits", ".fits.gz")))
        if not files:
            raise ValueError(f"{path}: folder holds no .fits or .fits.gz template file")
        fmt = _detect(files[0])
        loaders = {"kesseli": load_kesseli_dir, "stelib": load_stelib_dir}
        if fmt not in loaders:
            raise ValueError(
                f"{path}: a template folder must hold Kesseli/PyHammer or STELIB "
                f"files; {files[0].name} is a {fmt} file (give such files one by "
                "one)"
            )
        imported = loaders[fmt](path)
        _report_left_out(imported.left_out)
        return imported.templates
    fmt = _detect(path)
    if fmt == "library":
        from lamostdb.templates.libfile import load_library

        return load_library(path)
    if fmt == "redrock":
        return load_redrock(path)
    if fmt in ("kesseli", "stelib"):
        imported = (load_kesseli if fmt == "kesseli" else load_stelib)(path)
        if not imported.left_out:
            return imported.templates
        row = imported.left_out[0]
        raise ValueError(f"{path}: {row.name}: {row.reason}")
    name = path.name
    guess = objclass or (
        "STAR"
        if "Star" in name
        else "GALAXY"
        if "Gal" in name
        else "QSO"
        if "QSO" in name
        else "CV"
        if "CV" in name
        else None
    )
    if guess is None:
        raise ValueError(
            f"{path}: cannot tell the class of an SDSS template file from its "
            "name; say it (CLASS=FILE)"
        )
    return load_sdss_eigen(path, guess)


def _detect(path: Path) -> str:
    """``library``, ``redrock``, ``kesseli``, ``stelib`` or ``sdss`` from a file's content."""
    from lamostdb.templates.kesseli import is_kesseli_file
    from lamostdb.templates.stelib import is_stelib_header

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # IRAF cards in STELIB
        with fits.open(path, memmap=False) as hdul:
            header = hdul[0].header
            if "LIBFMT" in header:
                return "library"
            if "RRTYPE" in header:
                return "redrock"
            if is_kesseli_file(hdul):
                return "kesseli"
            if is_stelib_header(header):
                return "stelib"
    return "sdss"


#: The engine's default star library (``benchmarks/make_default_library.py``): LAMOST DR10
#: A/F/G stacks, Kesseli 2017 O/B/L and K/M dwarfs, SDSS K/M giants, white dwarfs, carbon.
DEFAULT_STAR_LIBRARY = "lamost_stars.fits"


def load_default_star_library() -> TemplateSet:
    """The shipped default star library (a ``lamostdb templates build`` library file)."""
    from lamostdb.templates.libfile import load_library

    return load_library(default_template_dir() / DEFAULT_STAR_LIBRARY)


def load_default_templates() -> dict[str, TemplateSet]:
    """The shipped default template sets, keyed by class."""
    base = default_template_dir()
    return {cls: load_sdss_eigen(base / name, cls) for cls, name in DEFAULT_TEMPLATE_FILES.items()}

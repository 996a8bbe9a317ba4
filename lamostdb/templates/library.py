"""Read SDSS ``spEigen*`` template files.

Each file is a 2-D image (n_vectors x n_pixels) on a rest-frame log10-wavelength
grid ``log10(lambda) = COEFF0 + COEFF1 * i`` (vacuum Angstrom). Star files name each
row in header cards ``NAME0 .. NAMEn``; eigen-bases (galaxy, QSO, CV) have no names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
from astropy.io import fits

DEFAULT_TEMPLATE_FILES: dict[str, str] = {
    "STAR": "spEigenStar-55734.fits",
    "GALAXY": "spEigenGal-56436.fits",
    "QSO": "spEigenQSO-55732.fits",
    "CV": "spEigenCVstar-55734.fits",
}


@dataclass(frozen=True)
class TemplateSet:
    """Vectors of one template file on their rest-frame log10-lambda grid.

    Attributes
    ----------
    objclass
        ``STAR``, ``GALAXY``, ``QSO`` or ``CV``.
    kind
        ``single`` (each row is a template on its own: stars) or ``eigen``
        (rows are a basis to be combined linearly).
    names
        One name per row (the MK type for stars, ``eigen0..`` otherwise).
    loglam0, dloglam
        ``log10(lambda_angstrom) = loglam0 + dloglam * i``.
    vectors
        float64 array (n_vectors, n_pixels).
    source
        File the set was read from.
    """

    objclass: str
    kind: str
    names: tuple[str, ...]
    loglam0: float
    dloglam: float
    vectors: npt.NDArray[np.float64] = field(repr=False)
    source: str

    @property
    def wave_angstrom(self) -> npt.NDArray[np.float64]:
        """Rest-frame wavelength of each pixel (vacuum Angstrom)."""
        return 10.0 ** (self.loglam0 + self.dloglam * np.arange(self.vectors.shape[1]))


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


def load_default_templates() -> dict[str, TemplateSet]:
    """The shipped default template sets, keyed by class."""
    base = default_template_dir()
    return {cls: load_sdss_eigen(base / name, cls) for cls, name in DEFAULT_TEMPLATE_FILES.items()}

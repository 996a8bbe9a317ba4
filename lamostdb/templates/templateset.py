"""The template set: vectors of one template file on their rest-frame log10-lambda grid.

At the bottom of ``templates/``: the loaders and importers build it, and
:mod:`lamostdb.templates.library` re-exports it (``from lamostdb.templates.library import
TemplateSet`` keeps working).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


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
    subclass: str | None = None  # subtype of the whole set (redrock RRSUBTYP)
    z_range: tuple[float, float] | None = None  # redshift range the file recommends
    #: Per-template LAMOST subclass (``'G5'``, ``'M2'``, ``'WD'``), one per row; None: derived
    #: from the names (SDSS table) or ``subclass``.
    subclasses: tuple[str, ...] | None = None
    #: Per-template provenance (source library, number of stacked spectra, ...); free text.
    notes: tuple[str, ...] | None = None

    @property
    def wave_angstrom(self) -> npt.NDArray[np.float64]:
        """Rest-frame wavelength of each pixel (vacuum Angstrom)."""
        return 10.0 ** (
            self.loglam0 + self.dloglam * np.arange(self.vectors.shape[1], dtype=np.float64)
        )

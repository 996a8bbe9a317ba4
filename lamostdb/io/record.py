"""The in-memory record of one spectrum, as every reader returns it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


class SpectrumReadError(ValueError):
    """A spectrum file could not be read; ``reason`` says why and what to do."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def log_linear_wave(coeff0: float, coeff1: float, npix: int) -> npt.NDArray[np.float32]:
    """The LAMOST wavelength grid ``10**(coeff0 + coeff1*i)`` as float32 Angstrom.

    Computed in float64 and rounded once, the way our simulator and exporter write it;
    a stored wavelength array equal to this bit for bit need not be stored.

    >>> float(log_linear_wave(3.5682, 1e-4, 3)[0])
    3699.9853515625
    """
    return (10.0 ** (coeff0 + coeff1 * np.arange(npix, dtype=np.float64))).astype(np.float32)


@dataclass(frozen=True, slots=True)
class SpectrumRecord:
    """One spectrum with its identifiers, metadata and pixel arrays.

    ``lasp_*`` are the labels of the survey's own pipeline (LAMOST LASP, or the SDSS
    pipeline for SDSS files): a reference, not lamostdb's result. Values absent from
    the file are ``None``; nothing is invented.
    """

    specid: str
    obsid: int | None
    survey: str
    file_format: str
    lmjd: int | None
    mjd: int | None
    planid: str | None
    spid: int | None
    fiberid: int | None
    ra: float
    dec: float
    ra_obs: float | None
    dec_obs: float | None
    obsdate: str | None
    designation: str | None
    objname: str | None
    objtype: str | None
    tsource: str | None
    fibertype: str | None
    fibermask: int | None
    helio_rv: float | None
    snru: float | None
    snrg: float | None
    snrr: float | None
    snri: float | None
    snrz: float | None
    lasp_class: str | None
    lasp_subclass: str | None
    lasp_z: float | None
    lasp_z_err: float | None
    data_v: str | None
    verspipe: str | None
    coeff0: float | None
    coeff1: float | None
    npix: int
    wavelength: npt.NDArray[np.float64] | None = field(repr=False)
    flux: npt.NDArray[np.float32] = field(repr=False)
    ivar: npt.NDArray[np.float32] = field(repr=False)
    andmask: npt.NDArray[np.int32] = field(repr=False)
    ormask: npt.NDArray[np.int32] = field(repr=False)
    header: str = field(repr=False)
    source_path: str = ""
    source_sha256: str = ""
    source_bytes: int = 0

    def wave_angstrom(self) -> npt.NDArray[np.float64]:
        """Wavelength of every pixel (vacuum Angstrom)."""
        if self.wavelength is not None:
            return self.wavelength
        assert self.coeff0 is not None and self.coeff1 is not None
        return log_linear_wave(self.coeff0, self.coeff1, self.npix).astype(np.float64)

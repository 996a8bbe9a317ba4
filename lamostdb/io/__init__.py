"""Input/output: the only layer that touches files (FITS, Parquet, DuckDB)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamostdb.lazy import lazy_attributes

if TYPE_CHECKING:
    from lamostdb.io.record import SpectrumReadError, SpectrumRecord, log_linear_wave
    from lamostdb.io.spectrum import read_spectrum

_HOME = {
    "SpectrumReadError": "record",
    "SpectrumRecord": "record",
    "log_linear_wave": "record",
    "read_spectrum": "spectrum",
}


# lazy: the FITS reader imports astropy.io.fits, which a classify worker (Parquet in,
# Parquet out) must not pay for at every process start
__getattr__ = lazy_attributes(__name__, _HOME)


__all__ = ["SpectrumReadError", "SpectrumRecord", "log_linear_wave", "read_spectrum"]

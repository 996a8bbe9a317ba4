"""Input/output: the only layer that touches files (FITS, Parquet, DuckDB)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamostdb.io.record import SpectrumReadError, SpectrumRecord, log_linear_wave
    from lamostdb.io.spectrum import read_spectrum

_HOME = {
    "SpectrumReadError": "record",
    "SpectrumRecord": "record",
    "log_linear_wave": "record",
    "read_spectrum": "spectrum",
}


def __getattr__(name: str) -> Any:
    # lazy: the FITS reader imports astropy.io.fits, which a classify worker (Parquet in,
    # Parquet out) must not pay for at every process start
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"lamostdb.io.{home}"), name)


__all__ = ["SpectrumReadError", "SpectrumRecord", "log_linear_wave", "read_spectrum"]

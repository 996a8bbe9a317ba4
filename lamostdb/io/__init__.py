"""Input/output: the only layer that touches files (FITS, Parquet, DuckDB)."""

from lamostdb.io.record import SpectrumReadError, SpectrumRecord, log_linear_wave
from lamostdb.io.spectrum import read_spectrum

__all__ = ["SpectrumReadError", "SpectrumRecord", "log_linear_wave", "read_spectrum"]

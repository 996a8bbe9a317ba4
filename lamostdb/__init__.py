"""lamostdb: a columnar catalogue toolkit for LAMOST low-resolution spectra."""

__version__ = "0.1.0"

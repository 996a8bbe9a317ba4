"""Data releases: the catalogue views as FITS tables, one FITS file per spectrum, a manifest.

Modules, one job each: :mod:`~lamostdb.export.columns` (contract columns to FITS
columns), :mod:`~lamostdb.export.header` (header cards of a release and of a spectrum
file), :mod:`~lamostdb.export.tables` (``lrs``/``mec`` to FITS tables),
:mod:`~lamostdb.export.spectra` (per-spectrum files), :mod:`~lamostdb.export.manifest`
(``manifest.json``, ``SHA256SUMS``) and :mod:`~lamostdb.export.stage` (the stage).
"""

from lamostdb.export.errors import ExportError
from lamostdb.export.stage import ExportReport, export_release

__all__ = ["ExportError", "ExportReport", "export_release"]

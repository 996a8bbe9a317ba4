"""What the reference-catalogue readers accept (kinds, file formats) and the error they raise.

Its own module so that the command line can list them in its help without importing the
readers (astropy's tables, pyarrow's CSV) at every start.
"""

from __future__ import annotations

KINDS = ("gaia", "ps1")
SUPPORTED_FORMATS = (
    "Parquet (.parquet, .pq)",
    "CSV (.csv, .csv.gz)",
    "ECSV (.ecsv)",
    "FITS binary table (.fits, .fit, .fits.gz)",
    "VOTable (.vot, .xml, .votable, .vot.gz)",
    "Gaia-archive or MAST JSON (.json)",
)


class RefcatError(ValueError):
    """A reference-catalogue file cannot be read or mapped; the message says what to do."""

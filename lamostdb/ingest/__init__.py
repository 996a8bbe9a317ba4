"""The ingest stage: FITS files in, ``spectra`` partitions and ledger rows out.

:mod:`lamostdb.ingest.partition` is the pure partition function (parsed records -> one
Arrow table per HEALPix partition); :mod:`lamostdb.ingest.stage` is the driver (discover,
skip what the ledger knows, read chunks of files on an executor, decide versions, commit).
"""

from lamostdb.ingest.stage import SPECTRUM_SUFFIXES, discover, ingest

__all__ = ["SPECTRUM_SUFFIXES", "discover", "ingest"]

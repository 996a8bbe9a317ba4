"""Cross-match with reference catalogues: HEALPix pixel join in DuckDB, exact haversine.

:func:`crossmatch_pairs` is the kernel (all pairs within a radius, optionally with Gaia
proper motion); :func:`xmatch_partition` is the pure partition function (one partition's
spectra and nearby reference rows in, ``xmatch`` rows out); :func:`xmatch` is the stage
driver that plans the partitions, runs them on an executor and commits the ``xmatch`` table.
"""

from lamostdb.healpix.blocks import match_order, pixel_block
from lamostdb.healpix.join import crossmatch_pairs
from lamostdb.xmatch.partition import (
    AMBIGUOUS_DELTA_ARCSEC,
    AMBIGUOUS_RATIO,
    XmatchConfig,
    best_matches,
    xmatch_partition,
)
from lamostdb.xmatch.stage import XmatchReport, xmatch

__all__ = [
    "AMBIGUOUS_DELTA_ARCSEC",
    "AMBIGUOUS_RATIO",
    "XmatchConfig",
    "XmatchReport",
    "best_matches",
    "crossmatch_pairs",
    "match_order",
    "pixel_block",
    "xmatch",
    "xmatch_partition",
]

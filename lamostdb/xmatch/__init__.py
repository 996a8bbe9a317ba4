"""Cross-match with reference catalogues: HEALPix pixel join in DuckDB, exact haversine.

:func:`crossmatch_pairs` is the kernel (all pairs within a radius, optionally with Gaia
proper motion); :func:`xmatch` is the catalogue stage that writes the ``xmatch`` table.
"""

from lamostdb.healpix.blocks import match_order, pixel_block
from lamostdb.healpix.join import crossmatch_pairs
from lamostdb.xmatch.stage import (
    AMBIGUOUS_DELTA_ARCSEC,
    AMBIGUOUS_RATIO,
    XmatchReport,
    best_matches,
    xmatch,
)

__all__ = [
    "AMBIGUOUS_DELTA_ARCSEC",
    "AMBIGUOUS_RATIO",
    "XmatchReport",
    "best_matches",
    "crossmatch_pairs",
    "match_order",
    "pixel_block",
    "xmatch",
]

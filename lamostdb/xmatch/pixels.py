"""The cross-match's pixel arithmetic now lives in :mod:`lamostdb.healpix.blocks` (one pixel
join for xmatch and the friends-of-friends); these names stay importable from here."""

from lamostdb.healpix.blocks import PIXEL_MARGIN, RES0_ARCSEC, match_order, pixel_block

__all__ = ["PIXEL_MARGIN", "RES0_ARCSEC", "match_order", "pixel_block"]

"""HEALPix pixel math (nested scheme): spatial index, partition keys and the pixel join.

:mod:`lamostdb.healpix.pixels` and :mod:`lamostdb.healpix.blocks` are numpy only;
:mod:`lamostdb.healpix.join` is the DuckDB pixel join (cross-match and friends-of-friends)
and :mod:`lamostdb.healpix.macros` the SQL macros ``sep_arcsec`` and ``pixel_at_order``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamostdb.lazy import lazy_attributes

if TYPE_CHECKING:
    from lamostdb.healpix.blocks import PIXEL_MARGIN, RES0_ARCSEC, match_order, pixel_block
    from lamostdb.healpix.pixels import (
        SPATIAL_INDEX_ORDER,
        cone_pixels,
        healpix_29,
        neighbours,
        parent_pixel,
        partition_dir,
        pixel_at_order,
        pixel_start,
    )

_HOME = {
    **dict.fromkeys(("PIXEL_MARGIN", "RES0_ARCSEC", "match_order", "pixel_block"), "blocks"),
    **dict.fromkeys(
        (
            "SPATIAL_INDEX_ORDER",
            "cone_pixels",
            "healpix_29",
            "neighbours",
            "parent_pixel",
            "partition_dir",
            "pixel_at_order",
            "pixel_start",
        ),
        "pixels",
    ),
}


# lazy: blocks imports astropy_healpix (astropy coordinates, 0.25 s), which a classify
# worker (it only needs partition_dir) must not pay for at every process start
__getattr__ = lazy_attributes(__name__, _HOME)


__all__ = [
    "PIXEL_MARGIN",
    "RES0_ARCSEC",
    "SPATIAL_INDEX_ORDER",
    "cone_pixels",
    "healpix_29",
    "match_order",
    "neighbours",
    "parent_pixel",
    "partition_dir",
    "pixel_at_order",
    "pixel_block",
    "pixel_start",
]

"""HEALPix pixel math (nested scheme): spatial index and partition keys."""

from lamostdb.healpix.pixels import (
    SPATIAL_INDEX_ORDER,
    cone_pixels,
    healpix_29,
    neighbours,
    partition_dir,
    pixel_at_order,
)

__all__ = [
    "SPATIAL_INDEX_ORDER",
    "cone_pixels",
    "healpix_29",
    "neighbours",
    "partition_dir",
    "pixel_at_order",
]

"""The cross-match kernel is the project's one pixel join, :mod:`lamostdb.healpix.join`
(shared with the friends-of-friends of the ids stage); these names stay importable from
here for the xmatch stage module."""

from lamostdb.healpix.join import (
    MOTION_COLUMNS,
    POSITION_COLUMNS,
    Source,
    crossmatch_pairs,
    registered,
)

#: The stage module's name for :func:`lamostdb.healpix.join.registered`.
_registered = registered

__all__ = ["MOTION_COLUMNS", "POSITION_COLUMNS", "Source", "crossmatch_pairs", "registered"]

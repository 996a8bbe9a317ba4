"""Object identifiers (DESIGN.md section 6): LID, GID (``gp_id``) and UID, and designations.

``compute_ids`` and ``uid_aliases`` are pure functions over Polars frames;
``link_partition`` is the partition function (friends-of-friends links of one group of
partitions plus its margin) and ``ids_from_links`` the central step;
``assign_ids`` is the catalogue stage that writes the ``objects`` table.
"""

from lamostdb.ids.assign import (
    CARRIED_COLUMNS,
    GP_TYPES,
    compute_ids,
    ids_from_links,
    uid_aliases,
)
from lamostdb.ids.designation import designation
from lamostdb.ids.fof import components, fof_pairs, link_order
from lamostdb.ids.partition import LinkConfig, link_partition
from lamostdb.ids.stage import IdsReport, assign_ids

__all__ = [
    "CARRIED_COLUMNS",
    "GP_TYPES",
    "IdsReport",
    "LinkConfig",
    "assign_ids",
    "components",
    "compute_ids",
    "designation",
    "fof_pairs",
    "ids_from_links",
    "link_order",
    "link_partition",
    "uid_aliases",
]

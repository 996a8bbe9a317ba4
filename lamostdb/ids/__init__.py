"""Object identifiers (DESIGN.md section 6): LID, GID (``gp_id``) and UID, and designations.

``compute_ids`` and ``uid_aliases`` are pure functions over Polars frames;
``assign_ids`` is the catalogue stage that writes the ``objects`` table.
"""

from lamostdb.ids.assign import CARRIED_COLUMNS, GP_TYPES, compute_ids, uid_aliases
from lamostdb.ids.designation import designation
from lamostdb.ids.fof import components, fof_pairs, link_order
from lamostdb.ids.stage import IdsReport, assign_ids

__all__ = [
    "CARRIED_COLUMNS",
    "GP_TYPES",
    "IdsReport",
    "assign_ids",
    "components",
    "compute_ids",
    "designation",
    "fof_pairs",
    "link_order",
    "uid_aliases",
]

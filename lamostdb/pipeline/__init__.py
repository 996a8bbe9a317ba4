"""Multi-stage operations built from the catalogue stages (they talk only through tables).

:func:`run_nightly` runs refcat ingest (optional), ingest, classify, xmatch and ids on one
night folder, resumably.
"""

from lamostdb.pipeline.nightly import (
    NIGHT_REFCAT_FILES,
    STAGES,
    NightlyError,
    NightlyOptions,
    NightlySummary,
    NightState,
    StageOutcome,
    run_nightly,
)

__all__ = [
    "NIGHT_REFCAT_FILES",
    "STAGES",
    "NightState",
    "NightlyError",
    "NightlyOptions",
    "NightlySummary",
    "StageOutcome",
    "run_nightly",
]

"""The classify stage: ``spectra`` in, ``results`` and ``candidates`` out.

:mod:`lamostdb.classify.partition` is the pure partition function (one partition's
spectra as Arrow + an :class:`~lamostdb.match.config.EngineConfig` -> results and
candidates tables; the engine runs as a Polars UDF over record batches);
:mod:`lamostdb.classify.stage` is the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lamostdb.lazy import lazy_attributes

if TYPE_CHECKING:
    from lamostdb.classify.stage import ClassifyReport, classify


# lazy: importing the partition function must not import the driver and the store
__all__ = ["ClassifyReport", "classify"]
__getattr__ = lazy_attributes(__name__, dict.fromkeys(__all__, "stage"))

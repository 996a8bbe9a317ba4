"""The classify stage: ``spectra`` in, ``results`` and ``candidates`` out.

:mod:`lamostdb.classify.partition` is the pure partition function (one partition's
spectra as Arrow + an :class:`~lamostdb.match.config.EngineConfig` -> results and
candidates tables; the engine runs as a Polars UDF over record batches);
:mod:`lamostdb.classify.stage` is the driver.
"""

from lamostdb.classify.stage import ClassifyReport, classify

__all__ = ["ClassifyReport", "classify"]

"""The classify stage: ``spectra`` in, ``results`` and ``candidates`` out.

:mod:`lamostdb.classify.partition` is the pure partition function (one partition's
spectra as Arrow + an :class:`~lamostdb.match.config.EngineConfig` -> results and
candidates tables; the engine runs as a Polars UDF over record batches);
:mod:`lamostdb.classify.stage` is the driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lamostdb.classify.stage import ClassifyReport, classify


def __getattr__(name: str) -> Any:
    # lazy: importing the partition function must not import the driver and the store
    if name in __all__:
        from lamostdb.classify import stage

        return getattr(stage, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ClassifyReport", "classify"]

"""The classify stage: ``spectra`` in, ``results`` and ``candidates`` out.

PLACEHOLDER of branch ``dask`` (issue 12): the lead moves ``lamostdb/catalog/classify.py``
here and runs its partitions on :func:`lamostdb.execute.open_executor`. Until then this
only gives the CLI and the nightly pipeline the stage's final name and its ``cluster``
parameter: ``cluster`` is checked (a bad string raises ``ValueError``) but the partitions
still run on the local process pool, and the report has no ``executor``.
"""

from __future__ import annotations

from typing import Any

from lamostdb.catalog.classify import ClassifyReport
from lamostdb.catalog.classify import classify as _classify
from lamostdb.catalog.store import Catalog
from lamostdb.execute import parse_cluster

__all__ = ["ClassifyReport", "classify"]


def classify(catalog: Catalog, *, cluster: str | None = None, **kwargs: Any) -> ClassifyReport:
    """Classify ``catalog``'s spectra (see :func:`lamostdb.catalog.classify.classify`)."""
    parse_cluster(cluster)
    return _classify(catalog, **kwargs)

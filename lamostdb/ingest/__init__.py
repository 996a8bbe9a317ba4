"""The ingest stage: spectrum files in, ``spectra`` out.

PLACEHOLDER of branch ``dask`` (issue 12): the lead moves ``lamostdb/catalog/ingest.py``
here and runs its chunks on :func:`lamostdb.execute.open_executor`. Until then this only
gives the CLI and the nightly pipeline the stage's final name and its ``cluster``
parameter: ``cluster`` is checked (a bad string raises ``ValueError``) but the chunks
still run on the local process pool, and the report has no ``executor``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lamostdb.catalog.ingest import SPECTRUM_SUFFIXES, discover
from lamostdb.catalog.ingest import ingest as _ingest
from lamostdb.catalog.ledger import IngestReport
from lamostdb.catalog.store import Catalog
from lamostdb.execute import parse_cluster

__all__ = ["SPECTRUM_SUFFIXES", "IngestReport", "discover", "ingest"]


def ingest(catalog: Catalog, inputs: Iterable[str | Path], *, cluster: str | None = None,
           **kwargs: Any) -> IngestReport:
    """Ingest ``inputs`` into ``catalog`` (see :func:`lamostdb.catalog.ingest.ingest`)."""
    parse_cluster(cluster)
    return _ingest(catalog, inputs, **kwargs)

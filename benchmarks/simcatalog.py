"""Shared by the benchmarks: the stage entry points (imported here, in one place) and a
catalogue built from a simulated night.

The stage functions move between modules as the house changes; benchmarks import them
from here so that a move is fixed once. Call them with keyword arguments.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamostdb.catalog.store import Catalog
from lamostdb.classify import classify
from lamostdb.export import export_release
from lamostdb.ids import assign_ids
from lamostdb.ingest import ingest
from lamostdb.refcat import ingest_refcat
from lamostdb.sim import simulate_night
from lamostdb.xmatch import crossmatch_pairs, xmatch

__all__ = [
    "Catalog",
    "accepts",
    "assign_ids",
    "build_catalog",
    "classify",
    "crossmatch_pairs",
    "export_release",
    "ingest",
    "ingest_refcat",
    "simulate_night",
    "xmatch",
]


def accepts(fn: Callable[..., Any], name: str) -> bool:
    """Whether stage function ``fn`` takes the keyword ``name`` (e.g. ``workers``)."""
    return name in inspect.signature(fn).parameters


def build_catalog(work: Path, n: int, *, seed: int = 9) -> Path:
    """Simulate a night of ``n`` spectra in ``work/night`` and run every stage on it.

    Ingest, classify, Gaia and PS1 from the night's mock extracts, cross-match and
    identifiers, into the new catalogue ``work/cat``; returns its path.
    """
    night = work / "night"
    t0 = time.perf_counter()
    simulate_night(night, n=n, seed=seed)
    catalog = work / "cat"
    with Catalog.create(catalog) as cat:
        ingest(cat, inputs=[night / "spectra"], progress=False)
        classify(cat, progress=False)
        ingest_refcat(cat, kind="gaia", files=[night / "gaia.parquet"], progress=False)
        ingest_refcat(cat, kind="ps1", files=[night / "ps1.parquet"], progress=False)
        xmatch(cat, progress=False)
        assign_ids(cat, progress=False)
    print(
        f"built a catalogue of {n} simulated spectra (simulate, ingest, classify, xmatch, "
        f"ids) in {time.perf_counter() - t0:.0f} s"
    )
    return catalog

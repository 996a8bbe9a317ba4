"""Validation: our classes, subclasses and redshifts against a truth, as a report.

``lamostdb validate CATALOG --truth TRUTH --out DIR`` in Python::

    from lamostdb.validate import validate_catalog
    result = validate_catalog("cat", "night/truth.parquet", "report")
    result.summary["class_accuracy"], result.report.report_md

Modules: :mod:`~lamostdb.validate.truth` (the joined frame from a catalogue and a truth),
:mod:`~lamostdb.validate.metrics` (pure functions of that frame),
:mod:`~lamostdb.validate.plots` (PNG figures), :mod:`~lamostdb.validate.report`
(``summary.json``, ``report.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lamostdb.validate.metrics import roc_auc, summarize
from lamostdb.validate.report import Report, write_report
from lamostdb.validate.truth import LAMOST_TRUTH, Joined, load_joined

__all__ = [
    "LAMOST_TRUTH",
    "Joined",
    "Report",
    "Validation",
    "load_joined",
    "roc_auc",
    "summarize",
    "validate_catalog",
    "write_report",
]


@dataclass(frozen=True)
class Validation:
    """What :func:`validate_catalog` computed and wrote."""

    summary: dict[str, Any]
    report: Report


def validate_catalog(
    catalog: str | Path,
    truth: str | Path,
    out_dir: str | Path,
    *,
    conf_threshold: float = 0.8,
    ablation: Sequence[Mapping[str, Any]] | None = None,
    plots_wanted: bool = True,
) -> Validation:
    """Compare a catalogue's current results with a truth and write the report.

    Parameters
    ----------
    catalog
        Catalogue folder (opened read-only).
    truth
        ``'lamost'`` (the LAMOST pipeline labels in the spectra view) or a Parquet file
        keyed by obsid (``truth.parquet`` of ``lamostdb simulate``).
    out_dir
        Report folder: ``summary.json``, ``report.md``, PNG figures.
    conf_threshold
        Conf cut for the accuracy of confident classifications.
    ablation
        Optional rows for the report's ablation table.
    plots_wanted
        False to skip the figures.
    """
    from lamostdb.catalog.store import open_catalog

    with open_catalog(catalog) as cat:
        joined = load_joined(cat, truth)
        root = cat.root
    summary = summarize(joined.frame, conf_threshold=conf_threshold)
    summary = {
        "inputs": {
            "catalog": str(root),
            "truth": joined.truth,
            "n_truth": joined.n_truth,
            "n_results": joined.n_results,
        },
        **summary,
    }
    report = write_report(
        summary, joined.frame, out_dir, ablation=ablation, plots_wanted=plots_wanted
    )
    return Validation(summary=summary, report=report)
